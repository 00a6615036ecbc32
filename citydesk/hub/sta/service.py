"""SensorThings operations: the transactions around ``read`` and ``write``, and their events.

Routes, and each request of a ``$batch``, call these functions and nothing else. Writes run in a
``Unit``: one transaction, plus what has to wait for its commit (Observations stored through the
ingest pipeline, the ``sta.created``/``sta.updated``/``sta.deleted`` events the MQTT extension
listens to, audit records of restricted reads), which ``unit()`` does after the commit. A single
request is a unit of one operation and an atomicity group of a batch is one unit of several: both
run each operation through ``perform``, so a batch applies exactly the checks a route applies.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode

from sqlalchemy import Connection, select

from citydesk.auth import Principal, audit
from citydesk.errors import BadRequest, CitydeskError, Forbidden, ValidationFailed
from citydesk.hub.models import datastreams, observations
from citydesk.hub.records import ObservationIn
from citydesk.hub.sta import jsonpatch, read, write, write_obs
from citydesk.hub.sta.entities import SETS, EntitySet, inverse
from citydesk.hub.sta.paths import ResourcePath, parse_path
from citydesk.hub.sta.query import Query, parse_query
from citydesk.hub.store import RollupRepair
from citydesk.hub.times import parse_interval

if TYPE_CHECKING:
    from citydesk.web.app import App

VERSION_PREFIX = "/sta/v1.1"
BATCH = "http://www.opengis.net/spec/iot_sensing/1.1/req/batch-request/batch-request"
JSON_BATCH = "https://fraunhoferiosb.github.io/FROST-Server/extensions/JsonBatchRequest.html"
"""The JSON batch format (OData 4.01) is not part of SensorThings 1.1; FROST names it this way."""
CONFORMANCE = [
    "http://www.opengis.net/spec/iot_sensing/1.1/req/datamodel",
    "http://www.opengis.net/spec/iot_sensing/1.1/req/resource-path/resource-path-to-entities",
    "http://www.opengis.net/spec/iot_sensing/1.1/req/request-data",
    "http://www.opengis.net/spec/iot_sensing/1.1/req/create-update-delete",
    BATCH,
    "http://www.opengis.net/spec/iot_sensing/1.1/req/data-array/data-array",
    JSON_BATCH,
]
MQTT_CONFORMANCE = [
    "http://www.opengis.net/spec/iot_sensing/1.1/req/create-observations-via-mqtt/observations",
    "http://www.opengis.net/spec/iot_sensing/1.1/req/receive-updates-via-mqtt/receive-updates",
]
WRITES = ("POST", "PATCH", "PUT", "DELETE")


def service_root(app: App, base: str) -> dict[str, Any]:
    conformance = list(CONFORMANCE)
    settings: dict[str, Any] = {}
    if app.settings.mqtt_url:
        conformance += MQTT_CONFORMANCE
        endpoint = {"endpoints": [app.settings.mqtt_url]}
        settings = {uri: endpoint for uri in MQTT_CONFORMANCE}
    return {
        "value": [{"name": name, "url": f"{base}/{name}"} for name in SETS],
        "serverSettings": {"conformance": conformance, **settings},
    }


@dataclass
class Outcome:
    """What one operation answers: its HTTP status, the entity it created or read, a body."""

    status: int
    set: EntitySet | None = None
    id: int | None = None
    body: Any = None
    raw: bool = False
    """``body`` is a ``$value``, sent as text rather than JSON."""
    refused: str | None = None
    """Set after the commit when the pipeline refused an Observation this operation created."""

    def location(self, base: str) -> str | None:
        """The ``Location`` of a 201: the entity created, else its collection."""
        if self.status != 201 or self.set is None:
            return None
        return f"{base}/{self.set.name}" + ("" if self.id is None else f"({self.id})")


@dataclass
class Unit:
    """One transaction of writes, and what must wait for its commit."""

    app: App
    principal: Principal
    base: str
    ctx: write.WriteContext
    repair: RollupRepair
    observations: list[tuple[ObservationIn, Outcome]] = field(default_factory=list)
    """Checked inside the transaction, stored through the pipeline after it; with the outcome of
    the operation that created each (a POST of it, or the deep insert it was nested in)."""
    events: list[tuple[str, str, int]] = field(default_factory=list)
    audits: list[tuple[str, int]] = field(default_factory=list)
    """Reads that showed restricted data: (what was read, how many restricted entities)."""

    @property
    def conn(self) -> Connection:
        return self.ctx.conn


def _write_context(app: App, conn: Connection, principal: Principal) -> write.WriteContext:
    return write.WriteContext(
        conn=conn, levels=principal.levels, geo=app.geo, now=app.now(), max_future=app.ingest.max_future
    )


def _read_context(app: App, conn: Connection, principal: Principal, base: str) -> read.ReadContext:
    return read.ReadContext(
        conn=conn,
        levels=principal.levels,
        base=base,
        default_top=app.settings.sta_default_top,
        max_top=app.settings.sta_max_top,
        count_exact_limit=app.settings.count_exact_limit,
        now=app.now(),
    )


@contextmanager
def unit(app: App, principal: Principal, base: str) -> Iterator[Unit]:
    """A transaction for ``perform``; after a clean exit it is committed and then finished."""
    with app.engine.begin() as conn:
        work = Unit(app, principal, base, _write_context(app, conn, principal), RollupRepair(app.store))
        yield work
    _finish(work)


def _finish(work: Unit) -> None:
    """After the commit: forget stale catalog facts, announce, store Observations, audit reads."""
    app = work.app
    for ds in work.ctx.touched_datastreams:
        app.catalog.forget(ds)
    for topic, set_name, ident in work.events:
        app.bus.publish(topic, {"set": set_name, "id": ident})
    if work.observations:
        records = [record for record, _ in work.observations]
        result = app.ingest.ingest(records, channel="sta", quarantine_rejects=False)
        refused = {id(r.payload): r.reason for r in result.rejected}
        stored = iter(result.ids)
        for record, outcome in work.observations:
            if id(record) in refused:
                outcome.refused = outcome.refused or refused[id(record)]
            elif outcome.set is SETS["Observations"]:
                outcome.id = next(stored)
            else:
                next(stored)
    for target, restricted in work.audits:
        audit(
            app.engine, work.principal, "sta.read", target, f"{restricted} restricted entities", now=app.now()
        )


def request(
    app: App,
    principal: Principal,
    method: str,
    path_text: str,
    body: Any,
    base: str,
    *,
    json_patch: bool = False,
) -> Outcome:
    """A write as a route receives it: one operation in a unit of its own."""
    prepare(app, principal, method, path_text, body, json_patch=json_patch)
    with unit(app, principal, base) as work:
        outcome = perform(work, method, path_text, {}, body, json_patch=json_patch)
    if outcome.refused is not None:
        raise ValidationFailed(outcome.refused)
    return outcome


def perform(
    work: Unit,
    method: str,
    path_text: str,
    options: Mapping[str, str],
    body: Any,
    *,
    json_patch: bool = False,
) -> Outcome:
    """One operation inside ``work``: what the route for ``method`` on ``path_text`` does."""
    if method == "GET":
        ctx = _read_context(work.app, work.conn, work.principal, work.base)
        outcome = _answer(work.app, ctx, path_text, options)
        if ctx.restricted_read:
            work.audits.append((_target(path_text, options), ctx.restricted_read))
        return outcome
    if method not in WRITES:
        raise BadRequest(f"{method} is not a SensorThings operation")
    _require_write(work.app, work.principal)
    if json_patch and method != "PATCH":
        raise BadRequest("JSON Patch is sent with PATCH")
    path = parse_path(path_text)
    if path.ref and method == "DELETE":
        _unlink(work, path)
        return Outcome(200)
    if path.ref:
        _link(work, path, body)
        return Outcome(204)
    if method == "POST":
        return _create(work, path, body)
    if method == "DELETE":
        _delete(work, path)
    else:
        _update(work, path, body, replace=method == "PUT", json_patch=json_patch)
    return Outcome(200)


def read_request(
    app: App, principal: Principal, path_text: str, options: Mapping[str, str], base: str
) -> Outcome:
    """A GET as a route receives it: a read-only connection (no write lock), then the audit."""
    with app.engine.connect().execution_options(read_only=True) as conn:
        ctx = _read_context(app, conn, principal, base)
        outcome = _answer(app, ctx, path_text, options)
    if ctx.restricted_read:
        target = _target(path_text, options)
        audit(
            app.engine,
            principal,
            "sta.read",
            target,
            f"{ctx.restricted_read} restricted entities",
            now=app.now(),
        )
    return outcome


def get(app: App, principal: Principal, path_text: str, options: Mapping[str, str], base: str) -> Any:
    """The body of a GET: a collection, an entity, a property, ``("raw", value)`` for ``$value``."""
    outcome = read_request(app, principal, path_text, options, base)
    return ("raw", outcome.body) if outcome.raw else outcome.body


def _target(path_text: str, options: Mapping[str, str]) -> str:
    return path_text + ("?" + urlencode(dict(options)) if options else "")


def _answer(app: App, ctx: read.ReadContext, path_text: str, options: Mapping[str, str]) -> Outcome:
    """Answer a GET: a collection, an entity, a property, ``$value`` or ``$ref`` listing."""
    path = parse_path(path_text)
    q = parse_query(options, max_top=app.settings.sta_max_top)
    if path.ref:
        q.select = ["selfLink"]
        q.expand = []
    if path.attribute is not None:
        value = read.read_property(ctx, path)
        if path.value:
            return Outcome(200, body=value, raw=True)
        return Outcome(200, body={path.attribute if path.attribute != "id" else "@iot.id": value})
    if path.single:
        es, entity = read.read_single(ctx, path, q)
        return Outcome(200, set=es, id=path.steps[-1].id or entity.get("@iot.id"), body=entity)
    return Outcome(200, body=read.read_collection(ctx, path, q, f"{ctx.base}/{path_text.strip('/')}"))


def _require_write(app: App, principal: Principal) -> None:
    if app.settings.public_mode:
        raise Forbidden("this is a public instance: it takes no writes to the SensorThings API")
    principal.require("sta.write")


def post(app: App, principal: Principal, path_text: str, body: Any) -> tuple[EntitySet, int]:
    """Create an entity (deep insert) at a collection path; returns its set and id."""
    outcome = request(app, principal, "POST", path_text, body, "")
    assert outcome.set is not None and outcome.id is not None, "a create names what it created"
    return outcome.set, outcome.id


def _create(work: Unit, path: ResourcePath, body: Any) -> Outcome:
    """Create an entity (deep insert) at a collection path.

    Everything but Observations is written in the unit's transaction; the Observations met
    (posted, or nested in a deep insert) are checked inside it, then stored through the ingest
    pipeline after the commit.
    """
    if path.single or path.attribute is not None:
        raise BadRequest("POST goes to a collection, not to one entity")
    es, ctx = path.target, work.ctx
    parent: tuple[Any, int] | None = None
    parent_step = path.parent
    if parent_step is not None:
        if parent_step.id is None:
            raise BadRequest("the parent in the path needs an id: Things(1)/Datastreams")
        last = path.steps[-1]
        assert last.relation is not None
        write.check_exists(ctx, parent_step.set, parent_step.id)
        back = inverse(parent_step.set, last.relation)
        if back is None:
            raise BadRequest(f"cannot create {es.name} under {parent_step.set.singular}")
        parent = (back, parent_step.id)
    outcome = Outcome(201, set=es)
    if es.name == "Observations":
        under = {parent[0].name: parent[1]} if parent else {}
        body = write.as_object(body, "Observation")
        records = [
            write_obs.observation_in(ctx, body, under.get("Datastream"), under.get("FeatureOfInterest"))
        ]
    else:
        outcome.id = write.create(ctx, es, body, parent=parent, nested=False)
        write.finish(ctx)
        nested, ctx.pending_observations = ctx.pending_observations, []
        records = [write_obs.observation_in(ctx, b, ds) for b, ds in nested]
        work.events.append(("sta.created", es.name, outcome.id))
    write_obs.prevalidate(ctx, records)
    work.observations += [(record, outcome) for record in records]
    return outcome


def prepare(
    app: App, principal: Principal, method: str, path_text: str, body: Any, *, json_patch: bool = False
) -> None:
    """What a write needs before its transaction: on PostgreSQL, the day partition an updated
    Observation moves into (partition DDL inside the transaction could wait on that very
    transaction's locks). A bad path or body is left for ``perform`` to refuse."""
    if method not in ("PATCH", "PUT") or not app.store.postgres:
        return
    try:
        path = parse_path(path_text)
        es, ident = _entity(path)
    except CitydeskError:
        return
    if es.name != "Observations":
        return
    if json_patch:
        with app.engine.connect().execution_options(read_only=True) as conn:
            body = _apply_json_patch(app, conn, principal, path, body)
    if not isinstance(body, dict) or body.get("phenomenonTime") is None:
        return
    start, _ = parse_interval(body["phenomenonTime"], "Observation.phenomenonTime")
    with app.engine.connect() as conn:
        family = conn.execute(
            select(datastreams.c.family)
            .join(observations, observations.c.datastream_id == datastreams.c.id)
            .where(observations.c.id == ident)
        ).scalar()
    if family is not None:
        app.store.ensure_partitions({(family, start.astimezone(UTC).date())})


def _update(work: Unit, path: ResourcePath, body: Any, *, replace: bool, json_patch: bool) -> None:
    """Update one entity from a JSON object (PATCH merges, PUT replaces) or from JSON Patch
    operations (RFC 6902)."""
    (es, ident), ctx = _entity(path), work.ctx
    if json_patch:
        body = _apply_json_patch(work.app, work.conn, work.principal, path, body)
    body = write.as_object(body, es.singular)
    if es.name == "Observations":
        write.check_exists(ctx, es, ident)
        ds = ctx.conn.execute(
            select(observations.c.datastream_id).where(observations.c.id == ident)
        ).scalar_one()
        facts = work.app.catalog.get_many(ctx.conn, {ds})[ds]
        write_obs.update_observation(
            ctx, ident, body, facts, lambda d, times: work.repair.repair(ctx.conn, d, times), replace=replace
        )
    else:
        write.update_entity(ctx, es, ident, body, replace=replace)
        write.finish(ctx)
    work.events.append(("sta.updated", es.name, ident))


def _apply_json_patch(
    app: App, conn: Connection, principal: Principal, path: ResourcePath, ops: Any
) -> dict[str, Any]:
    """The properties JSON Patch operations change, as a PATCH body (``null`` for removed ones)."""
    current = read.read_single(_read_context(app, conn, principal, ""), path, Query())[1]
    before = {k: v for k, v in current.items() if "@" not in k}
    after = jsonpatch.apply(before, ops)
    return {k: after.get(k) for k in before.keys() | after.keys() if after.get(k) != before.get(k)}


def _delete(work: Unit, path: ResourcePath) -> None:
    es, ident = _entity(path)
    write.delete_entity(work.ctx, es, ident, lambda ds, times: work.repair.repair(work.conn, ds, times))
    work.events.append(("sta.deleted", es.name, ident))


def _link(work: Unit, path: ResourcePath, body: Any) -> None:
    """``POST /Things(1)/Locations/$ref`` with ``{"@iot.id": 2}`` (or ``@iot.selfLink``); PUT or
    PATCH on a to-one ``$ref`` re-points it."""
    parent, last = path.parent, path.steps[-1]
    if parent is None or parent.id is None or last.relation is None:
        raise BadRequest("link with POST Entity(id)/Navigation/$ref")
    target_id = _ref_target(body, last.set)
    write.set_ref(work.ctx, parent.set, parent.id, last.relation, target_id, add=True)
    write.finish(work.ctx)
    work.events.append(("sta.updated", parent.set.name, parent.id))


def _unlink(work: Unit, path: ResourcePath) -> None:
    parent, last = path.parent, path.steps[-1]
    if parent is None or parent.id is None or last.relation is None or last.id is None:
        raise BadRequest("unlink with DELETE Entity(id)/Navigation(id)/$ref")
    write.set_ref(work.ctx, parent.set, parent.id, last.relation, last.id, add=False)
    write.finish(work.ctx)
    work.events.append(("sta.updated", parent.set.name, parent.id))


def _ref_target(body: Any, es: EntitySet) -> int:
    obj = write.as_object(body, "$ref body")
    if "@iot.selfLink" in obj:
        tail = str(obj["@iot.selfLink"]).rstrip("/").rsplit("/", 1)[-1]
        try:
            path = parse_path(tail)
        except CitydeskError:
            path = None
        if path is None or path.target is not es or path.steps[-1].id is None:
            raise BadRequest(f"@iot.selfLink must point at one of the {es.name}")
        return path.steps[-1].id
    ident = write.link_id(obj)
    if ident is None:
        raise BadRequest("give @iot.id or @iot.selfLink")
    return ident


def _entity(path: ResourcePath) -> tuple[EntitySet, int]:
    """The one entity an update or a delete addresses."""
    ident = path.steps[-1].id
    if ident is None or path.attribute is not None:
        raise BadRequest("this operation needs one entity: EntitySet(id)")
    return path.target, ident


def create_observations(app: App, principal: Principal, body: Any, base: str) -> Outcome:
    """``POST /CreateObservations``: dataArray in, one selfLink (or ``"error"``) per row out; the
    ``Location`` is the first Observation stored (else the collection)."""
    _require_write(app, principal)

    def writable(ids: set[int]) -> set[int]:
        # From the datastream catalog, which ingest validates against anyway: no query per request.
        facts = app.catalog.lookup(app.engine, ids)
        return {i for i, f in facts.items() if f.disclosure in principal.levels}

    def existing_fois(ids: set[int]) -> set[int]:
        foi = SETS["FeaturesOfInterest"]
        with app.engine.connect() as conn:
            return set(conn.execute(select(foi.col("id")).where(foi.col("id").in_(sorted(ids)))).scalars())

    slots = write_obs.data_array(body, writable, existing_fois)
    records = [s for s in slots if isinstance(s, ObservationIn)]
    result = app.ingest.ingest(records, channel="sta", quarantine_rejects=False)
    refused = {id(r.payload) for r in result.rejected}
    stored = iter(result.ids)
    ids = [None if isinstance(slot, str) or id(slot) in refused else next(stored) for slot in slots]
    return Outcome(
        201,
        set=SETS["Observations"],
        id=next((ident for ident in ids if ident is not None), None),
        body=["error" if ident is None else f"{base}/Observations({ident})" for ident in ids],
    )
