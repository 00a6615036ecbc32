"""The web assembly: the OpenAPI document, the landing page and its JSON twin, error bodies."""

from __future__ import annotations

import re
import subprocess
import sys

from fastapi.testclient import TestClient


def test_openapi_document_lists_the_routes(client: TestClient) -> None:
    spec = client.get("/openapi.json").json()
    for path in (
        "/api/hub/latest",
        "/api/hub/aggregates",
        "/api/geo/districts",
        "/api/hub/sources",
        "/sta/v1.1",
    ):
        assert path in spec["paths"], path
    assert client.get("/redoc").status_code == 404  # one documentation page, and it needs no CDN:


def test_api_docs_load_only_our_own_assets(client: TestClient) -> None:
    page = client.get("/docs")
    assert page.status_code == 200
    assets = re.findall(r'(?:src|href)="([^"]+)"', page.text)
    assert assets and all(a.startswith("/static/vendor/swagger-ui/") for a in assets), assets
    assert "https://" not in page.text and "http://" not in page.text
    for asset in assets:  # installed by the set-up step (scripts/static-assets.sh)
        assert client.get(asset).status_code == 200, asset


def test_landing_page_shows_what_its_json_twin_says(client: TestClient, staff: tuple[str, str]) -> None:
    anonymous = client.get("/api/overview").json()
    assert anonymous["districts"] == 25 and anonymous["sources"] is None  # source counts are staff-only
    page = client.get("/").text
    for key in ("districts", "things", "datastreams"):
        assert f'<div class="num">{anonymous[key]}</div>' in page
    official = client.get("/api/overview", auth=staff).json()
    assert official["sources"] == 0


def test_unknown_routes_and_bad_input_get_error_bodies_not_tracebacks(client: TestClient) -> None:
    body = client.get("/api/nowhere").json()
    assert body == {"error": {"code": "not_found", "message": "Not Found", "details": None}}
    r = client.get("/api/hub/aggregates", params={"observed_property": "PM10", "interval": "week"})
    assert r.status_code == 400 and r.json()["error"]["code"] == "validation_failed"
    r = client.get("/sta/v1.1/Things", params={"$filter": "name eq"})
    assert r.status_code == 400 and r.json()["type"] == "error" and "$filter" in r.json()["message"]


def test_serving_processes_freeze_start_up_and_collect_young_objects_less_often() -> None:
    # In a child process: the settings are process-wide, and the test process keeps CPython's own.
    script = (
        "import gc; from citydesk.web.heap import YOUNG_THRESHOLD, tune_for_serving; tune_for_serving(); "
        "print(gc.get_threshold()[0] == YOUNG_THRESHOLD, gc.get_freeze_count() > 1000)"
    )
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["True", "True"]
