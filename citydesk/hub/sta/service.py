"""SensorThings operations: the transactions around ``read`` and ``write``, and their events.

Routes call these functions and nothing else; they open the transactions, keep the datastream
catalog in step with changes, and publish ``sta.created``/``sta.updated``/``sta.deleted`` after
the commit (the MQTT extension listens to those).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode

from sqlalchemy import select

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
CONFORMANCE = [
    "http://www.opengis.net/spec/iot_sensing/1.1/req/datamodel",
    "http://www.opengis.net/spec/iot_sensing/1.1/req/resource-path/resource-path-to-entities",
    "http://www.opengis.net/spec/iot_sensing/1.1/req/request-data",
    "http://www.opengis.net/spec/iot_sensing/1.1/req/create-update-delete",
    "http://www.opengis.net/spec/iot_sensing/1.1/req/data-array/data-array",
]
MQTT_CONFORMANCE = [
    "http://www.opengis.net/spec/iot_sensing/1.1/req/create-observations-via-mqtt/observations",
    "http://www.opengis.net/spec/iot_sensing/1.1/req/receive-updates-via-mqtt/receive-updates",
]


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


def _read_context(app: App, conn: Any, principal: Principal, base: str) -> read.ReadContext:
    return read.ReadContext(
        conn=conn,
        levels=principal.levels,
        base=base,
        default_top=app.settings.sta_default_top,
        max_top=app.settings.sta_max_top,
        count_exact_limit=app.settings.count_exact_limit,
        now=app.now(),
    )


def get(app: App, principal: Principal, path_text: str, options: Mapping[str, str], base: str) -> Any:
    """Answer a GET: a collection, an entity, a property, ``$value`` or ``$ref`` listing."""
    path = parse_path(path_text)
    q = parse_query(options, max_top=app.settings.sta_max_top)
    if path.ref:
        q.select = ["selfLink"]
        q.expand = []
    with app.engine.connect().execution_options(read_only=True) as conn:
        ctx = _read_context(app, conn, principal, base)
        answer: Any
        if path.attribute is not None:
            value = read.read_property(ctx, path)
            answer = (
                ("raw", value)
                if path.value
                else {path.attribute if path.attribute != "id" else "@iot.id": value}
            )
        elif path.single:
            answer = read.read_single(ctx, path, q)[1]
        else:
            answer = read.read_collection(ctx, path, q, f"{base}/{path_text.strip('/')}")
    if ctx.restricted_read:
        target = path_text + ("?" + urlencode(dict(options)) if options else "")
        audit(
            app.engine,
            principal,
            "sta.read",
            target,
            f"{ctx.restricted_read} restricted entities",
            now=app.now(),
        )
    return answer


def _write_context(app: App, conn: Any, principal: Principal) -> write.WriteContext:
    return write.WriteContext(
        conn=conn, levels=principal.levels, geo=app.geo, now=app.now(), max_future=app.ingest.max_future
    )


def _require_write(app: App, principal: Principal) -> None:
    if app.settings.public_mode:
        raise Forbidden("this is a public instance: it takes no writes to the SensorThings API")
    principal.require("sta.write")


def _after_commit(app: App, ctx: write.WriteContext, events: list[tuple[str, str, int]]) -> None:
    for ds in ctx.touched_datastreams:
        app.catalog.forget(ds)
    for topic, set_name, ident in events:
        app.bus.publish(topic, {"set": set_name, "id": ident})


def post(app: App, principal: Principal, path_text: str, body: Any) -> tuple[EntitySet, int]:
    """Create an entity (deep insert) at a collection path; returns its set and id.

    Everything but Observations is written in one transaction; the Observations met (posted, or
    nested in a deep insert) are checked inside it, then stored through the ingest pipeline.
    """
    _require_write(app, principal)
    path = parse_path(path_text)
    if path.ref:
        raise BadRequest("use POST on .../$ref only to link an entity: see link()")
    if path.single or path.attribute is not None:
        raise BadRequest("POST goes to a collection, not to one entity")
    es = path.target
    parent_step = path.parent
    ident = 0
    with app.engine.begin() as conn:
        ctx = _write_context(app, conn, principal)
        parent: tuple[Any, int] | None = None
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
        if es.name == "Observations":
            under = {parent[0].name: parent[1]} if parent else {}
            body = write.as_object(body, "Observation")
            records = [
                write_obs.observation_in(ctx, body, under.get("Datastream"), under.get("FeatureOfInterest"))
            ]
        else:
            ident = write.create(ctx, es, body, parent=parent, nested=False)
            write.finish(ctx)
            records = [write_obs.observation_in(ctx, b, ds) for b, ds in ctx.pending_observations]
        write_obs.prevalidate(ctx, records)
    if es.name == "Observations":
        return es, store_observations(app, records)[0]
    _after_commit(app, ctx, [("sta.created", es.name, ident)])
    if records:
        store_observations(app, records)
    return es, ident


def store_observations(app: App, records: list[ObservationIn]) -> list[int]:
    """Store Observations through the pipeline; any refusal becomes a 400 with its reason."""
    result = app.ingest.ingest(records, channel="sta", quarantine_rejects=False)
    if result.rejected:
        raise ValidationFailed(result.rejected[0].reason, [r.reason for r in result.rejected])
    return result.ids


def patch(app: App, principal: Principal, path_text: str, body: Any, *, json_patch: bool = False) -> None:
    """Update one entity from a JSON object (PATCH, or PUT) or from JSON Patch operations (RFC 6902)."""
    _require_write(app, principal)
    path = _single(path_text)
    es, ident = path.target, path.steps[-1].id
    assert ident is not None
    if json_patch:
        body = _apply_json_patch(app, principal, path, body)
    body = write.as_object(body, es.singular)
    repair = RollupRepair(app.store)
    if es.name == "Observations":
        _prepare_partition(app, ident, body)
    with app.engine.begin() as conn:
        ctx = _write_context(app, conn, principal)
        if es.name == "Observations":
            write.check_exists(ctx, es, ident)
            ds = conn.execute(
                select(observations.c.datastream_id).where(observations.c.id == ident)
            ).scalar_one()
            facts = app.catalog.get_many(conn, {ds})[ds]
            write_obs.patch_observation(
                ctx, ident, body, facts, lambda d, times: repair.repair(conn, d, times)
            )
        else:
            write.patch(ctx, es, ident, body)
            write.finish(ctx)
    _after_commit(app, ctx, [("sta.updated", es.name, ident)])


def _apply_json_patch(app: App, principal: Principal, path: ResourcePath, ops: Any) -> dict[str, Any]:
    """The properties JSON Patch operations change, as a PATCH body (``null`` for removed ones)."""
    with app.engine.connect().execution_options(read_only=True) as conn:
        ctx = _read_context(app, conn, principal, "")
        current = read.read_single(ctx, path, Query())[1]
    before = {k: v for k, v in current.items() if "@" not in k}
    after = jsonpatch.apply(before, ops)
    return {k: after.get(k) for k in before.keys() | after.keys() if after.get(k) != before.get(k)}


def _prepare_partition(app: App, ident: int, body: dict[str, Any]) -> None:
    """On PostgreSQL, create the day partition an Observation moves into before the transaction
    that moves it (partition DDL inside it could wait on that very transaction's locks)."""
    if not app.store.postgres or body.get("phenomenonTime") is None:
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


def delete(app: App, principal: Principal, path_text: str) -> None:
    _require_write(app, principal)
    path = parse_path(path_text)
    if path.ref:
        unlink(app, principal, path)
        return
    path = _single(path_text)
    es, ident = path.target, path.steps[-1].id
    assert ident is not None
    repair = RollupRepair(app.store)
    with app.engine.begin() as conn:
        ctx = _write_context(app, conn, principal)
        write.delete_entity(ctx, es, ident, lambda ds, times: repair.repair(conn, ds, times))
    _after_commit(app, ctx, [("sta.deleted", es.name, ident)])


def link(app: App, principal: Principal, path_text: str, body: Any) -> None:
    """``POST /Things(1)/Locations/$ref`` with ``{"@iot.id": 2}`` (or ``@iot.selfLink``)."""
    _require_write(app, principal)
    path = parse_path(path_text)
    parent, last = path.parent, path.steps[-1]
    if not path.ref or parent is None or parent.id is None or last.relation is None:
        raise BadRequest("link with POST Entity(id)/Navigation/$ref")
    target_id = _ref_target(body, last.set)
    with app.engine.begin() as conn:
        ctx = _write_context(app, conn, principal)
        write.set_ref(ctx, parent.set, parent.id, last.relation, target_id, add=True)
        write.finish(ctx)
    _after_commit(app, ctx, [("sta.updated", parent.set.name, parent.id)])


def unlink(app: App, principal: Principal, path: ResourcePath) -> None:
    parent, last = path.parent, path.steps[-1]
    if parent is None or parent.id is None or last.relation is None or last.id is None:
        raise BadRequest("unlink with DELETE Entity(id)/Navigation(id)/$ref")
    with app.engine.begin() as conn:
        ctx = _write_context(app, conn, principal)
        write.set_ref(ctx, parent.set, parent.id, last.relation, last.id, add=False)
        write.finish(ctx)
    _after_commit(app, ctx, [("sta.updated", parent.set.name, parent.id)])


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


def _single(path_text: str) -> ResourcePath:
    path = parse_path(path_text)
    if path.steps[-1].id is None or path.attribute is not None:
        raise BadRequest("this operation needs one entity: EntitySet(id)")
    return path


def create_observations(app: App, principal: Principal, body: Any, base: str) -> list[str]:
    """``POST /CreateObservations``: dataArray in, one selfLink (or ``"error"``) per row out."""
    _require_write(app, principal)
    with app.engine.connect() as conn:
        slots = write_obs.data_array(_write_context(app, conn, principal), body)
    records = [s for s in slots if isinstance(s, ObservationIn)]
    result = app.ingest.ingest(records, channel="sta", quarantine_rejects=False)
    refused = {id(r.payload) for r in result.rejected}
    stored = iter(result.ids)
    return [
        "error" if isinstance(slot, str) or id(slot) in refused else f"{base}/Observations({next(stored)})"
        for slot in slots
    ]
