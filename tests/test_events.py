"""Events and their status history: the lifecycle table (every pair), reporting, disclosure of
events and their timelines to anonymous callers, paging and filters, the map layer, the pages and
their JSON twins, and the notice each change sends to open dashboards."""

from __future__ import annotations

import itertools
import re
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient

from citydesk.auth import Principal, Role, create_user
from citydesk.bus import Event
from citydesk.errors import InvalidTransition, ValidationFailed
from citydesk.status import events
from citydesk.status.events.workflow import DISPATCHED, IN_PROGRESS, REPORTED, RESOLVED
from citydesk.web.app import App
from tests.conftest import STAFF_PASSWORD

GANGNAM, JONGNO = "11680", "11110"
GANGNAM_POINT = (127.0473, 37.5172)
API = "/api/status/events"
PATH_TO = {
    REPORTED: [],
    DISPATCHED: [DISPATCHED],
    IN_PROGRESS: [DISPATCHED, IN_PROGRESS],
    RESOLVED: [RESOLVED],
}
"""How an event reaches each status from ``reported``."""


def official(app: App) -> Principal:
    user = create_user(app.engine, "lee.official", Role.OFFICIAL, STAFF_PASSWORD, now=datetime.now(UTC))
    return Principal.for_user(user.id, user.name, Role.OFFICIAL)


def body(**over: Any) -> dict[str, Any]:
    return {
        "kind": "fire",
        "title": "역삼동 상가 화재",
        "description": "3층 상가에서 연기",
        "severity": "major",
        "lon": GANGNAM_POINT[0],
        "lat": GANGNAM_POINT[1],
        "department": "소방재난본부",
        "disclosure": "public",
        "details": {"floors": 3},
    } | over


def report(app: App, who: Principal, **over: Any) -> dict[str, Any]:
    return events.report(app, who, events.EventIn.model_validate(body(**over)), now=app.now())


def move(app: App, who: Principal, event_id: int, status: str, note: str = "") -> dict[str, Any]:
    return events.move(app, who, event_id, events.StatusChange(status=status, note=note), now=app.now())


def test_the_lifecycle_table_is_what_the_issue_describes() -> None:
    lc = events.EVENT_LIFECYCLE
    assert lc.initial == REPORTED
    assert lc.allowed[REPORTED] == {DISPATCHED, RESOLVED}
    assert lc.allowed[DISPATCHED] == {IN_PROGRESS, RESOLVED}
    assert lc.allowed[IN_PROGRESS] == {RESOLVED}
    assert lc.final == {RESOLVED}  # not reopened: a recurrence is a new event
    assert lc.needs_note == {RESOLVED}


def test_every_status_change_pair(app: App) -> None:
    """Every (from, to): allowed pairs succeed and append a history entry, all others are a 409."""
    who = official(app)
    statuses = events.EVENT_LIFECYCLE.statuses
    for current, target in itertools.product(statuses, statuses):
        event = report(app, who, title=f"{current} → {target}")
        for step in PATH_TO[current]:
            move(app, who, event["id"], step, note="on the way")
        if target in events.EVENT_LIFECYCLE.allowed[current]:
            after = move(app, who, event["id"], target, note="done")
            assert after["status"] == target
            assert [s["status"] for s in after["timeline"]] == [REPORTED, *PATH_TO[current], target]
        else:
            with pytest.raises(InvalidTransition):
                move(app, who, event["id"], target, note="done")
            assert events.detail(app, who, event["id"], now=app.now())["status"] == current


def test_resolving_needs_a_note_and_frees_the_event(
    client: TestClient, app: App, staff: tuple[str, str]
) -> None:
    created = client.post(API, json=body(), auth=staff)
    assert created.status_code == 201, created.text
    url = f"{API}/{created.json()['id']}/status"
    refused = client.post(url, json={"status": "resolved", "note": "  "}, auth=staff)
    assert refused.status_code == 400
    assert refused.json()["error"]["code"] == "validation_failed"
    done = client.post(url, json={"status": "resolved", "note": "오보 false alarm"}, auth=staff)
    assert done.status_code == 200, done.text
    event = done.json()
    assert event["status"] == "resolved" and event["resolved_at"] is not None
    assert event["timeline"][-1] | {"at": None} == {
        "status": "resolved",
        "status_label": {"ko": "종료", "en": "Resolved"},
        "at": None,
        "note": "오보 false alarm",
        "actor": "kim.official",
    }
    again = client.post(url, json={"status": "dispatched"}, auth=staff)
    assert again.status_code == 409
    assert again.json()["error"]["code"] == "invalid_transition"
    unknown = client.post(url, json={"status": "burning"}, auth=staff)
    assert unknown.status_code == 400


def test_reporting_places_the_event_and_checks_its_input(client: TestClient, staff: tuple[str, str]) -> None:
    made = client.post(API, json=body(), auth=staff).json()
    assert made["district"] == {"code": GANGNAM, "name": {"ko": "강남구", "en": "Gangnam-gu"}}
    assert made["status"] == "reported" and made["department"] == "소방재난본부"
    by_code = client.post(API, json=body(lon=None, lat=None, district=JONGNO), auth=staff).json()
    assert by_code["district"]["code"] == JONGNO and by_code["lon"] is None
    for bad in (
        body(lat=None),  # a point needs both
        body(lon=129.0, lat=35.1),  # Busan: outside the city
        body(lon=None, lat=None, district="99999"),
        body(severity="apocalyptic"),
        body(kind="party"),
        body(title=""),
        body(extra_field=1),
    ):
        answer = client.post(API, json=bad, auth=staff)
        assert answer.status_code == 400, bad
        assert answer.json()["error"]["code"] == "validation_failed"


def test_who_may_report_and_move(client: TestClient, app: App) -> None:
    now = datetime.now(UTC)
    create_user(app.engine, "park.fire", Role.DEPARTMENT_STAFF, STAFF_PASSWORD, now=now, department="fire")
    dept = ("park.fire", STAFF_PASSWORD)
    assert client.post(API, json=body()).status_code == 401
    made = client.post(API, json=body(disclosure="internal"), auth=dept)
    assert made.status_code == 201  # department staff report events (events.manage)
    restricted = client.post(API, json=body(disclosure="restricted"), auth=dept)
    assert restricted.status_code == 400  # not at a level they could not see themselves
    moved = client.post(f"{API}/{made.json()['id']}/status", json={"status": "dispatched"})
    assert moved.status_code == 401


def test_anonymous_sees_public_events_without_internal_fields_or_staff_names(
    client: TestClient, app: App, staff: tuple[str, str]
) -> None:
    who = official(app)
    public = report(app, who, title="public fire")
    internal = report(app, who, title="internal leak", disclosure="internal")
    restricted = report(app, who, title="restricted case", disclosure="restricted")
    move(app, who, public["id"], DISPATCHED, note="소방차 3대 출동 (김 반장)")
    anon_list = client.get(API).json()["events"]
    assert [e["id"] for e in anon_list] == [public["id"]]
    staff_ids = {e["id"] for e in client.get(API, auth=staff).json()["events"]}
    assert staff_ids == {public["id"], internal["id"], restricted["id"]}
    for hidden in (internal, restricted):
        assert client.get(f"{API}/{hidden['id']}").status_code == 404
    seen = client.get(f"{API}/{public['id']}").json()
    for field in ("department", "details", "rule_id", "datastream_id", "next_statuses"):
        assert field not in seen and field not in anon_list[0]
    assert [set(step) for step in seen["timeline"]] == [{"status", "status_label", "at"}] * 2
    text = client.get(f"{API}/{public['id']}").text + client.get(f"/status/events/{public['id']}").text
    for secret in ("lee.official", "김 반장", "소방재난본부", "internal leak", "restricted case"):
        assert secret not in text
    full = client.get(f"{API}/{public['id']}", auth=staff).json()
    assert full["timeline"][1]["actor"] == "lee.official" and "김 반장" in full["timeline"][1]["note"]
    assert full["department"] == "소방재난본부" and full["details"] == {"floors": 3}


def test_paging_is_newest_first_with_an_opaque_token(client: TestClient, app: App) -> None:
    who = official(app)
    made = [report(app, who, title=f"event {i}")["id"] for i in range(5)]
    seen: list[int] = []
    url: str | None = f"{API}?limit=2"
    pages = 0
    while url:
        page = client.get(url).json()
        seen += [e["id"] for e in page["events"]]
        assert (page["next"] is None) == (page["next_url"] is None)
        url = page["next_url"]
        pages += 1
    assert seen == made[::-1] and pages == 3
    assert client.get(f"{API}?next=not-a-token").status_code == 400


def test_filters(client: TestClient, app: App) -> None:
    who = official(app)
    fire = report(app, who)
    flood = report(app, who, kind="flood", severity="critical", lon=None, lat=None, district=JONGNO)
    move(app, who, fire["id"], RESOLVED, note="꺼짐 put out")

    def ids(query: str) -> set[int]:
        answer = client.get(f"{API}?{query}")
        assert answer.status_code == 200, answer.text
        return {e["id"] for e in answer.json()["events"]}

    assert ids("status=open") == {flood["id"]}
    assert ids("status=resolved") == {fire["id"]}
    assert ids("status=all") == ids("") == {fire["id"], flood["id"]}
    assert ids("kind=flood") == ids("severity=critical") == ids(f"district={JONGNO}") == {flood["id"]}
    later = (datetime.now(UTC) + timedelta(minutes=5)).isoformat()
    assert ids(f"since={later.replace('+', '%2B')}") == set()
    assert client.get(f"{API}?status=maybe").status_code == 400


def test_the_map_layer_has_open_events_with_a_point(
    client: TestClient, app: App, staff: tuple[str, str]
) -> None:
    who = official(app)
    placed = report(app, who)
    report(app, who, lon=None, lat=None, district=JONGNO)  # no point: not on the map
    internal = report(app, who, disclosure="internal")
    closed = report(app, who)
    move(app, who, closed["id"], RESOLVED, note="done")
    for url in (f"{API}.geojson", f"{API}?f=geojson"):
        answer = client.get(url)
        assert answer.headers["content-type"].startswith("application/geo+json")
        layer = answer.json()
        assert [f["id"] for f in layer["features"]] == [placed["id"]]
        assert layer["features"][0]["geometry"] == {"type": "Point", "coordinates": list(GANGNAM_POINT)}
        assert layer["features"][0]["properties"]["severity"] == "major"
        assert "department" not in layer["features"][0]["properties"]
    staff_layer = client.get(f"{API}.geojson", auth=staff).json()
    assert [f["id"] for f in staff_layer["features"]] == [internal["id"], placed["id"]]


def test_the_pages_show_what_their_json_twins_return(
    client: TestClient, app: App, staff: tuple[str, str]
) -> None:
    who = official(app)
    for i in range(3):
        report(app, who, title=f"화재 {i}")
    report(app, who, title="내부 internal", disclosure="internal")
    for auth in (None, staff):
        for query in ("", "?status=open&kind=fire", "?limit=2"):
            data = client.get(f"{API}{query}", auth=auth).json()
            page = client.get(f"/status/events{query}", auth=auth)
            assert page.status_code == 200
            assert [int(x) for x in re.findall(r'<tr data-id="(\d+)"', page.text)] == [
                e["id"] for e in data["events"]
            ]
            for e in data["events"]:
                assert e["title"] in page.text
            assert ('rel="next"' in page.text) == (data["next"] is not None)
    first = client.get(API).json()["events"][0]
    detail = client.get(f"{API}/{first['id']}", auth=staff).json()
    html = client.get(f"/status/events/{first['id']}", auth=staff).text
    assert html.count('class="step status-') == len(detail["timeline"])
    assert 'action="/status/events/' in html  # the form, for staff who may manage events
    assert 'action="/status/events/' not in client.get(f"/status/events/{first['id']}").text
    # An official may also send a command about it; a citizen sees no such link.
    assert f'href="/commands/new?event={first["id"]}"' in html
    assert "/commands/new" not in client.get(f"/status/events/{first['id']}").text
    assert client.get("/status/events/999999").status_code == 404


def test_the_form_moves_the_event_and_shows_refusals(
    client: TestClient, app: App, staff: tuple[str, str]
) -> None:
    event = report(app, official(app))
    url = f"/status/events/{event['id']}/status"
    anonymous = client.post(url, data={"status": "dispatched"}, follow_redirects=False)
    assert anonymous.status_code == 303 and anonymous.headers["location"].startswith("/login")
    moved = client.post(url, data={"status": "dispatched", "note": ""}, auth=staff, follow_redirects=False)
    assert moved.status_code == 303
    assert client.get(f"{API}/{event['id']}").json()["status"] == "dispatched"
    refused = client.post(url, data={"status": "resolved", "note": ""}, auth=staff)
    assert refused.status_code == 400 and "needs a note" in refused.text


def test_every_change_tells_open_dashboards(app: App) -> None:
    seen: list[dict[str, Any]] = []
    app.bus.on("status.notice", lambda e: seen.append(e.data) if isinstance(e, Event) else None)
    who = official(app)
    event = report(app, who, disclosure="internal")
    move(app, who, event["id"], DISPATCHED)
    assert seen == [
        {
            "kind": "event",
            "disclosure": "internal",
            "data": {"id": event["id"], "status": s, "severity": "major", "kind": "fire"},
        }
        for s in (REPORTED, DISPATCHED)
    ]


def test_a_failed_change_leaves_no_history(app: App) -> None:
    who = official(app)
    event = report(app, who)
    with pytest.raises(ValidationFailed):
        move(app, who, event["id"], RESOLVED, note="")
    assert len(events.detail(app, who, event["id"], now=app.now())["timeline"]) == 1


def test_reports_changes_and_restricted_reads_are_audited(
    client: TestClient, app: App, staff: tuple[str, str]
) -> None:
    from sqlalchemy import select

    from citydesk.auth.models import audit_log

    who = official(app)
    public = report(app, who)
    casualty = report(app, who, title="부상자 김OO", disclosure="restricted")
    move(app, who, public["id"], DISPATCHED, note="출동")
    with app.engine.connect() as conn:
        before = [(r.action, r.target) for r in conn.execute(select(audit_log).order_by(audit_log.c.id))]
    assert before == [
        ("event.report", f"event:{public['id']}"),
        ("event.report", f"event:{casualty['id']}"),
        ("event.dispatched", f"event:{public['id']}"),
    ]
    client.get(f"{API}/{public['id']}", auth=staff)  # not restricted: no audit
    client.get(f"{API}/{casualty['id']}", auth=staff)
    client.get(API, auth=staff)
    with app.engine.connect() as conn:
        reads = [(r.action, r.target) for r in conn.execute(select(audit_log).order_by(audit_log.c.id))][3:]
    assert reads == [("event.read", f"event:{casualty['id']}")] * 2
