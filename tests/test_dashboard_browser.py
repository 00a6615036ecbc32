"""The live city dashboard (``/dashboard``) in a real headless Chromium (Debian's), on the real
status routes, with observations ingested through the real pipeline while the page is open.

Screenshots go to ``test-artifacts/`` (git-ignored): the wall screen at 1920×1080 and 3840×2160,
a 1280×800 desktop, a district zoomed in with its dongs, English labels, and a 390×844 phone.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from citydesk.hub.records import ObservationIn
from citydesk.web.app import App
from tests.conftest import ARTIFACTS, STAFF_PASSWORD, create_sensor

pytestmark = [pytest.mark.browser, pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)]

GANGNAM, JONGNO, MAPO, NOWON = "11680", "11110", "11440", "11350"
WHERE = {  # a point inside each district (checked against the city's geometry in ``world``)
    GANGNAM: (127.0473, 37.5172),
    JONGNO: (126.9790, 37.5730),
    MAPO: (126.9016, 37.5663),
    NOWON: (127.0568, 37.6542),
}
MAP = "echarts.getInstanceByDom(document.getElementById('map'))"


def open_page(browser: Any, base: str, width: int, height: int) -> Any:
    page = browser.new_context(viewport={"width": width, "height": height}, locale="ko-KR").new_page()
    page.goto(base + "/dashboard?measure=PM10")
    page.wait_for_selector(".dash[data-ready]", timeout=15000)
    return page


def ingest(app: App, ds: int, value: float, at: datetime) -> None:
    result = app.ingest.ingest([ObservationIn(ds, value, phenomenon_time=at)], channel="test")
    assert len(result.stored) == 1


@pytest.fixture
def world(app: App) -> dict[str, int]:
    """One public PM10 sensor in Gangnam (bad air, with a few hours of history), Jongno (good) and
    Mapo (moderate), and an internal one in Nowon (very bad): its value is for staff eyes only."""
    for code, (lon, lat) in WHERE.items():
        assert app.geo.district_of(lon, lat) == code
    sensors = {
        code: create_sensor(
            app, f"S-DoT {code}", lon_lat=WHERE[code], disclosure="internal" if code == NOWON else "public"
        )
        for code in WHERE
    }
    now = datetime.now(UTC)
    for hours_ago, value in ((3, 60.0), (2, 95.0), (1, 110.0)):
        ingest(app, sensors[GANGNAM], value, now - timedelta(hours=hours_ago))
    for code, value in ((GANGNAM, 120.0), (JONGNO, 18.0), (MAPO, 42.0), (NOWON, 210.0)):
        ingest(app, sensors[code], value, now - timedelta(minutes=1))
    return sensors


def region_colour(page: Any, code: str) -> str:
    regions = page.evaluate(f"{MAP}.getOption().geo[0].regions")
    return next(r["itemStyle"]["areaColor"] for r in regions if r["name"] == code)


def legend_colour(page: Any, level: str) -> str:
    rgb = page.evaluate(
        f"getComputedStyle(document.querySelector('#legend li[data-level={level}] .sw')).backgroundColor"
    )
    r, g, b = (int(x) for x in rgb[rgb.index("(") + 1 : -1].split(","))
    return f"#{r:02x}{g:02x}{b:02x}"


def no_vertical_scroll(page: Any) -> bool:
    return bool(page.evaluate("document.documentElement.scrollHeight <= window.innerHeight"))


def test_wall_screen_shows_every_district_coloured_by_its_level(
    app: App, live_server: str, browser: Any, world: dict[str, int]
) -> None:
    page = open_page(browser, live_server, 1920, 1080)
    drawn = page.evaluate(f"{MAP}.getOption().geo[0].map")
    assert page.evaluate(f"echarts.getMap('{drawn}').geoJSON.features.length") == 25
    assert len(page.evaluate(f"{MAP}.getOption().geo[0].regions")) == 25
    assert region_colour(page, GANGNAM) == legend_colour(page, "bad")  # 120 ㎍/㎥
    assert region_colour(page, JONGNO) == legend_colour(page, "good")  # 18
    assert region_colour(page, MAPO) == legend_colour(page, "moderate")  # 42
    # Nowon's only sensor is internal: an anonymous viewer sees no value there, nowhere on the page.
    assert region_colour(page, NOWON) == legend_colour(page, "none")
    assert "노원구" not in page.inner_text("#worst")
    assert "210" not in page.inner_text(".dash")
    assert page.inner_text("#fig-max").startswith("120")
    assert page.inner_text("#fig-sensors") == "3"
    assert page.inner_text("#worst li:first-child").startswith("강남구")
    assert page.evaluate(f"{MAP}.getOption().series[0].data.length") == 3  # the sensors layer
    page.uncheck("#sensors-toggle")
    assert page.evaluate(f"{MAP}.getOption().series[0].data.length") == 0
    page.check("#sensors-toggle")
    x, y = page.evaluate(f"{MAP}.convertToPixel({{geoIndex: 0}}, [126.925, 37.555])")  # Mapo
    box = page.locator("#map").bounding_box()
    page.mouse.move(box["x"] + x, box["y"] + y)
    tooltip = page.locator("#map div", has_text="42").last
    assert "마포구" in tooltip.inner_text() and "보통" in tooltip.inner_text()
    page.screenshot(path=str(ARTIFACTS / "dashboard-wall-1920.png"))
    assert no_vertical_scroll(page)
    for name, width, height in (("wall-3840", 3840, 2160), ("desktop", 1280, 800)):
        page.set_viewport_size({"width": width, "height": height})
        page.wait_for_timeout(500)
        page.screenshot(path=str(ARTIFACTS / f"dashboard-{name}.png"))
        assert no_vertical_scroll(page), name
        assert page.evaluate("document.documentElement.scrollWidth") <= width, name


def test_staff_see_the_internal_sensor_the_public_does_not(
    app: App, live_server: str, browser: Any, world: dict[str, int], staff: tuple[str, str]
) -> None:
    page = browser.new_context(viewport={"width": 1280, "height": 800}, locale="ko-KR").new_page()
    page.goto(f"{live_server}/login?next=/dashboard")
    page.fill("input[name=name]", staff[0])
    page.fill("input[name=password]", STAFF_PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_selector(".dash[data-ready]", timeout=15000)
    assert region_colour(page, NOWON) == legend_colour(page, "very_bad")
    assert page.inner_text("#worst li:first-child").startswith("노원구")


def test_a_new_observation_reaches_the_open_page(
    app: App, live_server: str, browser: Any, world: dict[str, int]
) -> None:
    page = open_page(browser, live_server, 1280, 800)
    page.focus("#district")  # keyboard: pick the district in the selector
    page.select_option("#district", GANGNAM)
    page.wait_for_function("document.getElementById('detail-name').dataset.code === '11680'")
    assert page.inner_text("#detail-value").startswith("120")
    page.wait_for_selector("#live[data-state=live]", timeout=10000)
    ingest(app, world[GANGNAM], 64.5, datetime.now(UTC))
    page.wait_for_function(
        "document.getElementById('detail-value').textContent.startsWith('64.5')", timeout=5000
    )
    assert region_colour(page, GANGNAM) == legend_colour(page, "moderate")
    assert "64.5" in page.inner_text("#worst li:first-child")
    page.screenshot(path=str(ARTIFACTS / "dashboard-live-update.png"))


def test_clicking_a_district_zooms_to_its_dongs_and_its_last_24_hours(
    app: App, live_server: str, browser: Any, world: dict[str, int]
) -> None:
    inside = [127.065, 37.495]  # in Gangnam, away from its sensor's dot
    assert app.geo.district_of(*inside) == GANGNAM
    page = open_page(browser, live_server, 1920, 1080)
    x, y = page.evaluate(f"{MAP}.convertToPixel({{geoIndex: 0}}, {inside})")
    box = page.locator("#map").bounding_box()
    page.mouse.click(box["x"] + x, box["y"] + y)
    page.wait_for_function("document.getElementById('detail-name').dataset.code === '11680'")
    page.wait_for_function(f"{MAP}.getOption().geo[0].map === 'seoul-11680'")
    features = page.evaluate("echarts.getMap('seoul-11680').geoJSON.features")
    dongs = [f["properties"] for f in features if f["properties"].get("district_code") == GANGNAM]
    assert len(dongs) > 10  # Gangnam has 22 administrative dongs
    assert page.evaluate(f"{MAP}.getOption().geo[0].zoom") > 2
    assert "강남구" in page.inner_text("#detail-name")
    chart = "echarts.getInstanceByDom(document.getElementById('chart')).getOption().series[0].data"
    assert [round(p[1]) for p in page.evaluate(chart)][-4:] == [60, 95, 110, 120]
    assert page.is_visible("#back")
    page.wait_for_timeout(600)
    page.screenshot(path=str(ARTIFACTS / "dashboard-district.png"))
    page.keyboard.press("Escape")  # back to the whole city
    page.wait_for_function(f"{MAP}.getOption().geo[0].map === 'seoul'")


def test_phone_layout_and_language_toggle(
    app: App, live_server: str, browser: Any, world: dict[str, int]
) -> None:
    page = open_page(browser, live_server, 390, 844)
    assert page.evaluate("document.documentElement.scrollWidth") <= 390
    assert page.locator("#map canvas").bounding_box()["width"] <= 390
    page.screenshot(path=str(ARTIFACTS / "dashboard-phone.png"), full_page=True)
    assert page.is_visible("h1 .ko")
    page.click("#lang")
    assert not page.is_visible("h1 .ko")
    assert page.inner_text("h1") == "Live city status"
    assert page.inner_text("#worst li:first-child").startswith("Gangnam")
    assert "Fine dust" in page.inner_text("#measure")
    page.reload()  # the choice is kept
    page.wait_for_selector(".dash[data-ready]")
    assert page.evaluate("document.documentElement.lang") == "en"
    assert page.inner_text("#live") in ("Live", "Connecting")
    assert page.evaluate("document.documentElement.scrollWidth") <= 390
    page.screenshot(path=str(ARTIFACTS / "dashboard-phone-en.png"), full_page=True)


def test_a_measure_without_bands_gets_a_continuous_scale(
    app: App, live_server: str, browser: Any, world: dict[str, int]
) -> None:
    now = datetime.now(UTC) - timedelta(minutes=1)
    for code, value in ((JONGNO, 4.5), (MAPO, 9.0)):
        ds = create_sensor(
            app, f"S-DoT {code} temperature", lon_lat=WHERE[code], observed_property="Temperature"
        )
        ingest(app, ds, value, now)
    page = open_page(browser, live_server, 1280, 800)
    page.select_option("#measure", "Temperature")
    page.wait_for_selector("#legend .ramp")
    assert page.url.endswith("?measure=Temperature")
    jongno, mapo = region_colour(page, JONGNO), region_colour(page, MAPO)
    assert len({jongno, mapo, legend_colour(page, "none")}) == 3  # low, high and no data all differ
    assert page.inner_text("#worst-title").startswith("높은 자치구")  # no bands: "highest", not "worst"
    assert page.inner_text("#worst li:first-child").startswith("마포구")
    assert page.inner_text("#fig-min").startswith("4.5")
