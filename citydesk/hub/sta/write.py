"""Creating, updating and deleting SensorThings entities, deep inserts included.

Entities other than Observations are written here in one transaction per request. Observations
go through the ingest pipeline like every other channel, so they are validated, rolled up and
announced the same way whether they come from a POST, MQTT, a connector or the simulator.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, delete, insert, select, update

from citydesk.auth import Disclosure
from citydesk.errors import BadRequest, CitydeskError, NotFound, ValidationFailed
from citydesk.hub.catalog import CATEGORY_OBSERVATION, COUNT_OBSERVATION, MEASUREMENT, TRUTH_OBSERVATION
from citydesk.hub.features import spatial_columns
from citydesk.hub.ingest import CityLocator
from citydesk.hub.models import (
    datastreams,
    historical_location_locations,
    historical_locations,
    locations,
    observations,
    thing_locations,
)
from citydesk.hub.sta.access import visible
from citydesk.hub.sta.entities import MAX_ID, SETS, EntitySet, FieldSpec, Relation, inverse
from citydesk.hub.sta.geometry import check_geometry
from citydesk.hub.store import FAMILY_RE
from citydesk.hub.times import parse_instant, parse_interval

OBSERVATION_TYPES = {
    MEASUREMENT,
    COUNT_OBSERVATION,
    TRUTH_OBSERVATION,
    CATEGORY_OBSERVATION,
    "http://www.opengis.net/def/observationType/OGC-OM/2.0/OM_Observation",
    "http://www.opengis.net/def/observationType/OGC-OM/2.0/OM_ComplexObservation",
}
DISCLOSURES = tuple(level.value for level in Disclosure)


@dataclass
class WriteContext:
    conn: Connection
    levels: frozenset[str]
    geo: CityLocator
    now: datetime
    max_future: timedelta = timedelta(hours=1)
    """Observation times further ahead than this are refused (``Settings.max_future_seconds``)."""
    pending_observations: list[tuple[dict[str, Any], int | None]] = field(default_factory=list)
    """Observations met inside a deep insert: stored through the pipeline after the commit."""
    touched_things: set[int] = field(default_factory=set)
    touched_datastreams: set[int] = field(default_factory=set)


def as_object(value: Any, where: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise BadRequest(f"{where} must be a JSON object")
    return value


def link_id(value: dict[str, Any]) -> int | None:
    """The ``@iot.id`` an object carries (a number, or a string of digits), if any."""
    ident = value.get("@iot.id", value.get("id"))
    if ident is None:
        return None
    if isinstance(ident, int) and not isinstance(ident, bool) and 0 < ident <= MAX_ID:
        return ident
    if isinstance(ident, str) and ident.isdigit() and 0 < int(ident) <= MAX_ID:
        return int(ident)
    raise ValidationFailed(f"@iot.id {str(ident)[:30]!r} is not a valid id")


def check_exists(
    ctx: WriteContext, es: EntitySet, ident: int, *, missing: type[CitydeskError] = NotFound
) -> int:
    """``ident`` if the caller may see that entity; else ``missing`` (404 for a path, 400 for a body)."""
    found = ctx.conn.execute(
        select(es.col("id")).where(es.col("id") == ident, visible(es, ctx.levels))
    ).scalar()
    if found is None:
        raise missing(f"no {es.singular} with @iot.id {ident}")
    return ident


def _column_value(es: EntitySet, spec: FieldSpec, value: Any) -> dict[str, Any]:
    """Check one JSON property and return the column values it sets."""
    name = f"{es.singular}.{spec.name}"
    assert spec.column is not None, "only stored properties are written"
    if value is None:
        if spec.required:
            raise ValidationFailed(f"{name} is required")
        if not es.table.c[spec.column].nullable:  # description: absent means empty
            return {spec.column: ""}
        cols = {spec.column: None}
        if spec.end_column:
            cols[spec.end_column] = None
        return cols
    if spec.kind == "string":
        if not isinstance(value, str):
            raise ValidationFailed(f"{name} must be a string")
        return {spec.column: value}
    if spec.kind == "geometry":
        if not isinstance(value, dict) or "type" not in value:
            raise ValidationFailed(f"{name} must be GeoJSON (a geometry or a Feature)")
        return {spec.column: value}
    if spec.kind == "datetime":
        return {spec.column: parse_instant(value, name)}
    if spec.kind == "interval":
        assert spec.end_column is not None
        start, end = parse_interval(value, name)
        return {spec.column: start, spec.end_column: end}
    if spec.kind == "json" and spec.name == "unitOfMeasurement" and not isinstance(value, dict):
        raise ValidationFailed(f"{name} must be a JSON object with name, symbol and definition")
    if spec.kind == "json" and spec.name in ("properties", "parameters") and not isinstance(value, dict):
        raise ValidationFailed(f"{name} must be a JSON object")
    return {spec.column: value}


def _fields(es: EntitySet, payload: dict[str, Any], *, partial: bool) -> dict[str, Any]:
    """Column values for the JSON properties given; unless ``partial``, every other property too:
    its default (null, or an empty description), or a refusal if it is required. That is a create,
    and a PUT, which replaces the entity (OData 4.0 Protocol 11.4.3, SensorThings 1.1 §10.3).
    Properties the server computes (a Datastream's ``phenomenonTime``, ...) are ignored: clients
    that PUT back what they read send them."""
    values: dict[str, Any] = {}
    for key in payload:
        if "@" in key or key in ("id",) or es.relation(key) is not None:
            continue
        if es.field(key) is None:
            raise ValidationFailed(f"{es.singular} has no property {key!r}")
    for spec in es.fields:
        if spec.kind == "result" or not spec.writable:
            continue
        if spec.name in payload:
            values.update(_column_value(es, spec, payload[spec.name]))
        elif not partial:
            values.update(_column_value(es, spec, None))
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
        check_geometry(ctx.geo, values[geometry_col], f"{es.singular}.{geometry_col}")
        values.update(spatial_columns(values[geometry_col], ctx.geo))


def create(
    ctx: WriteContext,
    es: EntitySet,
    payload: Any,
    *,
    parent: tuple[Relation, int] | None = None,
    nested: bool = True,
) -> int:
    """Create ``payload`` as an ``es`` entity (with nested entities); returns its id.

    ``parent`` is the relation and id the entity is created under (``POST /Things(1)/Datastreams``
    or a nested array in a deep insert). A nested object carrying ``@iot.id`` is a link to an
    existing entity, even if other properties are sent along (real clients do that); at the top
    level (``nested=False``) ids are the server's to assign.
    """
    body = as_object(payload, es.singular)
    existing = link_id(body)
    if existing is not None:
        if not nested and parent is None:
            raise BadRequest(f"@iot.id is assigned by the server; POST a new {es.singular} without it")
        check_exists(ctx, es, existing, missing=ValidationFailed)
        if parent is not None:
            _attach(ctx, es, existing, parent)
        return existing
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
        add_related(ctx, es, ident, rel, items)
    _after_write(ctx, es, ident, body)
    return ident


def _attach(ctx: WriteContext, es: EntitySet, ident: int, parent: tuple[Relation, int]) -> None:
    """Relate the existing entity ``ident`` to the parent it was given under."""
    rel, parent_id = parent
    if rel.kind == "one":
        set_one(ctx, es, ident, rel, parent_id)
    elif rel.kind == "link":
        _link(ctx, rel, parent_id, ident, reverse=True)
    else:
        raise ValidationFailed(f"{es.singular} {ident} cannot be linked that way")


def add_related(ctx: WriteContext, es: EntitySet, ident: int, rel: Relation, items: list[Any]) -> None:
    """Create or link each item of a to-many navigation property of entity ``ident``."""
    target = SETS[rel.target]
    back = inverse(es, rel)
    for item in items:
        if rel.target == "Observations":
            ctx.pending_observations.append((as_object(item, "Observation"), ident))
            continue
        if rel.kind == "many":
            create(ctx, target, item, parent=(back, ident) if back else None)
        else:
            _link(ctx, rel, ident, create(ctx, target, item))


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
    """After a write: HistoricalLocations for Things whose Locations changed, districts refreshed.

    The Things are then forgotten, so that the next write of the same transaction (a batch's
    atomicity group) does not record them again."""
    for thing_id in sorted(ctx.touched_things):
        linked = select(thing_locations.c.location_id).where(thing_locations.c.thing_id == thing_id)
        loc_ids = list(ctx.conn.execute(linked).scalars())
        if loc_ids:
            hl = ctx.conn.execute(
                insert(historical_locations)
                .values(time=ctx.now, thing_id=thing_id)
                .returning(historical_locations.c.id)
            ).scalar_one()
            ctx.conn.execute(
                insert(historical_location_locations),
                [{"historical_location_id": hl, "location_id": lid} for lid in loc_ids],
            )
        streams = select(datastreams.c.id).where(datastreams.c.thing_id == thing_id)
        ctx.touched_datastreams.update(ctx.conn.execute(streams).scalars())
        ctx.conn.execute(
            update(datastreams)
            .where(datastreams.c.thing_id == thing_id)
            .values(district_code=_thing_district(ctx, thing_id))
        )
    ctx.touched_things.clear()


def update_entity(
    ctx: WriteContext, es: EntitySet, ident: int, payload: Any, *, replace: bool = False
) -> None:
    """Update one entity: PATCH merges the properties given; PUT (``replace``) replaces them all,
    resetting the ones left out to their defaults and refusing the request if a required one is
    missing. Derived columns (disclosure, family) change only when ``properties`` names them, so a
    replace never quietly lowers a disclosure level.

    Relations are the same for both: a to-one relation is re-pointed; a many-to-many list
    (``Thing.Locations``) replaces the links; a to-many list (``Thing.Datastreams``) attaches the
    entities given, creating new ones; relations left out are kept.
    """
    body = as_object(payload, es.singular)
    check_exists(ctx, es, ident)
    values = _fields(es, body, partial=not replace)
    _derived(ctx, es, values)
    if values:
        ctx.conn.execute(update(es.table).where(es.col("id") == ident).values(**values))
    for rel in es.relations:
        if rel.name not in body:
            continue
        if rel.kind == "one":
            set_one(ctx, es, ident, rel, create(ctx, SETS[rel.target], as_object(body[rel.name], rel.name)))
            continue
        given = body[rel.name]
        if not isinstance(given, list):
            raise ValidationFailed(f"{es.singular}.{rel.name} must be an array")
        if rel.target == "Observations":
            raise ValidationFailed(f"add Observations with POST .../{es.name}({ident})/Observations")
        if rel.kind == "link":
            assert rel.through is not None and rel.local and rel.remote
            linked = select(rel.through.c[rel.remote]).where(rel.through.c[rel.local] == ident)
            before, touched = set(ctx.conn.execute(linked).scalars()), set(ctx.touched_things)
            ctx.conn.execute(delete(rel.through).where(rel.through.c[rel.local] == ident))
            add_related(ctx, es, ident, rel, given)
            if set(ctx.conn.execute(linked).scalars()) == before:
                ctx.touched_things = touched  # the same links again: no new HistoricalLocation
        else:
            add_related(ctx, es, ident, rel, given)
    if es.name == "Locations" and "location" in values:
        things_here = select(thing_locations.c.thing_id).where(thing_locations.c.location_id == ident)
        ctx.touched_things.update(ctx.conn.execute(things_here).scalars())
    if es.name == "Datastreams":
        ctx.touched_datastreams.add(ident)


def set_one(ctx: WriteContext, es: EntitySet, ident: int, rel: Relation, target_id: int) -> None:
    """Point the to-one relation ``rel`` of entity ``ident`` at ``target_id``."""
    assert rel.kind == "one" and rel.local is not None
    if es.name == "Observations" and rel.name == "Datastream":
        current = ctx.conn.execute(
            select(observations.c.datastream_id).where(observations.c.id == ident)
        ).scalar()
        if current != target_id:
            raise ValidationFailed(
                "an Observation cannot move to another Datastream: delete it and create it there"
            )
        return
    values: dict[str, Any] = {rel.local: target_id}
    if es.name == "Datastreams" and rel.name == "Thing":
        values["district_code"] = _thing_district(ctx, target_id)
    ctx.conn.execute(update(es.table).where(es.col("id") == ident).values(values))
    if es.name == "Datastreams":
        ctx.touched_datastreams.add(ident)


def delete_entity(
    ctx: WriteContext, es: EntitySet, ident: int, repair: Callable[[int, list[datetime]], None]
) -> None:
    """Delete one entity and what the standard says goes with it.

    Datastreams go with their Thing, Sensor or ObservedProperty, Observations with their
    Datastream or FeatureOfInterest (read from the relations table, not per set). Rollups and
    latest values of deleted Datastreams go by foreign key; those of Datastreams that only lose
    some Observations are rebuilt through ``repair``.
    """
    check_exists(ctx, es, ident)
    obs = observations.c
    if es.name == "Observations":
        row = ctx.conn.execute(select(obs.datastream_id, obs.phenomenon_time).where(obs.id == ident)).one()
        ctx.conn.execute(delete(observations).where(obs.id == ident))
        repair(row.datastream_id, [row.phenomenon_time])
        return
    doomed: list[int] = [ident] if es.name == "Datastreams" else []
    for rel in es.relations:
        if rel.kind != "many" or rel.remote is None:
            continue
        if rel.target == "Datastreams":
            found = select(datastreams.c.id).where(datastreams.c[rel.remote] == ident)
            doomed += ctx.conn.execute(found).scalars()
        elif rel.target == "Observations" and es.name != "Datastreams":
            where = obs[rel.remote] == ident
            touched = ctx.conn.execute(select(obs.datastream_id, obs.phenomenon_time).where(where)).all()
            ctx.conn.execute(delete(observations).where(where))
            by_ds: dict[int, list[datetime]] = {}
            for ds, t in touched:
                by_ds.setdefault(ds, []).append(t)
            for ds, times in by_ds.items():
                repair(ds, times)
    if doomed:
        ctx.conn.execute(delete(observations).where(obs.datastream_id.in_(doomed)))
        ctx.touched_datastreams.update(doomed)
    ctx.conn.execute(delete(es.table).where(es.col("id") == ident))


def set_ref(
    ctx: WriteContext, es: EntitySet, ident: int, rel: Relation, target_id: int, *, add: bool
) -> None:
    """``POST``/``DELETE .../{rel}/$ref``: link or unlink two existing entities."""
    target = SETS[rel.target]
    check_exists(ctx, es, ident)
    check_exists(ctx, target, target_id)
    if rel.kind == "link":
        assert rel.through is not None and rel.local and rel.remote
        if add:
            _link(ctx, rel, ident, target_id)
        else:
            pair = (rel.through.c[rel.local] == ident, rel.through.c[rel.remote] == target_id)
            ctx.conn.execute(delete(rel.through).where(*pair))
        if es.name in ("Things", "Locations"):
            ctx.touched_things.add(ident if es.name == "Things" else target_id)
        return
    if rel.kind == "one" and add:
        set_one(ctx, es, ident, rel, target_id)
        return
    back = inverse(es, rel)
    if rel.kind == "many" and add and back is not None:  # POST Things(1)/Datastreams/$ref: re-parent
        set_one(ctx, target, target_id, back, ident)
        return
    raise BadRequest(f"{es.singular}.{rel.name} cannot be unlinked: delete the {target.singular} instead")
