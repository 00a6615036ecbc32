"""Accounts, passwords, API tokens, browser sessions and the audit log: the only auth code that
touches the database or opens transactions.

Every function takes an ``Engine`` (it opens its own transaction) or a ``Connection`` (it joins the
caller's transaction through a savepoint, so a refused write does not poison the caller's work).
Secrets handed out (tokens, session cookies) are stored only as SHA-256, so a database copy lets
no one sign in; passwords are argon2id.
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import Connection, Engine, Row, delete, insert, or_, select, update
from sqlalchemy.exc import IntegrityError

from citydesk.auth.disclosure import Role, parse_role
from citydesk.auth.models import api_tokens, audit_log, sessions, users
from citydesk.auth.principal import BASIC_CHALLENGE, CredentialCache, Principal
from citydesk.errors import Conflict, NotFound, Unauthorized, ValidationFailed

TOKEN_PREFIX = "cdk_"
SESSION_TTL = timedelta(hours=12)
TOKEN_TOUCH_INTERVAL = timedelta(minutes=1)
"""``last_used_at`` is written at most this often, so token auth is not a write per request."""
MIN_PASSWORD, MAX_PASSWORD = 8, 1024
"""The upper bound stops multi-megabyte "passwords" being fed to argon2 as a denial of service."""
_MAX_SECRET = 256
# A hash of a password nobody knows, verified when the user name is unknown or inactive so that a
# failed sign-in takes as long whether or not the name exists (no user enumeration by timing).
_DUMMY_HASH = (
    "$argon2id$v=19$m=65536,t=3,p=4$TwexLxOHxSWVZuHpywlcaQ$2Y6Aedf69OMW93OZ21KOdLjqqd7bqo38Fx9mzYYX9lM"
)
_BAD_LOGIN = "invalid user name or password"

Bind = Engine | Connection


@dataclass(frozen=True)
class User:
    id: int
    name: str
    role: Role
    department: str | None
    active: bool
    created_at: datetime


@dataclass(frozen=True)
class TokenInfo:
    """An API token as listed to its owner: never the secret itself."""

    id: int
    label: str
    created_at: datetime
    last_used_at: datetime | None


@contextmanager
def _write(bind: Bind) -> Iterator[Connection]:
    if isinstance(bind, Engine):
        with bind.begin() as conn:
            yield conn
    elif bind.in_transaction():
        with bind.begin_nested():
            yield bind
    else:
        with bind.begin():
            yield bind


@contextmanager
def _read(bind: Bind) -> Iterator[Connection]:
    if isinstance(bind, Engine):
        # read_only: SQLite takes a deferred (shared) transaction instead of the write lock.
        with bind.connect().execution_options(read_only=True) as conn:
            yield conn
    else:
        yield bind


def _hasher() -> PasswordHasher:
    # Cheap to build; built per call so the parameters are never module-level state.
    return PasswordHasher()


def _digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def _check_password(password: str) -> None:
    if not MIN_PASSWORD <= len(password) <= MAX_PASSWORD:
        raise ValidationFailed(f"a password must have {MIN_PASSWORD} to {MAX_PASSWORD} characters")


def _check_name(name: str) -> None:
    # ':' would make the account unreachable through HTTP Basic, which splits on the first colon.
    if not 1 <= len(name) <= 100 or name != name.strip() or ":" in name or not name.isprintable():
        raise ValidationFailed("a user name has 1 to 100 printable characters, no ':' and no outer spaces")


def _user(row: Row[Any]) -> User:
    r = row._mapping
    return User(r["id"], r["name"], Role(r["role"]), r["department"], bool(r["active"]), r["created_at"])


# -- users -----------------------------------------------------------------------------------
def create_user(
    bind: Bind, name: str, role: Role | str, password: str, *, now: datetime, department: str | None = None
) -> User:
    """Create a staff account; ``Conflict`` if the name is taken, ``ValidationFailed`` on bad input."""
    _check_name(name)
    staff_role = parse_role(role)
    _check_password(password)
    if department is not None and len(department) > 100:
        raise ValidationFailed("a department name has at most 100 characters")
    values = {
        "name": name,
        "password_hash": _hasher().hash(password),
        "role": staff_role.value,
        "department": department,
        "active": True,
        "created_at": now,
    }
    try:
        with _write(bind) as conn:
            row = conn.execute(insert(users).values(values).returning(*users.c)).one()
    except IntegrityError as exc:
        raise Conflict(f"a user named {name!r} already exists") from exc
    return _user(row)


def list_users(bind: Bind, *, include_inactive: bool = True) -> list[User]:
    query = select(users).order_by(users.c.name)
    if not include_inactive:
        query = query.where(users.c.active)
    with _read(bind) as conn:
        return [_user(r) for r in conn.execute(query)]


def _change_user_and_end_sessions(bind: Bind, user_id: int, **values: object) -> None:
    # Callers holding a CredentialCache must also call its ``invalidate_user``: this module is stateless.
    with _write(bind) as conn:
        if conn.execute(update(users).where(users.c.id == user_id).values(**values)).rowcount == 0:
            raise NotFound(f"no user {user_id}")
        conn.execute(delete(sessions).where(sessions.c.user_id == user_id))


def set_password(bind: Bind, user_id: int, password: str) -> None:
    """Replace a password and end the user's sessions (a reset usually follows a compromise)."""
    _check_password(password)
    _change_user_and_end_sessions(bind, user_id, password_hash=_hasher().hash(password))


def deactivate_user(bind: Bind, user_id: int) -> None:
    """Refuse the account from now on (rows stay for the audit trail); its tokens die with it."""
    _change_user_and_end_sessions(bind, user_id, active=False)


def authenticate_password(bind: Bind, name: str, password: str, *, now: datetime) -> Principal:
    """The principal for a correct name and password, else ``Unauthorized`` (``now``: for throttling)."""
    with _read(bind) as conn:
        row = conn.execute(select(users).where(users.c.name == name)).first() if len(name) <= 100 else None
    hasher = _hasher()
    usable = row is not None and row.active and len(password) <= MAX_PASSWORD
    stored = row.password_hash if row is not None and usable else _DUMMY_HASH
    try:
        ok = hasher.verify(stored, password[:MAX_PASSWORD]) and usable
    except (VerificationError, InvalidHashError):
        ok = False
    if not ok or row is None:
        raise Unauthorized(_BAD_LOGIN, headers=dict(BASIC_CHALLENGE))
    if hasher.check_needs_rehash(stored):
        # Compare-and-set: never overwrite a password changed meanwhile.
        with _write(bind) as conn:
            conn.execute(
                update(users)
                .where(users.c.id == row.id, users.c.password_hash == stored)
                .values(password_hash=hasher.hash(password))
            )
    return Principal.for_user(row.id, row.name, row.role, row.department)


# -- API tokens ------------------------------------------------------------------------------
def _active_user_id(conn: Connection, user_id: int) -> None:
    if conn.execute(select(users.c.id).where(users.c.id == user_id, users.c.active)).first() is None:
        raise NotFound(f"no active user {user_id}")


def issue_token(bind: Bind, user_id: int, label: str, *, now: datetime) -> tuple[str, TokenInfo]:
    """A new API token (shown once, to be copied) and its listing; only its SHA-256 is stored."""
    if len(label) > 200:
        raise ValidationFailed("a token label has at most 200 characters")
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    with _write(bind) as conn:
        _active_user_id(conn, user_id)
        token_id = conn.execute(
            insert(api_tokens)
            .values(
                user_id=user_id,
                token_hash=_digest(token),
                label=label,
                created_at=now,
                revoked=False,
            )
            .returning(api_tokens.c.id)
        ).scalar_one()
    return token, TokenInfo(token_id, label, now, None)


def create_token(bind: Bind, user_id: int, label: str, *, now: datetime) -> str:
    """Like ``issue_token`` but only the secret, for the CLI."""
    return issue_token(bind, user_id, label, now=now)[0]


def list_tokens(bind: Bind, user_id: int) -> list[TokenInfo]:
    """The user's live (unrevoked) tokens, without secrets."""
    t = api_tokens.c
    query = select(t.id, t.label, t.created_at, t.last_used_at).where(t.user_id == user_id, ~t.revoked)
    with _read(bind) as conn:
        return [TokenInfo(*r) for r in conn.execute(query.order_by(t.id))]


def authenticate_token(bind: Bind, token: str, *, now: datetime) -> Principal:
    """The owner of a live token of an active user, else ``Unauthorized``."""
    if not token.startswith(TOKEN_PREFIX) or len(token) > _MAX_SECRET:
        raise Unauthorized("invalid or revoked token", headers=dict(BASIC_CHALLENGE))
    query = (
        select(
            api_tokens.c.id,
            api_tokens.c.last_used_at,
            users.c.id.label("user_id"),
            users.c.name,
            users.c.role,
            users.c.department,
        )
        .join(users, users.c.id == api_tokens.c.user_id)
        .where(api_tokens.c.token_hash == _digest(token), ~api_tokens.c.revoked, users.c.active)
    )
    with _read(bind) as conn:
        row = conn.execute(query).first()
    if row is None:
        raise Unauthorized("invalid or revoked token", headers=dict(BASIC_CHALLENGE))
    stale = now - TOKEN_TOUCH_INTERVAL
    if row.last_used_at is None or row.last_used_at <= stale:
        c = api_tokens.c
        with _write(bind) as conn:  # conditional, so concurrent requests write it once
            conn.execute(
                update(api_tokens)
                .where(c.id == row.id, or_(c.last_used_at.is_(None), c.last_used_at <= stale))
                .values(last_used_at=now)
            )
    return Principal.for_user(row.user_id, row.name, row.role, row.department)


def revoke_token(bind: Bind, token_id: int, *, owner_id: int | None = None) -> None:
    """Revoke a token; with ``owner_id`` only that user's (``NotFound`` otherwise, not revealing it)."""
    query = update(api_tokens).where(api_tokens.c.id == token_id, ~api_tokens.c.revoked)
    if owner_id is not None:
        query = query.where(api_tokens.c.user_id == owner_id)
    with _write(bind) as conn:
        if conn.execute(query.values(revoked=True)).rowcount == 0:
            raise NotFound(f"no token {token_id}")


# -- browser sessions ------------------------------------------------------------------------
def create_session(bind: Bind, user_id: int, *, now: datetime, ttl: timedelta = SESSION_TTL) -> str:
    """A new session cookie value for an active user; expired sessions are purged on the way."""
    token = secrets.token_urlsafe(32)
    with _write(bind) as conn:
        _active_user_id(conn, user_id)
        conn.execute(delete(sessions).where(sessions.c.expires_at <= now))
        conn.execute(
            insert(sessions).values(
                token_hash=_digest(token), user_id=user_id, created_at=now, expires_at=now + ttl
            )
        )
    return token


def session_principal(bind: Bind, token: str, *, now: datetime) -> Principal | None:
    """The signed-in user of a cookie, or ``None`` if it is unknown, expired or the user inactive."""
    if not token or len(token) > _MAX_SECRET:
        return None
    query = (
        select(users.c.id, users.c.name, users.c.role, users.c.department)
        .join(sessions, sessions.c.user_id == users.c.id)
        .where(sessions.c.token_hash == _digest(token), sessions.c.expires_at > now, users.c.active)
    )
    with _read(bind) as conn:
        row = conn.execute(query).first()
    return None if row is None else Principal.for_user(row.id, row.name, row.role, row.department)


def end_session(bind: Bind, token: str) -> None:
    with _write(bind) as conn:
        conn.execute(delete(sessions).where(sessions.c.token_hash == _digest(token)))


# -- audit -----------------------------------------------------------------------------------
def audit(
    bind: Bind, principal: Principal, action: str, target: str, detail: str = "", *, now: datetime
) -> None:
    """Append to the audit log, e.g. whenever restricted (personal) data is read.

    Given the caller's connection it joins that transaction, so the record commits with the work.
    """
    with _write(bind) as conn:
        conn.execute(
            insert(audit_log).values(
                at=now, user_id=principal.user_id, action=action, target=target, detail=detail
            )
        )


# -- HTTP Basic through the cache ------------------------------------------------------------
def authenticate_basic(
    bind: Bind, cache: CredentialCache, name: str, password: str, *, now: datetime
) -> Principal:
    """``authenticate_password`` through the cache; failures are never cached."""
    found = cache.get(name, password, now=now)
    if found is None:
        found = authenticate_password(bind, name, password, now=now)
        cache.put(name, password, found, now=now)
    return found
