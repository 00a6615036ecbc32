"""Creating, updating and deleting SensorThings entities, deep inserts included.

Entities other than Observations are written here in one transaction per request. Observations
go through the ingest pipeline like every other channel, so they are validated, rolled up and
announced the same way whether they come from a POST, MQTT, a connector or the simulator.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, delete, insert, select, update

from citydesk.errors import BadRequest, NotFound, ValidationFailed
from citydesk.hub.catalog import CATEGORY_OBSERVATION, COUNT_OBSERVATION, MEASUREMENT, TRUTH_OBSERVATION
from citydesk.hub.features import Locator, spatial_columns
from citydesk.hub.models import (
    datastreams,
    historical_location_locations,
    historical_locations,
    locations,
    observations,
    thing_locations,
)
from citydesk.hub.records import ObservationIn
from citydesk.hub.sta.access import visible
from citydesk.hub.sta.entities import SETS, EntitySet, FieldSpec, Relation, inverse
from citydesk.hub.sta.timeparse import parse_instant, parse_interval
from citydesk.hub.store import FAMILY_RE

OBSERVATION_TYPES = {
    MEASUREMENT,
    COUNT_OBSERVATION,
    TRUTH_OBSERVATION,
    CATEGORY_OBSERVATION,
    "http://www.opengis.net/def/observationType/OGC-OM/2.0/OM_Observation",
    "http://www.opengis.net/def/observationType/OGC-OM/2.0/OM_ComplexObservation",
}
DISCLOSURES = ("public", "internal", "restricted")


@dataclass
class WriteContext:
    conn: Connection
    levels: frozenset[str]
    geo: Locator
    now: datetime
    pending_observations: list[tuple[dict[str, Any], int | None]] = field(default_factory=list)
    """Observations met inside a deep insert: stored through the pipeline after the commit."""
    touched_things: set[int] = field(default_factory=set)
    touched_datastreams: set[int] = field(default_factory=set)


def _obj(value: Any, where: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise BadRequest(f"{where} must be a JSON object")
    return value


def link_id(value: dict[str, Any]) -> int | None:
    ident = value.get("@iot.id", value.get("id"))
    if ident is None:
        return None
    try:
        return int(ident)
    except (TypeError, ValueError):
        raise BadRequest(f"@iot.id {ident!r} is not a valid id") from None


def check_exists(ctx: WriteContext, es: EntitySet, ident: int) -> int:
    found = ctx.conn.execute(
        select(es.col("id")).where(es.col("id") == ident, visible(es, ctx.levels))
    ).scalar()
    if found is None:
        raise NotFound(f"no {es.singular} with @iot.id {ident}")
    return ident


def _column_value(es: EntitySet, spec: FieldSpec, value: Any) -> dict[str, Any]:
    """Check one JSON property and return the column values it sets."""
    name = f"{es.singular}.{spec.name}"
    if value is None:
        if spec.required:
            raise ValidationFailed(f"{name} is required")
        cols = {spec.column: None}
        if spec.end_column:
            cols[spec.end_column] = None
        return cols
    if spec.kind == "string":
        if not isinstance(value, str):
            raise ValidationFailed(f"{name} must be a string")
        return {spec.column: value}
    if spec.kind == "geometry":
        obj = _obj(value, name)
        if "type" not in obj:
            raise ValidationFailed(f"{name} must be GeoJSON (a geometry or a Feature)")
        return {spec.column: obj}
    if spec.kind == "datetime":
        return {spec.column: parse_instant(value, name)}
    if spec.kind == "interval":
        start, end = parse_interval(value, name)
        return {spec.column: start, spec.end_column: end}
    if spec.kind == "json" and spec.name == "unitOfMeasurement":
        _obj(value, name)
    if spec.kind == "json" and spec.name in ("properties", "parameters") and not isinstance(value, dict):
        raise ValidationFailed(f"{name} must be a JSON object")
    return {spec.column: value}


def _fields(es: EntitySet, payload: dict[str, Any], *, partial: bool) -> dict[str, Any]:
    values: dict[str, Any] = {}
    for key in payload:
        if "@" in key or key in ("id",) or es.relation(key) is not None:
            continue
        spec = es.field(key)
        if spec is None:
            raise ValidationFailed(f"{es.singular} has no property {key!r}")
        if not spec.writable:
            raise ValidationFailed(f"{es.singular}.{key} is computed by the server and cannot be set")
    for spec in es.fields:
        if spec.kind == "result" or not spec.writable:
            continue
        if spec.name in payload:
            values.update(_column_value(es, spec, payload[spec.name]))
        elif spec.required and not partial:
            raise ValidationFailed(f"{es.singular}.{spec.name} is required")
        elif spec.name == "description" and not partial:
            values["description"] = ""
    return values


def _derived(ctx: WriteContext, es: EntitySet, values: dict[str, Any]) -> None:
    """Server-side columns: disclosure and family from properties, spatial columns from geometry."""
    props = values.get("properties")
    if isinstance(props, dict) and "disclosure" in props and "disclosure" in es.table.c:
        if props["disclosure"] not in DISCLOSURES:
            raise ValidationFailed(f"properties.disclosure must be one of {', '.join(DISCLOSURES)}")
        if props["disclosure"] not in ctx.levels:
            raise ValidationFailed(f"you may not create {props['disclosure']} data")
        values["disclosure"] = props["disclosure"]
    if es.name == "Datastreams":
        if "observation_type" in values and values["observation_type"] not in OBSERVATION_TYPES:
            raise ValidationFailed(f"unknown observationType {values['observation_type']!r}")
        if isinstance(props, dict) and "family" in props:
            if not isinstance(props["family"], str) or not FAMILY_RE.match(props["family"]):
                raise ValidationFailed("properties.family must be lower-case letters, digits and _")
            values["family"] = props["family"]
    geometry_col = {"Locations": "location", "FeaturesOfInterest": "feature"}.get(es.name)
    if geometry_col and values.get(geometry_col) is not None:
        values.update(spatial_columns(values[geometry_col], ctx.geo))


def create(
    ctx: WriteContext, es: EntitySet, payload: Any, *, parent: tuple[Relation, int] | None = None
) -> int:
    """Create ``payload`` as an ``es`` entity (with nested entities); returns its id.

    ``parent`` is the relation and id the entity is created under (``POST /Things(1)/Datastreams``
    or a nested array in a deep insert). An object carrying ``@iot.id`` is a link to an existing
    entity, even if other properties are sent along (real clients do that).
    """
    body = _obj(payload, es.singular)
    existing = link_id(body)
    if existing is not None:
        return check_exists(ctx, es, existing)
    if es.name == "Observations":
        raise BadRequest("Observations are created on their own, not inside another entity")
    values = _fields(es, body, partial=False)
    _derived(ctx, es, values)
    later: list[tuple[Relation, list[Any]]] = []
    for rel in es.relations:
        given = body.get(rel.name)
        if parent is not None and parent[0].name == rel.name:
            if rel.kind == "one":
                assert rel.local is not None
                values[rel.local] = parent[1]
            continue
        if given is None:
            if rel.kind == "one" and rel.required:
                raise ValidationFailed(f"{es.singular} needs a {rel.name}")
            continue
        if rel.kind == "one":
            assert rel.local is not None
            values[rel.local] = create(ctx, SETS[rel.target], given)
        else:
            if not isinstance(given, list):
                raise ValidationFailed(f"{es.singular}.{rel.name} must be an array")
            later.append((rel, given))
    if es.name == "Datastreams":
        values["district_code"] = _thing_district(ctx, values["thing_id"])
    ident = int(ctx.conn.execute(insert(es.table).values(**values).returning(es.col("id"))).scalar_one())
    if parent is not None and parent[0].kind == "link":
        _link(ctx, parent[0], parent[1], ident, reverse=True)
    for rel, items in later:
        for item in items:
            if rel.target == "Observations":
                ctx.pending_observations.append((_obj(item, "Observation"), ident))
                continue
            target = SETS[rel.target]
            if rel.kind == "many":
                back = inverse(es, rel)
                child = create(ctx, target, item, parent=(back, ident) if back else None)
                if link_id(_obj(item, target.singular)) is not None:
                    assert rel.remote is not None
                    ctx.conn.execute(update(target.table).where(target.col("id") == child).values({rel.remote: ident}))
            else:
                child = create(ctx, target, item)
                _link(ctx, rel, ident, child)
    _after_write(ctx, es, ident, body)
    return ident


def _link(ctx: WriteContext, rel: Relation, owner: int, other: int, *, reverse: bool = False) -> None:
    """Insert one row of a many-to-many link table (``reverse``: ``owner`` is the target side)."""
    assert rel.through is not None and rel.local and rel.remote
    a, b = (other, owner) if reverse else (owner, other)
    exists = ctx.conn.execute(
        select(rel.through).where(rel.through.c[rel.local] == a, rel.through.c[rel.remote] == b)
    ).first()
    if exists is None:
        ctx.conn.execute(insert(rel.through).values({rel.local: a, rel.remote: b}))
    if rel.through is thing_locations:
        ctx.touched_things.add(a if rel.local == "thing_id" else b)


def _thing_district(ctx: WriteContext, thing_id: int) -> str | None:
    return ctx.conn.execute(
        select(locations.c.district_code)
        .join(thing_locations, thing_locations.c.location_id == locations.c.id)
        .where(thing_locations.c.thing_id == thing_id)
        .order_by(locations.c.id.desc())
        .limit(1)
    ).scalar()


def _after_write(ctx: WriteContext, es: EntitySet, ident: int, body: dict[str, Any]) -> None:
    if es.name == "Things" and body.get("Locations"):
        ctx.touched_things.add(ident)
    if es.name == "Datastreams":
        ctx.touched_datastreams.add(ident)


def finish(ctx: WriteContext) -> None:
    """After a write: HistoricalLocations for Things whose Locations changed, districts refreshed."""
    for thing_id in sorted(ctx.touched_things):
        loc_ids = [
            r[0] for r in ctx.conn.execute(select(thing_locations.c.location_id).where(thing_locations.c.thing_id == thing_id))
        ]
        if loc_ids:
            hl = ctx.conn.execute(
                insert(historical_locations).values(time=ctx.now, thing_id=thing_id).returning(historical_locations.c.id)
            ).scalar_one()
            ctx.conn.execute(
                insert(historical_location_locations),
                [{"historical_location_id": hl, "location_id": lid} for lid in loc_ids],
            )
        ds_ids = [r[0] for r in ctx.conn.execute(select(datastreams.c.id).where(datastreams.c.thing_id == thing_id))]
        ctx.conn.execute(
            update(datastreams).where(datastreams.c.thing_id == thing_id).values(district_code=_thing_district(ctx, thing_id))
        )
        ctx.touched_datastreams.update(ds_ids)


def patch(ctx: WriteContext, es: EntitySet, ident: int, payload: Any) -> None:
    """Update the given properties and to-one relations of one entity."""
    body = _obj(payload, es.singular)
    check_exists(ctx, es, ident)
    values = _fields(es, body, partial=True)
    _derived(ctx, es, values)
    for rel in es.relations:
        if rel.name not in body:
            continue
        given = _obj(body[rel.name], rel.name) if rel.kind == "one" else body[rel.name]
        if rel.kind == "one":
            assert rel.local is not None
            values[rel.local] = create(ctx, SETS[rel.target], given)
        elif rel.kind == "link" and isinstance(given, list):
            assert rel.through is not None and rel.local
            ctx.conn.execute(delete(rel.through).where(rel.through.c[rel.local] == ident))
            for item in given:
                _link(ctx, rel, ident, create(ctx, SETS[rel.target], item))
            if es.name == "Things":
                ctx.touched_things.add(ident)
        else:
            raise ValidationFailed(f"{rel.name} cannot be changed by PATCH; use its own entity set")
    if values:
        ctx.conn.execute(update(es.table).where(es.col("id") == ident).values(**values))
    if es.name == "Locations" and "location" in values:
        ctx.touched_things.update(
            r[0] for r in ctx.conn.execute(select(thing_locations.c.thing_id).where(thing_locations.c.location_id == ident))
        )
    if es.name == "Datastreams":
        ctx.touched_datastreams.add(ident)


def delete_entity(ctx: WriteContext, es: EntitySet, ident: int, on_observations_deleted: Callable[[int, list[datetime]], None]) -> None:
    """Delete one entity and what the standard says goes with it."""
    check_exists(ctx, es, ident)
    if es.name == "Observations":
        row = ctx.conn.execute(select(observations.c.datastream_id, observations.c.phenomenon_time).where(observations.c.id == ident)).one()
        ctx.conn.execute(delete(observations).where(observations.c.id == ident))
        on_observations_deleted(row.datastream_id, [row.phenomenon_time])
        return
    cascade_ds: Any = None
    if es.name == "Things":
        cascade_ds = select(datastreams.c.id).where(datastreams.c.thing_id == ident)
    elif es.name == "Sensors":
        cascade_ds = select(datastreams.c.id).where(datastreams.c.sensor_id == ident)
    elif es.name == "ObservedProperties":
        cascade_ds = select(datastreams.c.id).where(datastreams.c.observed_property_id == ident)
    elif es.name == "Datastreams":
        cascade_ds = select(datastreams.c.id).where(datastreams.c.id == ident)
    elif es.name == "FeaturesOfInterest":
        touched = ctx.conn.execute(
            select(observations.c.datastream_id, observations.c.phenomenon_time).where(observations.c.foi_id == ident)
        ).all()
        ctx.conn.execute(delete(observations).where(observations.c.foi_id == ident))
        by_ds: dict[int, list[datetime]] = {}
        for ds, t in touched:
            by_ds.setdefault(ds, []).append(t)
        for ds, times in by_ds.items():
            on_observations_deleted(ds, times)
    if cascade_ds is not None:
        ds_ids = [r[0] for r in ctx.conn.execute(cascade_ds)]
        if ds_ids:
            ctx.conn.execute(delete(observations).where(observations.c.datastream_id.in_(ds_ids)))
            ctx.touched_datastreams.update(ds_ids)
    ctx.conn.execute(delete(es.table).where(es.col("id") == ident))


def set_ref(ctx: WriteContext, es: EntitySet, ident: int, rel: Relation, target_id: int, *, add: bool) -> None:
    """``POST``/``DELETE .../{rel}/$ref``: link or unlink two existing entities."""
    target = SETS[rel.target]
    check_exists(ctx, es, ident)
    check_exists(ctx, target, target_id)
    if rel.kind == "link":
        assert rel.through is not None and rel.local and rel.remote
        if add:
            _link(ctx, rel, ident, target_id)
        else:
            ctx.conn.execute(
                delete(rel.through).where(rel.through.c[rel.local] == ident, rel.through.c[rel.remote] == target_id)
            )
        if es.name in ("Things", "Locations"):
            ctx.touched_things.add(ident if es.name == "Things" else target_id)
        return
    if rel.kind == "one" and add:
        assert rel.local is not None
        ctx.conn.execute(update(es.table).where(es.col("id") == ident).values({rel.local: target_id}))
        return
    raise BadRequest(f"{es.singular}.{rel.name} cannot be changed through $ref")


def observation_in(ctx: WriteContext, body: dict[str, Any], datastream_id: int | None) -> ObservationIn:
    """Turn an Observation JSON body into the pipeline's record (FoI created first if inline)."""
    es = SETS["Observations"]
    for key in body:
        if "@" not in key and es.field(key) is None and es.relation(key) is None and key != "id":
            raise ValidationFailed(f"Observation has no property {key!r}")
    ds = body.get("Datastream")
    if ds is not None:
        datastream_id = link_id(_obj(ds, "Datastream"))
    if datastream_id is None:
        raise ValidationFailed("an Observation needs a Datastream (by @iot.id)")
    check_exists(ctx, SETS["Datastreams"], datastream_id)
    if "result" not in body:
        raise ValidationFailed("Observation.result is required")
    phen_start, phen_end = (None, None)
    if body.get("phenomenonTime") is not None:
        phen_start, phen_end = parse_interval(body["phenomenonTime"], "Observation.phenomenonTime")
    valid = parse_interval(body["validTime"], "Observation.validTime") if body.get("validTime") else (None, None)
    foi_id = None
    if body.get("FeatureOfInterest") is not None:
        foi_id = create(ctx, SETS["FeaturesOfInterest"], body["FeatureOfInterest"])
    params = body.get("parameters")
    if params is not None and not isinstance(params, dict):
        raise ValidationFailed("Observation.parameters must be a JSON object")
    return ObservationIn(
        datastream_id=datastream_id,
        result=body["result"],
        phenomenon_time=phen_start,
        phenomenon_time_end=phen_end,
        result_time=parse_instant(body["resultTime"], "Observation.resultTime") if body.get("resultTime") else None,
        valid_time_start=valid[0],
        valid_time_end=valid[1],
        result_quality=body.get("resultQuality"),
        parameters=params,
        foi_id=foi_id,
    )
