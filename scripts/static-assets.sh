#!/usr/bin/env bash
# Install the front-end packages pinned in package-lock.json and copy what the pages use into
# citydesk/web/static/vendor/ (git-ignored), with their licence files. No CDN at run time.
set -euo pipefail
cd "$(dirname "$0")/.."
vendor=citydesk/web/static/vendor
stamp="$vendor/.installed-$(cksum < package-lock.json | cut -d' ' -f1)"
[ -f "$stamp" ] && exit 0
if ! command -v npm >/dev/null 2>&1; then
  echo "npm is needed for the front-end assets (font, charts, map): install Node.js (Debian: nodejs npm)" >&2
  exit 1
fi
npm ci --no-audit --no-fund --loglevel=error >/dev/null
rm -rf "$vendor"
font=node_modules/@fontsource/noto-sans-kr
mkdir -p "$vendor/noto-sans-kr/files"
for weight in 400 700; do
  cp "$font/$weight.css" "$vendor/noto-sans-kr/"
  cp "$font"/files/noto-sans-kr-*-"$weight"-normal.woff2 "$vendor/noto-sans-kr/files/"
done
cp "$font/LICENSE" "$vendor/noto-sans-kr/"
# Apache ECharts draws every chart and the district choropleth; Leaflet the point layers.
mkdir -p "$vendor/echarts" "$vendor/leaflet"
cp node_modules/echarts/dist/echarts.min.js node_modules/echarts/LICENSE node_modules/echarts/NOTICE "$vendor/echarts/"
cp node_modules/leaflet/dist/leaflet.js node_modules/leaflet/dist/leaflet.css node_modules/leaflet/LICENSE "$vendor/leaflet/"
cp -r node_modules/leaflet/dist/images "$vendor/leaflet/"
# Swagger UI renders /docs from the OpenAPI document (FastAPI's default page would load it from a CDN).
mkdir -p "$vendor/swagger-ui"
cp node_modules/swagger-ui-dist/{swagger-ui-bundle.js,swagger-ui.css,favicon-32x32.png,LICENSE,NOTICE} "$vendor/swagger-ui/"
touch "$stamp"
echo "static assets installed in $vendor"
