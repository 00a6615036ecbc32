#!/usr/bin/env bash
# Debian packages the test suite needs: PostGIS for the spatial $filter functions on PostgreSQL,
# Chromium for the browser tests. Installs only what is missing; `apt-get update` once.
set -euo pipefail
need=()
pg_major=$(ls /usr/lib/postgresql 2>/dev/null | sort -n | tail -n1 || true)
if [ -n "$pg_major" ] && ! ls /usr/share/postgresql/"$pg_major"/extension/postgis.control >/dev/null 2>&1; then
  need+=("postgresql-$pg_major-postgis-3")
fi
command -v chromium >/dev/null 2>&1 || need+=(chromium)
if [ ${#need[@]} -gt 0 ]; then
  if [ "$(id -u)" != 0 ]; then echo "need root to install: ${need[*]}" >&2; exit 1; fi
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq "${need[@]}" >/dev/null
  echo "installed: ${need[*]}"
fi
