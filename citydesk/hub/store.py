"""The observation store: the one place observations are written.

A write stores a batch, its hourly and daily rollups, each datastream's latest value and its time
extent, all in the caller's transaction, so a batch is either wholly durable or not there at all.
PostgreSQL takes the rows by ``COPY`` into a table partitioned by family and day (partitions are
created ahead of the write, outside its transaction); SQLite by prepared inserts.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Callable, Iterable, Sequence
from datetime import UTC, date, datetime, time, timedelta
from operator import attrgetter
from typing import Any, NoReturn
from zoneinfo import ZoneInfo

import orjson
import psycopg
from psycopg.types.json import Jsonb
from sqlalchemy import Connection, Engine, text
from sqlalchemy.exc import IntegrityError

from citydesk.db.metadata import sqlite_time_text
from citydesk.hub.derived import Derived, derive
from citydesk.hub.records import StoredObservation

COLUMNS = (
    "id, datastream_id, family, phenomenon_time, phenomenon_time_end, result_time, valid_time_start,"
    " valid_time_end, result_number, result_json, result_quality, parameters, foi_id, district_code,"
    " dedup_key"
)
FAMILY_RE = re.compile(r"^[a-z][a-z0-9_]{0,31}$")


PG_TYPES = [
    "int8",
    "int8",
    "text",
    "timestamptz",
    "timestamptz",
    "timestamptz",
    "timestamptz",
    "timestamptz",
    "float8",
    "jsonb",
    "jsonb",
    "jsonb",
    "int8",
    "text",
    "int8",
]
ROLLUP_SET = (
    "count = {t}.count + excluded.count, sum = {t}.sum + excluded.sum, "
    "min = LEAST({t}.min, excluded.min), max = GREATEST({t}.max, excluded.max)"
)
_NEWER = "excluded.phenomenon_time >= datastream_latest.phenomenon_time"
LATEST_SET = ", ".join(
    f"{c} = CASE WHEN {_NEWER} THEN excluded.{c} ELSE datastream_latest.{c} END"
    for c in ("observation_id", "phenomenon_time", "result_number", "result_json")
) + (
    ", first_time = {lo}(datastream_latest.first_time, excluded.first_time)"
    ", last_time = {hi}(datastream_latest.last_time, excluded.last_time)"
    ", updated_at = excluded.updated_at"
)
PG_WRITE = (
    f"WITH ins AS (INSERT INTO observations ({COLUMNS}) SELECT {COLUMNS} FROM obs_stage ON CONFLICT DO NOTHING "
    "RETURNING id, datastream_id, phenomenon_time, phenomenon_time_end, result_number, result_json), "
    "h AS (INSERT INTO obs_rollup_hourly (datastream_id, bucket, count, sum, min, max) "
    "SELECT datastream_id, date_trunc('hour', phenomenon_time, 'UTC') AS b, count(*), sum(result_number), "
    "min(result_number), max(result_number) FROM ins WHERE result_number IS NOT NULL GROUP BY 1, 2 ORDER BY 1, 2 "
    "ON CONFLICT (datastream_id, bucket) DO UPDATE SET " + ROLLUP_SET.format(t="obs_rollup_hourly") + "), "
    "d AS (INSERT INTO obs_rollup_daily (datastream_id, bucket, count, sum, min, max) "
    "SELECT datastream_id, date_trunc('day', phenomenon_time, %(tz)s) AS b, count(*), sum(result_number), "
    "min(result_number), max(result_number) FROM ins WHERE result_number IS NOT NULL GROUP BY 1, 2 ORDER BY 1, 2 "
    "ON CONFLICT (datastream_id, bucket) DO UPDATE SET " + ROLLUP_SET.format(t="obs_rollup_daily") + "), "
    "l AS (INSERT INTO datastream_latest (datastream_id, observation_id, phenomenon_time, result_number, result_json, "
    "first_time, last_time, updated_at) SELECT DISTINCT ON (datastream_id) datastream_id, id, phenomenon_time, "
    "result_number, result_json, min(phenomenon_time) OVER w, max(COALESCE(phenomenon_time_end, phenomenon_time)) "
    "OVER w, statement_timestamp() FROM ins "
    "WINDOW w AS (PARTITION BY datastream_id) ORDER BY datastream_id, phenomenon_time DESC, id DESC "
    "ON CONFLICT (datastream_id) DO UPDATE SET " + LATEST_SET.format(lo="LEAST", hi="GREATEST") + ") "
    "SELECT id FROM ins"
)
"""De-duplicating write: from the stage, what is new, and the derived rows of exactly that."""


def _rollup_merge(table: str, prefix: str) -> str:
    return (
        f"INSERT INTO {table} (datastream_id, bucket, count, sum, min, max) SELECT * FROM unnest("
        f"%({prefix}_ds)s::int8[], %({prefix}_b)s::timestamptz[], %({prefix}_c)s::int8[], "
        f"%({prefix}_s)s::float8[], %({prefix}_lo)s::float8[], %({prefix}_hi)s::float8[]) "
        "ON CONFLICT (datastream_id, bucket) DO UPDATE SET " + ROLLUP_SET.format(t=table)
    )


PG_DERIVED = (
    f"WITH h AS ({_rollup_merge('obs_rollup_hourly', 'h')}), d AS ({_rollup_merge('obs_rollup_daily', 'd')}) "
    "INSERT INTO datastream_latest (datastream_id, observation_id, phenomenon_time, result_number, result_json, "
    "first_time, last_time, updated_at) SELECT *, statement_timestamp() FROM unnest(%(l_ds)s::int8[], "
    "%(l_id)s::int8[], %(l_t)s::timestamptz[], %(l_n)s::float8[], %(l_j)s::text[]::jsonb[], "
    "%(l_f)s::timestamptz[], %(l_l)s::timestamptz[]) "
    "ON CONFLICT (datastream_id) DO UPDATE SET " + LATEST_SET.format(lo="LEAST", hi="GREATEST")
)
"""Merging ``derive``'s aggregates of a batch stored whole (sorted keys: a fixed lock order)."""


STORED_COLUMNS: tuple[tuple[str, str], ...] = tuple(
    zip(COLUMNS.replace(" ", "").split(",")[1:], PG_TYPES[1:], strict=True)
)
ALWAYS = {"datastream_id", "family", "phenomenon_time"}


def _copy_plan(
    rows: Sequence[StoredObservation],
) -> tuple[list[str], list[str], Callable[[Any], tuple[Any, ...]]]:
    """The columns a batch really fills, their types, and a fast row-to-tuple function.

    Most batches carry a number and a time and leave half the columns empty; copying only the
    columns in use halves the per-row work of the binary COPY.
    """
    used = [
        (name, kind)
        for name, kind in STORED_COLUMNS
        # map + count run in C: a column left empty costs a pass without Python-level calls.
        if name in ALWAYS or list(map(attrgetter(name), rows)).count(None) < len(rows)
    ]
    names = [name for name, _ in used]
    getter = attrgetter(*names)
    json_at = [i for i, (_, kind) in enumerate(used) if kind == "jsonb"]
    if not json_at:
        return names, [kind for _, kind in used], getter

    def values(r: Any) -> tuple[Any, ...]:
        out = list(getter(r))
        for i in json_at:
            out[i] = _jsonb(out[i])
        return tuple(out)

    return names, [kind for _, kind in used], values


def _json(value: Any) -> str | None:
    return None if value is None else orjson.dumps(value).decode()


def _jsonb(value: Any) -> Jsonb | None:
    return None if value is None else Jsonb(value, dumps=_json)  # type: ignore[arg-type]


def partition_name(family: str, day: date | None = None) -> str:
    """``obs_<family>`` for a family's table, ``obs_<family>_<yyyymmdd>`` for one of its days."""
    if not FAMILY_RE.match(family):
        raise ValueError(f"invalid datastream family {family!r}")
    return f"obs_{family}" if day is None else f"obs_{family}_{day:%Y%m%d}"


def create_partitions(conn: Connection, wanted: Iterable[tuple[str, date]]) -> None:
    """Create, on ``conn`` (PostgreSQL), the family and day partitions of ``wanted`` that do not
    exist yet. Another process creating the same one at the same moment is not an error."""
    existing = {r[0] for r in conn.execute(text("SELECT relname FROM pg_class WHERE relkind IN ('r','p')"))}
    for family, day in sorted(wanted):
        fam_table = partition_name(family)
        if fam_table not in existing:
            _create(
                conn,
                f"CREATE TABLE IF NOT EXISTS {fam_table} PARTITION OF observations "
                f"FOR VALUES IN ('{family}') PARTITION BY RANGE (phenomenon_time)",
            )
            existing.add(fam_table)
        day_table = partition_name(family, day)
        if day_table not in existing:
            start = datetime.combine(day, time(), UTC)
            end = start + timedelta(days=1)
            _create(
                conn,
                f"CREATE TABLE IF NOT EXISTS {day_table} PARTITION OF {fam_table} "
                f"FOR VALUES FROM ('{start.isoformat()}') TO ('{end.isoformat()}')",
            )
            existing.add(day_table)


def _create(conn: Connection, ddl: str) -> None:
    # Another worker may create the same partition at the same moment; losing that race is fine.
    try:
        conn.exec_driver_sql(ddl)
    except Exception as exc:
        if "already exists" not in str(exc):
            raise


class WriteAgain(Exception):
    """A table this process believed in is gone; the next attempt, in a new transaction, makes it.

    Either a day partition (retention dropped it in another process) or this session's staging
    table (created in a transaction that was then rolled back).
    """


class DatastreamGone(Exception):
    """A row's datastream no longer exists (deleted by another process after validation)."""


class ObservationStore:
    """Writes observation batches; holds only a cache of partitions known to exist."""

    def __init__(self, engine: Engine, timezone: str = "UTC") -> None:
        self.engine = engine
        self.postgres = engine.dialect.name == "postgresql"
        self.tz = ZoneInfo(timezone)
        # Where the zone is a whole number of hours from UTC, an hour bucket lies in one local day.
        self._whole_hour_zone = all(
            (datetime(2000, m, 1, tzinfo=self.tz).utcoffset() or timedelta()).total_seconds() % 3600 == 0
            for m in (1, 7)
        )
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
        if not self.postgres:
            return
        with self._lock:
            missing = wanted - self._partitions
        if not missing:
            return
        with self.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            create_partitions(conn, missing)
        with self._lock:
            self._partitions |= missing | {(f, None) for f, _ in missing}

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
        try:
            if self.postgres:
                return len(rows) - self._write_pg(conn, rows, dedupe)
            inserted = self._insert_sqlite(conn, rows, dedupe)
            self._update_derived(conn, [r for r in rows if r.id is not None])
        except (psycopg.errors.ForeignKeyViolation, IntegrityError) as exc:
            # The derived rows reference datastreams: their foreign keys catch a deleted one.
            if isinstance(exc, IntegrityError) and "FOREIGN KEY" not in str(exc.orig):
                raise
            raise DatastreamGone(str(exc)) from exc
        return len(rows) - inserted

    def _write_pg(self, conn: Connection, rows: Sequence[StoredObservation], dedupe: bool) -> int:
        """Ids from the sequence in one round trip, then the rows by binary ``COPY``.

        Without ``dedupe`` every row is stored, so the rows go straight into the partitioned table
        and the derived tables are merged from ``derive``'s few aggregates in one statement. With
        ``dedupe`` only the database knows which rows were already there: they go through a
        session-local stage, and one statement inserts what is new and derives from exactly that.
        """
        raw = conn.connection.driver_connection
        assert raw is not None
        with raw.cursor() as cur:
            cur.execute("SELECT nextval('observations_id_seq') FROM generate_series(1, %s)", (len(rows),))
            ids = [r[0] for r in cur.fetchall()]
            if not dedupe:
                for oid, r in zip(ids, rows, strict=True):
                    r.id = oid
                self._copy(cur, "observations", rows, ids)
                cur.execute(PG_DERIVED, self._derived_params(rows))
                return len(rows)
            if not conn.connection.info.get("obs_stage"):  # once per pooled connection
                cur.execute(
                    "CREATE TEMP TABLE IF NOT EXISTS obs_stage (LIKE observations INCLUDING DEFAULTS) ON COMMIT DELETE ROWS"
                )
                conn.connection.info["obs_stage"] = True
            try:
                self._copy(cur, "obs_stage", rows, ids)
            except psycopg.errors.UndefinedTable as exc:
                conn.connection.info.pop("obs_stage", None)
                raise WriteAgain(str(exc)) from exc
            try:
                cur.execute(PG_WRITE, {"tz": self.tz.key})
            except psycopg.errors.CheckViolation as exc:
                self._partition_missing(exc)
            kept = {r[0] for r in cur.fetchall()}
            # Emptied for a second write in the same transaction. DELETE, not TRUNCATE: a TRUNCATE
            # makes a new file and rewrites catalog rows each time (it cost 1/6 of PostgreSQL's
            # time per batch); ON COMMIT DELETE ROWS clears the dead rows at commit anyway.
            cur.execute("DELETE FROM obs_stage")
        for oid, r in zip(ids, rows, strict=True):
            r.id = oid if oid in kept else None
        return len(kept)

    def _copy(
        self, cur: psycopg.Cursor[Any], table: str, rows: Sequence[StoredObservation], ids: list[int]
    ) -> None:
        columns, types, values = _copy_plan(rows)
        try:
            with cur.copy(f"COPY {table} (id, {', '.join(columns)}) FROM STDIN (FORMAT BINARY)") as copy:
                copy.set_types(["int8", *types])
                for oid, r in zip(ids, rows, strict=True):
                    copy.write_row((oid, *values(r)))
        except psycopg.errors.CheckViolation as exc:
            self._partition_missing(exc)

    def _partition_missing(self, exc: psycopg.errors.CheckViolation) -> NoReturn:
        """A row fell outside every partition: retention dropped its day in another process."""
        if "no partition of relation" not in str(exc):
            raise exc
        self.forget_partitions()
        raise WriteAgain(str(exc)) from exc

    def _derived_params(self, rows: Sequence[StoredObservation]) -> dict[str, Any]:
        derived = self.derive(rows)
        params: dict[str, Any] = {}
        for prefix, rollup in (("h", derived.hourly), ("d", derived.daily)):
            columns = list(zip(*rollup, strict=True)) or [()] * 6
            for name, column in zip(("ds", "b", "c", "s", "lo", "hi"), columns, strict=True):
                params[f"{prefix}_{name}"] = list(column)
        latest = derived.latest
        params |= {
            "l_ds": [x.datastream_id for x in latest],
            "l_id": [x.row.id for x in latest],
            "l_t": [x.row.phenomenon_time for x in latest],
            "l_n": [x.row.result_number for x in latest],
            "l_j": [_json(x.row.result_json) for x in latest],
            "l_f": [x.first_time for x in latest],
            "l_l": [x.last_time for x in latest],
        }
        return params

    def _insert_sqlite(self, conn: Connection, rows: Sequence[StoredObservation], dedupe: bool) -> int:
        """Prepared inserts. The transaction holds SQLite's write lock (BEGIN IMMEDIATE), so ids
        can be numbered from the current maximum; with ``dedupe`` each row is tried on its own to
        learn whether it was a duplicate."""
        raw = conn.connection.driver_connection
        assert raw is not None
        values = [
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
            )
            for r in rows
        ]
        cur = raw.cursor()
        try:
            if not dedupe:
                first = cur.execute("SELECT COALESCE(MAX(id), 0) + 1 FROM observations").fetchone()[0]
                cur.executemany(
                    f"INSERT INTO observations ({COLUMNS}) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
                    [(first + i, *v) for i, v in enumerate(values)],
                )
                for i, r in enumerate(rows):
                    r.id = first + i
                return len(rows)
            count = 0
            sql = f"INSERT INTO observations ({COLUMNS}) VALUES (NULL,?,?,?,?,?,?,?,?,?,?,?,?,?,?) ON CONFLICT DO NOTHING"
            for r, v in zip(rows, values, strict=True):
                cur.execute(sql, v)
                r.id = cur.lastrowid if cur.rowcount == 1 else None
                count += cur.rowcount == 1
            return count
        finally:
            cur.close()

    # -- derived tables ----------------------------------------------------------------------
    def day_bucket(self, t: datetime) -> datetime:
        """Start of the city's local day containing ``t`` (daily rollups follow the city's clock)."""
        local = t.astimezone(self.tz)
        return datetime.combine(local.date(), time(), self.tz).astimezone(UTC)

    @staticmethod
    def hour_bucket(t: datetime) -> datetime:
        if t.utcoffset():
            t = t.astimezone(UTC)
        return t.replace(minute=0, second=0, microsecond=0)

    def derive(self, rows: Sequence[StoredObservation]) -> Derived:
        return derive(rows, self.day_bucket, whole_hour_zone=self._whole_hour_zone)

    def _update_derived(self, conn: Connection, rows: Sequence[StoredObservation]) -> None:
        """SQLite: rollups and latest values from the stored rows (PostgreSQL: ``_write_pg``)."""
        if not rows:
            return
        derived = self.derive(rows)
        self.add_to_rollup(conn, "obs_rollup_hourly", derived.hourly)
        self.add_to_rollup(conn, "obs_rollup_daily", derived.daily)
        updated = sqlite_time_text(datetime.now(UTC))
        conn.exec_driver_sql(
            "INSERT INTO datastream_latest (datastream_id, observation_id, phenomenon_time, result_number, result_json, "
            "first_time, last_time, updated_at) VALUES (?,?,?,?,?,?,?,?) ON CONFLICT (datastream_id) DO UPDATE SET "
            + LATEST_SET.format(lo="min", hi="max"),
            [
                (
                    x.datastream_id,
                    x.row.id,
                    sqlite_time_text(x.row.phenomenon_time),
                    x.row.result_number,
                    _json(x.row.result_json),
                    sqlite_time_text(x.first_time),
                    sqlite_time_text(x.last_time),
                    updated,
                )
                for x in derived.latest
            ],
        )

    def add_to_rollup(
        self, conn: Connection, table: str, agg: list[tuple[int, datetime, int, float, float, float]]
    ) -> None:
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
            self.store.add_to_rollup(
                conn, table, [(ds, start, int(row[0]), float(row[1]), float(row[2]), float(row[3]))]
            )

    def _rebuild_latest(self, conn: Connection, ds: int) -> None:
        conn.execute(text("DELETE FROM datastream_latest WHERE datastream_id = :ds"), {"ds": ds})
        now = datetime.now(UTC)
        conn.execute(
            text(
                "INSERT INTO datastream_latest (datastream_id, observation_id, phenomenon_time, result_number, "
                "result_json, first_time, last_time, updated_at) "
                "SELECT o.datastream_id, o.id, o.phenomenon_time, o.result_number, o.result_json, x.lo, x.hi, :now "
                "FROM observations o, (SELECT min(phenomenon_time) AS lo, "
                "max(COALESCE(phenomenon_time_end, phenomenon_time)) AS hi FROM observations WHERE datastream_id = :ds) x "
                "WHERE o.datastream_id = :ds ORDER BY o.phenomenon_time DESC, o.id DESC LIMIT 1"
            ),
            {"ds": ds, "now": now if self.store.postgres else sqlite_time_text(now)},
        )
