"""The identity a request runs as (a staff user, or the anonymous citizen), and the cache of
recently verified credentials that maps straight to one.

A ``Principal`` is a frozen value built from the role tables, so it can be cached and shared
between threads without copying. ``CredentialCache`` lives here rather than in ``service.py``
because it never touches the database; ``service.authenticate_basic`` is what consults it.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import threading
from collections import OrderedDict
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from citydesk.auth.disclosure import ROLE_LEVELS, ROLE_PERMISSIONS, Disclosure, Permission, Role
from citydesk.errors import Forbidden, Unauthorized

BASIC_CHALLENGE: dict[str, str] = {"WWW-Authenticate": 'Basic realm="citydesk"'}
"""Sent with every 401 so that HTTP clients (frost-sta-client, curl) know to offer Basic credentials."""


@dataclass(frozen=True)
class Principal:
    """Who is asking, and therefore which disclosure levels and actions are open to them."""

    user_id: int | None
    name: str
    role: Role
    levels: frozenset[Disclosure]
    department: str | None = field(default=None, compare=False)

    @classmethod
    def for_user(
        cls, user_id: int | None, name: str, role: Role | str, department: str | None = None
    ) -> Principal:
        """The principal of a signed-in user (``user_id`` None: the system itself, e.g. the
        simulator or a seeding job); levels come from ``ROLE_LEVELS``, never from input."""
        role = Role(role)
        return cls(user_id=user_id, name=name, role=role, levels=ROLE_LEVELS[role], department=department)

    @classmethod
    def public(cls) -> Principal:
        """The anonymous citizen: every unsigned request, and every request to a public instance."""
        return cls(user_id=None, name="anonymous", role=Role.ANONYMOUS, levels=ROLE_LEVELS[Role.ANONYMOUS])

    @property
    def is_staff(self) -> bool:
        return self.user_id is not None and self.role is not Role.ANONYMOUS

    @property
    def permissions(self) -> frozenset[Permission]:
        return ROLE_PERMISSIONS[self.role]

    def may_see(self, level: Disclosure | str) -> bool:
        return Disclosure(level) in self.levels

    def can(self, permission: Permission | str) -> bool:
        """Whether this principal may do ``permission``; an unknown name is a programming error."""
        return Permission(permission) in self.permissions

    def require(self, permission: Permission | str) -> None:
        """Raise unless allowed: 401 (sign in, please) for anonymous, 403 for staff lacking the right."""
        if self.can(permission):
            return
        if not self.is_staff:
            raise Unauthorized("sign-in required", headers=dict(BASIC_CHALLENGE))
        raise Forbidden(f"role {self.role.value!r} may not {Permission(permission).value}")


ANONYMOUS = Principal.public()
"""A frozen constant, not state: every anonymous request shares it."""


class CredentialCache:
    """Recently verified HTTP Basic credentials, so argon2 (~50 ms) runs once a minute, not per request.

    ``frost-sta-client`` sends Basic on every request. Keys are HMACs under a per-instance random
    key, so even a memory dump does not give out unsalted password hashes. One instance lives on the
    app object; with several worker processes a password change reaches the others within ``ttl``.
    """

    def __init__(self, *, ttl: timedelta = timedelta(seconds=60), max_entries: int = 1000) -> None:
        self.ttl = ttl
        self.max_entries = max_entries
        self._key = secrets.token_bytes(32)
        self._entries: OrderedDict[str, tuple[Principal, datetime]] = OrderedDict()
        self._lock = threading.Lock()

    def _key_of(self, name: str, password: str) -> str:
        # Length-prefixed so that ("a:b", "c") and ("a", "b:c") never collide.
        message = f"{len(name)}:{name}:{password}".encode()
        return hmac.new(self._key, message, hashlib.sha256).hexdigest()

    def get(self, name: str, password: str, *, now: datetime) -> Principal | None:
        key = self._key_of(name, password)
        with self._lock:
            hit = self._entries.get(key)
            if hit is None:
                return None
            if hit[1] <= now:
                del self._entries[key]
                return None
            self._entries.move_to_end(key)
            return hit[0]

    def put(self, name: str, password: str, principal: Principal, *, now: datetime) -> None:
        key = self._key_of(name, password)
        with self._lock:
            self._entries[key] = (principal, now + self.ttl)
            self._entries.move_to_end(key)
            while len(self._entries) > self.max_entries:
                self._entries.popitem(last=False)

    def invalidate_user(self, user_id: int) -> None:
        """Forget every entry of a user; call after ``set_password`` or ``deactivate_user``."""
        with self._lock:
            for key in [k for k, (p, _) in self._entries.items() if p.user_id == user_id]:
                del self._entries[key]

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()

    def __len__(self) -> int:
        with self._lock:
            return len(self._entries)
