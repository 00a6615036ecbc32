"""The ``manual`` connector: the form's choices and ``submit``, which stores typed-in figures.

There is nothing to poll (mode ``push``): the runner never runs a manual source. ``submit``
builds ``ObservationIn`` and goes through the same ingest pipeline as every other channel
(``channel="manual"``). Refused entries are returned to the person who typed them, who sees the
reason at once; they are not quarantined, since nobody needs to review a typo later.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

from citydesk.auth import Permission, Principal
from citydesk.errors import NotFound
from citydesk.hub.connectors.base import Connector, RunContext
from citydesk.hub.connectors.manual.config import ManualConfig, ManualEntry
from citydesk.hub.connectors.mapping import CONVERTERS
from citydesk.hub.records import Batch, IngestResult, ObservationIn, Rejected
from citydesk.hub.sources import service as sources
from citydesk.hub.sources.types import DatastreamChoice

if TYPE_CHECKING:
    from citydesk.web.app import App

OGC = "http://www.opengis.net/def/observationType/OGC-OM/2.0/"
CONVERTER_OF_TYPE = {
    OGC + "OM_Measurement": "float",
    OGC + "OM_CountObservation": "int",
    OGC + "OM_TruthObservation": "bool",
}
"""How a typed value is read for each observation type; other types keep the text."""


class ManualConnector(Connector):
    config_model = ManualConfig

    async def check(self, config: ManualConfig, ctx: RunContext) -> None:
        return None

    async def run(self, config: ManualConfig, ctx: RunContext) -> AsyncGenerator[Batch, None]:
        return
        yield  # an async generator that yields nothing: manual sources are pushed, not polled

    # The routes reach these through the registry, which imports this module only when used.
    def form_data(self, app: App, principal: Principal, *, source_id: int | None = None) -> dict[str, Any]:
        return form_data(app, principal, source_id=source_id)

    def submit(self, app: App, principal: Principal, entries: list[ManualEntry]) -> dict[str, Any]:
        """Store entries and describe the outcome as the API returns it and the form shows it."""
        return result_json(submit(app, principal, entries))


def _allowed_ids(app: App, source_id: int | None) -> list[int] | None:
    if source_id is None:
        return None
    source = sources.get_source(app.engine, source_id)
    if source.kind != "manual":
        raise NotFound(f"no manual source {source_id}")
    return ManualConfig.model_validate(source.config).datastream_ids or None


def choices(app: App, principal: Principal, *, source_id: int | None = None) -> list[DatastreamChoice]:
    """The datastreams this person may type figures into (disclosure level and the source's list)."""
    principal.require(Permission.MANUAL_ENTRY)
    return sources.writable_datastreams(app.engine, principal.levels, _allowed_ids(app, source_id))


def submit(app: App, principal: Principal, entries: list[ManualEntry]) -> IngestResult:
    """Store typed-in figures through the ingest pipeline; refused ones come back with reasons."""
    principal.require(Permission.MANUAL_ENTRY)
    zone = ZoneInfo(app.settings.timezone)
    now = app.now()
    source_ids = {e.source_id for e in entries}
    offered: dict[tuple[int | None, int], DatastreamChoice] = {}
    for source_id in source_ids:
        offered.update({(source_id, c.id): c for c in choices(app, principal, source_id=source_id)})
    good: list[ObservationIn] = []
    refused: list[Rejected] = []
    for entry in entries:
        choice = offered.get((entry.source_id, entry.datastream_id))
        if choice is None:
            raise NotFound(f"no datastream {entry.datastream_id} you may enter figures for")
        when = entry.time or now
        if when.tzinfo is None:
            when = when.replace(tzinfo=zone)
        payload: dict[str, Any] = entry.model_dump(mode="json")
        try:
            value = _read(entry.value, choice.observation_type)
        except (ValueError, TypeError) as exc:
            refused.append(Rejected(payload, str(exc)))
            continue
        params = {"entered_by": principal.name} | ({"note": entry.note} if entry.note else {})
        good.append(
            ObservationIn(
                datastream_id=entry.datastream_id, result=value, phenomenon_time=when, parameters=params
            )
        )
    source_id = next(iter(source_ids)) if len(source_ids) == 1 else None
    return app.ingest.ingest(
        good, channel="manual", source_id=source_id, dedupe=True, rejected=refused, quarantine_rejects=False
    )


def _read(value: Any, observation_type: str) -> Any:
    converter = CONVERTER_OF_TYPE.get(observation_type)
    if converter is None:
        return value
    return CONVERTERS[converter](value)


def form_data(app: App, principal: Principal, *, source_id: int | None = None) -> dict[str, Any]:
    """What the manual-entry form offers (``GET /api/hub/manual`` and the ``/hub/manual`` page)."""
    return {
        "source_id": source_id,
        "datastreams": [_choice(c) for c in choices(app, principal, source_id=source_id)],
        "schema": ManualEntry.model_json_schema(),
    }


def _choice(c: DatastreamChoice) -> dict[str, Any]:
    return {
        "id": c.id,
        "name": c.name,
        "unit": c.unit,
        "observation_type": c.observation_type,
        "disclosure": c.disclosure,
    }


def result_json(result: IngestResult) -> dict[str, Any]:
    """An entry's outcome as the API returns it and the form shows it."""
    return {
        "stored": result.ids,
        "duplicates": result.duplicates,
        "rejected": [{"reason": r.reason, "entry": _entry(r.payload)} for r in result.rejected],
    }


def _entry(payload: Any) -> dict[str, Any] | None:
    if isinstance(payload, ObservationIn):  # refused by the pipeline's validation
        when = payload.phenomenon_time
        return {
            "datastream_id": payload.datastream_id,
            "value": payload.result,
            "time": when.isoformat() if when else None,
        }
    return payload if isinstance(payload, dict) else None
