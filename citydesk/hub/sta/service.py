"""SensorThings operations: the transactions around ``read`` and ``write``, and their events.

Routes call these functions and nothing else; they open the transactions, keep the datastream
catalog in step with changes, and publish ``sta.created``/``sta.updated``/``sta.deleted`` after
the commit (the MQTT extension listens to those).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import select, update

from citydesk.auth import Principal
from citydesk.errors import BadRequest, Forbidden, ValidationFailed
from citydesk.hub.models import observations
from citydesk.hub.records import ObservationIn, Rejected
from citydesk.hub.sta import read, write
from citydesk.hub.sta.entities import SETS, EntitySet, inverse
from citydesk.hub.sta.paths import ResourcePath, parse_path
from citydesk.hub.sta.query import parse_query
from citydesk.hub.sta.timeparse import parse_instant, parse_interval
from citydesk.hub.store import RollupRepair
from citydesk.hub.validate import result_columns

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
        if path.attribute is not None:
            value = read.read_property(ctx, path)
            if path.value:
                return ("raw", value)
            return {path.attribute if path.attribute != "id" else "@iot.id": value}
        if path.single:
            return read.read_single(ctx, path, q)[1]
        return read.read_collection(ctx, path, q, f"{base}/{path_text.strip('/')}")


def _write_context(app: App, conn: Any, principal: Principal) -> write.WriteContext:
    return write.WriteContext(conn=conn, levels=principal.levels, geo=app.geo, now=app.now())


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
    """Create an entity (deep insert) at a collection path; returns its set and id."""
    _require_write(app, principal)
    path = parse_path(path_text)
    if path.ref:
        raise BadRequest("use POST on .../$ref only to link an entity: see link()")
    if path.single or path.attribute is not None:
        raise BadRequest("POST goes to a collection, not to one entity")
    es = path.target
    parent_step = path.parent
    with app.engine.begin() as conn:
        ctx = _write_context(app, conn, principal)
        parent: tuple[Any, int] | None = None
        if parent_step is not None:
            if parent_step.id is None:
                raise BadRequest("the parent in the path needs an id")
            last = path.steps[-1]
            assert last.relation is not None
            write.check_exists(ctx, parent_step.set, parent_step.id)
            back = inverse(parent_step.set, last.relation)
            if back is None:
                raise BadRequest(f"cannot create {es.name} under {parent_step.set.singular}")
            parent = (back, parent_step.id)
        if es.name == "Observations":
            ds = parent[1] if parent and parent[0].name == "Datastream" else None
            record = write.observation_in(ctx, write._obj(body, "Observation"), ds)
            if parent and parent[0].name == "FeatureOfInterest":
                record.foi_id = parent[1]
        else:
            ident = write.create(ctx, es, body, parent=parent)
            write.finish(ctx)
            pending = [write.observation_in(ctx, b, ds) for b, ds in ctx.pending_observations]
            record = None
    if es.name == "Observations":
        assert record is not None
        return es, store_observations(app, [record])[0]
    _after_commit(app, ctx, [("sta.created", es.name, ident)])
    if pending:
        store_observations(app, pending)
    return es, ident


def store_observations(app: App, records: list[ObservationIn]) -> list[int]:
    """Store Observations through the pipeline; any refusal becomes a 400 with its reason."""
    result = app.ingest.ingest(records, channel="sta", quarantine_rejects=False)
    if result.rejected:
        raise ValidationFailed(result.rejected[0].reason, [r.reason for r in result.rejected])
    for ident in result.ids:
        app.bus.publish("sta.created", {"set": "Observations", "id": ident, "internal": True})
    return result.ids


def patch(app: App, principal: Principal, path_text: str, body: Any) -> None:
    _require_write(app, principal)
    path = _single(path_text)
    es, ident = path.target, path.steps[-1].id
    assert ident is not None
    with app.engine.begin() as conn:
        ctx = _write_context(app, conn, principal)
        if es.name == "Observations":
            _patch_observation(app, ctx, ident, write._obj(body, "Observation"))
        else:
            write.patch(ctx, es, ident, body)
            write.finish(ctx)
    _after_commit(app, ctx, [("sta.updated", es.name, ident)])


def _patch_observation(app: App, ctx: write.WriteContext, ident: int, body: dict[str, Any]) -> None:
    write.check_exists(ctx, SETS["Observations"], ident)
    old = ctx.conn.execute(select(observations).where(observations.c.id == ident)).one()
    values: dict[str, Any] = {}
    if "phenomenonTime" in body:
        values["phenomenon_time"], values["phenomenon_time_end"] = parse_interval(body["phenomenonTime"], "phenomenonTime")
    if "resultTime" in body:
        values["result_time"] = parse_instant(body["resultTime"], "resultTime") if body["resultTime"] else None
    for key, col in (("resultQuality", "result_quality"), ("parameters", "parameters")):
        if key in body:
            values[col] = body[key]
    if "result" in body:
        facts = app.catalog.get_many(ctx.conn, {old.datastream_id})[old.datastream_id]
        try:
            values["result_number"], values["result_json"] = result_columns(body["result"], facts)
        except ValueError as exc:
            raise ValidationFailed(str(exc)) from None
    unknown = set(body) - {"phenomenonTime", "resultTime", "resultQuality", "parameters", "result", "validTime"}
    if unknown:
        raise ValidationFailed(f"these Observation properties cannot be changed here: {', '.join(sorted(unknown))}")
    if "validTime" in body:
        values["valid_time_start"], values["valid_time_end"] = parse_interval(body["validTime"], "validTime")
    if values:
        ctx.conn.execute(update(observations).where(observations.c.id == ident).values(**values))
        times: list[datetime] = [old.phenomenon_time, values.get("phenomenon_time", old.phenomenon_time)]
        RollupRepair(app.store).repair(ctx.conn, old.datastream_id, times)


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
    obj = write._obj(body, "$ref body")
    if "@iot.selfLink" in obj:
        tail = str(obj["@iot.selfLink"]).rstrip("/").rsplit("/", 1)[-1]
        path = parse_path(tail)
        if path.target is not es or path.steps[-1].id is None:
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
    if not isinstance(body, list):
        raise BadRequest("CreateObservations takes a JSON array of {Datastream, components, dataArray}")
    slots: list[ObservationIn | str] = []
    with app.engine.connect() as conn:
        ctx = _write_context(app, conn, principal)
        for group in body:
            group = write._obj(group, "CreateObservations item")
            ds_id = write.link_id(write._obj(group.get("Datastream"), "Datastream"))
            components = group.get("components")
            rows = group.get("dataArray")
            if ds_id is None or not isinstance(components, list) or not isinstance(rows, list):
                raise BadRequest("each item needs Datastream.@iot.id, components and dataArray")
            write.check_exists(ctx, SETS["Datastreams"], ds_id)
            for row in rows:
                slots.append(_data_array_row(ds_id, components, row))
    records = [s for s in slots if isinstance(s, ObservationIn)]
    result = app.ingest.ingest(records, channel="sta", quarantine_rejects=False)
    refused = {id(r.payload) for r in result.rejected if isinstance(r, Rejected)}
    stored = iter(result.ids)
    out: list[str] = []
    for slot in slots:
        if isinstance(slot, str) or id(slot) in refused:
            out.append("error")
        else:
            out.append(f"{base}/Observations({next(stored)})")
    return out


def _data_array_row(ds_id: int, components: list[Any], row: Any) -> ObservationIn | str:
    if not isinstance(row, list) or len(row) != len(components):
        return "error"
    values = dict(zip(components, row, strict=True))
    try:
        phen = values.get("phenomenonTime")
        start, end = parse_interval(phen, "phenomenonTime") if phen is not None else (None, None)
        result_time = values.get("resultTime")
        foi = values.get("FeatureOfInterest/id")
        return ObservationIn(
            datastream_id=ds_id,
            result=values.get("result"),
            phenomenon_time=start,
            phenomenon_time_end=end,
            result_time=parse_instant(result_time, "resultTime") if result_time else None,
            result_quality=values.get("resultQuality"),
            parameters=values.get("parameters"),
            foi_id=int(foi) if foi is not None else None,
        )
    except (ValidationFailed, TypeError, ValueError):
        return "error"

