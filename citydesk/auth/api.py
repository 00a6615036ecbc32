"""JSON routes for a client's own identity and API tokens (``/api/auth``).

Tokens are how scripts and ``frost-sta-client`` authenticate without sending a password on every
request; the secret is returned exactly once, by ``POST /api/auth/tokens``.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Response
from pydantic import BaseModel, Field

from citydesk.auth import service
from citydesk.auth.deps import AuthApp, CurrentPrincipal, StaffPrincipal, auth_app
from citydesk.auth.disclosure import Disclosure, Permission
from citydesk.auth.principal import BASIC_CHALLENGE, Principal
from citydesk.errors import Unauthorized

router = APIRouter(prefix="/api/auth", tags=["auth"])
AppDep = Annotated[AuthApp, Depends(auth_app)]


class TokenCreate(BaseModel):
    label: str = Field(default="", max_length=200, description="What the token is for, e.g. a script's name.")


class TokenOut(BaseModel):
    id: int
    label: str
    created_at: datetime
    last_used_at: datetime | None = None


class NewToken(BaseModel):
    token: str = Field(description="The secret: shown this once, never again.")
    id: int
    label: str
    created_at: datetime


class Me(BaseModel):
    name: str
    role: str
    levels: list[Disclosure]
    permissions: list[Permission]
    department: str | None = None


def _own_id(who: Principal) -> int:
    if who.user_id is None:  # require_staff already refused this; kept so the type is honest
        raise Unauthorized("sign-in required", headers=dict(BASIC_CHALLENGE))
    return who.user_id


@router.get("/me", response_model=Me)
def me(who: CurrentPrincipal) -> Me:
    """Who the server thinks you are; anonymous callers get the public principal, not a 401."""
    return Me(
        name=who.name,
        role=who.role.value,
        levels=sorted(who.levels, key=list(Disclosure).index),
        permissions=sorted(who.permissions),
        department=who.department,
    )


@router.post("/tokens", response_model=NewToken, status_code=201)
def create_token(body: TokenCreate, who: StaffPrincipal, app: AppDep) -> NewToken:
    token, info = service.issue_token(app.engine, _own_id(who), body.label.strip(), now=app.now())
    return NewToken(token=token, id=info.id, label=info.label, created_at=info.created_at)


@router.get("/tokens", response_model=list[TokenOut])
def list_tokens(who: StaffPrincipal, app: AppDep) -> list[TokenOut]:
    return [TokenOut(**vars(t)) for t in service.list_tokens(app.engine, _own_id(who))]


@router.delete("/tokens/{token_id}", status_code=204)
def revoke_token(token_id: int, who: StaffPrincipal, app: AppDep) -> Response:
    """Revoke one of your tokens; a user manager may revoke anyone's (e.g. a leaked one)."""
    owner = None if who.can(Permission.USERS_MANAGE) else _own_id(who)
    service.revoke_token(app.engine, token_id, owner_id=owner)
    return Response(status_code=204)
