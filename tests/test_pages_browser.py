"""The staff and public pages in a real headless Chromium (Debian's), with screenshots to look at.

Screenshots go to ``test-artifacts/`` (git-ignored): landing page, sign-in, sources, manual entry,
adding and editing a source (desktop and a 390×844 phone).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from citydesk.hub.connectors.testing import make_datastreams
from citydesk.hub.models import observations
from citydesk.hub.sources import attach
from citydesk.web.app import App
from tests.conftest import ARTIFACTS, create_sensor

pytestmark = [pytest.mark.browser, pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)]
AIR_CSV = (
    Path(__file__).resolve().parents[1]
    / "citydesk/hub/connectors/file/tests/payloads/air_quality_2019_11_12.csv"
)


@pytest.fixture
def page(browser: Any) -> object:
    context = browser.new_context(viewport={"width": 1280, "height": 800}, locale="ko-KR")
    return context.new_page()


def test_landing_page_renders_with_hangul_font(live_server: str, page: object) -> None:
    page.goto(live_server + "/")  # type: ignore[attr-defined]
    page.wait_for_load_state("networkidle")  # type: ignore[attr-defined]
    assert "스마트 도시 플랫폼" in page.inner_text("h1")  # type: ignore[attr-defined]
    assert page.inner_text(".card .num") == "25"  # type: ignore[attr-defined]  # districts
    loaded = page.evaluate("document.fonts.check('16px \"Noto Sans KR\"', '서울')")  # type: ignore[attr-defined]
    assert loaded, "the bundled Korean font did not load"
    page.screenshot(path=str(ARTIFACTS / "landing.png"), full_page=True)  # type: ignore[attr-defined]


def test_sign_in_and_out(app: App, live_server: str, page: object, staff: tuple[str, str]) -> None:
    page.goto(live_server + "/login?next=/")  # type: ignore[attr-defined]
    page.fill("input[name=name]", "kim.official")  # type: ignore[attr-defined]
    page.fill("input[name=password]", "wrong password")  # type: ignore[attr-defined]
    page.click("button[type=submit]")  # type: ignore[attr-defined]
    assert page.locator(".error, [role=alert]").count() >= 1  # type: ignore[attr-defined]
    page.screenshot(path=str(ARTIFACTS / "login-error.png"))  # type: ignore[attr-defined]
    page.fill("input[name=name]", staff[0])  # type: ignore[attr-defined]
    page.fill("input[name=password]", staff[1])  # type: ignore[attr-defined]
    page.click("button[type=submit]")  # type: ignore[attr-defined]
    page.wait_for_url(live_server + "/")  # type: ignore[attr-defined]
    assert "kim.official" in page.inner_text("header")  # type: ignore[attr-defined]
    page.screenshot(path=str(ARTIFACTS / "landing-staff.png"), full_page=True)  # type: ignore[attr-defined]


def _sign_in(page: object, base: str, staff: tuple[str, str], then: str) -> None:
    page.goto(f"{base}/login?next={then}")  # type: ignore[attr-defined]
    page.fill("input[name=name]", staff[0])  # type: ignore[attr-defined]
    page.fill("input[name=password]", staff[1])  # type: ignore[attr-defined]
    page.click("button[type=submit]")  # type: ignore[attr-defined]
    page.wait_for_url(base + then)  # type: ignore[attr-defined]


def test_manual_entry_and_sources_pages(
    app: App, live_server: str, page: object, staff: tuple[str, str]
) -> None:
    ds = create_sensor(app, "Gangnam noise", observed_property="Noise")
    page.goto(live_server + "/hub/manual")  # type: ignore[attr-defined]
    assert "/login" in page.url  # type: ignore[attr-defined]  # staff only: sent to sign in
    _sign_in(page, live_server, staff, "/hub/manual")
    page.select_option("select[name=datastream_id]", str(ds))  # type: ignore[attr-defined]
    page.fill("input[name=value]", "not a number")  # type: ignore[attr-defined]
    page.click("button[type=submit]")  # type: ignore[attr-defined]
    assert "number" in page.inner_text("[role=alert]")  # type: ignore[attr-defined]
    page.screenshot(path=str(ARTIFACTS / "manual-error.png"), full_page=True)  # type: ignore[attr-defined]
    page.fill("input[name=value]", "63.5")  # type: ignore[attr-defined]
    page.click("button[type=submit]")  # type: ignore[attr-defined]
    assert "Stored" in page.inner_text("[role=status]")  # type: ignore[attr-defined]
    page.screenshot(path=str(ARTIFACTS / "manual-stored.png"), full_page=True)  # type: ignore[attr-defined]
    with app.engine.connect() as conn:
        rows = conn.execute(
            select(observations.c.result_number).where(observations.c.datastream_id == ds)
        ).all()
    assert [r[0] for r in rows] == [63.5]
    page.goto(live_server + "/hub/sources")  # type: ignore[attr-defined]
    assert page.locator("h1").count() == 1  # type: ignore[attr-defined]
    page.screenshot(path=str(ARTIFACTS / "sources.png"), full_page=True)  # type: ignore[attr-defined]


def test_add_a_source_through_the_generated_form(
    app: App, live_server: str, page: object, staff: tuple[str, str], tmp_path: Path
) -> None:
    """Add a file source: pick the kind, fill the form made from its schema, see the check refuse
    a wrong path (typed values kept), then succeed and find the source listed; desktop and phone."""
    imports = tmp_path / "imports"
    imports.mkdir()
    (imports / "air.csv").write_bytes(AIR_CSV.read_bytes())
    attach(app, file_roots=[imports])  # the runner the pages use (not started: the source is saved, not run)
    ids = make_datastreams(app.engine, ["PM10"], thing="종로구 측정소")
    mapping = (
        '{"time_field": "날짜", "key_fields": ["측정소명"], "unmapped": "skip",\n'
        f' "fields": [{{"source": "미세먼지", "key": "종로구", "datastream_id": {ids["PM10"]}}}]}}'
    )
    _sign_in(page, live_server, staff, "/hub/sources")
    page.click("text=소스 추가")  # type: ignore[attr-defined]
    page.wait_for_url(live_server + "/hub/sources/new")  # type: ignore[attr-defined]
    page.screenshot(path=str(ARTIFACTS / "source-kinds.png"), full_page=True)  # type: ignore[attr-defined]
    page.click("a[href='/hub/sources/new/file']")  # type: ignore[attr-defined]
    page.fill("input[name=name]", "종로구 대기질 파일")  # type: ignore[attr-defined]
    page.fill("input[name='config.path']", str(imports / "missing.csv"))  # type: ignore[attr-defined]
    page.fill("textarea[name='config.mapping']", mapping)  # type: ignore[attr-defined]
    page.screenshot(path=str(ARTIFACTS / "source-form.png"), full_page=True)  # type: ignore[attr-defined]
    page.click("button[type=submit]:has-text('추가')")  # type: ignore[attr-defined]
    assert "no file" in page.inner_text("[role=alert]")  # type: ignore[attr-defined]
    assert page.input_value("textarea[name='config.mapping']") == mapping  # type: ignore[attr-defined]
    page.screenshot(path=str(ARTIFACTS / "source-form-refused.png"), full_page=True)  # type: ignore[attr-defined]
    page.fill("input[name='config.path']", str(imports / "air.csv"))  # type: ignore[attr-defined]
    page.click("button[type=submit]:has-text('추가')")  # type: ignore[attr-defined]
    page.wait_for_url(live_server + "/hub/sources")  # type: ignore[attr-defined]
    assert "종로구 대기질 파일" in page.inner_text("table.sources")  # type: ignore[attr-defined]
    page.screenshot(path=str(ARTIFACTS / "sources-added.png"), full_page=True)  # type: ignore[attr-defined]
    page.set_viewport_size({"width": 390, "height": 844})  # type: ignore[attr-defined]
    _fits_phone(page, "sources-phone")
    page.click("table.sources a:has-text('종로구 대기질 파일')")  # type: ignore[attr-defined]  # its edit page
    assert page.input_value("input[name='config.path']") == str(imports / "air.csv")  # type: ignore[attr-defined]
    _fits_phone(page, "source-edit-phone")
    page.goto(live_server + "/hub/sources/new/http_api")  # type: ignore[attr-defined]
    _fits_phone(page, "source-form-phone")  # its help holds a long URL, which must wrap


def _fits_phone(page: object, shot: str) -> None:
    """Nothing sticks out sideways on a 390-pixel phone (wide tables scroll in their own box)."""
    wide = page.evaluate("document.documentElement.scrollWidth")  # type: ignore[attr-defined]
    assert wide <= 390, f"{shot}: the page is {wide}px wide on a 390px phone"
    page.screenshot(path=str(ARTIFACTS / f"{shot}.png"), full_page=True)  # type: ignore[attr-defined]
