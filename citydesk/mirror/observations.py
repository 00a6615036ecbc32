"""Observations of crossing Datastreams, shipped incrementally with their rollups.

Raw rows are copied with their ids; the hourly and daily rollups of the buckets a run touched are
copied from the internal side too, read in the same snapshot as the rows, so the public side's
aggregates equal the internal side's exactly (recomputing them on the public side would drift as
soon as internal retention drops raw rows that the rollups outlive).

What is new is found by id. A watermark says every id up to it has been considered; ids missing
below the newest one seen are *holes*: on PostgreSQL a writer draws its ids before it commits, so
a batch may become visible after a later one. Holes are looked at again on every run until they
are ``settle`` seconds old (a write transaction takes milliseconds; ids skipped as duplicates or
rolled back stay holes and are forgotten).

Changes to stored observations (SensorThings PATCH, DELETE, retention) are found by comparing the
two sides' hourly rollups: per Datastream first (count, min, max, sum), then per bucket where a
Datastream differs; a differing hour is copied again whole. A Datastream that starts crossing
(new, or made public) is copied whole; one that stops crossing loses its rows on the public side.
Not seen: a change that keeps an hour's count, sum, min and max, and one to a non-numeric result
(rollups count numbers only).
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

from sqlalchemy import Connection, and_, delete, func, insert, or_, select
from sqlalchemy.dialects import postgresql, sqlite

from citydesk.hub.models import observations, rollup_daily, rollup_hourly
from citydesk.hub.store import ObservationStore, create_partitions

PAGE = 20_000
COPY_COLUMNS = tuple(c.name for c in observations.columns)
MAX_HOLES = 10_000
HOUR = timedelta(hours=1)
DAY = timedelta(days=1)


@dataclass
class Watermark:
    """How far publishing has come: every id up to ``after`` was considered, except the holes."""

    after: int = 0
    holes: list[tuple[int, int, float]] = field(default_factory=list)
    """(first id, last id, when first seen as epoch seconds)."""

    def to_json(self) -> dict[str, Any]:
        return {"after": self.after, "holes": [list(h) for h in self.holes]}

    @classmethod
    def from_json(cls, data: dict[str, Any] | None) -> Watermark:
        data = data or {}
        return cls(
            int(data.get("after", 0)), [(int(a), int(b), float(t)) for a, b, t in data.get("holes", [])]
        )


@dataclass
class Shipped:
    """What one run did to the public side's observations."""

    rows: int = 0
    backfilled: int = 0
    removed: int = 0
    resynced_hours: int = 0
    datastreams: set[int] = field(default_factory=set)
    """The Datastreams whose rows were shipped (for the public instance's live pages)."""


def _insert(dst: Connection, rows: Sequence[dict[str, Any]]) -> None:
    """Insert copied rows; a row already there (found again through a hole) is skipped."""
    if not rows:
        return
    dialect = postgresql if dst.dialect.name == "postgresql" else sqlite
    dst.execute(dialect.insert(observations).on_conflict_do_nothing(), list(rows))


def _chunks(items: Sequence[Any], size: int) -> Iterable[Sequence[Any]]:
    for i in range(0, len(items), size):
        yield items[i : i + size]


class ObservationShipper:
    """Copies one run's observations and rollups from ``src`` to ``dst`` (both in a transaction)."""

    def __init__(self, src: Connection, dst: Connection, dst_store: ObservationStore) -> None:
        self.src, self.dst, self.store = src, dst, dst_store
        self.touched: dict[int, tuple[datetime, datetime]] = {}
        self.partitions: set[tuple[str, date]] = set()
        self.result = Shipped()

    # -- rows ----------------------------------------------------------------------------------
    def _ship(self, rows: Sequence[dict[str, Any]], features: Collection[int]) -> None:
        if not rows:
            return
        for r in rows:
            if r["foi_id"] is not None and r["foi_id"] not in features:
                r["foi_id"] = None
            lo, hi = self.touched.get(r["datastream_id"], (r["phenomenon_time"], r["phenomenon_time"]))
            self.touched[r["datastream_id"]] = (min(lo, r["phenomenon_time"]), max(hi, r["phenomenon_time"]))
        self._ensure_partitions({(r["family"], r["phenomenon_time"].astimezone(UTC).date()) for r in rows})
        _insert(self.dst, rows)
        self.result.rows += len(rows)

    def _transfer(self, where: Any, features: Collection[int]) -> int:
        """Ship every row matching ``where``; returns how many. PostgreSQL to PostgreSQL streams a
        binary ``COPY`` from one server to the other through a staging table, with no Python per
        row; otherwise rows are read and inserted in pages."""
        if self.src.dialect.name == self.dst.dialect.name == "postgresql":
            return self._transfer_pg(where, features)
        o, last, count = observations.c, 0, 0
        while rows := self._rows(and_(where, o.id > last), limit=PAGE):
            last = rows[-1]["id"]
            self._ship(rows, features)
            count += len(rows)
        return count

    def _transfer_pg(self, where: Any, features: Collection[int]) -> int:
        query = select(*[observations.c[n] for n in COPY_COLUMNS]).where(where)
        sql = str(query.compile(dialect=self.src.dialect, compile_kwargs={"literal_binds": True}))
        names = ", ".join(COPY_COLUMNS)
        source, target = self.src.connection.driver_connection, self.dst.connection.driver_connection
        assert source is not None and target is not None
        with target.cursor() as out:
            out.execute(
                "CREATE TEMP TABLE IF NOT EXISTS mirror_stage (LIKE observations INCLUDING DEFAULTS) ON COMMIT DROP"
            )
            with (
                source.cursor() as cur,
                cur.copy(f"COPY ({sql}) TO STDOUT (FORMAT BINARY)") as read,
                out.copy(f"COPY mirror_stage ({names}) FROM STDIN (FORMAT BINARY)") as write,
            ):
                for block in read:
                    write.write(block)
            out.execute(
                "UPDATE mirror_stage SET foi_id = NULL WHERE foi_id IS NOT NULL AND NOT foi_id = ANY(%s)",
                (sorted(features),),
            )
            out.execute(
                "SELECT DISTINCT family, (phenomenon_time AT TIME ZONE 'UTC')::date FROM mirror_stage"
            )
            self._ensure_partitions({(f, d) for f, d in out.fetchall()})
            out.execute(
                "SELECT datastream_id, min(phenomenon_time), max(phenomenon_time) FROM mirror_stage GROUP BY 1"
            )
            for ds, lo, hi in out.fetchall():
                old_lo, old_hi = self.touched.get(ds, (lo, hi))
                self.touched[ds] = (min(lo, old_lo), max(hi, old_hi))
            out.execute(
                f"INSERT INTO observations ({names}) SELECT {names} FROM mirror_stage ON CONFLICT DO NOTHING"
            )
            out.execute("SELECT count(*) FROM mirror_stage")
            row = out.fetchone()
            count = int(row[0]) if row else 0
            out.execute("DELETE FROM mirror_stage")
        self.result.rows += count
        return count

    def _ensure_partitions(self, wanted: set[tuple[str, date]]) -> None:
        """Create the PostgreSQL partitions the rows need, in the publishing transaction.

        ``ObservationStore.ensure_partitions`` runs the same ``create_partitions`` on a connection of
        its own so that concurrent writers never queue behind DDL; here that would wait forever,
        for this very transaction already holds a lock on ``observations``. The publisher is the public
        database's only writer, so creating them inside its transaction costs no one anything."""
        if self.dst.dialect.name != "postgresql" or not wanted - self.partitions:
            return
        create_partitions(self.dst, wanted - self.partitions)
        self.partitions |= wanted

    def _rows(self, where: Any, limit: int | None = None) -> list[dict[str, Any]]:
        query = select(observations).where(where).order_by(observations.c.id).limit(limit)
        return [dict(m) for m in self.src.execute(query).mappings()]

    def remove(self, datastreams: Collection[int]) -> None:
        """Drop the rows of Datastreams that no longer cross."""
        for chunk in _chunks(sorted(datastreams), 500):
            self.result.removed += self.dst.execute(
                delete(observations).where(observations.c.datastream_id.in_(chunk))
            ).rowcount

    def backfill(self, datastreams: Collection[int], features: Collection[int]) -> None:
        """Copy every row of Datastreams that start crossing, with all their rollups."""
        o = observations.c
        for chunk in _chunks(sorted(datastreams), 100):
            self.result.backfilled += self._transfer(o.datastream_id.in_(chunk), features)
            for table in (rollup_hourly, rollup_daily):
                self._copy_rollups(table, table.c.datastream_id.in_(chunk))

    def incremental(
        self, mark: Watermark, crossing: Collection[int], features: Collection[int], now: float, settle: float
    ) -> None:
        """Ship new rows of crossing Datastreams (above the watermark, or filling a hole)."""
        o = observations.c
        crossing = set(crossing)
        holes = [h for h in mark.holes if now - h[2] < settle]
        if holes:
            found = self._rows(or_(*(o.id.between(a, b) for a, b, _ in holes)))
            seen = {r["id"] for r in found}
            self._ship([r for r in found if r["datastream_id"] in crossing], features)
            holes = [piece for h in holes for piece in _minus(h, seen)]
        while True:
            ids = list(
                self.src.execute(select(o.id).where(o.id > mark.after).order_by(o.id).limit(PAGE)).scalars()
            )
            if not ids:
                break
            top = ids[-1]
            expected = mark.after + 1
            for i in ids:
                if i > expected:
                    holes.append((expected, i - 1, now))
                expected = i + 1
            if crossing:
                self._transfer(
                    and_(o.id > mark.after, o.id <= top, o.datastream_id.in_(sorted(crossing))), features
                )
            mark.after = top
            if len(ids) < PAGE:
                break
        mark.holes = holes[-MAX_HOLES:]

    # -- rollups -------------------------------------------------------------------------------
    def _copy_rollups(self, table: Any, where: Any) -> None:
        rows = [dict(m) for m in self.src.execute(select(table).where(where)).mappings()]
        self.dst.execute(delete(table).where(where))
        if rows:
            self.dst.execute(insert(table), rows)

    def finish(self) -> Shipped:
        self.result.datastreams = set(self.touched)
        return self.result

    def copy_touched_rollups(self) -> None:
        """Copy the hourly and daily rollups covering the rows shipped in this run (the daily range
        is widened by a day each side: copying more is harmless, and it covers any city's zone)."""
        for ds, (lo, hi) in sorted(self.touched.items()):
            for table, first, last in (
                (rollup_hourly, self.store.hour_bucket(lo), self.store.hour_bucket(hi)),
                (rollup_daily, self.store.day_bucket(lo) - DAY, self.store.day_bucket(hi) + DAY),
            ):
                self._copy_rollups(
                    table, and_(table.c.datastream_id == ds, table.c.bucket >= first, table.c.bucket <= last)
                )

    # -- reconciliation ------------------------------------------------------------------------
    def reconcile(self, datastreams: Collection[int], features: Collection[int]) -> None:
        """Copy again the hours whose rollups differ between the two sides (changed or deleted rows)."""
        if not datastreams:
            return
        ids = sorted(datastreams)
        src_tot, dst_tot = _totals(self.src, ids), _totals(self.dst, ids)
        differing = [ds for ds in ids if not _close(src_tot.get(ds), dst_tot.get(ds))]
        h = rollup_hourly.c
        o = observations.c
        for ds in differing:
            src_b, dst_b = _buckets(self.src, ds), _buckets(self.dst, ds)
            hours = sorted(b for b in set(src_b) | set(dst_b) if src_b.get(b) != dst_b.get(b))
            for hour in hours:
                window = and_(
                    o.datastream_id == ds, o.phenomenon_time >= hour, o.phenomenon_time < hour + HOUR
                )
                self.dst.execute(delete(observations).where(window))
                self._ship(self._rows(window), features)
                self._copy_rollups(rollup_hourly, and_(h.datastream_id == ds, h.bucket == hour))
                d = rollup_daily.c
                self._copy_rollups(
                    rollup_daily, and_(d.datastream_id == ds, d.bucket > hour - DAY, d.bucket <= hour)
                )
            self.result.resynced_hours += len(hours)


def _minus(hole: tuple[int, int, float], seen: set[int]) -> list[tuple[int, int, float]]:
    """The parts of a hole whose ids are still missing."""
    lo, hi, t = hole
    pieces: list[tuple[int, int, float]] = []
    start = lo
    for i in sorted(x for x in seen if lo <= x <= hi):
        if i > start:
            pieces.append((start, i - 1, t))
        start = i + 1
    if start <= hi:
        pieces.append((start, hi, t))
    return pieces


Totals = tuple[int, int, float, float, float]


def _totals(conn: Connection, ids: Sequence[int]) -> dict[int, Totals]:
    h = rollup_hourly.c
    out: dict[int, Totals] = {}
    for chunk in _chunks(ids, 500):
        for ds, n, count, lo, hi, total in conn.execute(
            select(
                h.datastream_id,
                func.count(),
                func.sum(h.count),
                func.min(h.min),
                func.max(h.max),
                func.sum(h.sum),
            )
            .where(h.datastream_id.in_(chunk))
            .group_by(h.datastream_id)
        ):
            out[ds] = (int(n), int(count), float(lo), float(hi), float(total))
    return out


def _close(a: Totals | None, b: Totals | None) -> bool:
    """Equal totals; sums are compared with a relative tolerance (the databases may add in another order)."""
    if a is None or b is None:
        return a is b
    return a[:4] == b[:4] and abs(a[4] - b[4]) <= 1e-9 * max(1.0, abs(a[4]), abs(b[4]))


def _buckets(conn: Connection, ds: int) -> dict[datetime, tuple[Any, ...]]:
    h = rollup_hourly.c
    rows = conn.execute(select(h.bucket, h.count, h.sum, h.min, h.max).where(h.datastream_id == ds))
    return {b: tuple(rest) for b, *rest in rows}
