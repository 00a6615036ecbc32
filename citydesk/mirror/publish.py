"""What is disclosable, and how the small tables are copied to the public instance.

The public instance must hold nothing that its anonymous visitors may not see, because it has no
way to hide anything: every row it holds is public by construction. So the rules here decide, on
the internal side, which rows cross, and every other row is absent (or removed) on the public side.

* Geography (districts, dongs) and retention policies cross as they are.
* A Thing crosses when it is ``public``. A Datastream crosses when it, its Thing, its Sensor and
  its ObservedProperty are all ``public``: a public Datastream on an internal Thing is withheld
  whole (with its observations), since its row cannot exist without naming the Thing, and
  withholding is the safe side of a mixed link. Sensors and ObservedProperties cross when
  ``public`` and used by a crossing Datastream.
* Locations cross when ``public`` and linked to a crossing Thing; the Thing–Location links and
  HistoricalLocations (which take their Thing's level) follow, restricted to crossing Locations.
* FeaturesOfInterest cross when ``public`` (an observation's link to a withheld one is cleared,
  as is a feature's link to a withheld Location).
* Events cross when ``public``, without their department, alert rule or staff names; their
  timeline crosses as status and time only. Layouts cross for the public perspectives.

Ids are kept, so a public link (``/sta/v1.1/Things(7)``) names the same entity on both sides.
Each table is synchronised as a whole: rows added, changed or gone on the internal side (a
deletion, or a disclosure lowered to internal) are inserted, updated or deleted on the public side.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, Table, and_, delete, insert, select, tuple_, update

from citydesk.db.metadata import metadata
from citydesk.geo.models import districts, dongs
from citydesk.hub.models import (
    datastream_latest,
    datastreams,
    features_of_interest,
    historical_location_locations,
    historical_locations,
    locations,
    observed_properties,
    retention_policies,
    sensors,
    thing_locations,
    things,
)
from citydesk.status.models import event_history, events

# By its SQL name: the Python name of the layouts table is the sections' business.
layouts = metadata.tables["status_layouts"]

PUBLIC = "public"
PUBLIC_PERSPECTIVES = ("citizen", "kiosk")
"""Layouts of these perspectives are shown to anonymous viewers, so they cross."""

Row = dict[str, Any]


@dataclass
class Selection:
    """The ids of the entities that cross in this run, read in the internal side's snapshot."""

    things: set[int]
    datastreams: set[int]
    sensors: set[int]
    observed_properties: set[int]
    locations: set[int]
    historical_locations: set[int]
    features: set[int]
    events: set[int]
    withheld_datastreams: set[int]
    """Public Datastreams not crossing because their Thing, Sensor or ObservedProperty is not public."""


def _ids(conn: Connection, table: Table) -> set[int]:
    return set(conn.execute(select(table.c.id).where(table.c.disclosure == PUBLIC)).scalars())


def select_public(src: Connection) -> Selection:
    """Decide which entities cross (the rules in the module docstring)."""
    pub_things = _ids(src, things)
    pub_sensors = _ids(src, sensors)
    pub_ops = _ids(src, observed_properties)
    d = datastreams.c
    crossing: set[int] = set()
    withheld: set[int] = set()
    used_sensors: set[int] = set()
    used_ops: set[int] = set()
    for ds, thing, sensor, op in src.execute(
        select(d.id, d.thing_id, d.sensor_id, d.observed_property_id).where(d.disclosure == PUBLIC)
    ):
        if thing in pub_things and sensor in pub_sensors and op in pub_ops:
            crossing.add(ds)
            used_sensors.add(sensor)
            used_ops.add(op)
        else:
            withheld.add(ds)
    pub_locations = _ids(src, locations)
    tl = thing_locations.c
    linked = {
        loc
        for thing, loc in src.execute(select(tl.thing_id, tl.location_id))
        if thing in pub_things and loc in pub_locations
    }
    hl = historical_locations.c
    hls = {i for i, thing in src.execute(select(hl.id, hl.thing_id)) if thing in pub_things}
    return Selection(
        things=pub_things,
        datastreams=crossing,
        sensors=used_sensors,
        observed_properties=used_ops,
        locations=linked,
        historical_locations=hls,
        features=_ids(src, features_of_interest),
        events=_ids(src, events),
        withheld_datastreams=withheld,
    )


@dataclass(frozen=True)
class Mirrored:
    """One table synchronised as a whole: which rows cross, and how a row is cleaned on the way."""

    table: Table
    keep: Callable[[Selection, Row], bool]
    clean: Callable[[Selection, Row], Row] = lambda _s, row: row


def _event(s: Selection, row: Row) -> Row:
    # The handling department, the rule that raised it and the dedup key are the staff's business;
    # a link to a Datastream that does not cross would name an id the public side does not know.
    ds = row["datastream_id"] if row["datastream_id"] in s.datastreams else None
    return row | {"department": None, "rule_id": None, "open_key": None, "datastream_id": ds}


def _timeline(_s: Selection, row: Row) -> Row:
    # A public timeline says what happened and when, never who: no staff name, no free-text note.
    return row | {"user_id": None, "note": "", "actor": "system" if row["user_id"] is None else "staff"}


def _feature(s: Selection, row: Row) -> Row:
    return row if row["location_id"] in s.locations else row | {"location_id": None}


# Parents before children: inserts run in this order, deletions in the reverse.
MIRRORED: tuple[Mirrored, ...] = (
    Mirrored(districts, lambda _s, _r: True),
    Mirrored(dongs, lambda _s, _r: True),
    Mirrored(retention_policies, lambda _s, _r: True),
    Mirrored(things, lambda s, r: r["id"] in s.things),
    Mirrored(locations, lambda s, r: r["id"] in s.locations),
    Mirrored(sensors, lambda s, r: r["id"] in s.sensors),
    Mirrored(observed_properties, lambda s, r: r["id"] in s.observed_properties),
    Mirrored(thing_locations, lambda s, r: r["thing_id"] in s.things and r["location_id"] in s.locations),
    Mirrored(historical_locations, lambda s, r: r["id"] in s.historical_locations),
    Mirrored(
        historical_location_locations,
        lambda s, r: (
            r["historical_location_id"] in s.historical_locations and r["location_id"] in s.locations
        ),
    ),
    Mirrored(datastreams, lambda s, r: r["id"] in s.datastreams),
    Mirrored(features_of_interest, lambda s, r: r["id"] in s.features, _feature),
    Mirrored(datastream_latest, lambda s, r: r["datastream_id"] in s.datastreams),
    Mirrored(events, lambda s, r: r["id"] in s.events, _event),
    Mirrored(event_history, lambda s, r: r["event_id"] in s.events, _timeline),
    Mirrored(
        layouts, lambda _s, r: r["perspective"] in PUBLIC_PERSPECTIVES, lambda _s, r: r | {"updated_by": None}
    ),
)


def _key(table: Table, row: Row) -> tuple[Any, ...]:
    return tuple(row[c.name] for c in table.primary_key.columns)


def _read(conn: Connection, table: Table) -> dict[tuple[Any, ...], Row]:
    return {_key(table, r): r for r in (dict(m) for m in conn.execute(select(table)).mappings())}


@dataclass
class TableChange:
    """What one table's synchronisation did on the public side."""

    table: str
    inserted: int = 0
    updated: int = 0
    deleted: int = 0


def _wanted(src: Connection, sel: Selection, m: Mirrored) -> dict[Any, Row]:
    return {k: m.clean(sel, r) for k, r in _read(src, m.table).items() if m.keep(sel, r)}


def _where_key(table: Table, key: tuple[Any, ...]) -> Any:
    return and_(*(c == v for c, v in zip(table.primary_key.columns, key, strict=True)))


def sync_tables(src: Connection, dst: Connection, sel: Selection) -> list[TableChange]:
    """Make each mirrored table on the public side equal to its crossing rows on the internal side."""
    plans = [(m, _wanted(src, sel, m), _read(dst, m.table)) for m in MIRRORED]
    changes = {m.table.name: TableChange(m.table.name) for m, _, _ in plans}
    for m, want, have in reversed(plans):
        gone = [k for k in have if k not in want]
        for chunk in _chunks(gone, 500):
            if len(m.table.primary_key.columns) == 1:
                dst.execute(delete(m.table).where(m.table.primary_key.columns[0].in_([k[0] for k in chunk])))
            else:
                dst.execute(delete(m.table).where(tuple_(*m.table.primary_key.columns).in_(chunk)))
        changes[m.table.name].deleted = len(gone)
    for m, want, have in plans:
        new = [r for k, r in want.items() if k not in have]
        changed = [(k, r) for k, r in want.items() if k in have and have[k] != r]
        if new:
            dst.execute(insert(m.table), new)
        for k, r in changed:
            dst.execute(update(m.table).where(_where_key(m.table, k)).values(r))
        changes[m.table.name].inserted = len(new)
        changes[m.table.name].updated = len(changed)
    return list(changes.values())


def _chunks(items: list[Any], size: int) -> Iterable[list[Any]]:
    for i in range(0, len(items), size):
        yield items[i : i + size]
