"""The eight SensorThings entity sets, described once as data.

Everything generic (reads, writes, navigation, ``$expand``, ``$filter`` paths, serialisation)
is driven by this table instead of per-entity code: an entity set is its table, its JSON fields
with their columns and kinds, and its relations to other sets.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from sqlalchemy import ColumnElement, Table, func, select

from citydesk.hub.models import (
    datastream_latest,
    datastreams,
    features_of_interest,
    historical_location_locations,
    historical_locations,
    locations,
    observations,
    observed_properties,
    sensors,
    thing_locations,
    things,
)

MAX_ID = 2**63 - 1
"""Ids are signed 64-bit integers on both databases; a larger number names no entity."""

FieldKind = Literal["string", "number", "datetime", "interval", "json", "geometry", "result", "id"]


@dataclass(frozen=True)
class FieldSpec:
    """One JSON property: its column(s), kind, and whether clients may set it."""

    name: str
    column: str | None
    kind: FieldKind
    required: bool = False
    writable: bool = True
    end_column: str | None = None
    """For intervals (``start/end``) the column of the end."""
    derived: bool = False
    """Computed when read, for a page of rows at once (``extent``), not selected with the row;
    ``column`` (if any) names an expression of ``EntitySet.filterable`` for ``$filter``."""


@dataclass(frozen=True)
class Relation:
    """A navigation property.

    ``one``: this table's ``local`` column holds the target id. ``many``: the target table's
    ``remote`` column holds this id. ``link``: rows of ``through`` pair ``local`` (this id) with
    ``remote`` (target id).
    """

    name: str
    target: str
    kind: Literal["one", "many", "link"]
    local: str | None = None
    remote: str | None = None
    through: Table | None = None
    required: bool = False


@dataclass(frozen=True)
class EntitySet:
    name: str
    singular: str
    table: Table
    fields: tuple[FieldSpec, ...]
    relations: tuple[Relation, ...]
    extra_columns: tuple[str, ...] = field(default=())
    """Stored columns derived by the server (district, h3, ...), not part of the STA model."""
    computed: tuple[tuple[str, ColumnElement[Any]], ...] = field(default=())
    """Read-only columns computed from other tables, selected beside the table's own."""
    filterable: tuple[tuple[str, ColumnElement[Any]], ...] = field(default=())
    """Expressions ``$filter`` and ``$orderby`` may use but reads do not select: too costly per row
    of a page, they are computed for the page as a whole instead (``extent``)."""

    def columns(self) -> list[ColumnElement[Any]]:
        """What a read selects: the table's columns plus the computed ones, labelled."""
        return [*self.table.c, *(expr.label(name) for name, expr in self.computed)]

    def field(self, name: str) -> FieldSpec | None:
        return next((f for f in self.fields if f.name == name), None)

    def relation(self, name: str) -> Relation | None:
        return next((r for r in self.relations if r.name == name), None)

    def col(self, name: str) -> ColumnElement[Any]:
        for computed_name, expr in (*self.computed, *self.filterable):
            if computed_name == name:
                return expr
        return self.table.c[name]


def _latest(column: Any) -> ColumnElement[Any]:
    """A Datastream's extent, kept in ``datastream_latest`` by the store."""
    return select(column).where(datastream_latest.c.datastream_id == datastreams.c.id).scalar_subquery()


def _result_time(aggregate: Any) -> ColumnElement[Any]:
    """An end of a Datastream's resultTime, for ``$filter``: the store keeps no such extent."""
    return (
        select(aggregate(observations.c.result_time))
        .where(observations.c.datastream_id == datastreams.c.id)
        .scalar_subquery()
    )


def _common(*extra: FieldSpec) -> tuple[FieldSpec, ...]:
    return (
        FieldSpec("name", "name", "string", required=True),
        FieldSpec("description", "description", "string"),
        *extra,
    )


SETS: dict[str, EntitySet] = {
    s.name: s
    for s in (
        EntitySet(
            "Things",
            "Thing",
            things,
            _common(FieldSpec("properties", "properties", "json")),
            (
                Relation("Locations", "Locations", "link", "thing_id", "location_id", thing_locations),
                Relation("HistoricalLocations", "HistoricalLocations", "many", remote="thing_id"),
                Relation("Datastreams", "Datastreams", "many", remote="thing_id"),
            ),
        ),
        EntitySet(
            "Locations",
            "Location",
            locations,
            _common(
                FieldSpec("encodingType", "encoding_type", "string", required=True),
                FieldSpec("location", "location", "geometry", required=True),
                FieldSpec("properties", "properties", "json"),
            ),
            (
                Relation("Things", "Things", "link", "location_id", "thing_id", thing_locations),
                Relation(
                    "HistoricalLocations",
                    "HistoricalLocations",
                    "link",
                    "location_id",
                    "historical_location_id",
                    historical_location_locations,
                ),
            ),
            ("district_code", "h3_cell"),
        ),
        EntitySet(
            "HistoricalLocations",
            "HistoricalLocation",
            historical_locations,
            (FieldSpec("time", "time", "datetime", required=True),),
            (
                Relation("Thing", "Things", "one", local="thing_id", required=True),
                Relation(
                    "Locations",
                    "Locations",
                    "link",
                    "historical_location_id",
                    "location_id",
                    historical_location_locations,
                ),
            ),
        ),
        EntitySet(
            "Datastreams",
            "Datastream",
            datastreams,
            _common(
                FieldSpec("unitOfMeasurement", "unit_of_measurement", "json", required=True),
                FieldSpec("observationType", "observation_type", "string", required=True),
                FieldSpec("observedArea", None, "geometry", writable=False, derived=True),
                FieldSpec(
                    "phenomenonTime",
                    "phenomenon_time_start",
                    "interval",
                    writable=False,
                    end_column="phenomenon_time_end",
                ),
                FieldSpec(
                    "resultTime",
                    "result_time_start",
                    "interval",
                    writable=False,
                    end_column="result_time_end",
                    derived=True,
                ),
                FieldSpec("properties", "properties", "json"),
            ),
            (
                Relation("Thing", "Things", "one", local="thing_id", required=True),
                Relation("Sensor", "Sensors", "one", local="sensor_id", required=True),
                Relation(
                    "ObservedProperty",
                    "ObservedProperties",
                    "one",
                    local="observed_property_id",
                    required=True,
                ),
                Relation("Observations", "Observations", "many", remote="datastream_id"),
            ),
            ("family", "district_code"),
            (
                ("phenomenon_time_start", _latest(datastream_latest.c.first_time)),
                ("phenomenon_time_end", _latest(datastream_latest.c.last_time)),
            ),
            (
                ("result_time_start", _result_time(func.min)),
                ("result_time_end", _result_time(func.max)),
            ),
        ),
        EntitySet(
            "Sensors",
            "Sensor",
            sensors,
            _common(
                FieldSpec("encodingType", "encoding_type", "string", required=True),
                FieldSpec("metadata", "metadata", "string", required=True),
                FieldSpec("properties", "properties", "json"),
            ),
            (Relation("Datastreams", "Datastreams", "many", remote="sensor_id"),),
        ),
        EntitySet(
            "ObservedProperties",
            "ObservedProperty",
            observed_properties,
            (
                FieldSpec("name", "name", "string", required=True),
                FieldSpec("definition", "definition", "string", required=True),
                FieldSpec("description", "description", "string"),
                FieldSpec("properties", "properties", "json"),
            ),
            (Relation("Datastreams", "Datastreams", "many", remote="observed_property_id"),),
        ),
        EntitySet(
            "Observations",
            "Observation",
            observations,
            (
                FieldSpec("phenomenonTime", "phenomenon_time", "interval", end_column="phenomenon_time_end"),
                FieldSpec("resultTime", "result_time", "datetime"),
                FieldSpec("result", "result_number", "result", required=True),
                FieldSpec("resultQuality", "result_quality", "json"),
                FieldSpec("validTime", "valid_time_start", "interval", end_column="valid_time_end"),
                FieldSpec("parameters", "parameters", "json"),
            ),
            (
                Relation("Datastream", "Datastreams", "one", local="datastream_id", required=True),
                Relation("FeatureOfInterest", "FeaturesOfInterest", "one", local="foi_id"),
            ),
            ("district_code",),
        ),
        EntitySet(
            "FeaturesOfInterest",
            "FeatureOfInterest",
            features_of_interest,
            _common(
                FieldSpec("encodingType", "encoding_type", "string", required=True),
                FieldSpec("feature", "feature", "geometry", required=True),
                FieldSpec("properties", "properties", "json"),
            ),
            (Relation("Observations", "Observations", "many", remote="foi_id"),),
            ("district_code", "h3_cell"),
        ),
    )
}

SINGULAR: dict[str, EntitySet] = {s.singular: s for s in SETS.values()}


def entity_set(name: str) -> EntitySet | None:
    return SETS.get(name)


def inverse(parent: EntitySet, rel: Relation) -> Relation | None:
    """The relation on the target that points back (Datastream.Thing ↔ Thing.Datastreams)."""
    target = SETS[rel.target]
    for back in target.relations:
        if back.target != parent.name:
            continue
        if rel.kind == "one" and back.kind == "many" and back.remote == rel.local:
            return back
        if rel.kind == "many" and back.kind == "one" and back.local == rel.remote:
            return back
        if rel.kind == "link" and back.kind == "link" and back.through is rel.through:
            return back
    return None
