"""Which events cross processes, and the JSON form they cross in.

A remote bus carries JSON only, so every topic that other processes should see is listed in
``FORWARDED`` with the function that gives its portable form. Every other topic stays in the
process that published it. The forwarded topics today:

* ``observations.stored``: a committed batch. Its rich form holds every ``StoredObservation``;
  other processes get ``CompactObservations``: per datastream the number of observations and the
  newest one's phenomenonTime and result, plus the batch's channel, source and count. That is what
  live pages and latest values need; a consumer that wants every row reads the database, which is
  the truth (a batch of 10,000 rows does not become a 2 MB message).
* ``sta.created`` / ``sta.updated`` / ``sta.deleted``: ``{"set": "Things", "id": 7}``, as is.
* ``status.notice``: ``{"kind", "disclosure", "data"}`` for live pages (``status.stream``), as is.
* ``alerts.rules``: ``{"id": 3}`` after an alert rule changed: every worker reloads its rules.

The bus must not import the hub (the hub imports the bus), so a stored observation is described
here by the attributes the compact form reads (``StoredLike``).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from datetime import datetime
from typing import Any, Protocol, TypedDict

log = logging.getLogger(__name__)


class StoredLike(Protocol):
    """What the compact form reads of ``citydesk.hub.records.StoredObservation``."""

    datastream_id: int
    phenomenon_time: datetime
    result_number: float | None
    result_json: Any


class CompactDatastream(TypedDict):
    id: int
    count: int
    phenomenonTime: str
    """ISO 8601 with offset, of the newest observation of this datastream in the batch."""
    result: Any
    """Its result: the number if it has one, else the JSON value."""


class CompactObservations(TypedDict):
    """The portable form of ``observations.stored``."""

    channel: str
    source_id: int | None
    count: int
    datastreams: list[CompactDatastream]


def compact_observations(data: dict[str, Any]) -> dict[str, Any]:
    """Reduce a stored batch to its newest value per datastream (see the module docstring)."""
    rows: Iterable[StoredLike] = data["observations"]
    newest: dict[int, StoredLike] = {}
    counts: dict[int, int] = {}
    for r in rows:
        ds = r.datastream_id
        counts[ds] = counts.get(ds, 0) + 1
        known = newest.get(ds)
        if known is None or r.phenomenon_time >= known.phenomenon_time:
            newest[ds] = r
    compact: CompactObservations = {
        "channel": data["channel"],
        "source_id": data["source_id"],
        "count": sum(counts.values()),
        "datastreams": [
            {
                "id": ds,
                "count": counts[ds],
                "phenomenonTime": r.phenomenon_time.isoformat(),
                "result": r.result_number if r.result_number is not None else r.result_json,
            }
            for ds, r in newest.items()
        ],
    }
    return dict(compact)


def _as_is(data: dict[str, Any]) -> dict[str, Any]:
    return data


FORWARDED: dict[str, Callable[[dict[str, Any]], dict[str, Any]]] = {
    "observations.stored": compact_observations,
    "sta.created": _as_is,
    "sta.updated": _as_is,
    "sta.deleted": _as_is,
    "status.notice": _as_is,
    "alerts.rules": _as_is,
}


def portable_form(topic: str, data: dict[str, Any]) -> dict[str, Any] | None:
    """The JSON form of an event, or None if its topic stays in this process.

    Runs in the publisher's thread after its commit, so a failure is logged, never raised: the
    event then stays local, and the writer is not told its committed write failed.
    """
    reduce = FORWARDED.get(topic)
    if reduce is None:
        return None
    try:
        return reduce(data)
    except Exception:
        log.exception("cannot give %s event a portable form; it stays in this process", topic)
        return None
