"""Run ``citydesk serve`` as a separate process for the HTTP benchmarks."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager

import httpx


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def serving(database_url: str, *, workers: int = 2, env: dict[str, str] | None = None) -> Iterator[str]:
    port = free_port()
    environ = {**os.environ, "DATABASE_URL": database_url, **(env or {})}
    proc = subprocess.Popen(
        [sys.executable, "-m", "citydesk.cli", "serve", "--port", str(port), "--workers", str(workers)],
        env=environ,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        for _ in range(200):
            try:
                if httpx.get(base + "/sta/v1.1", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.1)
        else:
            raise RuntimeError(
                "server did not start: " + (proc.stderr.read().decode() if proc.stderr else "")
            )
        yield base
    finally:
        proc.terminate()
        proc.wait(timeout=20)
