"""Sources: configured connectors, their status, and their quarantine. The only code here with transactions.

A source is saved only after its config validates against its kind's schema and the connector's
``check`` has reached the far side (Home Assistant's config flow: connect before saving, refuse
duplicates). ``record_run`` keeps what the status page shows: last run, last success, the current
failure streak and its error, records in and rejected, and the connector's cursor. Listings are
built here as plain dicts, once, so a page and its JSON twin show the same thing.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import re
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Engine, Row, delete, insert, select, update
from sqlalchemy.exc import IntegrityError

from citydesk.auth import Disclosure
from citydesk.errors import Conflict, InvalidQuery, NotFound, ValidationFailed
from citydesk.hub.connectors.base import MASK, ConnectorError, RunContext
from citydesk.hub.connectors.registry import ConnectorRegistry
from citydesk.hub.models import datastreams, quarantine, source_status, sources
from citydesk.hub.sources.types import (
    DatastreamChoice,
    QuarantinePage,
    RunOutcome,
    Source,
    SourceIn,
    SourcePatch,
    SourceState,
    SourceStatus,
)

DEFAULT_INTERVAL = 300
_SECRETISH = re.compile(r"pass|secret|token|key", re.IGNORECASE)


# -- reading ----------------------------------------------------------------------------------
def _read(engine: Engine) -> Connection:
    return engine.connect().execution_options(read_only=True)


def _query() -> Any:
    return select(sources, *[c for c in source_status.c if c.name != "source_id"]).outerjoin(
        source_status, source_status.c.source_id == sources.c.id
    )


def _source(row: Row[Any]) -> Source:
    m = row._mapping
    status = SourceStatus(
        state=m["state"] or SourceState.IDLE.value,
        last_run_at=m["last_run_at"],
        last_success_at=m["last_success_at"],
        last_error=m["last_error"],
        last_error_at=m["last_error_at"],
        consecutive_failures=m["consecutive_failures"] or 0,
        records_in=m["records_in"] or 0,
        records_rejected=m["records_rejected"] or 0,
        last_run_records=m["last_run_records"] or 0,
        last_run_rejected=m["last_run_rejected"] or 0,
        cursor=m["cursor"],
    )
    return Source(
        m["id"],
        m["name"],
        m["kind"],
        dict(m["config"]),
        m["interval_seconds"],
        bool(m["enabled"]),
        m["created_at"],
        m["disclosure"],
        status,
    )


def list_sources(engine: Engine) -> list[Source]:
    with _read(engine) as conn:
        return [_source(r) for r in conn.execute(_query().order_by(sources.c.name))]


def find_source(engine: Engine, name: str) -> Source | None:
    with _read(engine) as conn:
        row = conn.execute(_query().where(sources.c.name == name)).first()
    return None if row is None else _source(row)


def get_source(engine: Engine, source_id: int) -> Source:
    with _read(engine) as conn:
        row = conn.execute(_query().where(sources.c.id == source_id)).first()
    if row is None:
        raise NotFound(f"no source {source_id}")
    return _source(row)


def shown_config(registry: ConnectorRegistry, source: Source) -> dict[str, Any]:
    """The config as staff see it: secrets masked (by the schema, or by name if it no longer validates)."""
    try:
        return registry.config_model(source.kind).model_validate(source.config).shown()
    except Exception:  # a stale config is still listed, with anything secret-looking hidden
        return {k: MASK if _SECRETISH.search(k) else v for k, v in source.config.items()}


def source_json(registry: ConnectorRegistry, source: Source) -> dict[str, Any]:
    """One source as the API returns it and the sources page shows it."""
    try:
        mode: str | None = registry.manifest(source.kind).mode
    except ValidationFailed:
        mode = None
    st = source.status
    return {
        "id": source.id,
        "name": source.name,
        "kind": source.kind,
        "mode": mode,
        "enabled": source.enabled,
        "interval_seconds": source.interval_seconds,
        "disclosure": source.disclosure,
        "created_at": source.created_at.isoformat(),
        "config": shown_config(registry, source),
        "status": {
            "state": st.state,
            "last_run_at": _iso(st.last_run_at),
            "last_success_at": _iso(st.last_success_at),
            "last_error": st.last_error,
            "last_error_at": _iso(st.last_error_at),
            "consecutive_failures": st.consecutive_failures,
            "records_in": st.records_in,
            "records_rejected": st.records_rejected,
            "last_run_records": st.last_run_records,
            "last_run_rejected": st.last_run_rejected,
            "cursor": st.cursor,
        },
        "links": {
            "self": f"/api/hub/sources/{source.id}",
            "quarantine": f"/api/hub/quarantine?source_id={source.id}",
        },
    }


def source_detail(engine: Engine, registry: ConnectorRegistry, source_id: int) -> dict[str, Any]:
    """``GET /api/hub/sources/{id}`` and the source's edit page (secrets masked); 404 if unknown."""
    return source_json(registry, get_source(engine, source_id))


def sources_listing(engine: Engine, registry: ConnectorRegistry) -> dict[str, Any]:
    """``GET /api/hub/sources`` and the ``/hub/sources`` page: every source with its status."""
    return {"sources": [source_json(registry, s) for s in list_sources(engine)]}


def connectors_listing(registry: ConnectorRegistry) -> dict[str, Any]:
    """``GET /api/hub/connectors`` and the page where staff pick the kind of a new source."""
    return {"connectors": [registry.describe(kind) for kind in registry.kinds()]}


def describe_kind(registry: ConnectorRegistry, kind: str) -> dict[str, Any]:
    """``GET /api/hub/connectors/{kind}`` and the source form generated from it; 404 if unknown."""
    if kind not in registry.kinds():
        raise NotFound(f"no connector kind {kind!r}", details={"known": registry.kinds()})
    return registry.describe(kind)


def _iso(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat()


# -- quarantine --------------------------------------------------------------------------------
def _token(last_id: int) -> str:
    return base64.urlsafe_b64encode(f"q{last_id}".encode()).decode().rstrip("=")


def _after(token: str) -> int:
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)).decode()
        if not raw.startswith("q"):
            raise ValueError(raw)
        return int(raw[1:])
    except (ValueError, UnicodeDecodeError, binascii.Error):
        raise InvalidQuery("invalid next token") from None


def list_quarantine(
    engine: Engine, *, source_id: int | None = None, limit: int = 50, next: str | None = None
) -> QuarantinePage:
    """Quarantined records, newest first, keyset-paged on id (no OFFSET, no count)."""
    q = quarantine.c
    query = select(
        q.id, q.source_id, q.channel, q.received_at, q.payload, q.reason, sources.c.name
    ).outerjoin(sources, sources.c.id == q.source_id)
    if source_id is not None:
        query = query.where(q.source_id == source_id)
    if next:
        query = query.where(q.id < _after(next))
    with _read(engine) as conn:
        rows = conn.execute(query.order_by(q.id.desc()).limit(limit + 1)).all()
    items = [
        {
            "id": r.id,
            "source_id": r.source_id,
            "source_name": r.name,
            "channel": r.channel,
            "received_at": r.received_at.isoformat(),
            "payload": r.payload,
            "reason": r.reason,
        }
        for r in rows[:limit]
    ]
    return QuarantinePage(items, _token(rows[limit - 1].id) if len(rows) > limit else None)


# -- writing -----------------------------------------------------------------------------------
class CheckFailed(ValidationFailed):
    """The connector's ``check`` could not reach its source or did not like what it found.

    A ``ValidationFailed`` (400 in the API) whose ``reason`` is the connector's own message, so the
    form can show just that, without the API's framing.
    """

    def __init__(self, kind: str, error: ConnectorError) -> None:
        super().__init__(
            f"the {kind} source failed its check: {error.message}",
            details={"check": error.message, "connector": error.details},
        )
        self.reason = error.message


def _merge_secrets(old: dict[str, Any], new: dict[str, Any]) -> dict[str, Any]:
    """A masked value sent back means "unchanged": keep the stored secret."""
    return {k: old.get(k) if v == MASK else v for k, v in new.items()}


def _interval(registry: ConnectorRegistry, kind: str, interval: int | None) -> int | None:
    mode = registry.manifest(kind).mode
    if mode == "poll":
        return interval or DEFAULT_INTERVAL
    return None


async def _checked(
    registry: ConnectorRegistry, kind: str, raw: dict[str, Any], ctx: RunContext
) -> dict[str, Any]:
    config = registry.parse_config(kind, raw)
    try:
        await registry.connector(kind).check(config, ctx)
    except ConnectorError as exc:
        raise CheckFailed(kind, exc) from None
    return config.stored()


def _name_free(conn: Connection, name: str, but: int | None = None) -> None:
    query = select(sources.c.id).where(sources.c.name == name)
    if but is not None:
        query = query.where(sources.c.id != but)
    if conn.execute(query).first() is not None:
        raise Conflict(f"a source named {name!r} already exists")


def _name_free_now(engine: Engine, name: str, but: int | None = None) -> None:
    """Refuse a taken name before connecting: a duplicate should not cost a connection check.
    (Saving checks again, in its transaction, and the unique index has the last word.)"""
    with _read(engine) as conn:
        _name_free(conn, name, but)


async def create_source(
    engine: Engine, registry: ConnectorRegistry, spec: SourceIn, *, now: datetime, ctx: RunContext
) -> Source:
    """Validate, check (connect) and save a new source; ``Conflict`` if the name is taken."""
    await asyncio.to_thread(_name_free_now, engine, spec.name)
    stored = await _checked(registry, spec.kind, spec.config, ctx)

    def save() -> int:
        try:
            with engine.begin() as conn:
                _name_free(conn, spec.name)
                new_id = conn.execute(
                    insert(sources)
                    .values(
                        name=spec.name,
                        kind=spec.kind,
                        config=stored,
                        interval_seconds=_interval(registry, spec.kind, spec.interval_seconds),
                        enabled=spec.enabled,
                        created_at=now,
                        disclosure=spec.disclosure.value,
                    )
                    .returning(sources.c.id)
                ).scalar_one()
                conn.execute(insert(source_status).values(source_id=new_id, state=SourceState.IDLE.value))
                return int(new_id)
        except IntegrityError:
            raise Conflict(f"a source named {spec.name!r} already exists") from None

    return get_source(engine, await asyncio.to_thread(save))


async def update_source(
    engine: Engine, registry: ConnectorRegistry, source_id: int, patch: SourcePatch, *, ctx: RunContext
) -> Source:
    """Change a source; a changed config is validated and checked again before it is saved.

    A secret sent back as ``MASK`` keeps the stored one. The caller (``SourceRunner.update``)
    restarts the source's task, since a running poll or stream holds the config it started with.
    """
    current = await asyncio.to_thread(get_source, engine, source_id)
    values: dict[str, Any] = {}
    if patch.name is not None and patch.name != current.name:
        await asyncio.to_thread(_name_free_now, engine, patch.name, source_id)
        values["name"] = patch.name
    if patch.config is not None:
        merged = _merge_secrets(current.config, patch.config)
        if merged != current.config:
            values["config"] = await _checked(registry, current.kind, merged, ctx)
    if "interval_seconds" in patch.model_fields_set:
        values["interval_seconds"] = _interval(registry, current.kind, patch.interval_seconds)
    if patch.enabled is not None:
        values["enabled"] = patch.enabled
    if patch.disclosure is not None:
        values["disclosure"] = patch.disclosure.value

    def save() -> None:
        try:
            with engine.begin() as conn:
                if values:
                    conn.execute(update(sources).where(sources.c.id == source_id).values(**values))
                if patch.reset_cursor:
                    conn.execute(
                        update(source_status)
                        .where(source_status.c.source_id == source_id)
                        .values(cursor=None)
                    )
        except IntegrityError:
            raise Conflict(f"a source named {values.get('name')!r} already exists") from None

    await asyncio.to_thread(save)
    return get_source(engine, source_id)


def delete_source(engine: Engine, source_id: int) -> None:
    """Remove a source; its quarantined records stay (``source_id`` becomes NULL) for review."""
    with engine.begin() as conn:
        conn.execute(update(quarantine).where(quarantine.c.source_id == source_id).values(source_id=None))
        conn.execute(delete(source_status).where(source_status.c.source_id == source_id))
        if conn.execute(delete(sources).where(sources.c.id == source_id)).rowcount == 0:
            raise NotFound(f"no source {source_id}")


def set_state(engine: Engine, source_id: int, state: SourceState) -> None:
    with engine.begin() as conn:
        conn.execute(
            update(source_status).where(source_status.c.source_id == source_id).values(state=state.value)
        )


def save_cursor(engine: Engine, source_id: int, cursor: dict[str, Any] | None) -> None:
    """Persist a connector's cursor (called after each committed batch)."""
    with engine.begin() as conn:
        conn.execute(
            update(source_status).where(source_status.c.source_id == source_id).values(cursor=cursor)
        )


def record_run(
    engine: Engine, source_id: int, outcome: RunOutcome, *, now: datetime, state: SourceState | None = None
) -> None:
    """Add a run to the source's status. A failure keeps ``last_error_at`` at the start of its streak
    (unless the message changes), so the page says "failing since", not "failed a moment ago".

    A source deleted while it ran (another worker stops its task within the rescan interval) is
    not brought back: its run is simply not recorded."""
    s = source_status.c
    with engine.begin() as conn:
        row = conn.execute(select(source_status).where(s.source_id == source_id)).first()
        if row is None:
            if conn.execute(select(sources.c.id).where(sources.c.id == source_id)).first() is None:
                return
            conn.execute(insert(source_status).values(source_id=source_id))
            row = conn.execute(select(source_status).where(s.source_id == source_id)).one()
        values: dict[str, Any] = {
            "last_run_at": now,
            # Increments in SQL: several workers may flush the same source's counters at once.
            "records_in": s.records_in + outcome.stored,
            "records_rejected": s.records_rejected + outcome.rejected,
            "last_run_records": outcome.stored,
            "last_run_rejected": outcome.rejected,
        }
        if outcome.error is None:
            values.update(
                last_success_at=now, consecutive_failures=0, state=(state or SourceState.IDLE).value
            )
        else:
            new_streak = row.consecutive_failures == 0 or row.last_error != outcome.error
            values.update(
                last_error=outcome.error[:2000],
                consecutive_failures=row.consecutive_failures + 1,
                state=(state or SourceState.FAILING).value,
            )
            if new_streak:
                values["last_error_at"] = now
        conn.execute(update(source_status).where(s.source_id == source_id).values(**values))


# -- manual entry support -----------------------------------------------------------------------
def writable_datastreams(
    engine: Engine, levels: frozenset[Disclosure] | set[str], only: list[int] | None = None
) -> list[DatastreamChoice]:
    """Datastreams a person with these disclosure levels may see, hence type figures into."""
    d = datastreams.c
    query = select(d.id, d.name, d.unit_of_measurement, d.observation_type, d.disclosure).where(
        d.disclosure.in_(sorted(str(level) for level in levels))
    )
    if only:
        query = query.where(d.id.in_(only))
    with _read(engine) as conn:
        rows = conn.execute(query.order_by(d.name, d.id)).all()
    return [
        DatastreamChoice(
            r.id,
            r.name,
            str((r.unit_of_measurement or {}).get("symbol") or ""),
            r.observation_type,
            r.disclosure,
        )
        for r in rows
    ]


def quarantine_listing(
    engine: Engine, *, source_id: int | None = None, limit: int = 50, next: str | None = None
) -> dict[str, Any]:
    """``GET /api/hub/quarantine`` and the ``/hub/quarantine`` page (routes add ``next_url``)."""
    page = list_quarantine(engine, source_id=source_id, limit=limit, next=next)
    return {"source_id": source_id, "items": page.items, "next": page.next}
