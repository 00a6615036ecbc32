"""The simulator as a background service: provision sensors once, backfill history, then stream.

It behaves like any other data source. Sensors are created through the SensorThings deep insert
(as a city's installer would), and readings go through ``app.ingest.ingest`` on channel
``"simulator"`` — validation, FeatureOfInterest, rollups, latest values and the
``observations.stored`` event are exactly those of real data, so the demo exercises the real path.

Restarting is safe: sensors are found again by their ``sensor_key`` property instead of being
created twice, and backfill resumes after the newest stored reading rather than writing the same
hours again. Run one simulator per database (one web worker), or sensors could be created twice.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import shapely
from sqlalchemy import func, select

from citydesk.auth import Principal, Role
from citydesk.geo import read_districts
from citydesk.hub.models import datastream_latest
from citydesk.hub.records import ObservationIn
from citydesk.hub.sta import service
from citydesk.simulator.calibration import Calibration, load_calibration
from citydesk.simulator.city import CityFeeds, FeedStream, find_streams
from citydesk.simulator.layout import (
    SensorSite,
    find_datastreams,
    find_shared,
    find_things,
    observed_property_payload,
    place_sensors,
    sensor_payload,
    thing_payload,
)
from citydesk.simulator.model import COUNT_MEASURES, MEASURES, CityModel, SensorState

if TYPE_CHECKING:
    from citydesk.web.app import App

log = logging.getLogger(__name__)
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
MAX_CATCH_UP = timedelta(minutes=10)
"""After a stall longer than this (a laptop asleep), skip ahead instead of flooding the store."""
BATCH = 20_000
"""Observations per ingest call during backfill: one transaction each, bounded memory."""


@dataclass
class SimSensor:
    """A provisioned sensor: where it is, its entity ids, and its model state."""

    site: SensorSite
    thing_id: int
    datastreams: dict[str, int]
    state: SensorState
    phase_us: int = 0
    """Offset of this sensor's readings within the interval, so load is spread evenly."""


@dataclass
class SimStats:
    """Counters for the status page and the logs (failures are counted, never raised)."""

    ticks: int = 0
    sent: int = 0
    stored: int = 0
    duplicates: int = 0
    rejected: int = 0
    failures: int = 0
    last_error: str | None = None
    last_tick_s: float = 0.0
    tick_s_total: float = 0.0
    backfilled: int = 0


def system_principal() -> Principal:
    """The simulator acts as an administrator with no user row (it is the platform itself)."""
    return Principal.for_user(None, "simulator", Role.ADMIN)


def _us(t: datetime) -> int:
    return (t - EPOCH) // timedelta(microseconds=1)


class Simulator:
    """Simulated S-DoT network for one app; see the module docstring."""

    name = "simulator"

    def __init__(
        self,
        app: App,
        *,
        sensors_per_district: int = 4,
        rate_per_minute: float = 1.0,
        backfill_hours: float = 24,
        backfill_step: timedelta = timedelta(minutes=10),
        seed: int = 2019,
        tick_seconds: float = 1.0,
        calibration: Calibration | None = None,
        city_feeds: bool = True,
        city_interval: timedelta = timedelta(minutes=5),
        city_backfill_step: timedelta = timedelta(hours=1),
    ) -> None:
        if rate_per_minute <= 0 or sensors_per_district < 1:
            raise ValueError("the simulator needs at least one sensor per district and a positive rate")
        self.app = app
        self.sensors_per_district = sensors_per_district
        self.interval_us = round(60_000_000 / rate_per_minute)
        self.backfill_hours = backfill_hours
        self.backfill_step = backfill_step
        self.seed = seed
        self.tick_seconds = tick_seconds
        self.calibration = calibration
        self.city_feeds = city_feeds
        self.city_interval_us = _us(EPOCH + city_interval)
        self.city_backfill_step = city_backfill_step
        self.city: CityFeeds | None = None
        """The seeded city's synthetic feeds (``simulator.city``), when ``city_feeds`` and seeded."""
        self.state = "stopped"
        self.stats = SimStats()
        self.sensors: list[SimSensor] = []
        self.model: CityModel | None = None
        self._last: datetime | None = None
        self._task: asyncio.Task[None] | None = None
        self._wake: asyncio.Event | None = None
        self._ready: asyncio.Event | None = None
        self._halt = False

    @property
    def observations_per_second(self) -> float:
        """The steady live load: sensors x measures x readings per minute / 60, plus the city feeds."""
        city = len(self.city.streams) * 1e6 / self.city_interval_us if self.city else 0.0
        return len(self.sensors) * len(MEASURES) * 60e6 / self.interval_us / 60 + city

    # -- service protocol -------------------------------------------------------------------------
    async def start(self) -> None:
        """Start in the background: provisioning and backfill must not hold up the web app."""
        if self._task is not None and not self._task.done():
            return
        self._halt = False
        self._wake, self._ready = asyncio.Event(), asyncio.Event()
        self.state = "running"
        self._task = asyncio.create_task(self._run(), name="citydesk-simulator")

    async def stop(self) -> None:
        """Stop after the write in flight (if any) has finished, so nothing is left half done."""
        self._halt = True
        if self._wake is not None:
            self._wake.set()
        if self._task is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        if not self.state.startswith("failed"):
            self.state = "stopped"

    async def wait_ready(self, timeout: float | None = None) -> None:
        """Wait until sensors exist and backfill is done; raise if the start failed."""
        assert self._ready is not None, "start() first"
        await asyncio.wait_for(self._ready.wait(), timeout)
        if self.state.startswith("failed"):
            raise RuntimeError(f"simulator {self.state}")

    async def _run(self) -> None:
        assert self._ready is not None and self._wake is not None
        try:
            await self.provision()
            await self.backfill(self.backfill_hours)
        except Exception as exc:
            log.exception("simulator could not start")
            self.state = f"failed: {exc}"
            return
        finally:
            self._ready.set()
        while not self._halt:
            await self.tick()
            delay = self.tick_seconds - (time.monotonic() % self.tick_seconds)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), delay)

    # -- provisioning -----------------------------------------------------------------------------
    async def provision(self) -> int:
        """Create whatever sensors are missing (in a worker thread); returns how many were created."""
        return await asyncio.to_thread(self._provision)

    def _provision(self) -> int:
        app = self.app
        names = {d.name_ko: d.code for d in app.geo.districts()}
        cal = self.calibration or load_calibration(names)
        self.calibration = cal
        self.model = CityModel(cal, self.seed)
        sites = place_sensors(self._district_shapes(cal), self.sensors_per_district, self.seed, self._agrees)
        principal = system_principal()
        sensor_id, property_ids = self._shared_entities(principal)
        with app.engine.connect() as conn:
            existing = find_things(conn)
        created = 0
        for site in sites:
            if site.key not in existing:
                existing[site.key] = service.post(
                    app, principal, "Things", thing_payload(site, sensor_id, property_ids)
                )[1]
                created += 1
        with app.engine.connect() as conn:
            streams = find_datastreams(conn, list(existing.values()))
        self.sensors = []
        for i, site in enumerate(sites):
            thing_id = existing[site.key]
            missing = set(MEASURES) - streams.get(thing_id, {}).keys()
            if missing:
                raise RuntimeError(f"{site.name} (Thing {thing_id}) lacks Datastreams for {sorted(missing)}")
            phase = i * self.interval_us // len(sites)
            state = self.model.new_state(site.key)
            self.sensors.append(SimSensor(site, thing_id, streams[thing_id], state, phase))
        log.info("simulator: %d sensors (%d new) in %d districts", len(sites), created, len(cal.pm10))
        if self.city_feeds:
            with app.engine.connect() as conn:
                self.city = CityFeeds(self.model, find_streams(conn))
            log.info("simulator: %d city feed streams", len(self.city.streams))
        return created

    def _district_shapes(self, cal: Calibration) -> list[tuple[str, str, Any]]:
        """Calibrated districts with their polygons (the packaged boundaries the city was seeded with)."""
        known = {d.code for d in self.app.geo.districts()}
        return [
            (d.code, d.name_ko, shapely.from_geojson(json.dumps(d.geometry)))
            for d in read_districts()
            if d.code in known and d.code in cal.pm10
        ]

    def _agrees(self, code: str, lon: float, lat: float) -> bool:
        return self.app.geo.district_of(lon, lat) == code  # the live index must file it there too

    def _shared_entities(self, principal: Principal) -> tuple[int, dict[str, int]]:
        """The device-model Sensor and the ObservedProperties, created only if not there yet."""
        with self.app.engine.connect() as conn:
            sensor_id, property_ids = find_shared(conn)
        if sensor_id is None:
            sensor_id = service.post(self.app, principal, "Sensors", sensor_payload())[1]
        for measure in MEASURES:
            if measure not in property_ids:
                payload = observed_property_payload(measure)
                property_ids[measure] = service.post(self.app, principal, "ObservedProperties", payload)[1]
        return sensor_id, property_ids

    # -- readings and writes ----------------------------------------------------------------------
    def _readings(self, sensor: SimSensor, t: datetime) -> list[ObservationIn]:
        assert self.model is not None
        out = []
        for measure in MEASURES:
            value: float | int = self.model.reading(measure, sensor.site.district, t, sensor.state)
            if measure in COUNT_MEASURES:
                value = int(value)
            out.append(ObservationIn(sensor.datastreams[measure], value, phenomenon_time=t, result_time=t))
        return out

    def _ingest(self, records: list[ObservationIn]) -> int:
        result = self.app.ingest.ingest(records, channel="simulator", dedupe=True)
        self.stats.sent += len(records)
        self.stats.stored += len(result.stored)
        self.stats.duplicates += result.duplicates
        if bad := result.rejected:
            self.stats.rejected += len(bad)
            log.warning("simulator: %d reading(s) refused, e.g. %s", len(bad), bad[0].reason)
        return len(result.stored)

    async def backfill(self, hours: float | None = None) -> int:
        """Write ``hours`` of history at ``backfill_step`` resolution, resuming after stored data."""
        return await asyncio.to_thread(self._backfill, self.backfill_hours if hours is None else hours)

    def _backfill(self, hours: float) -> int:
        now = self.app.now()
        self._last = now
        if hours <= 0 or not self.sensors:
            return 0
        step = _us(EPOCH + self.backfill_step)
        start = now - timedelta(hours=hours)
        newest = self._newest_stored()
        if newest is not None and newest > start:
            start = newest + timedelta(microseconds=1)
        k = -(-_us(start) // step)
        stored, batch = 0, []
        while k * step <= _us(now) and not self._halt:
            t = EPOCH + timedelta(microseconds=k * step)
            for sensor in self.sensors:
                batch += self._readings(sensor, t)
            if len(batch) >= BATCH:
                stored += self._ingest(batch)
                batch = []
            k += 1
        if batch:
            stored += self._ingest(batch)
        stored += self._backfill_city(now - timedelta(hours=hours), now)
        self.stats.backfilled += stored
        log.info("simulator: backfilled %d observations since %s", stored, start.isoformat())
        return stored

    def _city_readings(self, streams: list[FeedStream], t: datetime) -> list[ObservationIn]:
        assert self.city is not None
        return [
            ObservationIn(s.datastream, self.city.reading(s, t), phenomenon_time=t, result_time=t)
            for s in streams
        ]

    def _backfill_city(self, start: datetime, now: datetime) -> int:
        """The city feeds' history at ``city_backfill_step`` (coarser than S-DoT's: thousands of
        stations), resuming after their own newest stored reading."""
        if self.city is None or not self.city.streams:
            return 0
        newest = self._newest_stored([s.datastream for s in self.city.streams])
        if newest is not None and newest > start:
            start = newest + timedelta(microseconds=1)
        step = _us(EPOCH + self.city_backfill_step)
        k, stored = -(-_us(start) // step), 0
        while k * step <= _us(now) and not self._halt:
            stored += self._ingest(
                self._city_readings(self.city.streams, EPOCH + timedelta(microseconds=k * step))
            )
            k += 1
        return stored

    def _newest_stored(self, ids: list[int] | None = None) -> datetime | None:
        if ids is None:
            ids = [ds for s in self.sensors for ds in s.datastreams.values()]
        latest = datastream_latest.c
        query = select(func.max(latest.phenomenon_time)).where(latest.datastream_id.in_(ids))
        with self.app.engine.connect() as conn:
            newest = conn.execute(query).scalar()
        return newest if isinstance(newest, datetime) else None

    def _city_due(self, lo: int, hi: int) -> list[ObservationIn]:
        """City-feed readings due in (lo, hi] µs: each stream has its own phase, spreading the load."""
        if self.city is None or not self.city.streams:
            return []
        out: list[ObservationIn] = []
        n, interval = len(self.city.streams), self.city_interval_us
        for i, s in enumerate(self.city.streams):
            phase = i * interval // n
            k = (lo - phase) // interval + 1
            while (t_us := phase + k * interval) <= hi:
                out += self._city_readings([s], EPOCH + timedelta(microseconds=t_us))
                k += 1
        return out

    async def tick(self, now: datetime | None = None) -> int:
        """Generate and store the readings due since the last tick; failures are logged, not raised."""
        try:
            return await asyncio.to_thread(self._tick, now or self.app.now())
        except Exception as exc:
            self.stats.failures += 1
            self.stats.last_error = str(exc)
            log.exception("simulator tick failed")
            return 0

    def _tick(self, now: datetime) -> int:
        began = time.perf_counter()
        last = self._last or now
        if now - last > MAX_CATCH_UP:
            log.warning("simulator: %s behind, skipping ahead", now - last)
            last = now - MAX_CATCH_UP
        self._last = now
        lo, hi, records = _us(last), _us(now), []
        for sensor in self.sensors:
            k = (lo - sensor.phase_us) // self.interval_us + 1
            while (t_us := sensor.phase_us + k * self.interval_us) <= hi:
                records += self._readings(sensor, EPOCH + timedelta(microseconds=t_us))
                k += 1
        records += self._city_due(lo, hi)
        stored = self._ingest(records) if records else 0
        elapsed = time.perf_counter() - began
        self.stats.ticks += 1
        self.stats.last_tick_s = elapsed
        self.stats.tick_s_total += elapsed
        return stored


def attach(
    app: App,
    *,
    sensors_per_district: int = 4,
    rate_per_minute: float = 1.0,
    backfill_hours: float = 24,
    seed: int = 2019,
) -> Simulator:
    """Add a simulator to the app's background services (started and stopped with the web app)."""
    sim = Simulator(
        app,
        sensors_per_district=sensors_per_district,
        rate_per_minute=rate_per_minute,
        backfill_hours=backfill_hours,
        seed=seed,
    )
    app.background.append(sim)
    return sim
