"""Who sees which SensorThings entities: one predicate per entity set, applied on every route.

Top-level reads, navigation paths, ``$expand`` and ``$filter`` paths all go through
``visible``, so an internal Datastream (and its Observations) cannot be reached anonymously by
any path. Observations take their Datastream's level; HistoricalLocations their Thing's.
"""

from __future__ import annotations

from collections.abc import Collection

from sqlalchemy import ColumnElement, select, true

from citydesk.hub.models import datastreams, things
from citydesk.hub.sta.entities import EntitySet

ALL_LEVELS = frozenset({"public", "internal", "restricted"})


def visible(es: EntitySet, levels: Collection[str]) -> ColumnElement[bool]:
    """A WHERE clause keeping only the rows of ``es`` a principal with ``levels`` may see."""
    if set(levels) >= ALL_LEVELS:
        return true()
    allowed = sorted(levels)
    if es.name == "Observations":
        shown = select(datastreams.c.id).where(datastreams.c.disclosure.in_(allowed))
        return es.col("datastream_id").in_(shown)
    if es.name == "HistoricalLocations":
        return es.col("thing_id").in_(select(things.c.id).where(things.c.disclosure.in_(allowed)))
    return es.col("disclosure").in_(allowed)
