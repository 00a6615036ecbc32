"""Where the public database remembers its publishing: one source row, "citydesk publish".

From the public instance's point of view the internal instance *is* its one data source, so the
publisher is recorded the way sources are: a ``sources`` row (kind ``publish``, switched off so
that no connector runner ever picks it up, ``internal`` so no anonymous view lists it) and its
``source_status`` row, whose ``cursor`` holds the watermark and whose ``last_success_at`` is the
"last published at" the landing page shows. It is written in the same transaction as the data
it describes, so a crash never leaves a watermark ahead of the rows.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Engine, insert, select, update

from citydesk.hub.models import source_status, sources
from citydesk.mirror.observations import Watermark

MARKER = "citydesk publish"
KIND = "publish"


def load(dst: Connection, now: datetime) -> tuple[int, Watermark]:
    """The marker's source id and watermark, creating the marker on the first run."""
    found = dst.execute(select(sources.c.id).where(sources.c.name == MARKER)).scalar()
    if found is None:
        found = dst.execute(
            insert(sources)
            .values(
                name=MARKER,
                kind=KIND,
                config={},
                interval_seconds=None,
                enabled=False,
                created_at=now,
                disclosure="internal",
            )
            .returning(sources.c.id)
        ).scalar_one()
        dst.execute(insert(source_status).values(source_id=found, state="idle"))
    cursor = dst.execute(select(source_status.c.cursor).where(source_status.c.source_id == found)).scalar()
    return int(found), Watermark.from_json(cursor)


def save(dst: Connection, source_id: int, mark: Watermark, *, now: datetime, shipped: int) -> None:
    s = source_status.c
    dst.execute(
        update(source_status)
        .where(s.source_id == source_id)
        .values(
            cursor=mark.to_json(),
            last_run_at=now,
            last_success_at=now,
            records_in=s.records_in + shipped,
            last_run_records=shipped,
            state="idle",
        )
    )


def last_published(engine: Engine) -> datetime | None:
    """When the public database was last published to (None: never, or not a public database)."""
    with engine.connect().execution_options(read_only=True) as conn:
        row: Any = conn.execute(
            select(source_status.c.last_success_at)
            .join(sources, sources.c.id == source_status.c.source_id)
            .where(sources.c.name == MARKER, sources.c.kind == KIND)
        ).first()
    return None if row is None else row[0]
