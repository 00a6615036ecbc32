"""The source pages: forms generated from each kind's config schema, and what submitting them does.

First ``forms`` alone (schema → fields → text → values, errors back onto fields), then the pages on
SQLite and PostgreSQL with a started runner, the far side real (files, Mosquitto, a PostgreSQL
database playing the other system) except HTTP, whose transport is the recorded Seoul API.
"""

from __future__ import annotations

import html
import json
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from enum import StrEnum
from html.parser import HTMLParser
from pathlib import Path
from typing import Literal

import httpx
import pytest
from fastapi.testclient import TestClient
from pydantic import AnyHttpUrl, BaseModel, ConfigDict, Field, ValidationError
from sqlalchemy import Column, Integer, MetaData, Numeric, String, Table, create_engine, select

from citydesk.auth import create_user
from citydesk.hub.connectors.base import MASK, ConnectorConfig, Secret
from citydesk.hub.connectors.registry import ConnectorRegistry
from citydesk.hub.connectors.testing import make_datastreams
from citydesk.hub.models import source_status
from citydesk.hub.sources import (
    RunOutcome,
    SourceIn,
    SourcePatch,
    SourceRunner,
    attach,
    get_source,
    record_run,
)
from citydesk.hub.sources.editor import edit_form, new_form
from citydesk.web.app import App, create_asgi
from citydesk.web.forms import REQUIRED, FormField, place_errors, read, schema_fields, texts
from tests.conftest import port_open
from tests.test_sources import AIR_CSV, OFFICIAL, PW, STAFF, air_api, air_mapping, api_source, wait_for

KINDS = ConnectorRegistry().kinds()
HTML_OF = {
    "password": ("input", "password"),
    "select": ("select", None),
    "checkbox": ("input", "checkbox"),
    "number": ("input", "number"),
    "text": ("input", "text"),
    "lines": ("textarea", None),
    "json": ("textarea", None),
}
"""The element (and input type) the template must render for each widget."""


# -- a form as a test reads it --------------------------------------------------------------------
class Page(HTMLParser):
    """A rendered source form: its inputs (value or text, attributes), errors by input id, alerts."""

    def __init__(self, text: str) -> None:
        super().__init__()
        self.inputs: dict[str, dict[str, str]] = {}
        self.errors: dict[str, str] = {}
        self.alert = ""
        self._capture: tuple[str, str, str] | None = None  # (end tag, where, key)
        self._select = ""
        self._selected = False
        self._in_form = False
        self.feed(text)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        if tag == "form":
            self._in_form = a.get("class") == "source-form"
        elif tag in ("input", "select", "textarea") and a.get("name") and self._in_form:
            self.inputs[a["name"]] = {"tag": tag, "value": a.get("value", ""), **a}
            if tag == "textarea":
                self._capture = ("textarea", "input", a["name"])
            self._select = a["name"] if tag == "select" else ""
        elif tag == "option" and self._select and "selected" in a:
            self.inputs[self._select]["value"] = a.get("value", "")
            self._selected = "value" not in a  # else the text is the value
        elif a.get("class") == "field-error":
            self._capture = (tag, "error", a["id"].removesuffix("-error"))
        elif a.get("role") == "alert":
            self._capture = (tag, "alert", "")

    def handle_data(self, data: str) -> None:
        if self._selected:
            self.inputs[self._select]["value"] = data
            self._selected = False
        if self._capture is None:
            return
        _, where, key = self._capture
        if where == "input":
            self.inputs[key]["value"] += data
        elif where == "error":
            self.errors[key] = self.errors.get(key, "") + data
        else:
            self.alert += data

    def handle_endtag(self, tag: str) -> None:
        if self._capture is not None and self._capture[0] == tag:
            self._capture = None
        if tag == "select":
            self._select = ""


def browser_form(page: Page, **changes: str | None) -> dict[str, str]:
    """What a browser submits for this form, with ``changes`` (``config__url`` is ``config.url``;
    None leaves an input out, as an unticked box is)."""
    data = {
        name: attrs.get("value") or ("on" if attrs.get("type") == "checkbox" else "")
        for name, attrs in page.inputs.items()
        if attrs.get("type") != "checkbox" or "checked" in attrs
    }
    for key, value in changes.items():
        if value is None:
            data.pop(key.replace("__", "."), None)
        else:
            data[key.replace("__", ".")] = value
    return data


# -- forms: schema → fields → text → values ----------------------------------------------------------
class Row(BaseModel):
    model_config = ConfigDict(extra="forbid")

    source: str = Field(description="the column")
    datastream_id: int = Field(gt=0)
    scale: float = 1.0


class Colour(StrEnum):
    RED = "red"
    BLUE = "blue"


class Everything(ConnectorConfig):
    """One field of every shape a connector config has, or may have."""

    url: AnyHttpUrl
    title: str = Field(min_length=2, max_length=20)
    note: str | None = None
    count: int = Field(default=3, ge=1, le=10)
    ratio: float = Field(default=0.5, gt=0, le=1)
    fast: bool = True
    mode: Literal["a", "b"] = "a"
    colour: Colour | None = Colour.RED
    tags: list[str] = Field(default_factory=list)
    ids: list[int] = Field(default_factory=list)
    token: Secret | None = None
    headers: dict[str, str] = Field(default_factory=dict)
    one: Row | None = None
    rows: list[Row] = Field(min_length=1)
    start: int | float | str | None = None


STRINGS = {
    "en": {"fields": {"title": {"label": "Title", "help": "What it is called"}}},
    "ko": {"fields": {"title": {"label": "제목"}}},
}


def fields() -> list[FormField]:
    return schema_fields(Everything.model_json_schema(), STRINGS, prefix="config.")


def test_each_schema_shape_becomes_its_widget() -> None:
    by_name = {f.name: f for f in fields()}
    assert list(by_name) == list(Everything.model_fields)
    assert {n: f.widget for n, f in by_name.items()} == {
        "url": "text",
        "title": "text",
        "note": "text",
        "count": "number",
        "ratio": "number",
        "fast": "checkbox",
        "mode": "select",
        "colour": "select",
        "tags": "lines",
        "ids": "lines",
        "token": "password",
        "headers": "json",
        "one": "json",
        "rows": "json",
        "start": "text",
    }
    url, title, count, ratio = by_name["url"], by_name["title"], by_name["count"], by_name["ratio"]
    assert (url.input_type, url.required, url.key, url.id) == ("url", True, "config.url", "config-url")
    assert (title.label.ko, title.label.en, title.help.ko, title.help.en) == (
        "제목",
        "Title",
        "What it is called",  # no Korean help: the English one
        "What it is called",
    )
    assert (title.min_length, title.max_length, by_name["note"].label.en) == (2, 20, "Note")  # schema title
    assert (count.minimum, count.maximum, count.step, count.default) == (1, 10, "1", 3)
    assert (ratio.minimum, ratio.maximum, ratio.step) == (0, 1, "any")  # gt 0: the model says no to 0
    assert by_name["colour"].options == ("red", "blue") and by_name["colour"].nullable
    assert by_name["start"].types == ("integer", "number", "string") and by_name["start"].nullable
    assert by_name["rows"].example == '[\n  {\n    "source": "<source>",\n    "datastream_id": 1\n  }\n]'
    assert by_name["headers"].example == '{\n  "<name>": "<value>"\n}'
    members = {m.name: m for m in by_name["rows"].members}
    assert (members["source"].required, members["source"].description, members["scale"].default) == (
        True,
        "the column",
        "1.0",
    )
    assert members["datastream_id"].type == "integer" and by_name["one"].members[0].name == "source"


def test_values_round_trip_through_the_form_and_secrets_never_show() -> None:
    config = Everything(
        url=AnyHttpUrl("https://data.seoul.go.kr/api"),
        title="대기질",
        note="점검 중",
        count=7,
        fast=False,
        colour=Colour.BLUE,
        tags=["미세먼지", "PM10"],
        ids=[3, 5],
        token="s3cret",  # type: ignore[arg-type]
        headers={"Accept": "application/json"},
        rows=[Row(source="PM10", datastream_id=17, scale=0.1)],
        start=42,
    )
    shown = texts(fields(), config.shown())
    assert "config.token" not in shown and "s3cret" not in str(shown)
    assert (shown["config.tags"], shown["config.fast"], shown["config.one"]) == ("미세먼지\nPM10", "", "")
    submitted = {k: v for k, v in shown.items() if v}  # an unticked box is not sent at all
    values, errors = read(fields(), submitted)
    assert errors == {} and "token" not in values and values["one"] is None and values["start"] == 42
    assert Everything.model_validate(values).stored() == config.stored() | {"token": None}
    kept, _ = read(fields(), submitted, keep_secrets=True)  # editing: empty keeps the stored one
    assert kept["token"] == MASK
    typed, _ = read(fields(), submitted | {"config.token": "new", "config.start": "4.5"})
    assert (typed["token"], typed["start"]) == ("new", 4.5)
    assert read(fields(), submitted | {"config.start": "id-17"})[0]["start"] == "id-17"
    assert texts(fields(), {})["config.count"] == "3"  # a new form shows the defaults


def test_bad_json_and_model_errors_land_on_their_fields() -> None:
    _, errors = read(fields(), {"config.rows": '[{"source": "PM10",}]', "config.title": " "})
    assert errors == {
        "config.rows": [
            "JSON 형식이 아닙니다. Not valid JSON: Expecting property name enclosed in double quotes "
            "(line 1, column 20)."
        ],
        "config.url": [REQUIRED],  # the form says what is required, whatever the model takes
        "config.title": [REQUIRED],
    }
    with pytest.raises(ValidationError) as refused:
        Everything.model_validate(
            {"url": "ftp://x", "rows": [{"source": "PM10", "datastream_id": 0}], "count": "11"}
        )
    placed, general = place_errors(refused.value.errors(), fields())
    assert placed["config.title"] == [REQUIRED]
    assert placed["config.rows"] == ["0.datastream_id: Input should be greater than 0"]
    assert placed["config.count"] == ["Input should be less than or equal to 10"]
    assert general == [] and "config.url" in placed
    assert place_errors([{"loc": [], "msg": "Value error, layout needs devices", "type": "value_error"}], [])[
        1
    ] == ["layout needs devices"]


# -- the pages --------------------------------------------------------------------------------------
@pytest.fixture
def people(app: App) -> None:
    now = datetime(2025, 3, 1, tzinfo=UTC)
    create_user(app.engine, OFFICIAL[0], "official", PW, now=now)
    create_user(app.engine, STAFF[0], "department_staff", PW, now=now)


@pytest.fixture
def imports(tmp_path: Path) -> Path:
    folder = tmp_path / "imports"
    folder.mkdir()
    (folder / "air.csv").write_bytes(AIR_CSV.read_bytes())
    return folder


@pytest.fixture
def site(app: App, people: None, imports: Path) -> Iterator[tuple[TestClient, SourceRunner]]:
    """The app with its runner started (files from ``imports``, HTTP answered by the recorded API)."""
    runner = attach(app, http_factory=lambda: httpx.AsyncClient(transport=air_api()), file_roots=[imports])
    with TestClient(create_asgi(app)) as client:
        yield client, runner


def until(check: Callable[[], bool], timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


@pytest.mark.parametrize("kind", KINDS)
def test_every_kind_gets_a_form_with_every_field_of_its_schema(
    module_client: TestClient, module_staff: tuple[str, str], kind: str
) -> None:
    described = module_client.get(f"/api/hub/connectors/{kind}", auth=module_staff).json()
    answer = module_client.get(f"/hub/sources/new/{kind}", auth=module_staff)
    assert answer.status_code == 200
    page = Page(answer.text)
    generated = schema_fields(described["schema"], described["strings"], prefix="config.")
    assert [f.name for f in generated] == list(described["schema"]["properties"])
    for f in generated:
        tag, input_type = HTML_OF[f.widget]
        if f.widget == "text":  # a string's format picks the element: url, email, multiline
            tag, input_type = ("textarea", None) if f.input_type == "multiline" else ("input", f.input_type)
        found = page.inputs[f.key]
        assert (found["tag"], found.get("type") if input_type else None) == (tag, input_type), f.key
        shown = (
            f.label.ko if f.label.ko == f.label.en else f'{f.label.ko} <span lang="en">{f.label.en}</span>'
        )
        assert f'<label for="{f.id}">{shown}' in html.unescape(answer.text) or f.widget == "checkbox"
        assert described["strings"]["ko"]["fields"][f.name]["label"] == f.label.ko
        if f.widget == "number" and f.maximum is not None:
            assert float(found["max"]) == f.maximum
        if f.widget == "password":
            assert "value" not in found or found["value"] == ""
    own = {"name", "disclosure", "enabled"} | ({"interval_seconds"} if described["mode"] == "poll" else set())
    assert {n for n in page.inputs if not n.startswith("config.")} == own


def test_the_widgets_of_the_built_in_kinds() -> None:
    registry = ConnectorRegistry()
    widgets = {
        (kind, f.name): f
        for kind in KINDS
        for f in schema_fields(registry.describe(kind)["schema"], registry.strings(kind))
    }
    expected = {
        ("http_api", "api_key"): "password",
        ("http_api", "headers"): "json",
        ("http_api", "method"): "select",
        ("http_api", "timeout_seconds"): "number",
        ("http_api", "mapping"): "json",
        ("file", "only_if_changed"): "checkbox",
        ("file", "records_path"): "text",
        ("mqtt", "topics"): "lines",
        ("mqtt", "devices"): "json",
        ("mqtt", "password"): "password",
        ("manual", "datastream_ids"): "lines",
        ("sql_db", "cursor_start"): "text",
        ("sql_db", "password"): "password",
    }
    assert {key: widgets[key].widget for key in expected} == expected
    consumers = widgets["mqtt", "consumers"]
    assert (consumers.minimum, consumers.maximum, consumers.label.ko) == (1, 16, "소비자 수")
    assert '"fields": [' in widgets["file", "mapping"].example
    assert widgets["sql_db", "query"].input_type == "multiline"  # SQL gets a textarea


def test_a_source_s_own_fields_are_labelled_in_both_languages() -> None:
    registry = ConnectorRegistry()
    adding = new_form(registry.describe("file"), registry.config_model("file"))
    editing = edit_form(registry.describe("file"), registry.config_model("file"), {"config": {}})
    own = {f.name: f for f in adding.common + editing.common}
    assert set(own) == {"name", "interval_seconds", "disclosure", "enabled", "reset_cursor"}
    for f in own.values():
        assert f.label.ko != f.label.en and f.help.ko != f.help.en, f.name


def test_the_kind_picker_and_forms_are_twins_of_the_connector_api(
    module_client: TestClient, module_staff: tuple[str, str]
) -> None:
    listing = module_client.get("/api/hub/connectors", auth=module_staff).json()["connectors"]
    page = module_client.get("/hub/sources/new", auth=module_staff).text
    for c in listing:
        assert f'href="/hub/sources/new/{c["kind"]}"' in page and c["strings"]["ko"]["title"] in page
        assert module_client.get(f"/api/hub/connectors/{c['kind']}", auth=module_staff).json() == c
    assert module_client.get("/api/hub/connectors/ftp", auth=module_staff).status_code == 404
    unknown = module_client.get("/hub/sources/new/ftp", auth=module_staff)
    assert unknown.status_code == 404 and "no connector kind 'ftp'" in html.unescape(unknown.text)


def test_add_manual_and_file_sources_through_the_form(
    app: App, site: tuple[TestClient, SourceRunner], imports: Path
) -> None:
    client, runner = site
    ds = make_datastreams(app.engine, ["소음", "진동"])
    form = browser_form(
        Page(client.get("/hub/sources/new/manual", auth=OFFICIAL).text),
        name=" 현장 수기 입력 ",
        config__datastream_ids=f"{ds['소음']}\n\n{ds['진동']}\n",
    )
    added = client.post("/hub/sources/new/manual", data=form, auth=OFFICIAL, follow_redirects=False)
    assert (added.status_code, added.headers["location"]) == (303, "/hub/sources")

    page = Page(client.get("/hub/sources/new/file", auth=OFFICIAL).text)
    assert (page.inputs["interval_seconds"]["value"], page.inputs["disclosure"]["value"]) == (
        "300",
        "internal",
    )
    mapping = air_mapping(app)
    form = browser_form(
        page,
        name="종로구 대기질",
        interval_seconds="3600",
        disclosure="public",
        config__path=str(imports / "air.csv"),
        config__mapping=json.dumps(mapping, ensure_ascii=False),
    )
    added = client.post("/hub/sources/new/file", data=form, auth=OFFICIAL, follow_redirects=False)
    assert added.status_code == 303, added.text

    listing = {s["name"]: s for s in client.get("/api/hub/sources", auth=STAFF).json()["sources"]}
    manual, air = listing["현장 수기 입력"], listing["종로구 대기질"]
    assert (
        manual["config"] == {"datastream_ids": [ds["소음"], ds["진동"]]}
        and manual["interval_seconds"] is None
    )
    assert (air["interval_seconds"], air["disclosure"], air["enabled"]) == (3600, "public", True)
    expected = ConnectorRegistry().parse_config(
        "file", {"path": str(imports / "air.csv"), "mapping": mapping}
    )
    assert get_source(app.engine, air["id"]).config == expected.stored()  # what the API would store
    html = client.get("/hub/sources", auth=OFFICIAL).text
    assert "현장 수기 입력" in html and f'href="/hub/sources/{air["id"]}/edit"' in html
    # The runner took it at once: a poll source runs, a push source (manual) has nothing to run.
    assert runner.running() == [air["id"]]
    until(lambda: get_source(app.engine, air["id"]).status.records_in == 122)


def test_refusals_keep_what_was_typed_except_secrets(
    app: App, site: tuple[TestClient, SourceRunner], imports: Path
) -> None:
    client, _ = site
    page = Page(client.get("/hub/sources/new/http_api", auth=OFFICIAL).text)
    bad_json = '{"time_field": "MSRDT_DE", "fields": [}'
    typed = browser_form(
        page,
        name="서울 대기질",
        interval_seconds="3",
        config__url="ftp://openapi.seoul.go.kr",
        config__api_key="6d4b-secret",
        config__timeout_seconds="900",
        config__mapping=bad_json,
    )
    refused = client.post("/hub/sources/new/http_api", data=typed, auth=OFFICIAL)
    assert refused.status_code == 422 and "6d4b-secret" not in refused.text
    again = Page(refused.text)
    assert set(again.errors) == {"interval_seconds", "config-url", "config-timeout_seconds", "config-mapping"}
    assert again.errors["config-url"] == "the URL must start with http:// or https://"
    assert again.errors["config-mapping"].startswith("JSON 형식이 아닙니다. Not valid JSON: Expecting value")
    assert again.errors["interval_seconds"] == "Input should be greater than or equal to 5"
    assert again.inputs["config.mapping"]["value"] == bad_json
    assert (again.inputs["config.url"]["value"], again.inputs["interval_seconds"]["value"]) == (
        "ftp://openapi.seoul.go.kr",
        "3",
    )
    assert again.inputs["config.api_key"]["value"] == "" and "type it again" in refused.text
    assert 'aria-invalid="true"' in refused.text and "Please correct the marked fields" in again.alert

    # The check runs only on a valid form, and what it says is shown, with the form as typed.
    file_form = browser_form(
        Page(client.get("/hub/sources/new/file", auth=OFFICIAL).text),
        name="없는 파일",
        config__path=str(imports / "nope.csv"),
        config__mapping='{"fields": [{"source": "PM10", "datastream_id": 1}]}',
    )
    failed = client.post("/hub/sources/new/file", data=file_form, auth=OFFICIAL)
    assert failed.status_code == 422
    assert f"the source failed its check: no file {imports / 'nope.csv'}" in Page(failed.text).alert
    assert Page(failed.text).inputs["name"]["value"] == "없는 파일"

    taken = client.post("/api/hub/sources", json={**api_source(app), "name": "taken"}, auth=OFFICIAL)
    assert taken.status_code == 201
    fixed = file_form | {"config.path": str(imports / "air.csv"), "name": "taken"}
    duplicate = client.post("/hub/sources/new/file", data=fixed, auth=OFFICIAL)
    assert duplicate.status_code == 422
    assert (
        Page(duplicate.text).errors["name"] == "이 이름의 소스가 이미 있습니다. Another source has this name."
    )
    assert [s["name"] for s in client.get("/api/hub/sources", auth=STAFF).json()["sources"]] == ["taken"]


def test_edit_switch_and_delete_through_the_pages_and_the_runner_follows(
    app: App, site: tuple[TestClient, SourceRunner]
) -> None:
    client, runner = site
    created = client.post("/api/hub/sources", json=api_source(app), auth=OFFICIAL).json()
    sid = created["id"]
    twin = client.get(f"/api/hub/sources/{sid}", auth=STAFF).json()
    edit = client.get(f"/hub/sources/{sid}/edit", auth=OFFICIAL)
    assert edit.status_code == 200 and "6d4b-secret" not in edit.text and MASK not in edit.text
    page = Page(edit.text)
    assert page.inputs["config.url"]["value"] == twin["config"]["url"]
    assert page.inputs["name"]["value"] == twin["name"] and page.inputs["interval_seconds"]["value"] == "3600"
    assert page.inputs["config.api_key"]["placeholder"].startswith("저장됨")
    assert page.inputs["config.api_key"].get("required") is None
    assert "enabled" not in page.inputs and page.inputs["reset_cursor"]["type"] == "checkbox"
    until(lambda: get_source(app.engine, sid).status.records_in == 1)  # the started runner polled it
    first_task = runner._tasks[sid]

    # Empty secret: keep it. A changed config is checked, saved, and the running task restarted.
    form = browser_form(page, interval_seconds="600", config__timeout_seconds="5", reset_cursor="on")
    saved = client.post(f"/hub/sources/{sid}/edit", data=form, auth=OFFICIAL, follow_redirects=False)
    assert (saved.status_code, saved.headers["location"]) == (303, "/hub/sources")
    stored = get_source(app.engine, sid)
    assert (stored.config["api_key"], stored.config["timeout_seconds"], stored.interval_seconds) == (
        "6d4b-secret",
        5,
        600,
    )
    assert runner.running() == [sid] and runner._tasks[sid] is not first_task
    new_key = browser_form(page, config__api_key="7e5c-new")
    assert client.post(f"/hub/sources/{sid}/edit", data=new_key, auth=OFFICIAL).status_code == 200
    assert get_source(app.engine, sid).config["api_key"] == "7e5c-new"
    bad = client.post(
        f"/hub/sources/{sid}/edit", data=browser_form(page, name="", config__url="x"), auth=OFFICIAL
    )
    assert bad.status_code == 422 and set(Page(bad.text).errors) == {"name", "config-url"}

    off = client.post(f"/hub/sources/{sid}/enabled", data={"enabled": "false"}, auth=OFFICIAL)
    assert off.status_code == 200 and runner.running() == []  # followed the redirect to the listing
    assert "(꺼짐 disabled)" in off.text and "켜기 Enable" in off.text
    client.post(f"/hub/sources/{sid}/enabled", data={"enabled": "true"}, auth=OFFICIAL)
    assert runner.running() == [sid] and get_source(app.engine, sid).enabled

    unconfirmed = client.post(f"/hub/sources/{sid}/delete", data={}, auth=OFFICIAL)
    assert unconfirmed.status_code == 422 and "Tick the box" in Page(unconfirmed.text).alert
    assert runner.running() == [sid]
    gone = client.post(f"/hub/sources/{sid}/delete", data={"confirm": "yes"}, auth=OFFICIAL)
    assert gone.status_code == 200 and gone.url.path == "/hub/sources" and runner.running() == []
    assert client.get(f"/api/hub/sources/{sid}", auth=STAFF).status_code == 404
    missing = client.get(f"/hub/sources/{sid}/edit", auth=OFFICIAL)
    assert missing.status_code == 404 and f"no source {sid}" in missing.text


def test_the_json_twins_patch_and_delete_also_go_through_the_runner(
    app: App, site: tuple[TestClient, SourceRunner], imports: Path
) -> None:
    client, runner = site
    body = {"name": "파일", "kind": "file", "interval_seconds": 3600}
    body["config"] = {"path": str(imports / "air.csv"), "mapping": air_mapping(app)}
    sid = client.post("/api/hub/sources", json=body, auth=OFFICIAL).json()["id"]
    task = runner._tasks[sid]
    assert client.patch(f"/api/hub/sources/{sid}", json={"name": "파일 2"}, auth=OFFICIAL).status_code == 200
    assert runner._tasks[sid] is not task  # renamed: restarted under its new name
    assert client.patch(f"/api/hub/sources/{sid}", json={"name": "  "}, auth=OFFICIAL).status_code == 400
    off = client.patch(f"/api/hub/sources/{sid}", json={"enabled": False}, auth=OFFICIAL)
    assert off.json()["enabled"] is False and runner.running() == []
    client.patch(f"/api/hub/sources/{sid}", json={"enabled": True}, auth=OFFICIAL)
    assert runner.running() == [sid]
    refused = client.patch(
        f"/api/hub/sources/{sid}", json={"config": body["config"] | {"path": "/etc/passwd"}}, auth=OFFICIAL
    )
    assert refused.status_code == 400 and "outside the import folder" in refused.json()["error"]["message"]
    assert client.delete(f"/api/hub/sources/{sid}", auth=OFFICIAL).status_code == 204
    assert (
        runner.running() == [] and client.delete(f"/api/hub/sources/{sid}", auth=OFFICIAL).status_code == 404
    )


def test_only_staff_who_manage_sources_see_and_use_the_forms(
    app: App, site: tuple[TestClient, SourceRunner]
) -> None:
    client, _ = site
    signed_out = client.get("/hub/sources/new/file", follow_redirects=False)
    assert (signed_out.status_code, signed_out.headers["location"]) == (
        303,
        "/login?next=/hub/sources/new/file",
    )
    posted = client.post("/hub/sources/3/delete", data={"confirm": "yes"}, follow_redirects=False)
    assert posted.headers["location"] == "/login?next=/hub/sources/3/edit"  # a page to come back to
    for path in ("/hub/sources/new", "/hub/sources/new/manual"):
        refused = client.get(path, auth=STAFF)
        assert refused.status_code == 403 and "권한이 없습니다" in refused.text
        assert "may not sources.manage" in refused.text
    form = {"name": "몰래", "disclosure": "internal"}
    assert client.post("/hub/sources/new/manual", data=form, auth=STAFF).status_code == 403
    sid = client.post("/api/hub/sources", json=api_source(app), auth=OFFICIAL).json()["id"]
    for path in (f"/hub/sources/{sid}/edit", f"/hub/sources/{sid}/delete", f"/hub/sources/{sid}/enabled"):
        assert client.post(path, data={"enabled": "false", "confirm": "yes"}, auth=STAFF).status_code == 403
    assert client.patch(f"/api/hub/sources/{sid}", json={"enabled": False}, auth=STAFF).status_code == 403
    assert client.delete(f"/api/hub/sources/{sid}", auth=STAFF).status_code == 403
    assert get_source(app.engine, sid).enabled
    listing = client.get("/hub/sources", auth=STAFF).text
    assert "/hub/sources/new" not in listing and "/edit" not in listing and "Disable" not in listing
    assert [s["name"] for s in client.get("/api/hub/sources", auth=STAFF).json()["sources"]] == [
        "서울 열린데이터 대기질"
    ]


@pytest.mark.mqtt
def test_an_mqtt_source_through_the_form_against_mosquitto(
    app: App, site: tuple[TestClient, SourceRunner]
) -> None:
    if not port_open(1883):
        pytest.skip("Mosquitto is not reachable on 127.0.0.1:1883")
    client, runner = site
    page = Page(client.get("/hub/sources/new/mqtt", auth=OFFICIAL).text)
    assert (
        page.inputs["config.url"]["value"] == "mqtt://127.0.0.1:1883"
        and "interval_seconds" not in page.inputs
    )
    topic = f"citydesk-test/{uuid.uuid4().hex[:10]}/v1.1/#"
    closed = browser_form(
        page,
        name="S-DoT",
        config__url="mqtt://127.0.0.1:1",
        config__topics=topic,
        config__password="hunter2",
        config__session_expiry_seconds="60",
    )
    refused = client.post("/hub/sources/new/mqtt", data=closed, auth=OFFICIAL)
    assert refused.status_code == 422 and "hunter2" not in refused.text
    assert "cannot reach the broker at 127.0.0.1:1" in Page(refused.text).alert
    assert Page(refused.text).inputs["config.topics"]["value"] == topic
    added = client.post(
        "/hub/sources/new/mqtt",
        data=closed | {"config.url": "mqtt://127.0.0.1:1883", "config.password": ""},
        auth=OFFICIAL,
        follow_redirects=False,
    )
    assert added.status_code == 303, added.text
    source = client.get("/api/hub/sources", auth=STAFF).json()["sources"][0]
    assert (source["config"]["topics"], source["mode"], source["interval_seconds"]) == (
        [topic],
        "stream",
        None,
    )
    until(lambda: get_source(app.engine, source["id"]).status.state == "streaming")
    assert runner.running() == [source["id"]]


OTHER = MetaData()
READINGS = Table(
    "readings",
    OTHER,
    Column("id", Integer, primary_key=True),
    Column("station", String(20)),
    Column("measured_at", String(19)),
    Column("pm10", Numeric(6, 1)),
)


@pytest.mark.postgres
@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_a_sql_source_through_the_form_reading_postgresql(
    app: App, site: tuple[TestClient, SourceRunner], pg_url: str
) -> None:
    other = create_engine(pg_url.replace("postgresql://", "postgresql+psycopg://"))
    OTHER.create_all(other)
    with other.begin() as conn:
        conn.execute(
            READINGS.insert(),
            [
                {"station": "종로구", "measured_at": f"2019-12-{d:02d} 00:00:00", "pm10": 30 + d}
                for d in range(1, 6)
            ],
        )
    other.dispose()
    client, _ = site
    ds = make_datastreams(app.engine, ["종로구 PM10"])["종로구 PM10"]
    form = browser_form(
        Page(client.get("/hub/sources/new/sql_db", auth=OFFICIAL).text),
        name="대기 측정망 DB",
        config__url=pg_url,
        config__password="not-shown-pw",
        config__query="SELECT id, measured_at, pm10 FROM readings",
        config__cursor_column="id",
        config__cursor_start="2",
        config__mapping=f'{{"time_field": "measured_at", "fields": [{{"source": "pm10", "datastream_id": {ds}}}]}}',
    )
    added = client.post("/hub/sources/new/sql_db", data=form, auth=OFFICIAL, follow_redirects=False)
    assert added.status_code == 303, added.text
    sid = client.get("/api/hub/sources", auth=STAFF).json()["sources"][0]["id"]
    stored = get_source(app.engine, sid).config
    assert (stored["password"], stored["cursor_start"], stored["batch_size"]) == ("not-shown-pw", 2, 1000)
    until(lambda: get_source(app.engine, sid).status.records_in == 3)  # rows after id 2
    edit = client.get(f"/hub/sources/{sid}/edit", auth=OFFICIAL).text
    assert "not-shown-pw" not in edit and Page(edit).inputs["config.cursor_start"]["value"] == "2"


@pytest.mark.anyio
async def test_other_workers_follow_changes_on_their_rescan(app: App, imports: Path) -> None:
    """A change made through one worker reaches a worker that runs the source within its rescan."""
    worker = SourceRunner(app, file_roots=[imports], rescan_seconds=0.05)
    elsewhere = SourceRunner(app, file_roots=[imports])  # the worker that served the request: not running it
    await worker.start()
    try:
        spec = SourceIn(
            name="파일",
            kind="file",
            interval_seconds=3600,
            config={"path": str(imports / "air.csv"), "mapping": air_mapping(app)},
        )
        source = await elsewhere.create(spec)
        await wait_for(lambda: worker.running() == [source.id])
        task = worker._tasks[source.id]
        await elsewhere.update(source.id, SourcePatch(config=source.config | {"only_if_changed": False}))
        await wait_for(lambda: worker._tasks.get(source.id) not in (None, task))
        await elsewhere.update(source.id, SourcePatch(enabled=False))
        await wait_for(lambda: worker.running() == [])
        await elsewhere.update(source.id, SourcePatch(enabled=True))
        await wait_for(lambda: worker.running() == [source.id])
        await elsewhere.delete(source.id)
        await wait_for(lambda: worker.running() == [])
    finally:
        await worker.stop()


def test_a_run_of_a_source_deleted_meanwhile_is_not_recorded(app: App) -> None:
    record_run(app.engine, 999, RunOutcome(stored=3), now=datetime(2025, 3, 1, tzinfo=UTC))
    with app.engine.connect() as conn:
        assert conn.execute(select(source_status)).first() is None
