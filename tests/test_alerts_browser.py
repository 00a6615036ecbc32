"""An alert in a real headless Chromium: an observation above a rule's threshold is ingested while
``/dashboard`` is open, and the event appears in the events panel and on the map within 5 s, for
an anonymous viewer if the event is public (an internal one stays off their page). Clicking it
opens the event's page with its timeline. Screenshots go to ``test-artifacts/``."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from citydesk.hub.records import ObservationIn
from citydesk.status import alerts
from citydesk.web.app import App
from tests.conftest import ARTIFACTS, create_sensor

pytestmark = [pytest.mark.browser, pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)]

GANGNAM, NOWON = "11680", "11350"
MAP = "echarts.getInstanceByDom(document.getElementById('map'))"
EVENTS_ON_MAP = f"({MAP}.getOption().series.find((s) => s.id === 'events')?.data ?? []).length"


def ingest(app: App, ds: int, value: float, at: datetime) -> None:
    assert app.ingest.ingest([ObservationIn(ds, value, phenomenon_time=at)], channel="test").stored


@pytest.fixture
def world(app: App) -> dict[str, int]:
    """A public PM10 sensor in Gangnam and an internal one in Nowon, both with a normal reading, and
    the demo's rules (PM10 very bad from 151: major, public) judging this app's batches."""
    alerts.attach(app)
    alerts.seed_alert_rules(app.engine)
    sensors = {
        GANGNAM: create_sensor(app, "S-DoT Gangnam", lon_lat=(127.0473, 37.5172)),
        NOWON: create_sensor(app, "S-DoT Nowon", lon_lat=(127.0568, 37.6542), disclosure="internal"),
    }
    for ds in sensors.values():
        ingest(app, ds, 45.0, datetime.now(UTC) - timedelta(minutes=3))
    return sensors


def test_an_alert_reaches_the_open_dashboard(
    app: App, world: dict[str, int], live_server: str, browser: Any
) -> None:
    page = browser.new_context(viewport={"width": 1920, "height": 1080}, locale="ko-KR").new_page()
    page.goto(live_server + "/dashboard?measure=PM10")
    page.wait_for_selector(".dash[data-ready]", timeout=15000)
    page.wait_for_selector("#events-panel[data-ready]", timeout=5000)
    page.wait_for_selector("#live[data-state=live]", timeout=10000)
    assert "진행 중인 사건이 없습니다" in page.inner_text("#events-list")
    assert page.evaluate(EVENTS_ON_MAP) == 0

    now = datetime.now(UTC)
    for ds in world.values():  # two readings in a row at or above 151: the rule asks for two
        ingest(app, ds, 182.0, now - timedelta(minutes=2))
        ingest(app, ds, 196.0, now - timedelta(minutes=1))
    page.wait_for_selector("#events-list li[data-id]", timeout=5000)
    page.wait_for_function(f"{EVENTS_ON_MAP} === 1", timeout=5000)
    items = page.locator("#events-list li[data-id]")
    assert items.count() == 1  # Nowon's event is internal (its datastream is): not for this viewer
    text = items.first.inner_text()
    assert "강남구" in text and "중대" in text and "접수" in text  # severity and status in words
    assert "노원구" not in page.inner_text("#events-panel")
    point = page.evaluate(f"{MAP}.getOption().series.find((s) => s.id === 'events').data[0]")
    assert point["symbol"] == "diamond" and point["value"] == [127.0473, 37.5172]  # major: a diamond
    page.wait_for_function("document.getElementById('fig-max').textContent.startsWith('196')")
    page.screenshot(path=str(ARTIFACTS / "alerts-dashboard-1920.png"))
    page.locator("#events-panel").screenshot(path=str(ARTIFACTS / "alerts-panel.png"))

    page.click("#lang")
    assert "Major" in page.inner_text("#events-list") and "Reported" in page.inner_text("#events-list")
    page.click("#lang")

    items.first.locator("a").focus()  # keyboard: the panel's entries are links
    page.keyboard.press("Enter")
    page.wait_for_selector("ol.timeline")
    assert page.locator("ol.timeline li").count() == 1
    assert "system" not in page.inner_text("ol.timeline")  # no actor for anonymous viewers
    page.screenshot(path=str(ARTIFACTS / "alerts-event-page.png"), full_page=True)


def test_staff_see_the_internal_alert_and_move_it_on(
    app: App, world: dict[str, int], live_server: str, browser: Any, staff: tuple[str, str]
) -> None:
    now = datetime.now(UTC)
    ingest(app, world[NOWON], 182.0, now - timedelta(minutes=2))
    ingest(app, world[NOWON], 196.0, now - timedelta(minutes=1))
    page = browser.new_context(viewport={"width": 1280, "height": 800}, locale="ko-KR").new_page()
    page.goto(f"{live_server}/login?next=/dashboard")
    page.fill("input[name=name]", staff[0])
    page.fill("input[name=password]", staff[1])
    page.click("button[type=submit]")
    page.wait_for_selector("#events-list li[data-id]", timeout=15000)
    assert "노원구" in page.inner_text("#events-list")
    page.click("#events-list li[data-id] a")
    page.wait_for_selector("form.event-move")
    page.select_option("#status", "dispatched")
    page.fill("#note", "현장 확인 출동")
    page.click("form.event-move button[type=submit]")
    page.wait_for_selector("ol.timeline li:nth-child(2)")
    assert "현장 확인 출동" in page.inner_text("ol.timeline") and staff[0] in page.inner_text("ol.timeline")
    page.screenshot(path=str(ARTIFACTS / "alerts-event-staff.png"), full_page=True)
    page.goto(f"{live_server}/status/events?status=open")
    # The sharp rise (+137 within 10 min) raised the internal rate rule's event beside it.
    assert page.locator("table.events tbody tr").count() == 2
    assert "출동" in page.inner_text("table.events") and "급상승" in page.inner_text("table.events")
    page.screenshot(path=str(ARTIFACTS / "alerts-events-list.png"), full_page=True)
