"""The public mirror: ``citydesk publish`` copies the disclosable subset one way, and a public
instance (``PUBLIC_MODE=1``) serving it shows nothing internal or restricted on any route.

The internal instance holds public, internal and restricted data of every kind with marker
strings and values in every field; after publishing, a generic crawler walks every route of the
public instance (the OpenAPI paths with their parameters filled from list answers, every link of
every HTML page, every SensorThings link with ``$expand`` of every relation and ``$select``, the
live stream while both sides keep writing) and no marker, and no internal id, is found. Routes
added later are crawled without editing this file.
"""

from __future__ import annotations

import re
import threading
import time
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
from sqlalchemy import Engine, func, insert, select

from citydesk.auth import Principal, Role, create_user
from citydesk.auth.models import audit_log
from citydesk.auth.service import create_token
from citydesk.config import Settings
from citydesk.db import make_engine, upgrade
from citydesk.hub.catalog import MEASUREMENT
from citydesk.hub.models import (
    datastreams,
    observations,
    quarantine,
    rollup_daily,
    rollup_hourly,
    sources,
    things,
)
from citydesk.hub.records import ObservationIn
from citydesk.hub.sta import service as sta
from citydesk.mirror import last_published, publish_once
from citydesk.mirror.publish import layouts
from citydesk.status.models import alert_rules, command_history, commands, event_history, events
from citydesk.web.app import App, build_app, create_asgi
from tests.conftest import fresh_pg_database, migrated_engine, serving_asgi

INTERNAL = "SECRET-INTERNAL-7f3a"
RESTRICTED = "SECRET-RESTRICTED-2c9d"
STAFF = "SECRET-STAFF-5e1b"
MIXED = "SECRET-MIXED-8a4e"
INTERNAL_VALUE = 987654.321
RESTRICTED_VALUE = 876543.219
MARKERS = (INTERNAL, RESTRICTED, STAFF, MIXED, "987654.321", "876543.219", "127.01113", "37.61113")
"""Nothing the public instance answers may contain any of these."""
ADMIN = Principal.for_user(None, "fixture", Role.ADMIN)
T0 = datetime(2026, 11, 20, 3, 0, tzinfo=UTC)


# -- the internal world ----------------------------------------------------------------------------
@dataclass
class World:
    """Ids of what was created on the internal side, by whether it may cross."""

    public_ds: int = 0
    public_thing: int = 0
    hidden: dict[str, set[int]] = field(default_factory=lambda: defaultdict(set))
    """Entity set name → ids that must not be reachable on the public instance."""
    public_ids: dict[str, set[int]] = field(default_factory=lambda: defaultdict(set))


def _thing(
    app: App,
    name: str,
    level: str,
    *,
    thing_level: str | None = None,
    sensor_level: str | None = None,
    lon_lat: tuple[float, float] = (127.0473, 37.5172),
    marker: str = "",
) -> tuple[int, int]:
    """A Thing with a Location and a Datastream (Sensor, ObservedProperty) via SensorThings; returns
    (thing id, datastream id). Every text field carries ``marker``."""
    thing_props = {"disclosure": thing_level or level, "note": marker}
    _, thing = sta.post(
        app,
        ADMIN,
        "Things",
        {
            "name": f"{name} {marker}",
            "description": f"thing {marker}",
            "properties": thing_props,
            "Locations": [
                {
                    "name": f"{name} place {marker}",
                    "description": f"where {marker}",
                    "encodingType": "application/geo+json",
                    "location": {"type": "Point", "coordinates": list(lon_lat)},
                    "properties": {"disclosure": thing_level or level, "note": marker},
                }
            ],
            "Datastreams": [
                {
                    "name": f"{name} PM10 {marker}",
                    "description": f"stream {marker}",
                    "unitOfMeasurement": {
                        "name": f"unit {marker}",
                        "symbol": "u",
                        "definition": marker or "-",
                    },
                    "observationType": MEASUREMENT,
                    "properties": {"disclosure": level, "note": marker},
                    "Sensor": {
                        "name": f"sensor {marker}",
                        "description": f"sensor {marker}",
                        "encodingType": "text/plain",
                        "metadata": marker or "-",
                        "properties": {"disclosure": sensor_level or level, "note": marker},
                    },
                    "ObservedProperty": {
                        "name": "PM10",
                        "definition": f"urn:PM10{marker}",
                        "description": f"op {marker}",
                        "properties": {"disclosure": sensor_level or level, "note": marker},
                    },
                }
            ],
        },
    )
    with app.engine.connect() as conn:
        ds = conn.execute(select(datastreams.c.id).where(datastreams.c.thing_id == thing)).scalar_one()
    return thing, int(ds)


def _observe(app: App, ds: int, value: float, at: datetime, marker: str = "") -> None:
    app.ingest.ingest(
        [
            ObservationIn(
                ds,
                value,
                phenomenon_time=at,
                parameters={"note": marker} if marker else None,
                result_quality=marker or None,
            )
        ],
        channel="test",
    )


def _linked_ids(app: App, thing: int) -> dict[str, set[int]]:
    """Every entity id the Thing reaches (as the admin sees it), by entity set."""
    out: dict[str, set[int]] = defaultdict(set)
    out["Things"].add(thing)
    for rel in ("Locations", "HistoricalLocations", "Datastreams"):
        got = sta.request(app, ADMIN, "GET", f"Things({thing})/{rel}", None, "").body
        out[rel] |= {e["@iot.id"] for e in got["value"]}
    for ds in list(out["Datastreams"]):
        for rel, entity_set in (("Sensor", "Sensors"), ("ObservedProperty", "ObservedProperties")):
            got = sta.request(app, ADMIN, "GET", f"Datastreams({ds})/{rel}", None, "").body
            out[entity_set].add(got["@iot.id"])
        obs = sta.request(app, ADMIN, "GET", f"Datastreams({ds})/Observations", None, "").body["value"]
        out["Observations"] |= {o["@iot.id"] for o in obs}
        for o in obs:
            foi = sta.request(
                app, ADMIN, "GET", f"Observations({o['@iot.id']})/FeatureOfInterest", None, ""
            ).body
            out["FeaturesOfInterest"].add(foi["@iot.id"])
    return out


def build_world(app: App) -> World:
    """Public, internal, restricted and mixed data of every kind, with markers in every field."""
    world = World()
    world.public_thing, world.public_ds = _thing(app, "Gangnam air", "public")
    for minutes, value in ((0, 41.0), (10, 42.0), (130, 43.5)):
        _observe(app, world.public_ds, value, T0 + timedelta(minutes=minutes))
    hidden: list[int] = []
    for level, marker, value, where in (
        ("internal", INTERNAL, INTERNAL_VALUE, (127.011137, 37.611137)),
        ("restricted", RESTRICTED, RESTRICTED_VALUE, (127.011139, 37.611139)),
    ):
        thing, ds = _thing(app, "Hidden", level, marker=marker, lon_lat=where)
        _observe(app, ds, value, T0 + timedelta(minutes=5), marker)
        hidden.append(thing)
    # A public Datastream on an internal Thing (its Sensor and ObservedProperty public): withheld whole.
    mixed_thing, mixed_ds = _thing(
        app, "Mixed", "public", thing_level="internal", marker=MIXED, lon_lat=(127.011138, 37.611138)
    )
    _observe(app, mixed_ds, 55.5, T0 + timedelta(minutes=7), MIXED)
    hidden.append(mixed_thing)
    # A public Thing moved to an internal place: the Location, and the FeatureOfInterest of the
    # observations made there, stay behind; the Thing and its observations cross.
    moved, moved_ds = _thing(app, "Seocho air", "public", lon_lat=(127.0301, 37.4837))
    _, place = sta.post(
        app,
        ADMIN,
        f"Things({moved})/Locations",
        {
            "name": f"place {INTERNAL}",
            "description": INTERNAL,
            "encodingType": "application/geo+json",
            "location": {"type": "Point", "coordinates": [127.011136, 37.611136]},
            "properties": {"disclosure": "internal", "note": INTERNAL},
        },
    )
    _observe(app, moved_ds, 38.5, T0 + timedelta(minutes=20))
    world.hidden["Locations"].add(place)
    world.hidden["FeaturesOfInterest"] |= (
        _linked_ids(app, moved)["FeaturesOfInterest"]
        - _linked_ids(app, world.public_thing)["FeaturesOfInterest"]
    )
    for thing in hidden:
        for name, ids in _linked_ids(app, thing).items():
            world.hidden[name] |= ids
    for name, ids in _linked_ids(app, world.public_thing).items():
        world.public_ids[name] |= ids
    _status_and_staff_data(app)
    return world


def _status_and_staff_data(app: App) -> None:
    """Events (public with staff names in the timeline, internal, restricted), commands, layouts,
    users, tokens, sources with secrets, quarantine, alert rules and the audit log."""
    now = T0
    user = create_user(
        app.engine, "secret-staff-5e1b", Role.OFFICIAL, "pw " + STAFF, now=now, department=f"dept {STAFF}"
    )
    create_token(app.engine, user.id, f"token {STAFF}", now=now)
    with app.engine.begin() as conn:
        rule = conn.execute(
            insert(alert_rules)
            .values(
                name=f"rule {INTERNAL}",
                kind="threshold",
                params={"above": INTERNAL},
                created_at=now,
                updated_at=now,
            )
            .returning(alert_rules.c.id)
        ).scalar_one()
        for title, level in (
            ("Flood at Jamsil 잠실 침수", "public"),
            (f"event {INTERNAL}", "internal"),
            (f"event {RESTRICTED}", "restricted"),
        ):
            event = conn.execute(
                insert(events)
                .values(
                    kind="flood",
                    title=title,
                    description="" if level == "public" else title,
                    severity="major",
                    status="dispatched",
                    disclosure=level,
                    lon=127.08,
                    lat=37.51,
                    district_code="11710",
                    department=f"dept {STAFF}",
                    rule_id=rule,
                    open_key=f"key {STAFF} {level}",
                    opened_at=now,
                    updated_at=now,
                )
                .returning(events.c.id)
            ).scalar_one()
            for status, who in (("reported", None), ("dispatched", user.id)):
                conn.execute(
                    insert(event_history).values(
                        event_id=event,
                        at=now,
                        status=status,
                        note=f"note {STAFF}",
                        user_id=who,
                        actor=STAFF if who else "system",
                    )
                )
        command = conn.execute(
            insert(commands)
            .values(
                title=f"command {INTERNAL}",
                body=INTERNAL,
                department=f"dept {STAFF}",
                status="sent",
                due_at=now + timedelta(hours=4),
                created_by=user.id,
                disclosure="internal",
                created_at=now,
                updated_at=now,
            )
            .returning(commands.c.id)
        ).scalar_one()
        conn.execute(
            insert(command_history).values(
                command_id=command, at=now, status="sent", note=STAFF, user_id=user.id, actor=STAFF
            )
        )
        conn.execute(
            insert(layouts).values(
                perspective="mayor", layout={"title": INTERNAL}, updated_at=now, updated_by=user.id
            )
        )
        conn.execute(
            insert(layouts).values(
                perspective="citizen", layout={"widgets": ["air"]}, updated_at=now, updated_by=user.id
            )
        )
        source = conn.execute(
            insert(sources)
            .values(
                name=f"source {INTERNAL}",
                kind="http_api",
                config={"url": f"http://example.invalid/{INTERNAL}", "password": INTERNAL},
                enabled=False,
                created_at=now,
                disclosure="public",
            )
            .returning(sources.c.id)
        ).scalar_one()
        conn.execute(
            insert(quarantine).values(
                source_id=source, channel="test", received_at=now, payload=INTERNAL, reason=RESTRICTED
            )
        )
        conn.execute(
            insert(audit_log).values(
                at=now, user_id=user.id, action="read", target=INTERNAL, detail=RESTRICTED
            )
        )


# -- the two databases -----------------------------------------------------------------------------
@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def urls(request: pytest.FixtureRequest, tmp_path: Any) -> Iterator[tuple[str, str]]:
    """(internal, public) database URLs: two SQLite files, or two PostgreSQL databases."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path}/internal.db", f"sqlite:///{tmp_path}/public.db"
        return
    with fresh_pg_database("citydesk_in") as internal, fresh_pg_database("citydesk_pub") as public:
        yield internal, public


@pytest.fixture
def internal(urls: tuple[str, str]) -> Iterator[App]:
    engine = migrated_engine(urls[0])
    yield build_app(Settings(database_url=urls[0]), engine=engine)
    engine.dispose()


@pytest.fixture
def public_engine(urls: tuple[str, str]) -> Iterator[Engine]:
    """The public database: migrated, nothing else (publish brings the geography too)."""
    engine = make_engine(urls[1])
    upgrade(engine)
    yield engine
    engine.dispose()


def publish(internal: App, public_engine: Engine) -> Any:
    return publish_once(
        internal.engine, public_engine, now=internal.now(), timezone=internal.settings.timezone
    )


def public_app(public_engine: Engine, url: str) -> App:
    from citydesk.web.assemble import attach_services

    app = build_app(Settings(database_url=url, public_mode=True), engine=public_engine)
    attach_services(app, simulate=True)
    return app


# -- the crawler -------------------------------------------------------------------------------------
LINK_ATTR = re.compile(r"""(href|src|action|data-[a-z-]+)\s*=\s*["']([^"'#]+)""")
STA_ROOT = "/sta/v1.1"
URL_PARAM = re.compile(r"\{(\w+)\}")


class Crawler:
    """Requests every route of an instance reachable from its OpenAPI document and its pages, and
    remembers every answer's text (to search for markers) and every value under every key (to fill
    path and query parameters)."""

    def __init__(
        self, client: httpx.Client, hidden_ids: set[int], hidden_keys: set[str], limit: int = 8000
    ) -> None:
        self.client, self.hidden_ids, self.hidden_keys, self.limit = client, hidden_ids, hidden_keys, limit
        self.seen: set[str] = set()
        self.queue: list[str] = []
        self.texts: dict[str, str] = {}
        self.values: dict[str, set[Any]] = defaultdict(set)
        self.statuses: dict[str, int] = {}

    def add(self, url: str) -> None:
        parts = urlsplit(url)
        if parts.netloc and parts.netloc != urlsplit(str(self.client.base_url)).netloc:
            return
        if parts.scheme and parts.scheme not in ("http", "https"):
            return
        path = parts.path + (f"?{parts.query}" if parts.query else "")
        if path.startswith("/") and path not in self.seen and not path.startswith("/static/vendor/"):
            self.seen.add(path)
            self.queue.append(path)

    def run(self) -> None:
        while self.queue:
            assert len(self.texts) < self.limit, "the crawl does not end"
            self._fetch(self.queue.pop(0))

    def _fetch(self, path: str) -> None:
        if path.startswith("/api/status/stream") or "/stream" in path.split("?")[0]:
            return  # event streams never end: read by ``read_stream``
        r = self.client.get(path)
        self.statuses[path] = r.status_code
        self.texts[path] = r.text
        assert r.status_code < 500, f"{path}: {r.status_code} {r.text[:300]}"
        kind = r.headers.get("content-type", "")
        if "json" in kind:
            data = r.json()
            if path != "/openapi.json":  # its words are the API's, not the instance's data
                self._walk(data)
            if path.startswith(STA_ROOT):
                self._sta_variants(path, data)
        elif "html" in kind:
            for attr, link in LINK_ATTR.findall(r.text):
                if attr.startswith("data-"):
                    self.values[attr.removeprefix("data-").replace("-", "_")].add(link)
                    if not link.startswith("/"):
                        continue
                self.add(str(httpx.URL(str(self.client.base_url)).join(httpx.URL(path)).join(link)))

    def _walk(self, data: Any, key: str = "") -> None:
        if isinstance(data, dict):
            for k, v in data.items():
                self._walk(v, k)
        elif isinstance(data, list):
            for v in data:
                self._walk(v, key)
        elif isinstance(data, (str, int, float)) and not isinstance(data, bool):
            self.values[key].add(data)
            if isinstance(data, str) and (
                key.endswith(("Link", "link", "url", "href", "_url")) or key in ("next", "self", "url")
            ):
                self.add(data)

    def _sta_variants(self, path: str, data: Any) -> None:
        """``$expand`` of every relation (and one level deeper), ``$select`` of every property."""
        if "?" in path or not isinstance(data, dict):
            return
        items = data.get("value") if isinstance(data.get("value"), list) else [data]
        if path == STA_ROOT:
            for entry in items:
                if isinstance(entry, dict) and "url" in entry:
                    self.add(entry["url"])
            return
        first = next((i for i in items if isinstance(i, dict)), None)
        if first is None:
            return
        relations = [k.split("@")[0] for k in first if k.endswith("@iot.navigationLink")]
        props = [k for k in first if "@" not in k]
        for rel in relations:
            self.add(f"{path}?$expand={rel}")
        if relations:
            self.add(f"{path}?$expand={','.join(relations)}&$select={','.join([*props, *relations])}")
        for prop in props:
            self.add(f"{path}?$select={prop}")

    def nested_expands(self) -> None:
        """``$expand=R($expand=S,...)`` where R's expanded entities link on to S."""
        for path, text_ in list(self.texts.items()):
            m = re.fullmatch(rf"({re.escape(STA_ROOT)}/\w+)\?\$expand=(\w+)", path)
            if not m or self.statuses[path] != 200:
                continue
            data = httpx.Response(200, text=text_).json()
            for item in data.get("value", [data]):
                inner = item.get(m.group(2))
                inner = inner[0] if isinstance(inner, list) and inner else inner
                if isinstance(inner, dict):
                    subs = [k.split("@")[0] for k in inner if k.endswith("@iot.navigationLink")]
                    if subs:
                        self.add(f"{m.group(1)}?$expand={m.group(2)}($expand={','.join(subs)})")
                    break

    def candidates(self, param: dict[str, Any]) -> list[Any]:
        """Values for a path or query parameter: its enumeration (``enum``, or a ``^(a|b)$``
        pattern), what answers held under its name, the examples its description gives ("e.g. a,
        b"), ids seen anywhere for an id, and for an id every id the public side must not know."""
        name, schema = param["name"], param.get("schema", {})
        if schema.get("enum"):
            return list(schema["enum"])
        alternatives = re.fullmatch(r"\^\(([\w|.-]+)\)\$", schema.get("pattern", ""))
        if alternatives:
            return alternatives.group(1).split("|")
        found: list[Any] = sorted(self.values.get(name, ()), key=str)[:12]
        examples = re.search(r"e\.g\. ([^()]+)", param.get("description", "") + schema.get("description", ""))
        if examples:
            found += [e.strip(" .") for e in examples.group(1).split(",")]
        is_id = name in ("id", "ident") or name.endswith("id")
        if is_id:
            found += (
                sorted(self.values.get("id", ()), key=str)[:40] + sorted(self.values.get("@iot.id", ()))[:12]
            )
            found += sorted(self.hidden_ids)
        if param["in"] == "path":
            found += sorted(self.hidden_keys)
        if not found:  # nothing known by that name: every short word the instance has said
            found = sorted(
                {
                    v
                    for vs in self.values.values()
                    for v in vs
                    if isinstance(v, str) and re.fullmatch(r"[\w.-]{1,30}", v)
                }
            )[:80]
        return list(dict.fromkeys(found))

    def routes(self, asgi: Any) -> None:
        """Every GET route of the app: described by its OpenAPI document where it is there (pages
        are not), with path parameters filled and each enumerated value of a query parameter tried
        (required ones always given)."""
        doc = asgi.openapi()
        operations = {path: ops["get"] for path, ops in doc["paths"].items() if "get" in ops}
        for path, methods in app_routes(asgi):
            if "GET" in methods and path not in operations:
                operations[path] = {
                    "parameters": [{"name": n, "in": "path"} for n in URL_PARAM.findall(path)]
                }
        for path, op in operations.items():
            params = op.get("parameters", [])
            query: list[dict[str, str]] = [{}]
            for p in params:
                if p["in"] != "query":
                    continue
                values = self.candidates(p)
                enumerated = bool(p.get("schema", {}).get("enum") or p.get("schema", {}).get("pattern"))
                if p.get("required") or enumerated:
                    optional = [] if p.get("required") else [{}]
                    query = [q | {p["name"]: str(v)} for q in query for v in values[:6]] + [
                        q for q in query for _ in optional
                    ]
            fills: list[str] = [path]
            for p in params:
                if p["in"] == "path":
                    fills = [
                        f.replace("{" + p["name"] + "}", str(v)) for f in fills for v in self.candidates(p)
                    ]
            for f in fills[:300]:
                for q in query[:24]:
                    self.add(str(httpx.URL(f, params=q)) if q else f)


def app_routes(asgi: Any) -> list[tuple[str, set[str]]]:
    """(path, methods) of every route of the app, routers included (FastAPI keeps an included
    router as one entry that expands into its routes)."""
    out: list[tuple[str, set[str]]] = []
    for route in asgi.routes:
        expand = getattr(route, "effective_route_contexts", None)
        for r in expand() if expand else [route]:
            methods = getattr(r, "methods", None) or getattr(
                getattr(r, "original_route", None), "methods", None
            )
            if methods and getattr(r, "path", ""):
                out.append((r.path, set(methods)))
    return out


def string_keys(engine: Engine) -> set[str]:
    """The text primary keys of the internal side's small tables (a layout's perspective, a
    retention family, ...): tried in every path parameter, since they are what a route names."""
    from citydesk.db.metadata import metadata

    keys: set[str] = set()
    with engine.connect() as conn:
        for table in metadata.sorted_tables:
            columns = list(table.primary_key.columns)
            if len(columns) == 1 and columns[0].type.python_type is str:
                found = conn.execute(select(columns[0]).limit(51)).scalars().all()
                if len(found) <= 50:
                    keys |= set(found)
    return keys


def marker_hits(text_: str) -> list[str]:
    low = text_.lower()
    return [m for m in MARKERS if m.lower() in low]


def read_stream(base: str, seconds: float, chunks: list[str]) -> None:
    """Collect what the public live stream sends for ``seconds``."""
    try:
        with httpx.stream("GET", f"{base}/api/status/stream", timeout=seconds + 5) as r:
            deadline = time.monotonic() + seconds
            for chunk in r.iter_text():
                chunks.append(chunk)
                if time.monotonic() > deadline:
                    break
    except httpx.ReadTimeout:
        pass


# -- the tests -----------------------------------------------------------------------------------------
def test_the_public_instance_shows_nothing_internal_on_any_route(
    internal: App, public_engine: Engine, urls: tuple[str, str]
) -> None:
    world = build_world(internal)
    publish(internal, public_engine)
    app = public_app(public_engine, urls[1])
    assert {s.name for s in app.background}.isdisjoint({"sources", "simulator", "mqtt"}), "public: no ingest"
    hidden_ids = {i for ids in world.hidden.values() for i in ids}
    hidden_ds = sorted(world.hidden["Datastreams"])
    asgi = create_asgi(app)
    with serving_asgi(asgi) as base, httpx.Client(base_url=base, timeout=30) as client:
        crawler = Crawler(client, hidden_ids, string_keys(internal.engine))
        for start in ("/", "/openapi.json", STA_ROOT):
            crawler.add(start)
        crawler.run()
        crawler.routes(asgi)
        crawler.run()
        crawler.nested_expands()
        crawler.run()
        for entity_set, ids in world.hidden.items():
            for i in sorted(ids):
                r = client.get(f"{STA_ROOT}/{entity_set}({i})")
                assert r.status_code == 404, f"{entity_set}({i}) is reachable on the public instance"
        # The live stream, while the internal side writes public and internal observations and publishes.
        chunks: list[str] = []
        reader = threading.Thread(target=read_stream, args=(base, 4.0, chunks), daemon=True)
        reader.start()
        time.sleep(0.5)
        for ds in hidden_ds:
            _observe(internal, ds, INTERNAL_VALUE, internal.now() - timedelta(seconds=30), INTERNAL)
        _observe(internal, world.public_ds, 44.25, internal.now() - timedelta(seconds=30))
        shipped = publish_once(
            internal.engine,
            public_engine,
            now=internal.now(),
            timezone=internal.settings.timezone,
            notify=app.bus,
        )
        assert shipped.observations.rows == 1
        reader.join(timeout=15)
    leaks = {path: marker_hits(t) for path, t in crawler.texts.items() if marker_hits(t)}
    assert not leaks, f"markers found on the public instance: {leaks}"
    live = "".join(chunks)
    assert "44.25" in live, "the public live stream shows what was published"
    assert not marker_hits(live)
    seen = "\n".join(crawler.texts.values())
    # The crawl really saw the public data, so it would have seen a leak.
    for expected in (
        "Gangnam air",
        "43.5",
        "Seocho air",
        "38.5",
        "Flood at Jamsil",
        '"PM10"',
        "Public mirror",
    ):
        assert expected in seen, f"the crawl never saw {expected!r}"
    crawled_paths = {p.split("?")[0] for p in crawler.texts}
    assert len(crawler.texts) > 150 and any("$expand=" in p for p in crawler.texts), sorted(crawled_paths)


def test_the_public_instance_refuses_writes_and_sign_in(
    internal: App, public_engine: Engine, urls: tuple[str, str]
) -> None:
    build_world(internal)
    publish(internal, public_engine)
    app = public_app(public_engine, urls[1])
    asgi = create_asgi(app)
    with serving_asgi(asgi) as base, httpx.Client(base_url=base, timeout=30) as client:
        writes = [
            (m, path)
            for path, methods in app_routes(asgi)
            for m in sorted(methods)
            if m in ("POST", "PUT", "PATCH", "DELETE")
        ]
        assert len(writes) >= 10
        for method, path in writes:
            url = URL_PARAM.sub("1", path)
            if path == "/logout":
                continue  # signing out is harmless, and there is no one to sign out
            if path.endswith("/$batch"):
                continue  # not a write itself: each request inside is checked (below)
            r = client.request(method, url, json={}, auth=("kim", "pw"))
            if r.status_code == 303:  # a staff page sends a person to sign in, which says no
                r = client.get(r.headers["location"])
                assert urlsplit(str(r.url)).path == "/login", f"{method} {path} led to {r.url}"
            assert r.status_code == 403, f"{method} {path}: {r.status_code} {r.text[:200]}"
            if "json" not in r.headers["content-type"]:  # a form page answers with a page
                assert "public" in r.text.lower(), f"{path}: {r.text[:200]}"
                continue
            body = r.json()
            assert "public instance" in str(body), body
            assert ("error" in body) or path.startswith(STA_ROOT), body
        for method in ("GET", "POST"):
            r = client.request(method, "/login", data={"name": "kim", "password": "pw"})
            assert r.status_code == 403 and "public" in r.text.lower(), r.text[:200]
            assert "set-cookie" not in r.headers
        # SensorThings writes answer in SensorThings' own dialect, alone or in a batch.
        r = client.post(f"{STA_ROOT}/Things", json={"name": "x"})
        assert r.status_code == 403 and r.json()["code"] == 403, r.text
        batch = {"requests": [{"id": "1", "method": "post", "url": "Things", "body": {"name": "x"}}]}
        r = client.post(f"{STA_ROOT}/$batch", json=batch)
        assert [answer["status"] for answer in r.json()["responses"]] == [403], r.text
    with public_engine.connect() as conn:
        from citydesk.auth.models import api_tokens, sessions, users

        for table in (
            users,
            api_tokens,
            sessions,
            audit_log,
            quarantine,
            alert_rules,
            commands,
            command_history,
        ):
            assert conn.execute(select(func.count()).select_from(table)).scalar_one() == 0, table.name
        assert conn.execute(select(sources.c.name)).scalars().all() == ["citydesk publish"]


def _public_rows(engine: Engine) -> dict[str, list[Any]]:
    from citydesk.mirror.publish import MIRRORED

    with engine.connect() as conn:
        out = {
            m.table.name: sorted(map(tuple, conn.execute(select(m.table)).all()), key=str) for m in MIRRORED
        }
        for table in (observations, rollup_hourly, rollup_daily):
            out[table.name] = sorted(map(tuple, conn.execute(select(table)).all()), key=str)
    out.pop("datastream_latest")  # its updated_at is the time of the last write
    return out


def _rollups(engine: Engine, ds: int) -> list[tuple[Any, ...]]:
    with engine.connect() as conn:
        return [
            tuple(r)
            for table in (rollup_hourly, rollup_daily)
            for r in conn.execute(select(table).where(table.c.datastream_id == ds).order_by(table.c.bucket))
        ]


def _results(engine: Engine, ds: int) -> dict[int, float]:
    with engine.connect() as conn:
        o = observations.c
        return dict(conn.execute(select(o.id, o.result_number).where(o.datastream_id == ds)).all())  # type: ignore[arg-type]


def test_publish_is_idempotent_incremental_and_follows_changes(internal: App, public_engine: Engine) -> None:
    world = build_world(internal)
    ds, thing = world.public_ds, world.public_thing
    first = publish(internal, public_engine)
    # The public Datastream on an internal Thing (the last one created) is withheld, and said so.
    assert first.observations.rows == 4 and first.withheld_datastreams == [max(world.hidden["Datastreams"])]
    before = _public_rows(public_engine)
    again = publish(internal, public_engine)
    assert not again.changed and _public_rows(public_engine) == before, "publishing twice changes nothing"
    assert last_published(public_engine) == again.at

    # Incremental: only what is new crosses (internal rows are never read into the public side).
    _observe(internal, ds, 45.0, T0 + timedelta(hours=5))
    _observe(internal, ds, 46.0, T0 - timedelta(days=3))  # a day the public side has no partition for
    _observe(internal, sorted(world.hidden["Datastreams"])[0], INTERNAL_VALUE, T0 + timedelta(hours=5))
    assert publish(internal, public_engine).observations.rows == 2
    assert _results(public_engine, ds) == _results(internal.engine, ds)
    assert _rollups(public_engine, ds) == _rollups(internal.engine, ds)

    # A row committed late with a lower id than one already shipped (a PostgreSQL writer draws its
    # ids before it commits) is found through the hole it left.
    with internal.engine.connect() as conn:
        top = conn.execute(select(func.max(observations.c.id))).scalar_one()
    late = {"datastream_id": ds, "family": "default", "result_number": 47.0}
    with internal.engine.begin() as conn:
        conn.execute(
            insert(observations).values(id=top + 10, phenomenon_time=T0 + timedelta(hours=6), **late)
        )
    assert publish(internal, public_engine).observations.rows == 1
    with internal.engine.begin() as conn:
        conn.execute(insert(observations).values(id=top + 5, phenomenon_time=T0 + timedelta(hours=7), **late))
    assert publish(internal, public_engine).observations.rows == 1
    assert {top + 5, top + 10} <= set(_results(public_engine, ds))

    # Changed and deleted observations: the hours whose rollups differ are copied again.
    obs = sorted(world.public_ids["Observations"])
    sta.request(internal, ADMIN, "PATCH", f"Observations({obs[0]})", {"result": 40.0}, "")
    sta.request(internal, ADMIN, "DELETE", f"Observations({obs[1]})", None, "")
    report = publish(internal, public_engine)
    assert report.observations.resynced_hours >= 1
    assert _results(public_engine, ds) == _results(internal.engine, ds)
    assert _results(public_engine, ds)[obs[0]] == 40.0 and obs[1] not in _results(public_engine, ds)
    assert _rollups(public_engine, ds) == _rollups(internal.engine, ds)

    # A disclosure lowered after publishing: the Thing and all it carries leave the public side ...
    sta.request(internal, ADMIN, "PATCH", f"Things({thing})", {"properties": {"disclosure": "internal"}}, "")
    publish(internal, public_engine)
    with public_engine.connect() as conn:
        assert thing not in conn.execute(select(things.c.id)).scalars().all()
        assert ds not in conn.execute(select(datastreams.c.id)).scalars().all()
    assert _results(public_engine, ds) == {} and _rollups(public_engine, ds) == []
    # ... and come back whole, with the same ids, when it is public again.
    sta.request(internal, ADMIN, "PATCH", f"Things({thing})", {"properties": {"disclosure": "public"}}, "")
    assert publish(internal, public_engine).observations.backfilled == len(_results(internal.engine, ds))
    assert _results(public_engine, ds) == _results(internal.engine, ds)
    assert _rollups(public_engine, ds) == _rollups(internal.engine, ds)

    # A deletion propagates.
    sta.request(internal, ADMIN, "DELETE", f"Datastreams({ds})", None, "")
    publish(internal, public_engine)
    with public_engine.connect() as conn:
        assert ds not in conn.execute(select(datastreams.c.id)).scalars().all()
    assert _results(public_engine, ds) == {}


def test_the_public_landing_page_says_when_it_was_published(
    internal: App, public_engine: Engine, urls: tuple[str, str]
) -> None:
    build_world(internal)
    report = publish(internal, public_engine)
    app = public_app(public_engine, urls[1])
    with serving_asgi(create_asgi(app)) as base:
        page = httpx.get(f"{base}/", timeout=30).text
        facts = httpx.get(f"{base}/api/overview", timeout=30).json()
    assert "Public mirror" in page and "공개 미러" in page
    assert datetime.fromisoformat(facts["published_at"]) == report.at.replace(microsecond=0)
    assert facts["published_at"] in page


def test_the_publish_command(
    internal: App, public_engine: Engine, urls: tuple[str, str], monkeypatch: pytest.MonkeyPatch, capsys: Any
) -> None:
    from citydesk.cli import main

    build_world(internal)
    monkeypatch.setenv("DATABASE_URL", urls[0])
    assert main(["publish", "--to", urls[1]]) == 0
    out = capsys.readouterr().out
    assert "4 observations shipped" in out and "things: +2" in out and "withheld" in out
    assert main(["publish", "--to", urls[1]]) == 0
    assert "0 observations shipped" in capsys.readouterr().out
    assert main(["publish", "--to", urls[0]]) == 2, "publishing into its own database is refused"
    with public_engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(things)).scalar_one() == 2


def test_a_follow_run_reaches_a_separate_public_server_over_its_bus(
    internal: App, public_engine: Engine, urls: tuple[str, str]
) -> None:
    """``publish --follow --notify BUS_URL``: the public server's live stream shows each run."""
    import asyncio

    from citydesk.bus import Bus
    from citydesk.web.assemble import attach_services
    from tests.test_bus import _redis_url

    world = build_world(internal)
    publish(internal, public_engine)
    bus_url = _redis_url()
    app = build_app(Settings(database_url=urls[1], public_mode=True, bus_url=bus_url), engine=public_engine)
    attach_services(app)

    async def publish_and_announce() -> None:
        notify = Bus.from_url(bus_url)  # the publisher's own connection to the public instance's bus
        await notify.start()
        try:
            await asyncio.to_thread(
                lambda: publish_once(
                    internal.engine, public_engine, now=internal.now(), timezone="Asia/Seoul", notify=notify
                )
            )
            await asyncio.sleep(1.5)
        finally:
            await notify.stop()

    with serving_asgi(create_asgi(app)) as base:
        chunks: list[str] = []
        reader = threading.Thread(target=read_stream, args=(base, 5.0, chunks), daemon=True)
        reader.start()
        time.sleep(0.5)
        _observe(internal, world.public_ds, 45.75, internal.now() - timedelta(seconds=30))
        asyncio.run(publish_and_announce())
        reader.join(timeout=15)
    assert "45.75" in "".join(chunks)
