"""``hub.derived.derive`` against a plain re-statement of what the derived tables mean.

Random batches (several datastreams, times out of order, ties, missing results, intervals) in
the city's zone and in one that is not a whole number of hours from UTC, where an hour bucket
straddles two local days.
"""

from __future__ import annotations

import random
from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest

from citydesk.hub.derived import derive
from citydesk.hub.records import StoredObservation


def _row(i: int, ds: int, t: datetime, value: float | None, end: datetime | None) -> StoredObservation:
    return StoredObservation(
        ds, "default", t, end, None, None, None, value, None, None, None, None, None, id=i
    )


def _day(tz: ZoneInfo):  # type: ignore[no-untyped-def]
    def bucket(t: datetime) -> datetime:
        return datetime.combine(t.astimezone(tz).date(), time(), tz).astimezone(UTC)

    return bucket


@pytest.mark.parametrize("zone", ["Asia/Seoul", "Asia/Kolkata", "UTC"])
@pytest.mark.parametrize("seed", range(5))
def test_derive_matches_the_definition(zone: str, seed: int) -> None:
    rnd = random.Random(seed)
    tz = ZoneInfo(zone)
    base = datetime(2026, 11, 21, 17, 0, tzinfo=UTC)
    rows = []
    for i in range(400):
        ds = rnd.choice([3, 5, 8]) if rnd.random() < 0.3 else 3 + (i // 100) % 3 * 2
        t = base + timedelta(minutes=rnd.randrange(0, 60 * 30)) if rnd.random() < 0.9 else base  # ties
        if rnd.random() < 0.2:
            t = t.astimezone(ZoneInfo("Asia/Seoul"))  # aware, not UTC
        value = None if rnd.random() < 0.1 else round(rnd.uniform(-10, 200), 2)
        end = t + timedelta(minutes=rnd.randrange(1, 90)) if rnd.random() < 0.1 else None
        rows.append(_row(i + 1, ds, t, value, end))
    day = _day(tz)
    got = derive(rows, day, whole_hour_zone=zone != "Asia/Kolkata")

    def rollup(bucket):  # type: ignore[no-untyped-def]
        groups: dict[tuple[int, datetime], list[float]] = {}
        for r in rows:
            if r.result_number is not None:
                groups.setdefault((r.datastream_id, bucket(r.phenomenon_time)), []).append(r.result_number)
        return [(ds, b, len(v), sum(v), min(v), max(v)) for (ds, b), v in sorted(groups.items())]

    def hour(t: datetime) -> datetime:
        return t.astimezone(UTC).replace(minute=0, second=0, microsecond=0)

    for (ds, b, n, s, lo, hi), want in zip(got.hourly, rollup(hour), strict=True):
        assert (ds, b, n, lo, hi) == (want[0], want[1], want[2], want[4], want[5]) and s == pytest.approx(
            want[3]
        )
    for (ds, b, n, s, lo, hi), want in zip(got.daily, rollup(day), strict=True):
        assert (ds, b, n, lo, hi) == (want[0], want[1], want[2], want[4], want[5]) and s == pytest.approx(
            want[3]
        )
    for latest in got.latest:
        mine = [r for r in rows if r.datastream_id == latest.datastream_id]
        newest = max(mine, key=lambda r: (r.phenomenon_time, r.id))
        assert latest.row is newest
        assert latest.first_time == min(r.phenomenon_time for r in mine)
        assert latest.last_time == max(r.phenomenon_time_end or r.phenomenon_time for r in mine)
    assert [x.datastream_id for x in got.latest] == sorted({r.datastream_id for r in rows})
