"""Alert rules: the kinds and their params, evaluation on stored batches, the same event never
raised twice while open (also by two workers at once, on PostgreSQL), clearing, disclosure of the
raised events, the periodic no-data check on an injected clock, rule CRUD, and the demo seeder."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, insert, select

from citydesk.auth import Principal, Role, create_user
from citydesk.bus import Event
from citydesk.hub.records import ObservationIn
from citydesk.status import alerts, events
from citydesk.status.alerts import service
from citydesk.status.alerts.engine import NodataCheck
from citydesk.status.alerts.seed import seed_alert_rules
from citydesk.status.measures import BANDS
from citydesk.status.models import alert_rules, event_history
from citydesk.status.models import events as events_table
from citydesk.web.app import App
from tests.conftest import STAFF_PASSWORD, create_sensor

GANGNAM, JONGNO = "11680", "11110"
JONGNO_POINT = (126.9816, 37.5735)
RULES = "/api/status/alert-rules"
T0 = datetime(2026, 11, 22, 3, 0, tzinfo=UTC)


@pytest.fixture
def engine(app: App) -> alerts.AlertEngine:
    return alerts.attach(app)


def rule(app: App, **over: Any) -> int:
    values = {
        "name": "PM10 very bad",
        "kind": "threshold",
        "observed_property": "PM10",
        "params": {"op": ">=", "limit": 151},
        "severity": "major",
        "disclosure": "public",
    } | over
    return int(alerts.create_rule(app, alerts.RuleIn.model_validate(values), now=app.now())["id"])


def feed(app: App, ds: int, *values: float, start: datetime | None = None) -> datetime:
    """One observation a minute from ``start`` (default: a few minutes ago), each its own batch."""
    t = start or datetime.now(UTC) - timedelta(minutes=len(values) + 1)
    for v in values:
        assert app.ingest.ingest([ObservationIn(ds, v, phenomenon_time=t)], channel="test").stored
        t += timedelta(minutes=1)
    return t


def rows(app: App) -> list[Any]:
    with app.engine.connect() as conn:
        return list(conn.execute(select(events_table).order_by(events_table.c.id)))


def history(app: App, event_id: int) -> list[Any]:
    with app.engine.connect() as conn:
        stmt = select(event_history).where(event_history.c.event_id == event_id).order_by(event_history.c.id)
        return list(conn.execute(stmt))


def test_a_threshold_raises_once_while_open_and_clears_when_back_to_normal(app: App, engine: Any) -> None:
    ds = create_sensor(app, "g1")
    rule_id = rule(app)
    feed(app, ds, 40, 160, 170, 180)
    [event] = rows(app)
    assert (event.status, event.severity, event.kind, event.rule_id, event.datastream_id) == (
        "reported",
        "major",
        "alert",
        rule_id,
        ds,
    )
    assert event.open_key == events.open_key(rule_id, ds)
    assert event.district_code == GANGNAM and event.lon is not None
    assert "강남구" in event.title and "160 >= 151" in event.description
    assert event.details["value"] == 160
    feed(app, ds, 90, start=datetime.now(UTC) - timedelta(seconds=30))
    [event] = rows(app)
    assert event.status == "resolved" and event.open_key is None
    assert [(h.status, h.actor, h.note) for h in history(app, event.id)] == [
        ("reported", events.SYSTEM_ACTOR, ""),
        ("resolved", events.SYSTEM_ACTOR, alerts.BACK_TO_NORMAL),
    ]
    feed(app, ds, 200, start=datetime.now(UTC) - timedelta(seconds=10))  # a recurrence: a new event
    assert [e.status for e in rows(app)] == ["resolved", "reported"]


def test_old_readings_replayed_raise_nothing(app: App, engine: Any) -> None:
    """A backfill (the simulator's, a logger's late upload) is history, not an alert."""
    ds = create_sensor(app, "g1")
    rule(app)
    feed(app, ds, 400, 400, start=datetime.now(UTC) - timedelta(hours=3))
    assert rows(app) == []


def test_once_a_person_took_it_on_people_close_it(app: App, engine: Any) -> None:
    ds = create_sensor(app, "g1")
    rule(app)
    feed(app, ds, 160)
    [event] = rows(app)
    staff = Principal.for_user(None, "kim", Role.OFFICIAL)
    events.move(app, staff, event.id, events.StatusChange(status="dispatched"), now=app.now())
    feed(app, ds, 20, start=datetime.now(UTC) - timedelta(seconds=20))
    [event] = rows(app)
    assert event.status == "dispatched" and event.open_key is not None
    feed(app, ds, 300, start=datetime.now(UTC) - timedelta(seconds=10))
    assert len(rows(app)) == 1  # still open: not raised again


def test_consecutive_readings(app: App, engine: Any) -> None:
    ds = create_sensor(app, "g1")
    rule(app, params={"op": ">=", "limit": 151, "consecutive": 3})
    feed(app, ds, 160, 170, 20, 160, 170)
    assert rows(app) == []
    feed(app, ds, 180, start=datetime.now(UTC) - timedelta(seconds=10))
    assert len(rows(app)) == 1
    assert "3 readings in a row" in rows(app)[0].description


def test_below_a_limit_and_one_datastream_or_district_targets(app: App, engine: Any) -> None:
    g1, j1 = create_sensor(app, "g1"), create_sensor(app, "j1", lon_lat=JONGNO_POINT)
    temp = create_sensor(app, "t1", observed_property="Temperature")
    rule(app, name="cold", observed_property=None, datastream_id=temp, params={"op": "<", "limit": -10})
    rule(app, name="jongno only", district_code=JONGNO)
    feed(app, temp, -5, -12)
    feed(app, g1, 300)
    feed(app, j1, 300)
    assert sorted((e.datastream_id, e.title.split(" —")[0]) for e in rows(app)) == sorted(
        [(temp, "cold"), (j1, "jongno only")]
    )


def test_the_event_is_never_more_open_than_rule_or_datastream(app: App, engine: Any) -> None:
    public, internal = create_sensor(app, "p"), create_sensor(app, "i", disclosure="internal")
    rule(app, name="public rule", disclosure="public")
    rule(app, name="internal rule", disclosure="internal")
    feed(app, public, 200)
    feed(app, internal, 200)
    levels = {(e.datastream_id, e.title.split(" —")[0]): e.disclosure for e in rows(app)}
    assert levels == {
        (public, "public rule"): "public",
        (public, "internal rule"): "internal",
        (internal, "public rule"): "internal",
        (internal, "internal rule"): "internal",
    }


def test_a_rate_rule_sees_a_sharp_rise_within_its_window(app: App, engine: Any) -> None:
    ds = create_sensor(app, "g1")
    rule(app, name="sharp rise", kind="rate", params={"delta": 100, "window_minutes": 10})
    start = datetime.now(UTC) - timedelta(minutes=40)
    feed(app, ds, 40, 60, 80, 100, 120, 139, start=start)  # +99 over 6 min: slow enough
    assert rows(app) == []
    feed(app, ds, 150, start=start + timedelta(minutes=6))  # 40 fell out of the window? no: +110
    [event] = rows(app)
    assert event.details["change"] == pytest.approx(110)
    feed(app, ds, 150, 150, 150, 150, 150, 150, 150, 150, 150, 150, 150, start=start + timedelta(minutes=7))
    assert rows(app)[0].status == "resolved"  # the rise is over: nobody had touched it


def test_a_falling_rate(app: App, engine: Any) -> None:
    ds = create_sensor(app, "g1")
    rule(app, name="drop", kind="rate", params={"delta": -50, "window_minutes": 5})
    feed(app, ds, 100, 90, 45)
    assert rows(app)[0].details["change"] == pytest.approx(-55)


def test_nodata_is_checked_periodically_on_an_injected_clock(app: App) -> None:
    engine = alerts.AlertEngine(app)
    silent, chatty = create_sensor(app, "silent"), create_sensor(app, "chatty", lon_lat=JONGNO_POINT)
    never = create_sensor(app, "never", lon_lat=(127.03, 37.51))
    rule(app, name="silent", kind="nodata", params={"minutes": 15}, severity="minor", disclosure="internal")
    feed(app, silent, 40, start=T0)
    feed(app, chatty, 40, start=T0)
    clock = {"now": T0 + timedelta(minutes=30)}
    check = NodataCheck(engine, clock=lambda: clock["now"])
    check.step()  # the first check starts watching: a silence counts from now at the earliest
    assert rows(app) == []
    clock["now"] += timedelta(minutes=10)
    check.step()
    assert rows(app) == []
    feed(app, chatty, 41, start=clock["now"] - timedelta(minutes=1))
    clock["now"] += timedelta(minutes=6)  # 16 min since watching, 5 since chatty spoke
    check.step()
    [event] = rows(app)
    assert (event.datastream_id, event.severity, event.disclosure) == (silent, "minor", "internal")
    assert never not in {e.datastream_id for e in rows(app)}  # never reported: nothing to miss
    check.step()
    assert len(rows(app)) == 1
    feed(app, silent, 42, start=clock["now"])
    clock["now"] += timedelta(minutes=1)
    check.step()
    assert rows(app)[0].status == "resolved"
    assert app.ingest.ingest([ObservationIn(silent, 500, phenomenon_time=clock["now"])], channel="t").stored
    assert len(rows(app)) == 1  # nodata is never judged on ingest


def race(app: App, values: dict[str, Any], key: str) -> list[int | None]:
    """Two threads (two workers) raise the same alert at the same instant."""
    barrier = threading.Barrier(2)
    results: list[int | None] = []

    def one() -> None:
        barrier.wait()
        results.append(events.raise_alert(app, values, key, now=app.now()))

    threads = [threading.Thread(target=one) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return results


def test_the_same_alert_is_not_raised_twice_by_two_workers_at_once(app: App) -> None:
    """One event, one "already open" (None), never an error; five rounds, each after a clear."""
    ds = create_sensor(app, "g1")
    rule_id = rule(app)
    key = events.open_key(rule_id, ds)
    values = {
        "kind": "alert",
        "title": "race",
        "severity": "major",
        "disclosure": "public",
        "rule_id": rule_id,
        "datastream_id": ds,
    }
    for _ in range(5):
        results = race(app, values, key)
        assert len(results) == 2 and results.count(None) == 1
        with app.engine.connect() as conn:
            assert conn.execute(select(func.count()).where(events_table.c.open_key == key)).scalar_one() == 1
        new = next(r for r in results if r is not None)
        assert events.clear_alert(app, key, "next round", now=app.now())
        assert len(history(app, new)) == 2
    assert len(rows(app)) == 5


@pytest.mark.parametrize("db_url", [pytest.param("postgres", marks=pytest.mark.postgres)], indirect=True)
def test_a_raise_that_meets_an_uncommitted_one_waits_and_reports_already_open(app: App) -> None:
    """On PostgreSQL, deterministically: another worker's insert of the same key is in flight (not
    committed, so invisible to our first look); ours blocks on the unique index, and once theirs
    commits it is answered "already open" (None), not an error."""
    ds = create_sensor(app, "g1")
    rule_id = rule(app)
    key = events.open_key(rule_id, ds)
    values = {
        "kind": "alert",
        "title": "race",
        "severity": "major",
        "disclosure": "public",
        "rule_id": rule_id,
        "datastream_id": ds,
    }
    now = app.now()
    other = app.engine.connect()
    tx = other.begin()
    other.execute(
        insert(events_table).values(**values, open_key=key, status="reported", opened_at=now, updated_at=now)
    )
    result: list[int | None] = []
    worker = threading.Thread(target=lambda: result.append(events.raise_alert(app, values, key, now=now)))
    worker.start()
    worker.join(timeout=1.0)
    assert worker.is_alive()  # waiting on the index for the other transaction
    tx.commit()
    other.close()
    worker.join(timeout=10)
    assert result == [None]
    assert len(rows(app)) == 1


def test_rule_changes_reach_the_cache_at_once(app: App, engine: alerts.AlertEngine) -> None:
    ds = create_sensor(app, "g1")
    feed(app, ds, 500)  # the cache is loaded now, with no rule
    rule_id = rule(app)
    feed(app, ds, 510, start=datetime.now(UTC) - timedelta(seconds=30))
    assert len(rows(app)) == 1
    service.update_rule(app, rule_id, alerts.RulePatch(enabled=False), now=app.now())
    assert engine.rules.get() == []


def test_the_rule_cache_follows_other_workers_and_expires(app: App) -> None:
    """A rule written by another worker (here: straight into the table, no local publication) is
    seen once that worker's ``alerts.rules`` arrives over the bus, else after ``max_age``."""
    ticks = {"now": 0.0}
    cache = alerts.RuleCache(app, max_age=30, clock=lambda: ticks["now"])
    engine = alerts.AlertEngine(app, cache)
    engine.follow()
    assert cache.get() == []
    now = app.now()
    with app.engine.begin() as conn:
        conn.execute(
            insert(alert_rules).values(
                name="elsewhere",
                kind="nodata",
                observed_property="PM10",
                params={"minutes": 5},
                created_at=now,
                updated_at=now,
            )
        )
    assert cache.get() == []  # cached
    app.bus.deliver(Event(alerts.RULES_TOPIC, {"id": 1}, {"id": 1}, origin="other-worker"))
    assert [r.name for r in cache.get()] == ["elsewhere"]
    with app.engine.begin() as conn:
        conn.execute(alert_rules.update().values(enabled=False))
    ticks["now"] += 31
    assert cache.get() == []  # expired: read again


# -- the API ----------------------------------------------------------------------------------------
def rule_body(**over: Any) -> dict[str, Any]:
    return {
        "name": "r",
        "kind": "threshold",
        "observed_property": "PM10",
        "params": {"op": ">=", "limit": 151},
    } | over


def test_rule_crud_and_its_validation(client: TestClient, app: App, staff: tuple[str, str]) -> None:
    made = client.post(RULES, json=rule_body(), auth=staff)
    assert made.status_code == 201, made.text
    rule_id = made.json()["id"]
    assert made.json()["params"] == {"op": ">=", "limit": 151.0, "consecutive": 1}
    assert made.json()["disclosure"] == "internal" and made.json()["severity"] == "minor"
    assert [r["id"] for r in client.get(RULES, auth=staff).json()["rules"]] == [rule_id]
    patched = client.patch(
        f"{RULES}/{rule_id}", json={"params": {"op": "<", "limit": 0}, "severity": "critical"}, auth=staff
    )
    assert patched.status_code == 200 and patched.json()["severity"] == "critical"
    assert client.get(f"{RULES}/{rule_id}", auth=staff).json()["params"]["op"] == "<"
    bad_patch = client.patch(f"{RULES}/{rule_id}", json={"kind": "rate"}, auth=staff)
    assert bad_patch.status_code == 400  # threshold params do not fit a rate rule
    cases = {
        "params": (rule_body(params={"op": "~", "limit": "lots"}), [["params", "op"], ["params", "limit"]]),
        "missing": (rule_body(params={"op": ">="}), [["params", "limit"]]),
        "extra": (rule_body(params={"op": ">=", "limit": 1, "colour": "red"}), [["params", "colour"]]),
        "zero rate": (
            rule_body(kind="rate", params={"delta": 0, "window_minutes": 5}),
            [["params", "delta"]],
        ),
        "nodata": (rule_body(kind="nodata", params={"minutes": 0}), [["params", "minutes"]]),
    }
    for name, (bad, locs) in cases.items():
        answer = client.post(RULES, json=bad, auth=staff)
        assert answer.status_code == 400, name
        error = answer.json()["error"]
        assert error["code"] == "validation_failed"
        assert [d["loc"] for d in error["details"]] == locs, name
    for bad in (
        rule_body(kind="magic"),
        rule_body(datastream_id=1),  # both targets
        rule_body(observed_property=None),  # neither
        rule_body(datastream_id=None, observed_property=None, district_code=GANGNAM),
        rule_body(district_code="99999"),
        rule_body(observed_property=None, datastream_id=424242),
        rule_body(severity="fatal"),
    ):
        assert client.post(RULES, json=bad, auth=staff).status_code == 400, bad
    assert client.delete(f"{RULES}/{rule_id}", auth=staff).status_code == 204
    assert client.get(f"{RULES}/{rule_id}", auth=staff).status_code == 404
    kinds = client.get("/api/status/alert-kinds", auth=staff).json()["kinds"]
    assert {k["name"] for k in kinds} == {"threshold", "rate", "nodata"}


def test_only_alert_managers_touch_rules(client: TestClient, app: App) -> None:
    now = datetime.now(UTC)
    create_user(app.engine, "park", Role.DEPARTMENT_STAFF, STAFF_PASSWORD, now=now)
    create_user(app.engine, "mayor", Role.MAYOR, STAFF_PASSWORD, now=now)
    assert client.get(RULES).status_code == 401
    assert client.post(RULES, json=rule_body()).status_code == 401
    for name in ("park", "mayor"):
        assert client.get(RULES, auth=(name, STAFF_PASSWORD)).status_code == 403
        assert client.post(RULES, json=rule_body(), auth=(name, STAFF_PASSWORD)).status_code == 403


def test_the_demo_rules_use_the_ministry_bands_and_seed_once(app: App) -> None:
    first = seed_alert_rules(app.engine)
    assert first.startswith("4 alert rule(s) added")
    assert seed_alert_rules(app.engine).startswith("0 alert rule(s) added")
    with app.engine.connect() as conn:
        stored = {r.name: r for r in conn.execute(select(alert_rules))}
    very_bad = {m: next(b.low for b in bands if b.level == "very_bad") for m, bands in BANDS.items()}
    assert very_bad == {"PM10": 151, "PM2.5": 76}
    limits = {r.observed_property: r.params["limit"] for r in stored.values() if r.kind == "threshold"}
    assert limits == {"PM10": 151, "PM2.5": 76}
    assert {r.kind: r.severity for r in stored.values()} == {
        "threshold": "major",
        "rate": "minor",
        "nodata": "minor",
    }
    nodata = next(r for r in stored.values() if r.kind == "nodata")
    assert nodata.params == {"minutes": 15} and nodata.disclosure == "internal"


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_the_simulator_raises_demo_alerts_at_a_sane_rate(app: App, monkeypatch: pytest.MonkeyPatch) -> None:
    """The demo's rules on the demo's 100 simulated sensors, over one simulated hour minute by
    minute: PM spikes raise some events by themselves, well short of hundreds an hour, and every
    one the platform raised is taken back once its spike is over (nobody dispatched them)."""
    import asyncio

    from citydesk.simulator.runner import Simulator

    seed_alert_rules(app.engine)
    start = datetime.now(UTC) - timedelta(hours=1)
    clock = {"now": start}
    monkeypatch.setattr(app, "now", lambda: clock["now"])
    engine = alerts.attach(app)
    check = NodataCheck(engine, clock=lambda: clock["now"])
    sim = Simulator(app, sensors_per_district=4, backfill_hours=0, city_feeds=False)
    asyncio.run(sim.provision())
    for minute in range(61):
        clock["now"] = start + timedelta(minutes=minute)
        asyncio.run(sim.tick(clock["now"]))
        check.step()
    assert sim.stats.failures == 0 and len(sim.sensors) == 100
    raised = rows(app)
    assert 1 <= len(raised) <= 60
    assert {e.kind for e in raised} == {"air"}  # no sensor fell silent
    assert sum(e.status == "resolved" for e in raised) >= len(raised) - 5
