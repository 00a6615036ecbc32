"""Commands to departments on SQLite and PostgreSQL: every (from, to) pair of the lifecycle through
the API, who may do what, overdue with an injected clock, the audit log, paging, the pages against
their JSON twins, demo accounts, and that nobody signed out ever sees a command."""

from __future__ import annotations

import re
import threading
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import insert, select

from citydesk.auth import Principal, Role, authenticate_password, create_user, list_users
from citydesk.auth.models import audit_log
from citydesk.config import Settings
from citydesk.errors import InvalidTransition
from citydesk.status.commands import COMMAND_LIFECYCLE, demo_accounts
from citydesk.status.commands import act as act_on
from citydesk.status.commands.departments import packaged
from citydesk.status.commands.workflow import (
    ACTION_LABELS,
    HANDLER_STATUSES,
    PROGRESS,
    SENDER_STATUSES,
    STATUS_LABELS,
)
from citydesk.status.models import events
from citydesk.web.app import App, build_app, create_asgi
from tests.conftest import STAFF_PASSWORD

API = "/api/status/commands"
TRANSPORT, PARKS = "교통정책과", "푸른도시여가국"
T0 = datetime(2026, 11, 22, 9, 0, tzinfo=UTC)
Auth = tuple[str, str]


@pytest.fixture
def clock(app: App, monkeypatch: pytest.MonkeyPatch) -> dict[str, datetime]:
    """The app's "now", set by the test: ``clock["now"] = ...``."""
    now = {"now": T0}
    monkeypatch.setattr(app, "now", lambda: now["now"])
    return now


ACCOUNTS: dict[str, tuple[Role, str | None]] = {
    "mayor": (Role.MAYOR, None),
    "official": (Role.OFFICIAL, None),
    "official2": (Role.OFFICIAL, None),
    "admin": (Role.ADMIN, None),
    "transport": (Role.DEPARTMENT_STAFF, TRANSPORT),
    "parks": (Role.DEPARTMENT_STAFF, PARKS),
    "nodept": (Role.DEPARTMENT_STAFF, None),
}
"""The mayor, two officials, an admin, a clerk of two departments each, and department staff
with no department."""


class People(dict[str, Auth]):
    """HTTP Basic credentials by account name; each account is created when first asked for
    (argon2 makes an account cost a tenth of a second)."""

    def __init__(self, app: App) -> None:
        super().__init__()
        self.app = app

    def __missing__(self, name: str) -> Auth:
        role, department = ACCOUNTS[name]
        create_user(self.app.engine, name, role, STAFF_PASSWORD, now=T0, department=department)
        self[name] = (name, STAFF_PASSWORD)
        return self[name]


@pytest.fixture
def people(app: App) -> People:
    return People(app)


def send(client: TestClient, auth: Auth, status: int = 201, **fields: Any) -> dict[str, Any]:
    """Send a command (due in 2 h unless ``due_at`` is given; a field given as None is left out)."""
    body = {"title": "도로 결빙 점검", "department": TRANSPORT} | (
        {} if "due_at" in fields else {"due_in": "PT2H"}
    )
    body = {k: v for k, v in (body | fields).items() if v is not None}
    r = client.post(API, json=body, auth=auth)
    assert r.status_code == status, r.text
    return dict(r.json())


def act(
    client: TestClient, auth: Auth, cid: int, status: str, note: str = "", expect: int = 200
) -> dict[str, Any]:
    r = client.post(f"{API}/{cid}/status", json={"status": status, "note": note}, auth=auth)
    assert r.status_code == expect, r.text
    return dict(r.json())


PATHS: dict[str, list[str]] = {
    "sent": [],
    "acknowledged": ["acknowledged"],
    "in_progress": ["acknowledged", "in_progress"],
    "done": ["acknowledged", "done"],
    "returned": ["returned"],
    "cancelled": ["cancelled"],
}
"""How to bring a new command to each status (an official both sends and handles)."""


def test_every_status_and_action_has_a_path_and_bilingual_labels() -> None:
    assert set(PATHS) == set(COMMAND_LIFECYCLE.statuses) == set(STATUS_LABELS)
    assert set(ACTION_LABELS) == HANDLER_STATUSES | SENDER_STATUSES | {PROGRESS}
    assert set(COMMAND_LIFECYCLE.statuses) - {COMMAND_LIFECYCLE.initial} == HANDLER_STATUSES | SENDER_STATUSES
    for label in [*STATUS_LABELS.values(), *ACTION_LABELS.values()]:
        assert set(label) == {"ko", "en"} and all(label.values())


def test_every_pair_of_the_lifecycle(client: TestClient, people: dict[str, Auth], clock: Any) -> None:
    official = people["official"]
    for start, path in PATHS.items():
        for target in COMMAND_LIFECYCLE.statuses:
            cid = send(client, official, title=f"{start} -> {target}")["id"]
            for step in path:
                act(client, official, cid, step, note="경과")
            allowed = target in COMMAND_LIFECYCLE.allowed[start]
            r = client.post(f"{API}/{cid}/status", json={"status": target, "note": "메모"}, auth=official)
            assert r.status_code == (200 if allowed else 409), (start, target, r.text)
            if allowed:
                assert r.json()["status"] == target
                assert [t["status"] for t in r.json()["timeline"]] == ["sent", *path, target]
            else:
                assert r.json()["error"]["code"] == "invalid_transition"
                assert client.get(f"{API}/{cid}", auth=official).json()["status"] == start


@pytest.mark.parametrize("status", ["done", "returned", "cancelled"])
def test_closing_returning_and_cancelling_need_a_note(
    client: TestClient, people: dict[str, Auth], clock: Any, status: str
) -> None:
    cid = send(client, people["official"])["id"]
    act(client, people["official"], cid, "ack")  # the short verbs work too
    r = client.post(f"{API}/{cid}/status", json={"status": status, "note": "   "}, auth=people["official"])
    assert r.status_code == 400 and r.json()["error"]["code"] == "validation_failed"
    done = act(client, people["official"], cid, status, note="처리했습니다")
    assert done["closed_at"] == T0.isoformat() and not done["open"] and not done["actions"]


def test_an_unknown_status_is_a_400_listing_the_statuses(
    client: TestClient, people: dict[str, Auth], clock: Any
) -> None:
    cid = send(client, people["official"])["id"]
    r = client.post(f"{API}/{cid}/status", json={"status": "finished"}, auth=people["official"])
    assert r.status_code == 400
    assert r.json()["error"]["details"]["statuses"] == list(COMMAND_LIFECYCLE.statuses)


def test_progress_reports_while_in_progress_only(
    client: TestClient, people: dict[str, Auth], clock: dict[str, datetime]
) -> None:
    clerk = people["transport"]
    cid = send(client, people["mayor"])["id"]
    r = client.post(f"{API}/{cid}/progress", json={"note": "출동"}, auth=clerk)
    assert r.status_code == 409  # still "sent"
    act(client, clerk, cid, "acknowledged")
    act(client, clerk, cid, "in_progress")
    assert client.post(f"{API}/{cid}/progress", json={"note": ""}, auth=clerk).status_code == 400
    for minutes, note in ((10, "제설차 2대 출동"), (25, "강남대로 결빙 구간 50% 처리")):
        clock["now"] = T0 + timedelta(minutes=minutes)
        r = client.post(f"{API}/{cid}/progress", json={"note": note}, auth=clerk)
        assert r.status_code == 200 and r.json()["status"] == "in_progress"
    clock["now"] = T0 + timedelta(minutes=40)
    final = act(client, clerk, cid, "done", note="결빙 구간 처리 완료")
    assert [(t["kind"], t["status"], t["note"], t["actor"]) for t in final["timeline"]] == [
        ("sent", "sent", "", "mayor"),
        ("status", "acknowledged", "", "transport"),
        ("status", "in_progress", "", "transport"),
        ("progress", "in_progress", "제설차 2대 출동", "transport"),
        ("progress", "in_progress", "강남대로 결빙 구간 50% 처리", "transport"),
        ("status", "done", "결빙 구간 처리 완료", "transport"),
    ]
    assert [t["at"] for t in final["timeline"]][-3:] == [
        (T0 + timedelta(minutes=m)).isoformat() for m in (10, 25, 40)
    ]
    assert client.post(f"{API}/{cid}/progress", json={"note": "late"}, auth=clerk).status_code == 409


def test_who_may_do_what(client: TestClient, people: dict[str, Auth], clock: Any) -> None:
    cid = send(client, people["mayor"])["id"]  # to Transport
    # Department staff of another department: 403 on reading and on every action.
    assert client.get(f"{API}/{cid}", auth=people["parks"]).status_code == 403
    for status in ("acknowledged", "returned", "cancelled"):
        r = client.post(f"{API}/{cid}/status", json={"status": status, "note": "x"}, auth=people["parks"])
        assert r.status_code == 403 and r.json()["error"]["code"] == "forbidden", status
    assert client.post(f"{API}/{cid}/progress", json={"note": "x"}, auth=people["parks"]).status_code == 403
    assert client.get(f"{API}/{cid}", auth=people["nodept"]).status_code == 403
    # The mayor sends and cancels but does not handle; department staff handle but do not send.
    act(client, people["mayor"], cid, "acknowledged", expect=403)
    send(client, people["transport"], status=403)
    # Only the sender (or an admin) cancels; another official may handle but not cancel.
    act(client, people["official2"], cid, "cancelled", note="x", expect=403)
    act(client, people["transport"], cid, "cancelled", note="x", expect=403)
    seen = client.get(f"{API}/{cid}", auth=people["transport"]).json()
    assert [a["action"] for a in seen["actions"]] == ["acknowledged", "returned"]
    assert [a["action"] for a in client.get(f"{API}/{cid}", auth=people["mayor"]).json()["actions"]] == [
        "cancelled"
    ]
    act(client, people["official2"], cid, "acknowledged")  # officials handle any department's
    act(client, people["transport"], cid, "in_progress")
    act(client, people["admin"], cid, "cancelled", note="상황 종료")
    second = send(client, people["mayor"])["id"]
    act(client, people["mayor"], second, "cancel", note="중복 지시")


def test_department_staff_list_only_their_department(
    client: TestClient, people: dict[str, Auth], clock: Any
) -> None:
    mine = send(client, people["mayor"], department=TRANSPORT)["id"]
    send(client, people["mayor"], department=PARKS)
    listed = client.get(API, auth=people["transport"]).json()
    assert [i["id"] for i in listed["items"]] == [mine] and listed["scope"] == TRANSPORT
    assert client.get(API, params={"department": PARKS}, auth=people["transport"]).status_code == 403
    assert client.get(API, auth=people["nodept"]).json()["items"] == []
    assert len(client.get(API, auth=people["mayor"]).json()["items"]) == 2
    assert client.get(f"{API}/summary", auth=people["transport"]).json()["totals"]["open"] == 1


def test_overdue_is_computed_with_the_time_given(
    client: TestClient, people: dict[str, Auth], clock: dict[str, datetime]
) -> None:
    late = send(client, people["mayor"], title="교통 통제", due_in="PT1H")["id"]
    send(
        client,
        people["mayor"],
        title="공원 점검",
        department=PARKS,
        due_at=(T0 + timedelta(hours=3)).isoformat(),
    )
    closed = send(client, people["mayor"], title="이미 끝남", due_in="PT30M")["id"]
    act(client, people["official"], closed, "acknowledged")
    act(client, people["official"], closed, "done", note="완료")
    clock["now"] = T0 + timedelta(minutes=59)
    assert not client.get(f"{API}/{late}", auth=people["mayor"]).json()["overdue"]
    assert client.get(f"{API}/summary", auth=people["mayor"]).json()["totals"] == {"open": 2, "overdue": 0}
    clock["now"] = T0 + timedelta(hours=2)
    assert client.get(f"{API}/{late}", auth=people["mayor"]).json()["overdue"]
    assert not client.get(f"{API}/{closed}", auth=people["mayor"]).json()["overdue"]  # done: never overdue
    overdue = client.get(API, params={"overdue": "true"}, auth=people["mayor"]).json()
    assert [i["id"] for i in overdue["items"]] == [late]
    summary = client.get(f"{API}/summary", auth=people["mayor"]).json()
    assert summary["totals"] == {"open": 2, "overdue": 1}
    assert summary["departments"][0] == {
        "name": TRANSPORT,
        "label": {"ko": TRANSPORT, "en": "Transport Policy"},
        "open": 1,
        "overdue": 1,
    }
    assert [i["id"] for i in summary["overdue"]] == [late]
    # A command handed back shows on the summary for a day, for the sender to decide anew.
    back = send(client, people["mayor"], title="관할 아님")["id"]
    act(client, people["transport"], back, "returned", note="도로관리과 소관입니다")
    assert [i["id"] for i in client.get(f"{API}/summary", auth=people["mayor"]).json()["returned"]] == [back]
    clock["now"] = T0 + timedelta(hours=27)
    assert client.get(f"{API}/summary", auth=people["mayor"]).json()["returned"] == []
    # The open list leads with the overdue one (most urgent first).
    assert [i["title"] for i in client.get(API, auth=people["mayor"]).json()["items"]] == [
        "교통 통제",
        "공원 점검",
    ]


def test_due_time_and_department_are_checked(
    app: App, client: TestClient, people: dict[str, Auth], clock: Any
) -> None:
    mayor = people["mayor"]
    r = client.post(API, json={"title": "x", "department": "없는 부서", "due_in": "PT1H"}, auth=mayor)
    assert r.status_code == 400 and TRANSPORT in r.json()["error"]["details"]["known"]
    assert send(client, mayor, 400, due_in=None, due_at=(T0 - timedelta(minutes=1)).isoformat())
    assert send(client, mayor, 400, due_in=None, due_at="2026-11-22T20:00:00")  # no zone
    assert send(client, mayor, 400, due_in=None)  # neither
    assert send(client, mayor, 400, due_in="PT1H", due_at=(T0 + timedelta(hours=1)).isoformat())  # both
    assert send(client, mayor, 400, due_in="P400D")
    assert send(client, mayor, 400, event_id=999)
    assert send(client, mayor, 400, subject_kind="district", subject_ref="99999")
    # A department only a staff account names is a department too.
    create_user(app.engine, "hana", Role.DEPARTMENT_STAFF, STAFF_PASSWORD, now=T0, department="청년청")
    assert send(client, mayor, department="청년청")["department_label"] == {"ko": "청년청", "en": "청년청"}
    names = [d["name"] for d in client.get(f"{API}/departments", auth=mayor).json()["departments"]]
    assert names[: len(packaged())] == [d.name for d in packaged()] and names[-1] == "청년청"


def test_subjects_event_district_figure(
    app: App, client: TestClient, people: dict[str, Auth], clock: Any
) -> None:
    with app.engine.begin() as conn:
        event_id = conn.execute(
            insert(events)
            .values(
                kind="flood",
                title="도림천 범람 우려",
                severity="major",
                status="reported",
                department="물순환안전국",
                opened_at=T0,
                updated_at=T0,
            )
            .returning(events.c.id)
        ).scalar_one()
    by_event = send(client, people["mayor"], event_id=event_id)
    assert by_event["subject"] == {
        "kind": "event",
        "ref": str(event_id),
        "event_id": event_id,
        "label": "도림천 범람 우려",
        "url": f"/status/events/{event_id}",
    }
    form = client.get(f"/commands/new?event={event_id}", auth=people["mayor"]).text
    assert "도림천 범람 우려" in form  # the form names the event and suggests its department
    assert re.search(r'<option value="물순환안전국" selected>', form)
    district = send(client, people["mayor"], subject_kind="district", subject_ref="11680")
    assert district["subject"]["label"] == {"ko": "강남구", "en": "Gangnam-gu"}
    figure = send(client, people["mayor"], subject_kind="figure", subject_ref="PM10")
    assert figure["subject"]["label"] == "PM10"
    assert send(client, people["mayor"], 400, event_id=event_id, subject_kind="figure", subject_ref="PM10")


def test_every_step_is_audited(app: App, client: TestClient, people: dict[str, Auth], clock: Any) -> None:
    cid = send(client, people["mayor"])["id"]
    act(client, people["transport"], cid, "acknowledged")
    act(client, people["transport"], cid, "in_progress")
    client.post(f"{API}/{cid}/progress", json={"note": "진행 중"}, auth=people["transport"])
    act(client, people["transport"], cid, "done", note="완료 보고")
    act(client, people["parks"], cid, "returned", note="x", expect=403)  # refused: not audited
    with app.engine.connect() as conn:
        rows = conn.execute(
            select(audit_log.c.action, audit_log.c.detail, audit_log.c.at)
            .where(audit_log.c.target == f"command:{cid}")
            .order_by(audit_log.c.id)
        ).all()
    assert [r.action for r in rows] == [
        "command.sent",
        "command.acknowledged",
        "command.in_progress",
        "command.progress",
        "command.done",
    ]
    assert rows[-1].detail == "완료 보고" and all(r.at == T0 for r in rows)


def test_each_change_is_announced_to_open_pages_after_commit(
    app: App, client: TestClient, people: dict[str, Auth], clock: Any
) -> None:
    heard: list[dict[str, Any]] = []
    app.bus.on("status.notice", lambda event: heard.append(event.data))
    cid = send(client, people["mayor"])["id"]
    act(client, people["transport"], cid, "acknowledged")
    act(client, people["parks"], cid, "in_progress", expect=403)
    assert heard == [
        {
            "kind": "command",
            "disclosure": "internal",
            "data": {"id": cid, "status": s, "department": TRANSPORT, "action": s},
        }
        for s in ("sent", "acknowledged")
    ]


def test_paging_with_an_opaque_token(client: TestClient, people: dict[str, Auth], clock: Any) -> None:
    made = [send(client, people["mayor"], title=f"#{i}", due_in=f"PT{5 - i}H")["id"] for i in range(5)]
    # Due at the same time as #4: the id breaks the tie.
    made.append(send(client, people["mayor"], title="#5", due_in="PT1H")["id"])
    seen, url = [], f"{API}?limit=2"
    while url:
        page = client.get(url, auth=people["mayor"]).json()
        assert len(page["items"]) <= 2
        seen += [i["id"] for i in page["items"]]
        url = page["next_url"]
        assert (url is None) == (page["next"] is None)
        if url:
            assert "limit=2" in url
    assert seen == [made[4], made[5], made[3], made[2], made[1], made[0]]
    for cid in made[:3]:
        act(client, people["mayor"], cid, "cancelled", note="정리")
    closed = client.get(f"{API}?status=cancelled&limit=2", auth=people["mayor"]).json()
    rest = client.get(closed["next_url"], auth=people["mayor"]).json()
    assert len(closed["items"]) == 2 and len(rest["items"]) == 1 and rest["next"] is None
    bad = client.get(API, params={"next": "not-a-token"}, auth=people["mayor"])
    assert bad.status_code == 400 and bad.json()["error"]["code"] == "invalid_query"
    other = client.get(API, params={"next": closed["next"]}, auth=people["mayor"])  # a closed-list token
    assert other.status_code == 400


ROUTES = [
    ("GET", API, None),
    ("GET", f"{API}/summary", None),
    ("GET", f"{API}/departments", None),
    ("GET", f"{API}/1", None),
    ("POST", API, {"title": "x", "department": TRANSPORT, "due_in": "PT1H"}),
    ("POST", f"{API}/1/status", {"status": "acknowledged"}),
    ("POST", f"{API}/1/progress", {"note": "x"}),
]


def test_signed_out_callers_see_nothing(client: TestClient, people: dict[str, Auth], clock: Any) -> None:
    cid = send(client, people["mayor"], title="비공개 지시")["id"]
    assert cid == 1
    for method, url, body in ROUTES:
        r = client.request(method, url, json=body)
        assert r.status_code == 401, (method, url)
        assert r.json()["error"]["code"] == "unauthorized"
        assert "비공개" not in r.text
    for url in ("/inbox", f"/commands/{cid}", "/commands/new?event=1"):
        r = client.get(url, follow_redirects=False)
        assert r.status_code == 303 and r.headers["location"].startswith("/login?next="), url
    r = client.post(f"/commands/{cid}/act", data={"action": "acknowledged"}, follow_redirects=False)
    assert r.status_code == 401 and r.json()["error"]["code"] == "unauthorized"
    r = client.post("/commands/new", data={"title": "x", "department": TRANSPORT}, follow_redirects=False)
    assert r.status_code == 401
    assert client.get(f"{API}/{cid}", auth=people["mayor"]).json()["status"] == "sent"


def test_every_commands_route_is_in_the_openapi_document(client: TestClient) -> None:
    paths = client.get("/openapi.json").json()["paths"]
    for method, url, _ in ROUTES:
        assert method.lower() in paths[url.replace("/1", "/{command_id}")], url
    assert not any(p in paths for p in ("/inbox", "/commands/new"))  # pages are not API


def test_a_public_instance_refuses_every_commands_route(db_url: str, app: App) -> None:
    public = build_app(Settings(database_url=db_url, public_mode=True), engine=app.engine)
    with TestClient(create_asgi(public)) as c:
        for method, url, body in ROUTES:
            r = c.request(method, url, json=body, auth=("mayor", STAFF_PASSWORD))
            assert r.status_code == 403 and r.json()["error"]["code"] == "forbidden", url


def _ids(html: str) -> list[int]:
    return [int(x) for x in re.findall(r'<article class="cmd-card" data-id="(\d+)"', html)]


def test_pages_show_what_their_json_twins_say(
    client: TestClient, people: dict[str, Auth], clock: dict[str, datetime]
) -> None:
    clerk = people["transport"]
    first = send(client, people["mayor"], title="신호등 고장 <확인>", body="종로3가 교차로", due_in="PT3H")[
        "id"
    ]
    second = send(client, people["mayor"], title="버스 우회", due_in="PT1H")["id"]
    send(client, people["mayor"], title="공원 점검", department=PARKS)
    act(client, clerk, second, "acknowledged")
    act(client, clerk, second, "in_progress")
    client.post(f"{API}/{second}/progress", json={"note": "우회 노선 공지"}, auth=clerk)
    clock["now"] = T0 + timedelta(hours=2)  # "버스 우회" is overdue now
    data = client.get(API, auth=clerk).json()
    page = client.get("/inbox", auth=clerk)
    assert page.status_code == 200
    assert _ids(page.text) == [i["id"] for i in data["items"]] == [second, first]
    assert "신호등 고장 &lt;확인&gt;" in page.text and "공원 점검" not in page.text
    assert page.text.count("data-overdue") == sum(i["overdue"] for i in data["items"]) == 1
    for item in data["items"]:
        buttons = re.findall(rf'action="/commands/{item["id"]}/act".*?</form>', page.text, re.S)[0]
        assert re.findall(r'name="action" value="(\w+)"', buttons) == [a["action"] for a in item["actions"]]
    detail = client.get(f"{API}/{second}", auth=people["mayor"]).json()
    html = client.get(f"/commands/{second}", auth=people["mayor"]).text
    steps = re.findall(r'<li data-kind="(\w+)" data-status="(\w+)">', html)
    assert steps == [(t["kind"], t["status"]) for t in detail["timeline"]]
    for t in detail["timeline"]:
        assert t["actor"] in html and t["note"] in html
    assert "2026-11-22 19:00" in html  # due 11:00 UTC on the city's clock (Asia/Seoul)


def test_forms_send_and_answer_commands(client: TestClient, people: dict[str, Auth], clock: Any) -> None:
    form = client.get("/commands/new?subject_kind=district&subject_ref=11440", auth=people["mayor"])
    assert form.status_code == 200 and "마포구" in form.text and "Transport Policy" in form.text
    refused = client.post(
        "/commands/new", data={"title": "", "department": TRANSPORT, "due_in": "PT1H"}, auth=people["mayor"]
    )
    assert refused.status_code == 400 and 'role="alert"' in refused.text
    r = client.post(
        "/commands/new",
        data={
            "title": "미세먼지 저감 조치",
            "department": "기후환경본부",
            "due_in": "",
            "due_at": "2026-11-22T20:30",
            "subject_kind": "district",
            "subject_ref": "11440",
        },
        auth=people["mayor"],
        follow_redirects=False,
    )
    assert r.status_code == 303
    cid = int(r.headers["location"].rsplit("/", 1)[1])
    made = client.get(f"{API}/{cid}", auth=people["mayor"]).json()
    assert made["due_at"] == "2026-11-22T11:30:00+00:00" and made["subject"]["ref"] == "11440"
    r = client.post(
        f"/commands/{cid}/act",
        data={"action": "cancelled", "note": "", "next": "/inbox"},
        auth=people["mayor"],
    )
    assert r.status_code == 400 and "note" in r.text  # shown on the command's page
    r = client.post(
        f"/commands/{cid}/act",
        data={"action": "cancelled", "note": "중복", "next": "https://evil.example/"},
        auth=people["mayor"],
        follow_redirects=False,
    )
    assert r.status_code == 303 and r.headers["location"] == f"/commands/{cid}"


def test_demo_accounts_get_fresh_random_passwords(app: App) -> None:
    create_user(app.engine, "demo.parks", Role.OFFICIAL, STAFF_PASSWORD, now=T0)  # not ours: left alone
    first = {a.name: a for a in demo_accounts(app.engine, now=T0)}
    assert first["demo.mayor"].role is Role.MAYOR
    assert first["demo.transport"].department == TRANSPORT
    assert first["demo.parks"].password is None
    again = {a.name: a for a in demo_accounts(app.engine, now=T0)}
    assert all(
        again[n].password != first[n].password and len(again[n].password or "") >= 16
        for n in first
        if n != "demo.parks"
    )
    clerk = authenticate_password(
        app.engine, "demo.transport", again["demo.transport"].password or "", now=T0
    )
    assert clerk.department == TRANSPORT


def test_simultaneous_answers_are_serialised_by_the_row_lock(
    app: App, client: TestClient, people: dict[str, Auth], clock: Any
) -> None:
    """Eight clerks press "acknowledge" at once: one wins, the others are told it moved on (409)."""
    cid = send(client, people["mayor"])["id"]
    people["transport"]  # the account exists
    uid = next(u.id for u in list_users(app.engine) if u.name == "transport")
    clerk = Principal.for_user(uid, "transport", Role.DEPARTMENT_STAFF, TRANSPORT)
    outcomes: list[str] = []
    start = threading.Barrier(8)

    def press() -> None:
        start.wait()
        try:
            act_on(app, clerk, cid, "acknowledged", "", now=T0)
            outcomes.append("ok")
        except InvalidTransition:
            outcomes.append("409")

    threads = [threading.Thread(target=press) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert sorted(outcomes) == ["409"] * 7 + ["ok"]
    timeline = client.get(f"{API}/{cid}", auth=people["mayor"]).json()["timeline"]
    assert [t["status"] for t in timeline] == ["sent", "acknowledged"]


def test_the_dashboard_has_a_commands_panel_for_staff_only(
    client: TestClient, people: dict[str, Auth], clock: Any
) -> None:
    send(client, people["mayor"], title="비공개 지시")
    anonymous = client.get("/dashboard")
    assert anonymous.status_code == 200
    assert "commands-panel" not in anonymous.text and "commands.js" not in anonymous.text
    assert "/inbox" not in anonymous.text
    staff = client.get("/dashboard", auth=people["transport"]).text
    assert 'id="commands-panel"' in staff and "/static/commands.js" in staff and 'href="/inbox"' in staff
    assert "cmd-send" not in staff  # department staff answer commands; they do not send them
    assert "cmd-send" in client.get("/dashboard", auth=people["mayor"]).text
