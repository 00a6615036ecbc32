"""The section pages, the dashboard's section bar and key figures, the kiosk and the layout editor in
a real headless Chromium (Debian's), on the real sections API, with hub data created through the
SensorThings service and observations ingested through the real pipeline while pages are open.

Screenshots go to ``test-artifacts/`` (git-ignored): every section on the wall screen at 1920×1080
and 3840×2160, a desktop, a phone at 390×844, the kiosk running and paused, and the layout editor.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from citydesk.city import seed_city
from citydesk.hub.records import ObservationIn
from citydesk.status.sections.layouts import defaults
from citydesk.web.app import App
from tests.conftest import ARTIFACTS, STAFF_PASSWORD, create_sensor

pytestmark = [pytest.mark.browser, pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)]

GANGNAM, JONGNO, MAPO, NOWON = "11680", "11110", "11440", "11350"
WHERE = {
    GANGNAM: (127.0473, 37.5172),
    JONGNO: (126.9790, 37.5730),
    MAPO: (126.9016, 37.5663),
    NOWON: (127.0568, 37.6542),
}
SECRET = 987.6
"""The internal sensor's value: no anonymous screen may show it, nor any figure built on it."""


def ingest(app: App, ds: int, value: float, at: datetime) -> None:
    assert len(app.ingest.ingest([ObservationIn(ds, value, phenomenon_time=at)], channel="test").stored) == 1


@pytest.fixture
def world(app: App) -> dict[str, int]:
    """Public PM10 and temperature sensors in Gangnam, Jongno and Mapo, with a few hours of history;
    an internal PM10 sensor in Nowon whose value is for staff eyes only."""
    now = datetime.now(UTC)
    sensors: dict[str, int] = {}
    for code, lon_lat in WHERE.items():
        level = "internal" if code == NOWON else "public"
        sensors[code] = create_sensor(app, f"S-DoT {code}", lon_lat=lon_lat, disclosure=level)
        if code != NOWON:
            temperature = create_sensor(
                app, f"S-DoT {code} T", lon_lat=lon_lat, observed_property="Temperature"
            )
            for hours in range(4):
                ingest(app, temperature, 8.0 + hours, now - timedelta(hours=hours, minutes=1))
    for code, value in ((GANGNAM, 60.0), (JONGNO, 20.0), (MAPO, 40.0), (NOWON, SECRET)):
        for hours in (3, 2, 1):
            ingest(app, sensors[code], value - hours, now - timedelta(hours=hours))
        ingest(app, sensors[code], value, now - timedelta(minutes=1))
    return sensors


def api(base: str, path: str, auth: tuple[str, str] | None = None) -> Any:
    r = httpx.get(base + path, auth=auth, timeout=10)
    r.raise_for_status()
    return r.json()


def save_layout(base: str, staff: tuple[str, str], perspective: str, body: dict[str, Any]) -> None:
    r = httpx.put(f"{base}/api/status/layouts/{perspective}", json=body, auth=staff, timeout=10)
    assert r.status_code == 200, r.text


@pytest.fixture
def pages(browser: Any) -> Iterator[Any]:
    """A factory of pages, each in its own browser context (its own cookies), closed afterwards."""
    contexts: list[Any] = []

    def open_page(width: int, height: int, path: str | None = None, base: str = "") -> Any:
        context = browser.new_context(viewport={"width": width, "height": height}, locale="ko-KR")
        contexts.append(context)
        page = context.new_page()
        if path is not None:
            page.goto(base + path)
        return page

    yield open_page
    for context in contexts:
        context.close()


def sign_in(page: Any, base: str, staff: tuple[str, str], then: str) -> None:
    page.goto(f"{base}/login?next={then}")
    page.fill("input[name=name]", staff[0])
    page.fill("input[name=password]", STAFF_PASSWORD)
    page.click("button[type=submit]")


def ready(page: Any, selector: str = ".screen[data-ready]") -> Any:
    page.wait_for_selector(selector, timeout=15000)
    return page


def figure_text(page: Any, widget: str) -> str:
    return str(page.inner_text(f".w[data-widget={widget}] .fv .v"))


def fits(page: Any) -> bool:
    """The page fits the viewport: no scrolling down, and none sideways."""
    return bool(
        page.evaluate(
            "document.documentElement.scrollHeight <= innerHeight && document.documentElement.scrollWidth <= innerWidth"
        )
    )


def test_a_section_page_draws_every_widget_the_api_gives_and_nothing_else(
    app: App, live_server: str, pages: Any, world: dict[str, int]
) -> None:
    section = api(live_server, "/api/status/sections/air")
    page = ready(pages(1280, 800, "/status/air?view=desktop", live_server))
    drawn = page.eval_on_selector_all(
        ".widgets .w", "els => els.map(e => [e.dataset.widget, e.dataset.kind])"
    )
    assert sorted(drawn) == sorted([w["id"], w["kind"]] for w in section["widgets"])  # the layout keeps all
    assert page.inner_text("#section-title") == section["title"]["ko"]
    pm10 = next(w for w in section["widgets"] if w["id"] == "pm10")
    assert pm10["value"] == pytest.approx(40.0)  # (60 + 20 + 40) / 3: the internal sensor is not in it
    assert figure_text(page, "pm10") == "40"
    choropleth = next(w for w in section["widgets"] if w["kind"] == "choropleth")
    chart = f"echarts.getInstanceByDom(document.querySelector('.w[data-widget={choropleth['id']}] .chart'))"
    regions = page.evaluate(f"{chart}.getOption().geo[0].regions")
    assert len(regions) == 25
    assert str(SECRET) not in page.inner_text(".screen")
    assert page.get_attribute(".section-bar a[aria-current=page]", "href") == "/status/air?view=desktop"
    page.screenshot(path=str(ARTIFACTS / "section-air-desktop.png"))
    page.click("#lang")
    page.wait_for_function("document.getElementById('section-title').textContent === 'Air and weather'")
    assert page.evaluate("localStorage.getItem('citydesk.lang')") == "en"
    page.screenshot(path=str(ARTIFACTS / "section-air-desktop-en.png"))


def test_a_new_observation_changes_the_open_section_page(
    app: App, live_server: str, pages: Any, world: dict[str, int]
) -> None:
    page = ready(pages(1280, 800, "/status/air", live_server))
    page.wait_for_selector("#live[data-state=live]", timeout=10000)
    page.evaluate("window.stillThisPage = true")
    assert figure_text(page, "pm10") == "40"
    ingest(app, world[GANGNAM], 150.0, datetime.now(UTC))  # (150 + 20 + 40) / 3 = 70
    page.wait_for_function(
        "document.querySelector('.w[data-widget=pm10] .fv .v').textContent === '70'", timeout=10000
    )
    assert page.evaluate("window.stillThisPage") is True  # updated in place, not reloaded


def test_the_wall_screens_show_every_section_without_scrolling_and_the_phone_never_sideways(
    app: App, live_server: str, pages: Any, world: dict[str, int], tmp_path: Path
) -> None:
    seed_city(app.engine, imports=tmp_path, settings=app.settings)  # the real facilities: full sections
    ids = [s["id"] for s in api(live_server, "/api/status/layouts/mayor")["sections"]]
    assert ids, "the mayor's layout has no sections"
    for width, height in ((1920, 1080), (3840, 2160)):
        page = pages(width, height)
        for section in ids:
            page.goto(f"{live_server}/status/{section}?view=wall")
            ready(page)
            page.wait_for_timeout(300)  # the charts' resize observers settle
            page.screenshot(path=str(ARTIFACTS / f"section-{section}-wall-{width}.png"))
            assert fits(page), (section, width)
            if width == 3840:  # type grows with the wall: it reads from twice as far as at 1920
                assert (
                    page.evaluate(
                        "parseFloat(getComputedStyle(document.querySelector('.section-bar a')).fontSize)"
                    )
                    >= 30
                )
    phone = pages(390, 844)
    for section in [s["id"] for s in api(live_server, "/api/status/layouts/citizen")["sections"]]:
        phone.goto(f"{live_server}/status/{section}")
        ready(phone)
        assert phone.evaluate("document.documentElement.scrollWidth") <= 390, section
        lefts = (
            "new Set([...document.querySelectorAll('.panels > .w')].map(e => e.getBoundingClientRect().left))"
        )
        assert phone.evaluate(f"{lefts}.size") <= 1, section  # one column
        phone.screenshot(path=str(ARTIFACTS / f"section-{section}-phone.png"), full_page=True)
    assert phone.evaluate("document.querySelector('.screen').dataset.view") == ""  # chosen by the viewport
    dashboard = pages(390, 844, "/dashboard", live_server)
    dashboard.wait_for_selector("#keys .w.key", timeout=15000)
    assert dashboard.evaluate("document.documentElement.scrollWidth") <= 390
    dashboard.screenshot(path=str(ARTIFACTS / "dashboard-sections-phone.png"), full_page=True)


def test_the_dashboard_has_the_section_bar_and_the_sections_key_figures(
    app: App, live_server: str, pages: Any, world: dict[str, int]
) -> None:
    visible = {s["id"] for s in api(live_server, "/api/status/sections")["sections"]}
    layout = [s for s in api(live_server, "/api/status/layouts/mayor")["sections"] if s["id"] in visible]
    with_figures = [
        s
        for s in layout
        if any(w["kind"] == "figure" for w in api(live_server, f"/api/status/sections/{s['id']}")["widgets"])
    ]
    page = pages(1920, 1080, "/dashboard?view=wall", live_server)
    page.wait_for_function(
        f"document.querySelectorAll('#keys .w.key').length === {len(with_figures)}", timeout=15000
    )
    links = page.eval_on_selector_all("#section-bar a", "as => as.map(a => a.getAttribute('href'))")
    assert links == ["/dashboard?view=wall"] + [f"/status/{s['id']}?view=wall" for s in layout]
    assert page.get_attribute("#section-bar a[aria-current=page]", "href") == "/dashboard?view=wall"
    air = page.locator("#keys .w.key[data-widget='air.pm10']")
    assert air.locator(".fv .v").inner_text() == "40"
    assert air.locator("a.key-section").get_attribute("href") == "/status/air?view=wall"
    page.screenshot(path=str(ARTIFACTS / "dashboard-sections-wall-1920.png"))
    assert fits(page)
    # Keyboard: the section bar is reachable and follows like any link.
    page.focus("#section-bar a[href^='/status/air']")
    page.keyboard.press("Enter")
    ready(page)
    assert page.url.endswith("/status/air?view=wall")


def test_the_kiosk_rotates_pauses_on_touch_and_resumes_after_idle(
    app: App, live_server: str, pages: Any, world: dict[str, int], staff: tuple[str, str]
) -> None:
    timing = {"interval_s": 5, "idle_resume_s": 5}  # the shortest the layout allows
    save_layout(
        live_server,
        staff,
        "kiosk",
        {"sections": [{"id": "air", "size": "l"}, {"id": "transport"}], "kiosk": timing},
    )
    page = ready(pages(1920, 1080, "/kiosk", live_server), ".kiosk[data-ready]")
    kiosk = "document.querySelector('.kiosk').dataset"
    assert page.evaluate(f"{kiosk}.section") == "air"
    page.wait_for_timeout(1000)
    page.screenshot(path=str(ARTIFACTS / "kiosk-1920.png"))
    assert fits(page)
    page.wait_for_function(f"{kiosk}.section === 'transport'", timeout=9000)  # rotated by itself
    page.mouse.click(960, 600)  # a touch
    assert page.evaluate(f"{kiosk}.state") == "paused"
    assert page.is_visible("#kiosk-paused") and "일시정지" in page.inner_text("#kiosk-paused")
    page.screenshot(path=str(ARTIFACTS / "kiosk-paused.png"))
    page.wait_for_timeout(3000)  # longer than what was left of the screen's time: no rotation
    assert page.evaluate(f"[{kiosk}.section, {kiosk}.state]") == ["transport", "paused"]
    page.wait_for_function(f"{kiosk}.state === 'running'", timeout=6000)  # idle: resumes
    assert not page.is_visible("#kiosk-paused")
    page.wait_for_function(f"{kiosk}.section === 'air'", timeout=9000)
    page.keyboard.press("ArrowRight")  # keys move between screens (and pause)
    page.wait_for_function(f"{kiosk}.section === 'transport'", timeout=5000)
    assert page.evaluate(f"{kiosk}.state") == "paused"
    page.keyboard.press("ArrowLeft")
    page.wait_for_function(f"{kiosk}.section === 'air'", timeout=5000)
    box = page.locator("#kiosk-stage").bounding_box()  # a swipe to the left: the next screen
    y = box["y"] + box["height"] / 2
    page.mouse.move(box["x"] + box["width"] * 0.7, y)
    page.mouse.down()
    page.mouse.move(box["x"] + box["width"] * 0.3, y, steps=5)
    page.mouse.up()
    page.wait_for_function(f"{kiosk}.section === 'transport'", timeout=5000)


def test_the_kiosk_shows_public_data_only_even_with_a_staff_cookie(
    app: App, live_server: str, pages: Any, world: dict[str, int], staff: tuple[str, str]
) -> None:
    save_layout(
        live_server,
        staff,
        "kiosk",
        {"sections": [{"id": "air"}], "kiosk": {"interval_s": 60, "idle_resume_s": 60}},
    )
    page = pages(1920, 1080)
    sign_in(page, live_server, staff, "/status/air")
    ready(page)
    # Staff see the internal sensor on this browser: the session cookie is live and could leak it.
    assert str(SECRET) in page.inner_text(".w-choropleth .w-legend")
    sent_cookies: list[str] = []
    page.on(
        "request",
        lambda r: sent_cookies.append(r.url) if "/api/" in r.url and r.headers.get("cookie") else None,
    )
    page.goto(f"{live_server}/kiosk")
    ready(page, ".kiosk[data-ready]")
    page.wait_for_timeout(1000)
    assert "kim.official" not in page.content()
    assert str(SECRET) not in page.inner_text(".kiosk") and "987" not in page.inner_text(".kiosk")
    assert page.inner_text(".w[data-widget=pm10] .fv .v") == "40"  # the public mean, not the staff one
    assert sent_cookies == []  # no API request of the kiosk carried the staff session
    page.screenshot(path=str(ARTIFACTS / "kiosk-with-staff-cookie.png"))


def test_the_layout_editor_saves_and_an_open_page_follows(
    app: App, live_server: str, pages: Any, world: dict[str, int], staff: tuple[str, str]
) -> None:
    viewer = ready(pages(1280, 800, "/status/air?view=mobile", live_server))  # the citizens' layout
    viewer.wait_for_selector("#live[data-state=live]", timeout=10000)
    viewer.evaluate("window.stillThisPage = true")
    visible = {s["id"] for s in api(live_server, "/api/status/sections")["sections"]}
    default = [s.id for s in defaults()["citizen"].sections if s.id in visible]
    target = default[-1]
    bar = "Array.from(document.querySelectorAll('#section-bar a')).slice(1).map(a => a.getAttribute('href').split('?')[0].slice(8))"
    assert viewer.evaluate(bar) == default
    assert viewer.locator(".w[data-widget=pm10_24h]").count() == 1

    editor = pages(1280, 900)
    sign_in(editor, live_server, staff, "/status/layouts/citizen")
    editor.wait_for_selector(".lay[data-ready]", timeout=15000)
    editor.screenshot(path=str(ARTIFACTS / "layout-editor.png"), full_page=True)
    # Keyboard only: move the last section up to the top with its ↑ button (the focus follows it).
    sections = "Array.from(document.querySelectorAll('li.lay-s')).map(l => l.dataset.section)"
    editor.focus(f"li.lay-s[data-section={target}] button[data-act=up]")
    for _ in range(editor.evaluate(sections).index(target)):
        editor.keyboard.press("Enter")
    assert editor.evaluate(sections)[0] == target
    # Hide one widget of the air section.
    editor.click("li.lay-s[data-section=air] summary")
    editor.uncheck("li.lay-w[data-section=air][data-widget=pm10_24h] input[type=checkbox]")
    editor.select_option("li.lay-s[data-section=air] select", "l")
    editor.click("#save")
    editor.wait_for_selector("#lay-status.ok", timeout=10000)
    editor.screenshot(path=str(ARTIFACTS / "layout-editor-saved.png"), full_page=True)

    saved = api(live_server, "/api/status/layouts/citizen")
    assert saved["sections"][0]["id"] == target
    # Sections with nothing to show today stay in the layout, untouched.
    assert sorted(s["id"] for s in saved["sections"]) == sorted(s.id for s in defaults()["citizen"].sections)
    air = next(s for s in saved["sections"] if s["id"] == "air")
    assert "pm10_24h" not in air["widgets"] and air["size"] == "l"
    # The open page follows without a reload: the bar's order and the air section's widgets.
    viewer.wait_for_function(f"{bar}[0] === '{target}'", timeout=10000)
    viewer.wait_for_function("!document.querySelector('.w[data-widget=pm10_24h]')", timeout=10000)
    assert viewer.evaluate("window.stillThisPage") is True
    assert viewer.evaluate("document.getElementById('widgets').dataset.size") == "l"
    # Reset puts the packaged default back in the editor; saving makes it the layout again.
    editor.click("#reset")
    assert [s for s in editor.evaluate(sections) if s in visible] == default
    editor.click("#save")
    viewer.wait_for_function(f"{bar}[0] === '{default[0]}'", timeout=10000)
