"""FastAPI dependencies: who is asking (``principal``) and guards for routes (``requires``).

These are thin: they read headers and cookies and call ``service``; they are plain ``def`` so that
FastAPI runs them in its thread pool, where argon2 and database calls do not block the event loop.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Callable
from datetime import datetime
from typing import Annotated, Protocol

from fastapi import Depends, Request
from fastapi.concurrency import run_in_threadpool
from sqlalchemy import Engine

from citydesk.auth import service
from citydesk.auth.disclosure import Permission
from citydesk.auth.principal import ANONYMOUS, BASIC_CHALLENGE, CredentialCache, Principal
from citydesk.config import Settings
from citydesk.errors import Forbidden, Unauthorized
from citydesk.web.deps import get_app

SESSION_COOKIE = "citydesk_session"


class AuthApp(Protocol):
    """What auth needs from the app object (``citydesk.web.app.App`` has all of it)."""

    engine: Engine
    settings: Settings
    credentials: CredentialCache

    def now(self) -> datetime: ...


def auth_app(request: Request) -> AuthApp:
    return get_app(request)


def _basic(value: str) -> tuple[str, str]:
    try:
        decoded = base64.b64decode(value.strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError) as exc:
        raise Unauthorized("malformed Basic credentials", headers=dict(BASIC_CHALLENGE)) from exc
    name, colon, password = decoded.partition(":")
    if not colon:
        raise Unauthorized("malformed Basic credentials", headers=dict(BASIC_CHALLENGE))
    return name, password


async def principal(request: Request) -> Principal:
    """The principal of this request: Bearer token, then HTTP Basic, then session cookie, else anonymous.

    Credentials given explicitly but wrong are a 401, not a silent downgrade to anonymous: a client
    that meant to write would otherwise get confusing 403s or, worse, public data only. A stale
    session cookie, in contrast, just means "signed out". On a public instance everyone is anonymous.

    A request without credentials (every citizen, kiosk and open-API call) is answered on the event
    loop; checking credentials may query the database and hash a password, so it runs in a thread.
    The thread hop alone cost more than a cached status answer.
    """
    app = auth_app(request)
    if plainly_anonymous(request, app.settings):
        return ANONYMOUS
    return await run_in_threadpool(_from_credentials, request, app)


def plainly_anonymous(request: Request, settings: Settings) -> bool:
    """True when the request is anonymous without asking the database: a public instance, or no
    credentials at all. (A stale session cookie is anonymous too, but only a lookup tells.)"""
    return settings.public_mode or (
        "authorization" not in request.headers and SESSION_COOKIE not in request.cookies
    )


def _from_credentials(request: Request, app: AuthApp) -> Principal:
    header = request.headers.get("authorization")
    if header:
        scheme, _, value = header.partition(" ")
        scheme = scheme.lower()
        if scheme == "bearer":
            return service.authenticate_token(app.engine, value.strip(), now=app.now())
        if scheme == "basic":
            name, password = _basic(value)
            return service.authenticate_basic(app.engine, app.credentials, name, password, now=app.now())
        raise Unauthorized(f"unsupported authorization scheme {scheme!r}", headers=dict(BASIC_CHALLENGE))
    cookie = request.cookies.get(SESSION_COOKIE)
    if cookie:
        found = service.session_principal(app.engine, cookie, now=app.now())
        if found is not None:
            return found
    return ANONYMOUS


CurrentPrincipal = Annotated[Principal, Depends(principal)]


def _refuse_on_public_instance(request: Request) -> None:
    if auth_app(request).settings.public_mode:
        raise Forbidden("this is a public instance: it takes no staff writes")


def require_staff(request: Request, who: CurrentPrincipal) -> Principal:
    """A signed-in staff member (401 for anonymous, 403 on a public instance)."""
    _refuse_on_public_instance(request)
    if not who.is_staff:
        raise Unauthorized("sign-in required", headers=dict(BASIC_CHALLENGE))
    return who


def requires(permission: Permission | str) -> Callable[..., Principal]:
    """A dependency admitting only principals with ``permission``; a typo fails at import time."""
    wanted = Permission(permission)

    def dependency(request: Request, who: CurrentPrincipal) -> Principal:
        _refuse_on_public_instance(request)
        who.require(wanted)
        return who

    dependency.__name__ = f"requires_{wanted.value.replace('.', '_')}"
    return dependency


StaffPrincipal = Annotated[Principal, Depends(require_staff)]

READS = frozenset({"GET", "HEAD", "OPTIONS"})
PUBLIC_POSTS = frozenset({"/sta/v1.1/$batch", "/logout"})
"""POSTs a public instance answers: a SensorThings batch (its reads are answered, each write in it
is refused on its own) and signing out (there is nothing to sign out of)."""


def refuse_writes_on_public_instance(request: Request) -> None:
    """An app-wide dependency of a public instance: every request that is not a read is refused
    with 403 before its route parses anything, whatever route it is (sub-packages add theirs)."""
    if request.method not in READS and request.url.path not in PUBLIC_POSTS:
        raise Forbidden("this is a public instance: it takes no writes and no sign-in")
