"""The monthly and survey feeds (prices, finances) as configured ``file`` sources of the hub.

A city has these figures as exports of its own systems, not as live sensors, so the demo takes
the path such an export would: a CSV dropped into the import folder, read by the hub's ``file``
connector through a field mapping that names each series' Datastream. The seeder copies the
packaged synthetic CSVs there (never over a file already present: that may be the city's own)
and registers the sources; the source runner of ``citydesk serve`` then imports them, and again
whenever the file changes. ``citydesk import FILE --source NAME`` does the same by hand.
"""

from __future__ import annotations

import shutil
from datetime import datetime
from importlib import resources
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, insert, select

from citydesk.city.provision import feed_datastreams
from citydesk.hub.connectors.file.config import FileConfig
from citydesk.hub.models import source_status, sources

FEEDS: dict[str, dict[str, Any]] = {
    "prices.csv": {
        "name": "Staple-goods prices (demo file)",
        "facility": "market",
        "key_fields": ["market", "good"],
        "time_field": "date",
        "value_field": "price",
    },
    "finances.csv": {
        "name": "City finances (demo file)",
        "facility": "city_finance",
        "key_fields": ["item"],
        "time_field": "month",
        "value_field": "value",
    },
}
INTERVAL_SECONDS = 3600


def _mapping(feed: dict[str, Any], streams: dict[tuple[str, str, str | None], int]) -> dict[str, Any]:
    """A ``long`` mapping: one line per series key (``market/good`` or ``item``) → its Datastream."""
    fields = []
    for (facility_key, _, key), ident in sorted(streams.items(), key=lambda kv: kv[1]):
        kind, _, name = facility_key.partition(":")
        if key is None or kind != {"market": "market", "city_finance": "finance"}[feed["facility"]]:
            continue
        source = f"{name}/{key}" if len(feed["key_fields"]) == 2 else key
        fields.append({"source": source, "datastream_id": ident})
    return {
        "layout": "long",
        "fields": fields,
        "key_fields": feed["key_fields"],
        "value_field": feed["value_field"],
        "time_field": feed["time_field"],
        "time_format": "%Y-%m-%d",
    }


def register_sources(conn: Connection, imports: Path, *, now: datetime) -> int:
    """Copy the demo CSVs into ``imports`` and create their sources if missing; returns how many."""
    imports.mkdir(parents=True, exist_ok=True)
    streams = feed_datastreams(conn, "file")
    created = 0
    for filename, feed in FEEDS.items():
        target = imports / filename
        if not target.exists():
            with resources.as_file(resources.files("citydesk.city.data").joinpath(filename)) as packaged:
                shutil.copyfile(packaged, target)
        if conn.execute(select(sources.c.id).where(sources.c.name == feed["name"])).first() is not None:
            continue
        config = FileConfig.model_validate(
            {"path": str(target.resolve()), "format": "csv", "mapping": _mapping(feed, streams)}
        )
        ident = conn.execute(
            insert(sources)
            .values(
                name=feed["name"],
                kind="file",
                config=config.model_dump(mode="json"),
                interval_seconds=INTERVAL_SECONDS,
                enabled=True,
                created_at=now,
                disclosure="public",
            )
            .returning(sources.c.id)
        ).scalar_one()
        conn.execute(insert(source_status).values(source_id=ident, state="idle"))
        created += 1
    return created
