"""Which worker process runs which source: a slot per (source, consumer), held by one process.

With ``serve --workers N`` every worker starts a source runner. Without coordination each would
poll every source and open every stream, and stream sources would fight over one MQTT client id.
A worker therefore runs a source (or one consumer of a stream shared by several) only while it
holds that slot: a PostgreSQL session advisory lock on a connection kept for the purpose, released
when the task ends or the process dies, so another worker takes the slot over (and, for MQTT,
resumes the same persistent session with its unacknowledged messages). SQLite deployments are one
process; there the slots are kept in memory.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field

from sqlalchemy import Connection, Engine, text

NAMESPACE = 0x43444B  # "CDK": the first key of citydesk's advisory locks
MAX_CONSUMERS = 16


def slot_key(source_id: int, consumer: int) -> int:
    if not 0 <= consumer < MAX_CONSUMERS:
        raise ValueError(f"consumer index {consumer} outside 0..{MAX_CONSUMERS - 1}")
    return source_id * MAX_CONSUMERS + consumer


@dataclass
class Slot:
    """A held slot; ``release`` gives it back (idempotent)."""

    key: int
    _conn: Connection | None = None
    _owner: SlotClaims | None = None

    def release(self) -> None:
        if self._conn is not None:
            try:
                self._conn.execute(
                    text("SELECT pg_advisory_unlock(:ns, :key)"), {"ns": NAMESPACE, "key": self.key}
                )
            finally:
                self._conn.close()
                self._conn = None
        if self._owner is not None:
            self._owner._free(self.key)
            self._owner = None


@dataclass
class SlotClaims:
    engine: Engine
    _held: set[int] = field(default_factory=set)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def claim(self, source_id: int, consumer: int = 0) -> Slot | None:
        """Take the slot if no process holds it; None if another one does."""
        key = slot_key(source_id, consumer)
        with self._lock:
            if key in self._held:
                return None
            self._held.add(key)
        if self.engine.dialect.name != "postgresql":
            return Slot(key, None, self)
        conn = self.engine.connect().execution_options(isolation_level="AUTOCOMMIT")
        try:
            got = conn.execute(
                text("SELECT pg_try_advisory_lock(:ns, :key)"), {"ns": NAMESPACE, "key": key}
            ).scalar_one()
        except Exception:
            conn.close()
            self._free(key)
            raise
        if not got:
            conn.close()
            self._free(key)
            return None
        return Slot(key, conn, self)

    def _free(self, key: int) -> None:
        with self._lock:
            self._held.discard(key)
