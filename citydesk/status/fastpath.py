"""The status answers every screen polls, served to anonymous viewers straight from the cache.

A wall of kiosks and every citizen's phone ask ``/api/status/air`` and ``/sensors`` for the same
few measures; the answer is computed at most once a second per worker (``live.AnswerCache``). Once
it is cached, FastAPI's routing, dependency solving and response machinery cost four times what
sending the bytes does (``bench/bench_status.py``: 3,900 requests/s through the route against
18,600/s for a bare ASGI app with the same body). This middleware answers a plain anonymous
``GET`` whose answer is already cached before the request enters FastAPI, with the same bytes
and headers the route would send; everything else — a miss, credentials, an odd query — goes
through the route, which computes, caches and documents the answer.

The cache key is built by ``answer_key`` for both, so the two paths cannot disagree on what
an anonymous viewer may see.
"""

from __future__ import annotations

from collections.abc import Hashable
from typing import TYPE_CHECKING
from urllib.parse import parse_qs

from starlette.requests import Request
from starlette.types import ASGIApp, Receive, Scope, Send

from citydesk.auth import ANONYMOUS, plainly_anonymous

if TYPE_CHECKING:
    from citydesk.web.app import App

GEOJSON = "application/geo+json"
CACHED_ROUTES: dict[str, tuple[str, str]] = {
    "/api/status/air": ("air", "application/json"),
    "/api/status/sensors": ("sensors", GEOJSON),
}
"""Path -> (answer kind, media type) of the cached per-measure answers."""


def answer_key(kind: str, measure: str, levels: frozenset[str]) -> Hashable:
    """The cache key of a per-measure status answer for viewers of these disclosure levels."""
    return (kind, measure, levels)


class CachedStatusAnswers:
    """ASGI middleware: an anonymous ``GET`` of a cached status answer never reaches the router."""

    def __init__(self, app: ASGIApp, citydesk: App) -> None:
        self.app = app
        self.citydesk = citydesk

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] == "GET" and scope["path"] in CACHED_ROUTES:
            body, media_type = self._cached(scope)
            if body is not None:
                await send(
                    {
                        "type": "http.response.start",
                        "status": 200,
                        "headers": [
                            (b"content-length", str(len(body)).encode()),
                            (b"content-type", media_type.encode()),
                        ],
                    }
                )
                await send({"type": "http.response.body", "body": body})
                return
        await self.app(scope, receive, send)

    def _cached(self, scope: Scope) -> tuple[bytes | None, str]:
        kind, media_type = CACHED_ROUTES[scope["path"]]
        if not plainly_anonymous(Request(scope), self.citydesk.settings):
            return None, media_type
        query = parse_qs(scope["query_string"].decode("latin-1"), keep_blank_values=True)
        measures = query.get("measure")
        if measures is None or len(measures) != 1:
            return None, media_type  # the route explains what is wrong
        key = answer_key(kind, measures[0], ANONYMOUS.levels)
        return self.citydesk.status.answers.peek(key), media_type
