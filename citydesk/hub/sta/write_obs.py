"""Observations on the SensorThings write side: bodies and dataArrays to pipeline records, checks
inside the caller's transaction, and updates.

Observations are stored by the ingest pipeline (``citydesk.hub.ingest``) after the transaction
that created what they refer to. ``prevalidate`` runs the pipeline's own checks *inside* that
transaction first, so a deep insert with one bad Observation is refused as a whole instead of
leaving a half-created Thing behind.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import exists, select, update

from citydesk.errors import ValidationFailed
from citydesk.hub.catalog import DatastreamFacts
from citydesk.hub.models import datastreams, observations, thing_locations
from citydesk.hub.records import ObservationIn, Rejected
from citydesk.hub.sta.entities import SETS
from citydesk.hub.sta.write import WriteContext, as_object, check_exists, create, link_id, set_one
from citydesk.hub.times import parse_instant, parse_interval
from citydesk.hub.validate import result_columns, validate

PATCHABLE = ("phenomenonTime", "resultTime", "result", "resultQuality", "validTime", "parameters")
COMPONENTS = (*PATCHABLE, "id", "FeatureOfInterest/id")
"""What a CreateObservations row may carry (``id`` is accepted and ignored, as ids are the server's)."""


def _unknown_keys(body: dict[str, Any], allowed: tuple[str, ...]) -> None:
    unknown = sorted(k for k in body if "@" not in k and k != "id" and k not in allowed)
    if unknown:
        raise ValidationFailed(f"Observation has no property {unknown[0]!r}")


def _parameters(value: Any) -> dict[str, Any] | None:
    if value is not None and not isinstance(value, dict):
        raise ValidationFailed("Observation.parameters must be a JSON object")
    return value


def observation_in(
    ctx: WriteContext, body: dict[str, Any], datastream_id: int | None, foi_id: int | None = None
) -> ObservationIn:
    """An Observation JSON body as the pipeline's record (an inline FeatureOfInterest is created)."""
    _unknown_keys(body, (*PATCHABLE, "Datastream", "FeatureOfInterest"))
    if body.get("Datastream") is not None:
        given = link_id(as_object(body["Datastream"], "Observation.Datastream"))
        if datastream_id is not None and given != datastream_id:
            raise ValidationFailed(f"the body names Datastream {given}, the path Datastream {datastream_id}")
        datastream_id = given
    if datastream_id is None:
        raise ValidationFailed("an Observation needs a Datastream (by @iot.id)")
    check_exists(ctx, SETS["Datastreams"], datastream_id, missing=ValidationFailed)
    if body.get("result") is None:
        raise ValidationFailed("Observation.result is required")
    start, end = (None, None)
    if body.get("phenomenonTime") is not None:
        start, end = parse_interval(body["phenomenonTime"], "Observation.phenomenonTime")
    valid = _optional_interval(body.get("validTime"), "Observation.validTime")
    if body.get("FeatureOfInterest") is not None:
        given_foi = create(ctx, SETS["FeaturesOfInterest"], body["FeatureOfInterest"])
        if foi_id is not None and given_foi != foi_id:
            raise ValidationFailed(f"the body names FeatureOfInterest {given_foi}, the path {foi_id}")
        foi_id = given_foi
    result_time = body.get("resultTime")
    return ObservationIn(
        datastream_id=datastream_id,
        result=body["result"],
        phenomenon_time=start,
        phenomenon_time_end=end,
        result_time=parse_instant(result_time, "Observation.resultTime") if result_time else None,
        valid_time_start=valid[0],
        valid_time_end=valid[1],
        result_quality=body.get("resultQuality"),
        parameters=_parameters(body.get("parameters")),
        foi_id=foi_id,
    )


def _optional_interval(value: Any, name: str) -> tuple[datetime | None, datetime | None]:
    return parse_interval(value, name) if value else (None, None)


def _facts(ctx: WriteContext, ids: set[int]) -> dict[int, DatastreamFacts]:
    """Datastream facts as this transaction sees them (deep-inserted Datastreams included)."""
    d = datastreams.c
    rows = ctx.conn.execute(
        select(d.id, d.family, d.observation_type, d.disclosure, d.district_code, d.thing_id).where(
            d.id.in_(ids)
        )
    )
    return {
        r.id: DatastreamFacts(
            r.id, r.family, r.observation_type, r.disclosure, r.district_code, r.thing_id, default_foi_id=None
        )
        for r in rows
    }


def check(ctx: WriteContext, records: list[ObservationIn]) -> list[str | None]:
    """Why the pipeline would refuse each record (``None``: it would store it)."""
    facts = _facts(ctx, {r.datastream_id for r in records})
    located: dict[int, bool] = {}
    reasons: list[str | None] = []
    for rec in records:
        checked = validate(rec, facts.get(rec.datastream_id), now=ctx.now, max_future=ctx.max_future,
                           in_city=ctx.geo.in_city, with_dedup_key=False)  # fmt: skip
        if isinstance(checked, Rejected):
            reasons.append(checked.reason)
            continue
        thing = facts[rec.datastream_id].thing_id
        if rec.foi_id is None and rec.feature is None:
            if thing not in located:
                has = exists().where(thing_locations.c.thing_id == thing)
                located[thing] = bool(ctx.conn.execute(select(has)).scalar())
            if not located[thing]:
                reasons.append("no FeatureOfInterest given and the Thing has no Location to derive one from")
                continue
        reasons.append(None)
    return reasons


def prevalidate(ctx: WriteContext, records: list[ObservationIn]) -> None:
    """Refuse the whole request (400, with the reason) if any record would be refused."""
    reason = next((r for r in check(ctx, records) if r is not None), None)
    if reason is not None:
        raise ValidationFailed(reason)


def update_observation(
    ctx: WriteContext,
    ident: int,
    body: dict[str, Any],
    facts: DatastreamFacts,
    repair: Callable[[int, list[datetime]], None],
    *,
    replace: bool = False,
) -> None:
    """Update one Observation in place, then rebuild the rollup buckets it left and entered.

    PATCH changes what the body names; PUT (``replace``) also clears the optional properties it
    leaves out. ``phenomenonTime`` is required by a PUT: the server fills it in only on create,
    and moving a reading to "now" because a client left it out would falsify it.
    """
    _unknown_keys(body, (*PATCHABLE, "Datastream", "FeatureOfInterest"))
    if replace:
        missing = next((name for name in ("result", "phenomenonTime") if body.get(name) is None), None)
        if missing is not None:
            raise ValidationFailed(f"Observation.{missing} is required")
        body = {**dict.fromkeys(PATCHABLE), **body}
    old = ctx.conn.execute(select(observations).where(observations.c.id == ident)).one()
    values: dict[str, Any] = {}
    if "phenomenonTime" in body:
        start, end = parse_interval(body["phenomenonTime"], "Observation.phenomenonTime")
        values["phenomenon_time"], values["phenomenon_time_end"] = start.astimezone(UTC), end
    if "resultTime" in body:
        given = body["resultTime"]
        values["result_time"] = parse_instant(given, "Observation.resultTime") if given else None
    if "validTime" in body:
        values["valid_time_start"], values["valid_time_end"] = _optional_interval(
            body["validTime"], "Observation.validTime"
        )
    times = (
        ("phenomenonTime", values.get("phenomenon_time")),
        ("phenomenonTime", values.get("phenomenon_time_end")),
        ("resultTime", values.get("result_time")),
    )
    for name, t in times:
        if t is not None and t > ctx.now + ctx.max_future:
            raise ValidationFailed(f"Observation.{name} {t.isoformat()} is in the future (clock error?)")
    if "result" in body:
        if body["result"] is None:
            raise ValidationFailed("Observation.result is required")
        try:
            values["result_number"], values["result_json"] = result_columns(body["result"], facts)
        except ValueError as exc:
            raise ValidationFailed(str(exc)) from None
    if "resultQuality" in body:
        values["result_quality"] = body["resultQuality"]
    if "parameters" in body:
        values["parameters"] = _parameters(body["parameters"])
    es = SETS["Observations"]
    for rel_name in ("Datastream", "FeatureOfInterest"):
        if body.get(rel_name) is not None:
            rel = es.relation(rel_name)
            assert rel is not None
            set_one(ctx, es, ident, rel, create(ctx, SETS[rel.target], as_object(body[rel_name], rel_name)))
    if values:
        ctx.conn.execute(update(observations).where(observations.c.id == ident).values(**values))
        repair(old.datastream_id, [old.phenomenon_time, values.get("phenomenon_time", old.phenomenon_time)])


def data_array(
    body: Any,
    writable: Callable[[set[int]], set[int]],
    existing_fois: Callable[[set[int]], set[int]],
) -> list[ObservationIn | str]:
    """``CreateObservations`` items to one record per row, or ``"error"`` for a row that cannot be one.

    ``writable`` says which of the named Datastreams exist and the writer may see, and
    ``existing_fois`` which of the named FeaturesOfInterest exist: each is asked once per request,
    so the caller can answer from a cache and open a connection only when it must. A group whose
    Datastream is unknown makes each of its rows an error, as a row-by-row server would.
    """
    if not isinstance(body, list):
        raise ValidationFailed("CreateObservations takes a JSON array of {Datastream, components, dataArray}")
    slots: list[ObservationIn | str] = []
    known = writable(_named_datastreams(body))
    for group in body:
        group = as_object(group, "CreateObservations item")
        ds_id = link_id(as_object(group.get("Datastream"), "CreateObservations Datastream"))
        components, rows = group.get("components"), group.get("dataArray")
        if ds_id is None or not isinstance(components, list) or not isinstance(rows, list):
            raise ValidationFailed(
                "each CreateObservations item needs Datastream.@iot.id, components and dataArray"
            )
        unknown = [c for c in components if c not in COMPONENTS]
        if unknown or "result" not in components:
            raise ValidationFailed(
                f"CreateObservations component {unknown[0]!r} is not one of {', '.join(COMPONENTS)}"
                if unknown
                else "CreateObservations components must include result"
            )
        if ds_id not in known:  # an unknown Datastream fails its own rows, not the others
            slots.extend("error" for _ in rows)
            continue
        at = {name: i for i, name in enumerate(components)}
        if len(at) != len(components):
            raise ValidationFailed("CreateObservations components must not repeat")
        slots.extend(_row(ds_id, at, row) for row in rows)
    named = {s.foi_id for s in slots if isinstance(s, ObservationIn) and s.foi_id is not None}
    if named:
        present = existing_fois(named)
        slots = [
            "error"
            if isinstance(s, ObservationIn) and s.foi_id is not None and s.foi_id not in present
            else s
            for s in slots
        ]
    return slots


def _named_datastreams(body: list[Any]) -> set[int]:
    """The Datastream ids the groups name (malformed groups are refused later, in order)."""
    ids: set[int] = set()
    for group in body:
        if isinstance(group, dict) and isinstance(group.get("Datastream"), dict):
            try:
                ident = link_id(group["Datastream"])
            except ValidationFailed:
                continue
            if ident is not None:
                ids.add(ident)
    return ids


def _row(ds_id: int, at: dict[str, int], row: Any) -> ObservationIn | str:
    """One dataArray row; ``at`` maps each component to its position (computed once per group)."""
    if not isinstance(row, list) or len(row) != len(at):
        return "error"
    try:
        result = row[at["result"]]
        phen = row[at["phenomenonTime"]] if "phenomenonTime" in at else None
        start, end = parse_interval(phen, "phenomenonTime") if phen is not None else (None, None)
        if len(at) == 2:  # the common shape, phenomenonTime and result: nothing else to read
            return "error" if result is None else ObservationIn(ds_id, result, start, end)
        valid_start, valid_end = _optional_interval(_get(row, at, "validTime"), "validTime")
        result_time = _get(row, at, "resultTime")
        foi = _get(row, at, "FeatureOfInterest/id")
        if result is None or (foi is not None and link_id({"@iot.id": foi}) is None):
            return "error"
        return ObservationIn(
            datastream_id=ds_id,
            result=result,
            phenomenon_time=start,
            phenomenon_time_end=end,
            result_time=parse_instant(result_time, "resultTime") if result_time else None,
            valid_time_start=valid_start,
            valid_time_end=valid_end,
            result_quality=_get(row, at, "resultQuality"),
            parameters=_parameters(_get(row, at, "parameters")),
            foi_id=link_id({"@iot.id": foi}) if foi is not None else None,
        )
    except (ValidationFailed, TypeError, ValueError):
        return "error"


def _get(row: list[Any], at: dict[str, int], name: str) -> Any:
    return row[at[name]] if name in at else None
