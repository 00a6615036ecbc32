"""Retention per datastream family: old raw observations go, rollups stay longer.

On PostgreSQL a family's raw data lives in one partition per day, so retention is ``DROP TABLE``
of whole days — it frees the disk at once, with no vacuum debt. On SQLite it is a DELETE by
family and time (an index serves it). Hourly and daily rollups have their own, longer horizons.
"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, timedelta

from sqlalchemy import Connection, Engine, delete, select, text

from citydesk.hub.models import datastreams, observations, retention_policies, rollup_daily, rollup_hourly

DEFAULT_POLICY = {"raw_days": 90, "hourly_days": 730, "daily_days": None}
DAY_PARTITION = re.compile(r"^obs_([a-z][a-z0-9_]*)_(\d{8})$")


def policies(conn: Connection) -> dict[str, dict[str, int | None]]:
    """Configured policies, plus the default for families that have none."""
    families = {r[0] for r in conn.execute(select(datastreams.c.family).distinct())}
    configured = {
        r.family: {"raw_days": r.raw_days, "hourly_days": r.hourly_days, "daily_days": r.daily_days}
        for r in conn.execute(select(retention_policies))
    }
    return {f: configured.get(f, dict(DEFAULT_POLICY)) for f in families | configured.keys()}


def set_policy(engine: Engine, family: str, raw_days: int, hourly_days: int, daily_days: int | None) -> None:
    if raw_days < 1 or hourly_days < raw_days:
        raise ValueError("keep raw data at least a day, and hourly rollups at least as long as raw data")
    with engine.begin() as conn:
        conn.execute(delete(retention_policies).where(retention_policies.c.family == family))
        conn.execute(
            retention_policies.insert().values(
                family=family, raw_days=raw_days, hourly_days=hourly_days, daily_days=daily_days
            )
        )


def _day_partitions(conn: Connection) -> list[tuple[str, str, date]]:
    rows = conn.execute(text("SELECT relname FROM pg_class WHERE relkind = 'r' AND relname LIKE 'obs\\_%'"))
    out = []
    for (name,) in rows:
        m = DAY_PARTITION.match(name)
        if m:
            out.append((name, m.group(1), datetime.strptime(m.group(2), "%Y%m%d").date()))
    return sorted(out)


def apply_retention(engine: Engine, *, now: datetime) -> list[str]:
    """Apply every family's policy; returns a line per action for the log or the CLI."""
    report: list[str] = []
    postgres = engine.dialect.name == "postgresql"
    with engine.begin() as conn:
        pols = policies(conn)
        for family, pol in sorted(pols.items()):
            raw_cut = now - timedelta(days=int(pol["raw_days"] or DEFAULT_POLICY["raw_days"]))  # type: ignore[arg-type]
            if postgres:
                for name, fam, day in _day_partitions(conn):
                    if (
                        fam == family
                        and datetime.combine(day + timedelta(days=1), datetime.min.time(), UTC) <= raw_cut
                    ):
                        conn.execute(text(f"DROP TABLE {name}"))
                        report.append(f"{family}: dropped raw partition {day.isoformat()}")
            else:
                n = conn.execute(
                    delete(observations).where(
                        observations.c.family == family, observations.c.phenomenon_time < raw_cut
                    )
                ).rowcount
                if n:
                    report.append(
                        f"{family}: deleted {n} raw observations before {raw_cut.date().isoformat()}"
                    )
            fam_ids = select(datastreams.c.id).where(datastreams.c.family == family)
            for table, days in ((rollup_hourly, pol["hourly_days"]), (rollup_daily, pol["daily_days"])):
                if days is None:
                    continue
                cut = now - timedelta(days=int(days))
                n = conn.execute(
                    delete(table).where(table.c.datastream_id.in_(fam_ids), table.c.bucket < cut)
                ).rowcount
                if n:
                    report.append(f"{family}: deleted {n} {table.name} rows before {cut.date().isoformat()}")
    return report or ["nothing to remove"]
