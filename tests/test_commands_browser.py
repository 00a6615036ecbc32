"""A command from the mayor to a department and back, in a real headless Chromium (Debian's).

The mayor sends a command from the dashboard (about the district on screen); the department's
clerk, whose inbox is already open, sees it arrive without reloading (SSE notice), acknowledges it,
starts, reports progress and closes it, with the keyboard; the mayor's open timeline follows every
step live. An overdue command stands out on the mayor's dashboard (icon and word, not colour alone).
Screenshots go to ``test-artifacts/commands-*.png``.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from citydesk.auth import Principal, Role, create_user
from citydesk.hub.records import ObservationIn
from citydesk.status.commands import CommandIn, act, send
from citydesk.web.app import App
from tests.conftest import ARTIFACTS, STAFF_PASSWORD, create_sensor

pytestmark = [pytest.mark.browser, pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)]
TRANSPORT = "교통정책과"


@pytest.fixture
def people(app: App) -> dict[str, int]:
    """The mayor and a clerk of Transport Policy; and one PM10 sensor so the dashboard has a map."""
    now = datetime.now(UTC)
    ds = create_sensor(app, "S-DoT Gangnam", lon_lat=(127.0473, 37.5172))
    assert app.ingest.ingest(
        [ObservationIn(ds, 42.0, phenomenon_time=now - timedelta(minutes=1))], channel="test"
    ).stored
    mayor = create_user(app.engine, "mayor", Role.MAYOR, STAFF_PASSWORD, now=now)
    clerk = create_user(
        app.engine, "clerk", Role.DEPARTMENT_STAFF, STAFF_PASSWORD, now=now, department=TRANSPORT
    )
    return {"mayor": mayor.id, "clerk": clerk.id}


def signed_in(browser: Any, base: str, name: str, then: str, width: int = 1280, height: int = 800) -> Any:
    page = browser.new_context(viewport={"width": width, "height": height}, locale="ko-KR").new_page()
    page.goto(f"{base}/login?next={then}")
    page.fill("input[name=name]", name)
    page.fill("input[name=password]", STAFF_PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(base + then)
    return page


def test_a_command_goes_from_the_mayor_to_the_department_and_back(
    app: App, live_server: str, browser: Any, people: dict[str, int]
) -> None:
    clerk = signed_in(browser, live_server, "clerk", "/inbox")
    clerk.wait_for_selector(".cmd-live[data-state=live]", timeout=10000)
    assert clerk.locator(".cmd-card").count() == 0
    clerk.evaluate("window.notReloaded = true")

    mayor = signed_in(browser, live_server, "mayor", "/dashboard", 1920, 1080)
    mayor.wait_for_selector("#commands-panel[data-ready]", timeout=15000)
    mayor.wait_for_selector(".dash[data-ready]", timeout=15000)
    mayor.select_option("#district", "11680")  # Gangnam, on screen
    mayor.wait_for_function("document.getElementById('detail-name').dataset.code === '11680'")
    mayor.click("#commands-panel .cmd-send")
    mayor.wait_for_url("**/commands/new?subject_kind=district&subject_ref=11680")
    assert "강남구" in mayor.inner_text(".cmd-subject")
    mayor.select_option("#cmd-department", TRANSPORT)
    mayor.fill("#cmd-title", "강남대로 결빙 구간 긴급 제설")
    mayor.fill("#cmd-body", "출근 시간 전까지 염화칼슘 살포, 진행 상황 보고 바람")
    mayor.select_option("#cmd-due-in", "PT2H")
    mayor.screenshot(path=str(ARTIFACTS / "commands-send-form.png"), full_page=True)
    mayor.click("form.cmd-new button[type=submit]")
    mayor.wait_for_url("**/commands/*")
    command_id = int(mayor.url.rsplit("/", 1)[1])
    mayor.wait_for_selector(".cmd-live[data-state=live]", timeout=10000)

    # The clerk's open inbox shows it without a reload.
    card = f".cmd-card[data-id='{command_id}']"
    clerk.wait_for_selector(card, timeout=10000)
    assert clerk.evaluate("window.notReloaded") is True
    assert "강남대로 결빙 구간 긴급 제설" in clerk.inner_text(card)
    assert "강남구" in clerk.inner_text(card) and "mayor" in clerk.inner_text(card)
    clerk.screenshot(path=str(ARTIFACTS / "commands-inbox-arrived.png"), full_page=True)

    def press(action: str, note: str = "") -> None:
        """Answer with the keyboard: type the note, tab to the button, press Enter."""
        clerk.focus(f"#note-{command_id}")
        clerk.keyboard.type(note)
        button = clerk.locator(f"{card} button[value={action}]")
        for _ in range(8):
            if button.evaluate("b => b === document.activeElement"):
                break
            clerk.keyboard.press("Tab")
        assert button.evaluate("b => b === document.activeElement"), action
        with clerk.expect_navigation():
            clerk.keyboard.press("Enter")

    press("acknowledged")
    press("in_progress")
    press("progress", "제설차 3대 투입, 50% 완료")
    clerk.screenshot(path=str(ARTIFACTS / "commands-inbox-in-progress.png"), full_page=True)
    clerk.set_viewport_size({"width": 390, "height": 844})  # a clerk on the move
    assert clerk.evaluate("document.documentElement.scrollWidth") <= 390
    clerk.screenshot(path=str(ARTIFACTS / "commands-inbox-phone.png"), full_page=True)
    clerk.set_viewport_size({"width": 1280, "height": 800})
    press("done", "결빙 구간 제설 완료, 통행 정상")
    assert clerk.locator(card).count() == 0  # closed: no longer in the open inbox

    # The mayor's timeline followed every step while open.
    mayor.wait_for_function("document.querySelectorAll('.cmd-timeline li').length === 5", timeout=10000)
    steps = mayor.eval_on_selector_all(
        ".cmd-timeline li", "els => els.map(e => [e.dataset.kind, e.dataset.status])"
    )
    assert steps == [
        ["sent", "sent"],
        ["status", "acknowledged"],
        ["status", "in_progress"],
        ["progress", "in_progress"],
        ["status", "done"],
    ]
    timeline = mayor.inner_text(".cmd-timeline")
    assert "제설차 3대 투입, 50% 완료" in timeline and "결빙 구간 제설 완료, 통행 정상" in timeline
    assert timeline.count("clerk") == 4
    mayor.screenshot(path=str(ARTIFACTS / "commands-timeline.png"), full_page=True)
    mayor.click(".cmd-lang")
    assert "Timeline" in mayor.inner_text(".cmd-history h2") and "Done" in mayor.inner_text(".cmd-chip")
    mayor.screenshot(path=str(ARTIFACTS / "commands-timeline-en.png"), full_page=True)


def test_an_overdue_command_stands_out_on_the_mayors_dashboard(
    app: App, live_server: str, browser: Any, people: dict[str, int]
) -> None:
    sender = Principal.for_user(people["mayor"], "mayor", Role.MAYOR)
    now = datetime.now(UTC)
    earlier = now - timedelta(hours=3)
    send(
        app,
        sender,
        CommandIn(title="침수 취약지역 배수로 점검", department="물순환안전국", due_in=timedelta(hours=2)),
        now=earlier,
    )
    send(
        app,
        sender,
        CommandIn(title="버스 우회 안내", department=TRANSPORT, due_in=timedelta(hours=4)),
        now=now,
    )

    handed_back = send(
        app, sender, CommandIn(title="교량 점검", department=TRANSPORT, due_in=timedelta(hours=4)), now=now
    )
    clerk = Principal.for_user(people["clerk"], "clerk", Role.DEPARTMENT_STAFF, TRANSPORT)
    act(app, clerk, handed_back["id"], "returned", "도로관리과 소관", now=now)

    mayor = signed_in(browser, live_server, "mayor", "/dashboard", 1920, 1080)
    mayor.wait_for_selector("#commands-panel[data-ready]", timeout=15000)
    panel = mayor.locator("#commands-panel")
    late = panel.locator(".cmd-late li:not(.returned)")
    assert late.count() == 1
    assert "⚠" in late.inner_text() and "기한 지남" in late.inner_text()  # icon and word, not colour only
    assert "침수 취약지역 배수로 점검" in late.inner_text() and "물순환안전국" in late.inner_text()
    assert "버스 우회 안내" not in late.inner_text()
    returned = panel.locator(".cmd-late li.returned")
    assert (
        "↩" in returned.inner_text()
        and "반려" in returned.inner_text()
        and "교량 점검" in returned.inner_text()
    )
    depts = panel.locator(".cmd-depts").inner_text()
    assert "물순환안전국" in depts and TRANSPORT in depts
    assert mayor.get_attribute("#commands-panel", "data-overdue") == "1"
    mayor.wait_for_selector(".dash[data-ready]", timeout=15000)
    mayor.screenshot(path=str(ARTIFACTS / "commands-dashboard-overdue.png"))

    # A command answered elsewhere updates the panel through the page's event stream.
    mayor.wait_for_selector("#live[data-state=live]", timeout=10000)
    send(
        app,
        sender,
        CommandIn(title="추가 지시", department="기후환경본부", due_in=timedelta(hours=1)),
        now=datetime.now(UTC),
    )
    mayor.wait_for_function(
        "document.querySelector('#commands-panel .cmd-depts').textContent.includes('기후환경본부')",
        timeout=10000,
    )

    mayor.click("#lang")
    mayor.wait_for_function(
        "document.querySelector('#commands-panel .cmd-late').textContent.includes('Overdue')"
    )
    assert "Water Circulation Safety" in panel.locator(".cmd-late").inner_text()
    mayor.screenshot(path=str(ARTIFACTS / "commands-dashboard-overdue-en.png"))
    mayor.set_viewport_size({"width": 1280, "height": 800})  # a desktop: still one screen
    mayor.wait_for_timeout(400)
    assert mayor.evaluate("document.documentElement.scrollHeight <= window.innerHeight")
    mayor.screenshot(path=str(ARTIFACTS / "commands-dashboard-desktop.png"))
    mayor.set_viewport_size({"width": 390, "height": 844})
    mayor.wait_for_timeout(400)
    assert mayor.evaluate("document.documentElement.scrollWidth") <= 390
    mayor.screenshot(path=str(ARTIFACTS / "commands-dashboard-phone.png"), full_page=True)
