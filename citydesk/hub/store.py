"""The observation store: the one place observations are written.

A write stores a batch, its hourly and daily rollups, each datastream's latest value and its time
extent, all in the caller's transaction, so a batch is either wholly durable or not there at all.
PostgreSQL takes the rows by ``COPY`` into a table partitioned by family and day (partitions are
created ahead of the write, outside its transaction); SQLite by prepared inserts.
"""

from __future__ import annotations

import re
import threading
from collections import defaultdict
from collections.abc import Iterable, Sequence
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import orjson
from sqlalchemy import Connection, Engine, text

from citydesk.db.metadata import sqlite_time_text
from citydesk.hub.records import StoredObservation

COLUMNS = (
    "id, datastream_id, family, phenomenon_time, phenomenon_time_end, result_time, valid_time_start,"
    " valid_time_end, result_number, result_json, result_quality, parameters, foi_id, district_code,"
    " dedup_key"
)
FAMILY_RE = re.compile(r"^[a-z][a-z0-9_]{0,31}$")


def _json(value: Any) -> str | None:
    return None if value is None else orjson.dumps(value).decode()


def partition_name(family: str, day: date | None = None) -> str:
    """``obs_<family>`` for a family's table, ``obs_<family>_<yyyymmdd>`` for one of its days."""
    if not FAMILY_RE.match(family):
        raise ValueError(f"invalid datastream family {family!r}")
    return f"obs_{family}" if day is None else f"obs_{family}_{day:%Y%m%d}"


class ObservationStore:
    """Writes observation batches; holds only a cache of partitions known to exist."""

    def __init__(self, engine: Engine, timezone: str = "UTC") -> None:
        self.engine = engine
        self.postgres = engine.dialect.name == "postgresql"
        self.tz = ZoneInfo(timezone)
        self._partitions: set[tuple[str, date | None]] = set()
        self._lock = threading.Lock()

    # -- partitions (PostgreSQL) -------------------------------------------------------------
    def prepare(self, rows: Iterable[StoredObservation]) -> None:
        """Make sure every (family, day) the rows fall in has its partition, before the write.

        Partition DDL runs in its own autocommitted connection: inside the write transaction it
        would hold a lock on the parent table until commit and serialise every writer.
        """
        if not self.postgres:
            return
        wanted = {(r.family, r.phenomenon_time.astimezone(UTC).date()) for r in rows}
        self.ensure_partitions(wanted)

    def ensure_partitions(self, wanted: set[tuple[str, date]]) -> None:
        with self._lock:
            missing = wanted - self._partitions
        if not missing:
            return
        with self.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            existing = {r[0] for r in conn.execute(text("SELECT relname FROM pg_class WHERE relkind IN ('r','p')"))}
            for family, day in sorted(missing):
                fam_table = partition_name(family)
                if fam_table not in existing:
                    self._create(
                        conn,
                        f"CREATE TABLE IF NOT EXISTS {fam_table} PARTITION OF observations "
                        f"FOR VALUES IN ('{family}') PARTITION BY RANGE (phenomenon_time)",
                    )
                    existing.add(fam_table)
                day_table = partition_name(family, day)
                if day_table not in existing:
                    start = datetime.combine(day, time(), UTC)
                    end = start + timedelta(days=1)
                    self._create(
                        conn,
                        f"CREATE TABLE IF NOT EXISTS {day_table} PARTITION OF {fam_table} "
                        f"FOR VALUES FROM ('{start.isoformat()}') TO ('{end.isoformat()}')",
                    )
                    existing.add(day_table)
        with self._lock:
            self._partitions |= missing | {(f, None) for f, _ in missing}

    @staticmethod
    def _create(conn: Connection, ddl: str) -> None:
        # Another worker may create the same partition at the same moment; losing that race is fine.
        try:
            conn.exec_driver_sql(ddl)
        except Exception as exc:  # noqa: BLE001 - re-raised unless it is the benign race
            if "already exists" not in str(exc):
                raise

    def forget_partitions(self) -> None:
        with self._lock:
            self._partitions.clear()

    # -- writes ------------------------------------------------------------------------------
    def write(self, conn: Connection, rows: Sequence[StoredObservation], *, dedupe: bool) -> int:
        """Insert ``rows`` in the caller's transaction; set ``row.id`` on each stored row.

        With ``dedupe`` a row whose (datastream, time, dedup_key) is already stored is skipped and
        keeps ``id=None``. Returns the number of duplicates skipped.
        """
        if not rows:
            return 0
        inserted = self._insert_pg(conn, rows, dedupe) if self.postgres else self._insert_sqlite(conn, rows, dedupe)
        stored = [r for r in rows if r.id is not None]
        self._update_derived(conn, stored)
        return len(rows) - inserted

    def _insert_pg(self, conn: Connection, rows: Sequence[StoredObservation], dedupe: bool) -> int:
        raw = conn.connection.driver_connection
        assert raw is not None
        with raw.cursor() as cur:
            cur.execute("SELECT nextval('observations_id_seq') FROM generate_series(1, %s)", (len(rows),))
            ids = [r[0] for r in cur.fetchall()]
            target = "observations"
            if dedupe:
                cur.execute(
                    "CREATE TEMP TABLE IF NOT EXISTS obs_stage (LIKE observations INCLUDING DEFAULTS) "
                    "ON COMMIT DELETE ROWS"
                )
                target = "obs_stage"
            with cur.copy(f"COPY {target} ({COLUMNS}) FROM STDIN") as copy:
                for oid, r in zip(ids, rows, strict=True):
                    copy.write_row(
                        (
                            oid,
                            r.datastream_id,
                            r.family,
                            r.phenomenon_time,
                            r.phenomenon_time_end,
                            r.result_time,
                            r.valid_time_start,
                            r.valid_time_end,
                            r.result_number,
                            _json(r.result_json),
                            _json(r.result_quality),
                            _json(r.parameters),
                            r.foi_id,
                            r.district_code,
                            r.dedup_key,
                        )
                    )
            if not dedupe:
                for oid, r in zip(ids, rows, strict=True):
                    r.id = oid
                return len(rows)
            cur.execute(
                f"INSERT INTO observations ({COLUMNS}) SELECT {COLUMNS} FROM obs_stage "
                "ON CONFLICT DO NOTHING RETURNING id"
            )
            kept = {r[0] for r in cur.fetchall()}
            cur.execute("DELETE FROM obs_stage")
        for oid, r in zip(ids, rows, strict=True):
            r.id = oid if oid in kept else None
        return len(kept)

    def _insert_sqlite(self, conn: Connection, rows: Sequence[StoredObservation], dedupe: bool) -> int:
        raw = conn.connection.driver_connection
        assert raw is not None
        sql = (
            f"INSERT INTO observations ({COLUMNS}) VALUES (NULL,?,?,?,?,?,?,?,?,?,?,?,?,?,?)"
            + (" ON CONFLICT DO NOTHING" if dedupe else "")
        )
        cur = raw.cursor()
        count = 0
        try:
            for r in rows:
                cur.execute(
                    sql,
                    (
                        r.datastream_id,
                        r.family,
                        sqlite_time_text(r.phenomenon_time),
                        _opt_time(r.phenomenon_time_end),
                        _opt_time(r.result_time),
                        _opt_time(r.valid_time_start),
                        _opt_time(r.valid_time_end),
                        r.result_number,
                        _json(r.result_json),
                        _json(r.result_quality),
                        _json(r.parameters),
                        r.foi_id,
                        r.district_code,
                        r.dedup_key,
                    ),
                )
                if cur.rowcount == 1:
                    r.id = cur.lastrowid
                    count += 1
                else:
                    r.id = None
        finally:
            cur.close()
        return count

    # -- derived tables ----------------------------------------------------------------------
    def day_bucket(self, t: datetime) -> datetime:
        """Start of the city's local day containing ``t`` (daily rollups follow the city's clock)."""
        local = t.astimezone(self.tz)
        return datetime.combine(local.date(), time(), self.tz).astimezone(UTC)

    @staticmethod
    def hour_bucket(t: datetime) -> datetime:
        return t.astimezone(UTC).replace(minute=0, second=0, microsecond=0)

    def _update_derived(self, conn: Connection, rows: Sequence[StoredObservation]) -> None:
        if not rows:
            return
        hourly: dict[tuple[int, datetime], list[float]] = defaultdict(list)
        daily: dict[tuple[int, datetime], list[float]] = defaultdict(list)
        latest: dict[int, StoredObservation] = {}
        extent: dict[int, list[datetime]] = {}
        for r in rows:
            if r.result_number is not None:
                hourly[(r.datastream_id, self.hour_bucket(r.phenomenon_time))].append(r.result_number)
                daily[(r.datastream_id, self.day_bucket(r.phenomenon_time))].append(r.result_number)
            cur = latest.get(r.datastream_id)
            if cur is None or r.phenomenon_time >= cur.phenomenon_time:
                latest[r.datastream_id] = r
            end = r.phenomenon_time_end or r.phenomenon_time
            span = extent.get(r.datastream_id)
            if span is None:
                extent[r.datastream_id] = [r.phenomenon_time, end]
            else:
                span[0] = min(span[0], r.phenomenon_time)
                span[1] = max(span[1], end)
        for table, groups in (("obs_rollup_hourly", hourly), ("obs_rollup_daily", daily)):
            agg = [(ds, b, len(v), sum(v), min(v), max(v)) for (ds, b), v in sorted(groups.items())]
            self.add_to_rollup(conn, table, agg)
        self._upsert_latest(conn, [latest[k] for k in sorted(latest)])
        self._widen_extent(conn, sorted((k, v[0], v[1]) for k, v in extent.items()))

    def add_to_rollup(self, conn: Connection, table: str, agg: list[tuple[int, datetime, int, float, float, float]]) -> None:
        """Merge partial aggregates into a rollup table (rows sorted by key: a fixed lock order)."""
        if not agg:
            return
        if self.postgres:
            cols = list(zip(*agg, strict=True))
            conn.exec_driver_sql(
                f"INSERT INTO {table} (datastream_id, bucket, count, sum, min, max) "
                "SELECT * FROM unnest(%s::bigint[], %s::timestamptz[], %s::int[], %s::float8[], %s::float8[], %s::float8[]) "
                f"ON CONFLICT (datastream_id, bucket) DO UPDATE SET count = {table}.count + excluded.count, "
                f"sum = {table}.sum + excluded.sum, min = LEAST({table}.min, excluded.min), "
                f"max = GREATEST({table}.max, excluded.max)",
                tuple(list(c) for c in cols),
            )
        else:
            conn.exec_driver_sql(
                f'INSERT INTO {table} (datastream_id, bucket, "count", "sum", "min", "max") VALUES (?,?,?,?,?,?) '
                f'ON CONFLICT (datastream_id, bucket) DO UPDATE SET "count" = {table}."count" + excluded."count", '
                f'"sum" = {table}."sum" + excluded."sum", "min" = min({table}."min", excluded."min"), '
                f'"max" = max({table}."max", excluded."max")',
                [(ds, sqlite_time_text(b), n, s, lo, hi) for ds, b, n, s, lo, hi in agg],
            )

    def _upsert_latest(self, conn: Connection, rows: list[StoredObservation]) -> None:
        if self.postgres:
            conn.exec_driver_sql(
                "INSERT INTO datastream_latest (datastream_id, observation_id, phenomenon_time, result_number, result_json) "
                "SELECT * FROM unnest(%s::bigint[], %s::bigint[], %s::timestamptz[], %s::float8[], %s::jsonb[]) "
                "ON CONFLICT (datastream_id) DO UPDATE SET observation_id = excluded.observation_id, "
                "phenomenon_time = excluded.phenomenon_time, result_number = excluded.result_number, "
                "result_json = excluded.result_json "
                "WHERE excluded.phenomenon_time >= datastream_latest.phenomenon_time",
                (
                    [r.datastream_id for r in rows],
                    [r.id for r in rows],
                    [r.phenomenon_time for r in rows],
                    [r.result_number for r in rows],
                    [_json(r.result_json) for r in rows],
                ),
            )
        else:
            conn.exec_driver_sql(
                "INSERT INTO datastream_latest (datastream_id, observation_id, phenomenon_time, result_number, result_json) "
                "VALUES (?,?,?,?,?) ON CONFLICT (datastream_id) DO UPDATE SET observation_id = excluded.observation_id, "
                "phenomenon_time = excluded.phenomenon_time, result_number = excluded.result_number, "
                "result_json = excluded.result_json WHERE excluded.phenomenon_time >= datastream_latest.phenomenon_time",
                [
                    (r.datastream_id, r.id, sqlite_time_text(r.phenomenon_time), r.result_number, _json(r.result_json))
                    for r in rows
                ],
            )

    def _widen_extent(self, conn: Connection, spans: list[tuple[int, datetime, datetime]]) -> None:
        if self.postgres:
            conn.exec_driver_sql(
                "UPDATE datastreams d SET "
                "phenomenon_time_start = LEAST(COALESCE(d.phenomenon_time_start, s.lo), s.lo), "
                "phenomenon_time_end = GREATEST(COALESCE(d.phenomenon_time_end, s.hi), s.hi) "
                "FROM unnest(%s::bigint[], %s::timestamptz[], %s::timestamptz[]) AS s(id, lo, hi) "
                "WHERE d.id = s.id AND (d.phenomenon_time_start IS NULL OR d.phenomenon_time_start > s.lo "
                "OR d.phenomenon_time_end < s.hi)",
                tuple(list(c) for c in zip(*spans, strict=True)),
            )
        else:
            conn.exec_driver_sql(
                "UPDATE datastreams SET "
                "phenomenon_time_start = min(COALESCE(phenomenon_time_start, ?1), ?1), "
                "phenomenon_time_end = max(COALESCE(phenomenon_time_end, ?2), ?2) WHERE id = ?3",
                [(sqlite_time_text(lo), sqlite_time_text(hi), ds) for ds, lo, hi in spans],
            )


def _opt_time(t: datetime | None) -> str | None:
    return None if t is None else sqlite_time_text(t)


class RollupRepair:
    """Recomputes rollups and the latest value after observations are changed or deleted.

    Rollups are maintained incrementally on insert; an update or delete cannot be subtracted from
    a min or max, so the touched buckets are rebuilt from the raw rows that remain.
    """

    def __init__(self, store: ObservationStore) -> None:
        self.store = store

    def repair(self, conn: Connection, datastream_id: int, times: Iterable[datetime]) -> None:
        times = list(times)
        for table, bucket, width in (
            ("obs_rollup_hourly", self.store.hour_bucket, timedelta(hours=1)),
            ("obs_rollup_daily", self.store.day_bucket, timedelta(days=1)),
        ):
            for start in sorted({bucket(t) for t in times}):
                self._rebuild(conn, table, datastream_id, start, start + width)
        self._rebuild_latest(conn, datastream_id)

    def _rebuild(self, conn: Connection, table: str, ds: int, start: datetime, end: datetime) -> None:
        t = sqlite_time_text if not self.store.postgres else (lambda v: v)
        conn.execute(
            text(f"DELETE FROM {table} WHERE datastream_id = :ds AND bucket = :b"), {"ds": ds, "b": t(start)}
        )
        row = conn.execute(
            text(
                "SELECT count(result_number), sum(result_number), min(result_number), max(result_number) "
                "FROM observations WHERE datastream_id = :ds AND phenomenon_time >= :a AND phenomenon_time < :b"
            ),
            {"ds": ds, "a": t(start), "b": t(end)},
        ).one()
        if row[0]:
            self.store.add_to_rollup(conn, table, [(ds, start, int(row[0]), float(row[1]), float(row[2]), float(row[3]))])

    def _rebuild_latest(self, conn: Connection, ds: int) -> None:
        conn.execute(text("DELETE FROM datastream_latest WHERE datastream_id = :ds"), {"ds": ds})
        conn.execute(
            text(
                "INSERT INTO datastream_latest (datastream_id, observation_id, phenomenon_time, result_number, result_json) "
                "SELECT datastream_id, id, phenomenon_time, result_number, result_json FROM observations "
                "WHERE datastream_id = :ds ORDER BY phenomenon_time DESC, id DESC LIMIT 1"
            ),
            {"ds": ds},
        )
