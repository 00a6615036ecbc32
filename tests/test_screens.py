"""The screens' page routes (``citydesk.status.screens``): section pages, the kiosk, the layout editor.

Each page is a shell whose figures come from the sections API (checked here by ingesting a value
and finding it in the API but not in the page), the device/perspective comes from the URL or the
role, the kiosk is anonymous whoever asks, and only staff with ``layouts.manage`` reach the editor.
What the shells draw is tested in Chromium (``test_screens_browser``).
"""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime

import pytest
from fastapi.testclient import TestClient

from citydesk.auth import Role, create_user
from citydesk.hub.records import ObservationIn
from citydesk.status.screens import department_sections
from citydesk.status.sections.config import sections
from citydesk.status.sections.layouts import defaults
from citydesk.web.app import App
from tests.conftest import STAFF_PASSWORD, create_sensor


def user(app: App, name: str, role: Role, department: str | None = None) -> tuple[str, str]:
    create_user(app.engine, name, role, STAFF_PASSWORD, now=datetime.now(UTC), department=department)
    return (name, STAFF_PASSWORD)


def shell(html: str) -> dict[str, str]:
    """The data-* attributes of the page's screen element (what the script starts from)."""
    tag = re.search(r'<div class="(?:screen|kiosk|lay|dash)"[^>]*>', html, re.S)
    assert tag, "no screen element"
    return dict(re.findall(r'data-([a-z-]+)="([^"]*)"', tag.group(0)))


def test_a_section_page_is_a_shell_its_figures_come_from_the_api(app: App, client: TestClient) -> None:
    ds = create_sensor(app, "S-DoT Gangnam")
    app.ingest.ingest([ObservationIn(ds, 123.4, phenomenon_time=datetime.now(UTC))], channel="test")
    api = client.get("/api/status/sections/air").json()
    assert any(w["kind"] == "figure" and w["value"] == pytest.approx(123.4) for w in api["widgets"])
    page = client.get("/status/air")
    assert page.status_code == 200
    assert shell(page.text)["section"] == "air"
    assert "123.4" not in page.text and "123,4" not in page.text
    assert '<script type="module" src="/static/section.js">' in page.text


def test_the_device_comes_from_the_url_else_from_the_role(app: App, client: TestClient) -> None:
    anonymous = shell(client.get("/status/air").text)
    assert (anonymous["view"], anonymous["role"]) == ("", "anonymous")
    assert shell(client.get("/status/air?view=wall").text)["view"] == "wall"
    mayor = user(app, "oh.mayor", Role.MAYOR)
    assert shell(client.get("/status/transport", auth=mayor).text)["role"] == "mayor"
    assert client.get("/status/air?view=cinema").status_code == 400
    assert client.get("/status/Air%20Quality").status_code == 400
    assert client.get("/status/opinion").status_code == 404  # a section this city does not have (yet)


def test_an_officials_department_sections_come_first(app: App, client: TestClient) -> None:
    climate = user(app, "lee.climate", Role.DEPARTMENT_STAFF, department="기후환경본부")
    assert shell(client.get("/status/water", auth=climate).text)["mine"] == "air"
    economy = user(app, "park.economy", Role.OFFICIAL, department="경제정책실")
    assert shell(client.get("/status/water", auth=economy).text)["mine"] == "prices,finances"
    nobody = user(app, "choi.nowhere", Role.OFFICIAL)
    assert shell(client.get("/status/water", auth=nobody).text)["mine"] == ""
    # The main page orders its section bar and key figures the same way.
    assert shell(client.get("/dashboard", auth=economy).text)["mine"] == "prices,finances"
    assert shell(client.get("/dashboard?view=wall").text)["view"] == "wall"
    assert client.get("/dashboard?view=cinema").status_code == 400


def test_every_department_mapping_names_known_sections() -> None:
    known = set(sections())
    assert department_sections(), "layouts.toml has no [departments]"
    for department, ids in department_sections().items():
        assert ids and set(ids) <= known, department


def test_the_kiosk_is_anonymous_even_for_signed_in_staff(
    app: App, client: TestClient, staff: tuple[str, str]
) -> None:
    anonymous = client.get("/kiosk")
    signed_in = client.get("/kiosk", auth=staff)
    assert anonymous.status_code == signed_in.status_code == 200
    assert signed_in.text == anonymous.text  # nothing of the viewer reaches the page
    assert staff[0] not in signed_in.text
    assert 'class="top"' not in signed_in.text  # no navigation chrome
    assert '<script type="module" src="/static/kiosk.js">' in signed_in.text


def test_the_layout_editor_needs_layouts_manage(app: App, client: TestClient, staff: tuple[str, str]) -> None:
    signed_out = client.get("/status/layouts/kiosk", follow_redirects=False)
    assert signed_out.status_code == 303
    assert signed_out.headers["location"] == "/login?next=/status/layouts/kiosk"
    clerk = user(app, "jung.clerk", Role.DEPARTMENT_STAFF, department="물순환안전국")
    assert client.get("/status/layouts/kiosk", auth=clerk).status_code == 403
    assert client.get("/status/layouts/cinema", auth=staff).status_code == 400
    page = client.get("/status/layouts/kiosk", auth=staff)
    assert page.status_code == 200
    assert shell(page.text)["perspective"] == "kiosk"
    embedded = re.search(
        r'<script type="application/json" id="default-layout">(.*?)</script>', page.text, re.S
    )
    assert embedded
    default = defaults()["kiosk"].model_dump(mode="json", exclude_none=True)
    assert json.loads(embedded.group(1)) == default
    for perspective in ("mayor", "official", "citizen"):
        assert client.get(f"/status/layouts/{perspective}", auth=staff).status_code == 200
