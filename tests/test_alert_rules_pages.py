"""The staff pages of alert rules: the list (a twin of its JSON), and creating, editing, switching
off and deleting a rule through forms generated from each kind's params schema; refused input
kept with pydantic's errors next to the fields; sign-in and 403 for everyone else; and a threshold
rule created by keyboard in a headless Chromium (screenshots in ``test-artifacts/``)."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient

from citydesk.auth import Role, create_user
from citydesk.hub.records import ObservationIn
from citydesk.status import alerts
from citydesk.status.alerts import KINDS, editor, service
from citydesk.status.alerts.editor import PARAMS
from citydesk.web.app import App
from citydesk.web.forms import REQUIRED, load_strings
from tests.conftest import ARTIFACTS, STAFF_PASSWORD, create_sensor
from tests.test_sources_forms import Page, browser_form

LISTING, NEW = "/status/alert-rules", "/status/alert-rules/new"
GANGNAM = "11680"
PARK = ("park.dept", STAFF_PASSWORD)


def stored(app: App) -> list[dict[str, Any]]:
    return list(service.list_rules(app)["rules"])


def feed(app: App, ds: int, *values: float) -> None:
    """One observation a minute, ending a minute ago, each its own batch (as a sensor sends)."""
    t = datetime.now(UTC) - timedelta(minutes=len(values) + 1)
    for v in values:
        assert app.ingest.ingest([ObservationIn(ds, v, phenomenon_time=t)], channel="test").stored
        t += timedelta(minutes=1)


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_every_field_of_every_built_in_kind_is_labelled_in_both_languages(kind: str) -> None:
    strings = load_strings(editor.STRINGS)
    form = editor.new_form(kind)
    assert [f.key for f in form.params] == [PARAMS + name for name in KINDS[kind].params.model_fields]
    for f in form.own + form.params:
        for lang in ("ko", "en"):
            words = strings[lang]["fields"][f.name]
            assert words["label"].strip() and words["help"].strip(), (kind, f.name, lang)
        assert f.label.ko != f.label.en


def test_create_edit_disable_and_delete_through_the_pages(
    client: TestClient, app: App, staff: tuple[str, str]
) -> None:
    ds = create_sensor(app, "Gangnam PM10")
    html = client.get(NEW, auth=staff).text
    assert "minor — 경미 Minor" in html and "&gt;= — 이상 at or above" in html  # options in both languages
    assert '연속 횟수 <span lang="en">Readings in a row</span>' in html
    form = Page(html)
    assert {"name", "datastream_id", "observed_property", "district_code", "severity", "disclosure"} <= set(
        form.inputs
    )
    assert form.inputs["params.op"]["tag"] == "select" and form.inputs["params.limit"]["type"] == "number"
    assert form.inputs["params.consecutive"]["value"] == "1"  # the schema's default
    assert "checked" in form.inputs["enabled"]
    data = browser_form(
        form,
        name="강남 PM10 나쁨",
        datastream_id=str(ds),
        params__op=">=",
        params__limit="100",
        severity="major",
    )
    made = client.post(NEW, data=data, auth=staff, follow_redirects=False)
    assert (made.status_code, made.headers["location"]) == (303, LISTING)
    [rule] = stored(app)
    assert (rule["name"], rule["kind"], rule["datastream_id"], rule["severity"], rule["enabled"]) == (
        "강남 PM10 나쁨",
        "threshold",
        ds,
        "major",
        True,
    )
    assert rule["params"] == {"op": ">=", "limit": 100.0, "consecutive": 1}

    edit = f"/status/alert-rules/{rule['id']}/edit"
    form = Page(client.get(edit, auth=staff).text)
    assert (
        form.inputs["name"]["value"] == "강남 PM10 나쁨" and form.inputs["params.limit"]["value"] == "100.0"
    )
    assert "enabled" not in form.inputs  # an existing rule has its own button
    data = browser_form(
        form, datastream_id="", observed_property="PM10", district_code=GANGNAM, params__limit="151"
    )
    assert client.post(edit, data=data, auth=staff, follow_redirects=False).status_code == 303
    [rule] = stored(app)
    assert (rule["datastream_id"], rule["observed_property"], rule["district_code"]) == (
        None,
        "PM10",
        GANGNAM,
    )
    assert rule["params"]["limit"] == 151.0 and rule["enabled"]

    off = client.post(f"/status/alert-rules/{rule['id']}/enabled", data={"enabled": "false"}, auth=staff)
    assert off.status_code == 200 and "꺼짐" in off.text  # back on the listing
    assert not stored(app)[0]["enabled"]
    assert "켜기 Enable" in client.get(edit, auth=staff).text

    unconfirmed = client.post(f"/status/alert-rules/{rule['id']}/delete", auth=staff)
    assert unconfirmed.status_code == 422 and "확인란" in unconfirmed.text and stored(app)
    gone = client.post(f"/status/alert-rules/{rule['id']}/delete", data={"confirm": "yes"}, auth=staff)
    assert gone.status_code == 200 and stored(app) == []
    assert client.get(edit, auth=staff).status_code == 404


def test_refused_input_keeps_what_was_typed_with_pydantic_s_errors_at_the_fields(
    client: TestClient, app: App, staff: tuple[str, str]
) -> None:
    ds = create_sensor(app, "Gangnam PM10")
    typed = {"name": "그대로 keep me", "params.op": ">", "params.limit": "lots", "params.consecutive": "0"}
    refused = client.post(NEW, data=typed, auth=staff)
    assert refused.status_code == 422
    page = Page(refused.text)
    assert {k: page.inputs[k]["value"] for k in typed} == typed
    assert "valid number" in page.errors["params-limit"]
    assert "greater than or equal to 1" in page.errors["params-consecutive"]
    assert "give either datastream_id or observed_property" in page.alert  # of no one field
    assert 'aria-invalid="true"' in refused.text

    rate = client.post(
        f"{NEW}?kind=rate", data={"name": "", "datastream_id": str(ds), "params.delta": "0"}, auth=staff
    )
    page = Page(rate.text)
    assert rate.status_code == 422 and page.inputs["params.delta"]["value"] == "0"
    assert page.errors["name"] == REQUIRED
    assert "delta must not be 0" in page.errors["params-delta"]
    assert page.errors["params-window_minutes"] == REQUIRED

    unknown = client.post(
        NEW, data={"name": "x", "datastream_id": "424242", "params.op": ">", "params.limit": "1"}, auth=staff
    )
    page = Page(unknown.text)
    assert unknown.status_code == 422 and "no datastream 424242" in page.errors["datastream_id"]
    assert page.inputs["datastream_id"]["value"] == "424242"
    assert stored(app) == []
    assert client.get(f"{NEW}?kind=magic", auth=staff).status_code == 400


def test_the_listing_is_the_twin_of_its_json(client: TestClient, app: App, staff: tuple[str, str]) -> None:
    alerts.attach(app)
    ds = create_sensor(app, "Gangnam PM10")
    for name, limit in (("PM10 나쁨", "100"), ("PM10 매우 나쁨", "900")):
        data = {
            "name": name,
            "datastream_id": str(ds),
            "params.op": ">=",
            "params.limit": limit,
            "enabled": "on",
        }
        assert client.post(NEW, data=data, auth=staff, follow_redirects=False).status_code == 303
    feed(app, ds, 160, 40, 170)  # raised, cleared, raised again: one of its two events is open
    twin = client.get("/api/status/alert-rules", auth=staff).json()["rules"]
    assert [(r["open_events"], r["last_raised"] is not None) for r in twin] == [(1, True), (0, False)]
    html = client.get(LISTING, auth=staff).text
    rows = dict(re.findall(r'<tr class="rule[^"]*" data-id="(\d+)">(.*?)</tr>', html, re.S))
    assert list(rows) == [str(r["id"]) for r in twin]
    for r in twin:
        row = rows[str(r["id"])]
        assert r["name"] in row and r["kind_label"]["ko"] in row and f"#{ds}" in row
        assert re.search(r'<td class="num">(?:<a [^>]*>)?(\d+)', row).group(1) == str(r["open_events"])  # type: ignore[union-attr]
        assert (f'datetime="{r["last_raised"]}"' in row) == (r["last_raised"] is not None)


def test_anonymous_visitors_sign_in_and_department_staff_are_refused(
    client: TestClient, app: App, staff: tuple[str, str]
) -> None:
    create_user(app.engine, PARK[0], Role.DEPARTMENT_STAFF, PARK[1], now=datetime.now(UTC))
    for path in (LISTING, NEW, f"{NEW}?kind=rate", "/status/alert-rules/1/edit"):
        signed_out = client.get(path, follow_redirects=False)
        assert signed_out.status_code == 303 and signed_out.headers["location"].startswith("/login?next=")
    posted = client.post("/status/alert-rules/1/delete", data={"confirm": "yes"}, follow_redirects=False)
    assert posted.headers["location"] == "/login?next=/status/alert-rules/1/edit"
    for path in (LISTING, NEW):
        refused = client.get(path, auth=PARK)
        assert refused.status_code == 403 and "may not alerts.manage" in refused.text
    data = {
        "name": "몰래",
        "observed_property": "PM10",
        "params.op": ">",
        "params.limit": "1",
        "enabled": "on",
    }
    assert client.post(NEW, data=data, auth=PARK).status_code == 403
    assert stored(app) == []
    made = client.post(NEW, data=data, auth=staff, follow_redirects=False)
    rule_id = stored(app)[0]["id"]
    assert made.status_code == 303
    for action in ("edit", "enabled", "delete"):
        answer = client.post(
            f"/status/alert-rules/{rule_id}/{action}", data={"enabled": "false", "confirm": "yes"}, auth=PARK
        )
        assert answer.status_code == 403
    assert [(r["name"], r["enabled"]) for r in stored(app)] == [("몰래", True)]  # untouched
    assert LISTING not in client.get("/status/events", auth=PARK).text
    assert f'href="{LISTING}"' in client.get("/status/events", auth=staff).text


# -- in a real browser ------------------------------------------------------------------------------
@pytest.mark.browser
@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_a_threshold_rule_created_by_keyboard(
    app: App, live_server: str, browser: Any, staff: tuple[str, str]
) -> None:
    ds = create_sensor(app, "Gangnam PM10")
    page = browser.new_context(viewport={"width": 1280, "height": 900}, locale="ko-KR").new_page()
    page.goto(f"{live_server}/login?next=/status/events")
    page.fill("input[name=name]", staff[0])
    page.fill("input[name=password]", staff[1])
    page.keyboard.press("Enter")
    page.wait_for_url(f"{live_server}/status/events")
    page.click(f"a[href='{LISTING}']")
    page.wait_for_url(live_server + LISTING)
    page.click(f"a[href='{NEW}']")
    page.wait_for_url(live_server + NEW)
    page.focus("#name")
    page.keyboard.type("강남 PM10 나쁨")
    page.keyboard.press("Tab")  # the datastream
    page.keyboard.type(f"{ds}9")
    page.focus("#params-op")
    page.keyboard.press("ArrowDown")  # >= → >
    page.keyboard.press("Tab")  # the limit
    page.keyboard.type("lots")  # a number input takes no letters: stays empty
    page.keyboard.press("Enter")
    assert page.evaluate("document.activeElement.id") == "params-limit"  # the browser asks for it
    page.keyboard.type("150")
    page.screenshot(path=str(ARTIFACTS / "alert-rule-form.png"), full_page=True)
    page.keyboard.press("Enter")
    # The datastream typed was 1 too many digits: refused by the service, shown at its field.
    page.wait_for_selector("#datastream_id-error")
    assert f"no datastream {ds}9" in page.inner_text("#datastream_id-error")
    assert page.input_value("#name") == "강남 PM10 나쁨" and page.input_value("#params-limit") == "150"
    assert page.input_value("#params-op") == ">"
    page.screenshot(path=str(ARTIFACTS / "alert-rule-refused.png"), full_page=True)
    page.focus("#datastream_id")
    page.keyboard.press("Control+A")
    page.keyboard.type(str(ds))
    page.keyboard.press("Enter")
    page.wait_for_url(live_server + LISTING)
    page.screenshot(path=str(ARTIFACTS / "alert-rules.png"), full_page=True)
    [rule] = service.list_rules(app)["rules"]
    assert (rule["name"], rule["datastream_id"], rule["params"]) == (
        "강남 PM10 나쁨",
        ds,
        {"op": ">", "limit": 150.0, "consecutive": 1},
    )
    assert "강남 PM10 나쁨" in page.inner_text("table.rules")
