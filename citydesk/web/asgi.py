"""ASGI factory for servers that import the app themselves (``uvicorn --factory``, several workers).

Each worker process builds its own app object from the environment; everything it holds in
memory is rebuilt from the database, so workers are interchangeable behind a load balancer.
"""

from __future__ import annotations

import os

from fastapi import FastAPI

from citydesk.config import Settings
from citydesk.web.assemble import assemble
from citydesk.web.heap import tune_for_serving


def create() -> FastAPI:
    """Build the app from ``Settings.from_env()``; ``CITYDESK_SIMULATE=1`` adds the simulator."""
    api = assemble(Settings.from_env(), simulate=os.environ.get("CITYDESK_SIMULATE") == "1")
    tune_for_serving()
    return api
