"""citydesk.auth against real databases: SQLite file and PostgreSQL (throwaway schema), plus HTTP."""

from __future__ import annotations

import base64
import hashlib
import secrets
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from argon2 import PasswordHasher
from fastapi import Depends, FastAPI, Request
from fastapi.responses import JSONResponse
from fastapi.testclient import TestClient
from sqlalchemy import Engine, create_engine, select, text, update
from sqlalchemy.exc import OperationalError

from citydesk.auth import (
    ANONYMOUS,
    ROLE_LEVELS,
    ROLE_PERMISSIONS,
    CredentialCache,
    Disclosure,
    Permission,
    Principal,
    Role,
    audit,
    authenticate_password,
    authenticate_token,
    create_session,
    create_token,
    create_user,
    deactivate_user,
    end_session,
    list_tokens,
    list_users,
    pages_router,
    parse_role,
    requires,
    revoke_token,
    router,
    session_principal,
    set_password,
)
from citydesk.auth.models import api_tokens, audit_log, sessions, users
from citydesk.auth.pages import safe_next
from citydesk.config import Settings
from citydesk.db.engine import make_engine
from citydesk.db.metadata import metadata
from citydesk.errors import CitydeskError, Conflict, Forbidden, NotFound, Unauthorized, ValidationFailed

PG_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
AUTH_TABLES = [users, api_tokens, audit_log, sessions]
T0 = datetime(2025, 3, 1, 9, 0, tzinfo=UTC)
PW = "correct horse battery"


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def engine(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Engine]:
    if request.param == "sqlite":
        eng = make_engine(f"sqlite:///{tmp_path}/auth.db")
        metadata.create_all(eng, tables=AUTH_TABLES)
        yield eng
        eng.dispose()
        return
    schema = f"auth_test_{secrets.token_hex(6)}"
    admin = create_engine(PG_URL, connect_args={"connect_timeout": 3})
    try:
        with admin.begin() as conn:
            conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    except OperationalError:
        admin.dispose()
        pytest.skip("PostgreSQL is not reachable at 127.0.0.1:5432/test")
    eng = create_engine(PG_URL, connect_args={"options": f"-csearch_path={schema}"})
    try:
        metadata.create_all(eng, tables=AUTH_TABLES)
        yield eng
    finally:
        eng.dispose()
        with admin.begin() as conn:
            conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


# -- tables and principals -------------------------------------------------------------------
def test_role_levels_for_every_role() -> None:
    everything = {Disclosure.PUBLIC, Disclosure.INTERNAL, Disclosure.RESTRICTED}
    expected = {
        Role.ANONYMOUS: {Disclosure.PUBLIC},
        Role.DEPARTMENT_STAFF: {Disclosure.PUBLIC, Disclosure.INTERNAL},
        Role.OFFICIAL: everything,
        Role.MAYOR: everything,
        Role.ADMIN: everything,
    }
    assert set(ROLE_LEVELS) == set(Role) == set(ROLE_PERMISSIONS)
    for role in Role:
        assert ROLE_LEVELS[role] == expected[role], role
        # Seeing restricted data and holding restricted.read go together.
        assert (Disclosure.RESTRICTED in ROLE_LEVELS[role]) == ("restricted.read" in ROLE_PERMISSIONS[role])
    assert ROLE_PERMISSIONS[Role.ANONYMOUS] == frozenset()
    assert ROLE_PERMISSIONS[Role.DEPARTMENT_STAFF] == {
        "sta.write",
        "manual.entry",
        "events.manage",
        "commands.handle",
    }
    assert "commands.send" not in ROLE_PERMISSIONS[Role.DEPARTMENT_STAFF]
    assert ROLE_PERMISSIONS[Role.MAYOR] == {
        "sta.write",
        "manual.entry",
        "restricted.read",
        "events.manage",
        "commands.send",
        "layouts.manage",
    }
    assert ROLE_PERMISSIONS[Role.OFFICIAL] == ROLE_PERMISSIONS[Role.MAYOR] | {
        "sources.manage",
        "alerts.manage",
        "commands.handle",
    }
    assert ROLE_PERMISSIONS[Role.ADMIN] == set(Permission)


def test_parse_role_and_principal_rules() -> None:
    assert parse_role("staff") is parse_role("Department_Staff") is Role.DEPARTMENT_STAFF
    for bad in ("anonymous", "chief", ""):
        with pytest.raises(ValidationFailed):
            parse_role(bad)
    assert Principal.public() == ANONYMOUS and not ANONYMOUS.is_staff and ANONYMOUS.levels == {"public"}
    with pytest.raises(Unauthorized) as anon:
        ANONYMOUS.require("sta.write")
    assert anon.value.headers == {"WWW-Authenticate": 'Basic realm="citydesk"'}
    staff = Principal.for_user(1, "kim", Role.DEPARTMENT_STAFF)
    assert staff.is_staff and staff.can("sta.write") and not staff.can("sources.manage")
    staff.require("manual.entry")
    with pytest.raises(Forbidden):
        staff.require("restricted.read")
    with pytest.raises(ValueError):
        staff.can("sta.wrtie")


# -- users and passwords ---------------------------------------------------------------------
def test_create_and_validate_users(engine: Engine) -> None:
    kim = create_user(engine, "kim", "staff", PW, now=T0, department="transport")
    assert (kim.role, kim.department, kim.active) == (Role.DEPARTMENT_STAFF, "transport", True)
    assert kim.created_at == T0
    with pytest.raises(Conflict):
        create_user(engine, "kim", Role.ADMIN, PW, now=T0)
    for name in ("", " lee", "lee ", "a" * 101, "a:b", "tab\tname"):
        with pytest.raises(ValidationFailed):
            create_user(engine, name, Role.OFFICIAL, PW, now=T0)
    for role in ("anonymous", "chief"):
        with pytest.raises(ValidationFailed):
            create_user(engine, "lee", role, PW, now=T0)
    with pytest.raises(ValidationFailed):
        create_user(engine, "lee", Role.OFFICIAL, "short", now=T0)
    create_user(engine, "lee", Role.MAYOR, PW, now=T0)
    assert [u.name for u in list_users(engine)] == ["kim", "lee"]
    stored = next(u for u in list_users(engine) if u.name == "kim")
    assert stored == kim


def test_service_joins_caller_transaction_with_savepoint(engine: Engine) -> None:
    with engine.begin() as conn:
        create_user(conn, "park", Role.OFFICIAL, PW, now=T0)
        with pytest.raises(Conflict):
            create_user(conn, "park", Role.OFFICIAL, PW, now=T0)
        audit(conn, ANONYMOUS, "test", "x", now=T0)  # the outer transaction is still usable
    assert [u.name for u in list_users(engine)] == ["park"]


def test_password_authentication(engine: Engine) -> None:
    user = create_user(engine, "choi", Role.OFFICIAL, PW, now=T0)
    who = authenticate_password(engine, "choi", PW, now=T0)
    assert (who.user_id, who.role, who.levels) == (user.id, Role.OFFICIAL, ROLE_LEVELS[Role.OFFICIAL])
    failures = []
    for name, password in (("choi", "wrong password"), ("nobody", PW), ("choi", PW + "x" * 2000)):
        with pytest.raises(Unauthorized) as exc:
            authenticate_password(engine, name, password, now=T0)
        failures.append(exc.value.message)
        assert exc.value.headers == {"WWW-Authenticate": 'Basic realm="citydesk"'}
    assert len(set(failures)) == 1  # the same message: no hint whether the name exists
    set_password(engine, user.id, "a new secret")
    with pytest.raises(Unauthorized):
        authenticate_password(engine, "choi", PW, now=T0)
    assert authenticate_password(engine, "choi", "a new secret", now=T0).name == "choi"
    deactivate_user(engine, user.id)
    with pytest.raises(Unauthorized):
        authenticate_password(engine, "choi", "a new secret", now=T0)
    with pytest.raises(NotFound):
        set_password(engine, 99999, "whatever123")


def test_rehash_on_verify_when_parameters_changed(engine: Engine) -> None:
    user = create_user(engine, "jung", Role.ADMIN, PW, now=T0)
    weak = PasswordHasher(time_cost=1, memory_cost=8192, parallelism=1).hash(PW)
    with engine.begin() as conn:
        conn.execute(update(users).where(users.c.id == user.id).values(password_hash=weak))
    authenticate_password(engine, "jung", PW, now=T0)
    with engine.connect() as conn:
        stored = conn.execute(select(users.c.password_hash).where(users.c.id == user.id)).scalar_one()
    assert stored != weak and "m=65536" in stored
    assert authenticate_password(engine, "jung", PW, now=T0).user_id == user.id


# -- tokens and sessions ---------------------------------------------------------------------
def _last_used(engine: Engine) -> Any:
    with engine.connect() as conn:
        return conn.execute(select(api_tokens.c.last_used_at)).scalar_one()


def test_tokens(engine: Engine) -> None:
    user = create_user(engine, "kang", Role.DEPARTMENT_STAFF, PW, now=T0)
    token = create_token(engine, user.id, "loader script", now=T0)
    assert token.startswith("cdk_") and len(token) > 40
    with engine.connect() as conn:
        stored = conn.execute(select(api_tokens.c.token_hash)).scalar_one()
    assert stored == hashlib.sha256(token.encode()).hexdigest()
    assert authenticate_token(engine, token, now=T0).name == "kang"
    assert _last_used(engine) == T0
    authenticate_token(engine, token, now=T0 + timedelta(seconds=30))
    assert _last_used(engine) == T0  # no write per request
    authenticate_token(engine, token, now=T0 + timedelta(seconds=90))
    assert _last_used(engine) == T0 + timedelta(seconds=90)
    (info,) = list_tokens(engine, user.id)
    assert info.label == "loader script" and not hasattr(info, "token")
    for garbage in ("", "cdk_nope", "Bearer x", token + "x"):
        with pytest.raises(Unauthorized):
            authenticate_token(engine, garbage, now=T0)
    with pytest.raises(NotFound):
        revoke_token(engine, info.id, owner_id=user.id + 1)
    revoke_token(engine, info.id, owner_id=user.id)
    with pytest.raises(Unauthorized):
        authenticate_token(engine, token, now=T0)
    assert list_tokens(engine, user.id) == []
    second = create_token(engine, user.id, "", now=T0)
    deactivate_user(engine, user.id)
    with pytest.raises(Unauthorized):
        authenticate_token(engine, second, now=T0)


def test_sessions_expire(engine: Engine) -> None:
    user = create_user(engine, "yoon", Role.MAYOR, PW, now=T0)
    token = create_session(engine, user.id, now=T0, ttl=timedelta(hours=1))
    found = session_principal(engine, token, now=T0 + timedelta(minutes=59))
    assert found is not None and found.role is Role.MAYOR
    assert session_principal(engine, token, now=T0 + timedelta(hours=1)) is None
    assert session_principal(engine, "not-a-session", now=T0) is None
    again = create_session(engine, user.id, now=T0 + timedelta(hours=2))  # purges the expired one
    with engine.connect() as conn:
        assert conn.execute(select(sessions.c.expires_at)).scalars().all() == [T0 + timedelta(hours=14)]
    end_session(engine, again)
    assert session_principal(engine, again, now=T0 + timedelta(hours=2)) is None
    third = create_session(engine, user.id, now=T0)
    deactivate_user(engine, user.id)
    assert session_principal(engine, third, now=T0) is None


def test_audit_log(engine: Engine) -> None:
    user = create_user(engine, "han", Role.OFFICIAL, PW, now=T0)
    who = authenticate_password(engine, "han", PW, now=T0)
    audit(engine, who, "restricted.read", "datastreams/7", "complaint contact", now=T0)
    with engine.connect() as conn:
        row = conn.execute(select(audit_log)).one()
    assert (row.user_id, row.action, row.target, row.detail, row.at) == (
        user.id,
        "restricted.read",
        "datastreams/7",
        "complaint contact",
        T0,
    )


def test_credential_cache() -> None:
    cache = CredentialCache(ttl=timedelta(seconds=60), max_entries=3)
    kim = Principal.for_user(1, "kim", Role.OFFICIAL)
    assert cache.get("kim", PW, now=T0) is None
    cache.put("kim", PW, kim, now=T0)
    assert cache.get("kim", PW, now=T0 + timedelta(seconds=59)) == kim
    assert cache.get("kim", "other", now=T0) is None
    assert cache.get("kim", PW, now=T0 + timedelta(seconds=60)) is None  # expired and dropped
    cache.put("a:b", "c", kim, now=T0)
    assert cache.get("a", "b:c", now=T0) is None
    for i in range(5):
        cache.put(f"u{i}", PW, Principal.for_user(10 + i, f"u{i}", Role.MAYOR), now=T0)
    assert len(cache) == 3 and cache.get("u0", PW, now=T0) is None and cache.get("u4", PW, now=T0)
    cache.invalidate_user(14)
    assert cache.get("u4", PW, now=T0) is None and len(cache) == 2


def test_safe_next() -> None:
    for target, expected in [
        ("/sta/v1.1", "/sta/v1.1"),
        ("/a?b=c#d", "/a?b=c#d"),
        ("", "/"),
        ("https://evil.example", "/"),
        ("//evil.example", "/"),
        ("/\\evil", "/"),
        ("/x\r\nSet-Cookie: a=b", "/"),
        ("relative", "/"),
    ]:
        assert safe_next(target) == expected


# -- HTTP: dependencies, API and login page on a bare FastAPI app ----------------------------
class Clock:
    def __init__(self) -> None:
        self.at = T0

    def now(self) -> datetime:
        return self.at


def make_client(engine: Engine, *, public: bool = False) -> tuple[TestClient, SimpleNamespace]:
    clock = Clock()
    state = SimpleNamespace(
        engine=engine,
        settings=Settings(public_mode=public),
        credentials=CredentialCache(),
        now=clock.now,
        clock=clock,
    )
    api = FastAPI()
    api.state.citydesk = state

    @api.exception_handler(CitydeskError)
    async def _render(request: Request, exc: CitydeskError) -> JSONResponse:
        body = {"error": {"code": exc.code, "message": exc.message}}
        return JSONResponse(body, status_code=exc.status, headers=exc.headers)

    @api.post("/write")
    def write(who: Principal = Depends(requires("sta.write"))) -> dict[str, str]:
        return {"by": who.name}

    @api.post("/sources")
    def sources(who: Principal = Depends(requires("sources.manage"))) -> dict[str, str]:
        return {"by": who.name}

    api.include_router(router)
    api.include_router(pages_router)
    return TestClient(api, follow_redirects=False), state


def basic(name: str, password: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{name}:{password}".encode()).decode()}


def test_http_anonymous_basic_and_cache(engine: Engine) -> None:
    user = create_user(engine, "kim", "staff", PW, now=T0)
    client, state = make_client(engine)
    me = client.get("/api/auth/me").json()
    assert me == {
        "name": "anonymous",
        "role": "anonymous",
        "levels": ["public"],
        "permissions": [],
        "department": None,
    }
    ok = client.get("/api/auth/me", headers=basic("kim", PW))
    assert ok.status_code == 200 and ok.json()["levels"] == ["public", "internal"]
    for headers in (
        basic("kim", "wrong password"),
        basic("ghost", PW),
        {"Authorization": "Basic %%%"},
        {"Authorization": "Digest x"},
    ):
        bad = client.get("/api/auth/me", headers=headers)
        assert bad.status_code == 401 and bad.headers["www-authenticate"] == 'Basic realm="citydesk"'
    assert client.post("/write", headers=basic("kim", PW)).json() == {"by": "kim"}
    assert client.post("/write").status_code == 401
    assert client.post("/sources", headers=basic("kim", PW)).status_code == 403
    # The cache answers without the database: a deactivation is seen only once invalidated.
    assert len(state.credentials) == 1
    deactivate_user(engine, user.id)
    assert client.get("/api/auth/me", headers=basic("kim", PW)).status_code == 200
    state.credentials.invalidate_user(user.id)
    assert client.get("/api/auth/me", headers=basic("kim", PW)).status_code == 401


def test_http_tokens(engine: Engine) -> None:
    create_user(engine, "lee", Role.OFFICIAL, PW, now=T0)
    client, _ = make_client(engine)
    assert client.post("/api/auth/tokens", json={"label": "x"}).status_code == 401
    made = client.post("/api/auth/tokens", json={"label": "frost loader"}, headers=basic("lee", PW))
    assert made.status_code == 201
    body = made.json()
    assert body["token"].startswith("cdk_") and body["label"] == "frost loader"
    bearer = {"Authorization": f"Bearer {body['token']}"}
    assert client.get("/api/auth/me", headers=bearer).json()["role"] == "official"
    listed = client.get("/api/auth/tokens", headers=bearer).json()
    assert [t["id"] for t in listed] == [body["id"]] and "token" not in listed[0]
    assert client.delete(f"/api/auth/tokens/{body['id']}", headers=basic("lee", PW)).status_code == 204
    revoked = client.get("/api/auth/me", headers=bearer)
    assert revoked.status_code == 401 and "www-authenticate" in revoked.headers
    assert client.delete(f"/api/auth/tokens/{body['id']}", headers=basic("lee", PW)).status_code == 404


def test_http_login_page_and_session(engine: Engine) -> None:
    create_user(engine, "park", Role.MAYOR, PW, now=T0)
    client, state = make_client(engine)
    page = client.get("/login", params={"next": "/dashboard"})
    assert page.status_code == 200 and "로그인" in page.text and "Sign in" in page.text
    assert 'autocomplete="current-password"' in page.text and 'value="/dashboard"' in page.text
    wrong = client.post("/login", data={"name": "park", "password": "nope nope", "next": "/dashboard"})
    assert wrong.status_code == 401 and "Wrong user name or password" in wrong.text
    assert "citydesk_session" not in wrong.headers.get("set-cookie", "")
    good = client.post("/login", data={"name": "park", "password": PW, "next": "/dashboard"})
    assert good.status_code == 303 and good.headers["location"] == "/dashboard"
    cookie = good.headers["set-cookie"].lower()
    assert "citydesk_session=" in cookie and "httponly" in cookie and "samesite=lax" in cookie
    assert client.get("/api/auth/me").json()["name"] == "park"
    assert client.post("/api/auth/tokens", json={"label": "from the browser"}).status_code == 201
    state.clock.at = T0 + timedelta(hours=13)  # past the 12-hour session
    assert client.get("/api/auth/me").json()["name"] == "anonymous"
    state.clock.at = T0
    evil = client.post("/login", data={"name": "park", "password": PW, "next": "//evil.example"})
    assert evil.headers["location"] == "/"
    out = client.post("/logout")
    assert out.status_code == 303 and client.get("/api/auth/me").json()["name"] == "anonymous"


def test_http_public_mode(engine: Engine) -> None:
    create_user(engine, "admin", Role.ADMIN, PW, now=T0)
    client, _ = make_client(engine, public=True)
    assert client.get("/api/auth/me", headers=basic("admin", PW)).json()["role"] == "anonymous"
    assert client.get("/api/auth/me", headers=basic("admin", "wrong one")).json()["role"] == "anonymous"
    assert client.post("/api/auth/tokens", json={}, headers=basic("admin", PW)).status_code == 403
    assert client.post("/write", headers=basic("admin", PW)).status_code == 403
    assert client.get("/login").status_code == 403
    assert client.post("/login", data={"name": "admin", "password": PW}).status_code == 403
