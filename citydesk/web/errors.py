"""Rendering of errors, one handler per API dialect.

Services raise ``citydesk.errors.CitydeskError``; here it becomes our JSON error body, or the
SensorThings body under ``/sta/``. Validation errors from request parsing get the same treatment,
and anything unexpected is logged and answered with a plain 500 body: never a stack trace.
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from citydesk.errors import CitydeskError

log = logging.getLogger(__name__)


def _body(request: Request, status: int, code: str, message: str, details: Any) -> dict[str, Any]:
    if request.url.path.startswith("/sta/"):
        # The body FROST and other SensorThings servers send; clients show ``message``.
        return {"code": status, "type": "error", "message": message}
    return {"error": {"code": code, "message": message, "details": details}}


def _response(
    request: Request,
    status: int,
    code: str,
    message: str,
    details: Any = None,
    headers: dict[str, str] | None = None,
) -> JSONResponse:
    return JSONResponse(_body(request, status, code, message, details), status_code=status, headers=headers)


def install_error_handlers(api: FastAPI) -> None:
    @api.exception_handler(CitydeskError)
    async def _citydesk(request: Request, exc: CitydeskError) -> JSONResponse:
        return _response(
            request, exc.status, exc.code, exc.message, exc.details, getattr(exc, "headers", None)
        )

    @api.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> JSONResponse:
        details = [
            {"loc": list(e.get("loc", ())), "msg": e.get("msg", ""), "type": e.get("type", "")}
            for e in exc.errors()
        ]
        first = details[0] if details else {"loc": [], "msg": "invalid request"}
        where = ".".join(str(x) for x in first["loc"] if x != "body")
        return _response(request, 400, "validation_failed", f"{where}: {first['msg']}".strip(": "), details)

    @api.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
        return _response(request, exc.status_code, code, str(exc.detail), None, getattr(exc, "headers", None))

    @api.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        return _response(request, 500, "internal_error", "Internal error; it has been logged.")
