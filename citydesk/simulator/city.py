"""Synthetic city feeds: what a city's own systems would report where no open data exists.

Clearly not measurements. They stand in for feeds a city replaces with its own (bike-share
operator, waterworks SCADA, park gate counters, a telecom's living-population estimate), and
write to the Datastreams the seeder created (``citydesk.city``, property ``feed = "simulator"``),
through the same ingest path as the S-DoT sensors. Every value is a pure function of the seed,
the station and the time (shared smooth noise from ``CityModel``), so a restart or a backfill
writes the same numbers:

* **bikes available** per Ddareungi station (capacity = its real docks): commuters empty
  residential stations in the morning and fill the office districts', the reverse in the evening;
  weekends are flat with an afternoon dip;
* **car parks** (synthetic public lots, capacity from ``parking.csv``): free spaces and occupancy,
  both from one share of spaces taken: office districts fill during weekday office hours,
  residential ones in the evening and at night, mixed ones a little of both; at weekends the
  office districts' lots are quiet but for an afternoon peak (shopping, outings);
* **rainfall** (mm/h) at a simulated gauge per district: it rains while the model's shared
  humidity anomaly (the one that makes the S-DoT humidity readings high) is above
  ``RAIN_THRESHOLD``, harder the further above, scaled so each month's expected total is Seoul's
  real normal for that month (2005-2021, the calibration's weather file); districts differ a
  little at the same moment. No flood-prone areas: there is no boundary data for them;
* **water quality** at the six Arisu purification centres: turbidity around 0.05 NTU (limit
  0.5), free residual chlorine 0.4–0.7 mg/L (limits 0.1–4), pH 6.9–7.6 (limits 5.8–8.5);
* **park visitors** at major parks: the city's activity rhythm, busier at weekends;
* **living population** per district: the 2020 registered population, shifted during the day
  toward the districts whose S-DoT people counters are busier (``model.footfall_scale``, the
  expected value of the ``floating_population`` measure), plus commuters from outside the city
  (up to ``COMMUTERS`` of the residents on a weekday, following the street activity).
"""

from __future__ import annotations

import calendar
import math
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from statistics import NormalDist, fmean

from sqlalchemy import Connection, select

from citydesk.hub.models import datastreams, things
from citydesk.simulator.model import BUSINESS, MIXED, CityModel, activity, footfall_scale, local_hours

FEED = "simulator"
COMMUTERS = {False: 0.10, True: 0.03}
"""Share of the residents who come in from outside the city at the peak, weekday / weekend."""
MEASURES = (
    "bikes_available", "parking_available", "parking_occupancy", "rainfall", "turbidity",
    "residual_chlorine", "ph", "park_visitors", "living_population",
)  # fmt: skip
PARKING = frozenset({"parking_available", "parking_occupancy"})
RAIN_THRESHOLD = 1.2
"""It rains while the shared humidity anomaly, in its standard deviations, is above this (about
one hour in twelve, the test checks)."""
RAIN_SPREAD = 0.4
"""Sd of a district's rain around the city's at the same moment, on a log scale."""


def _over_phases(f: Callable[[float], float], n: int = 400) -> float:
    """The mean of ``f(sd)`` over time for ``CityModel._smooth`` noise of unit sd: between two
    knots it blends two independent normals, so at phase u its sd is sqrt(1 - sin²(πu) / 2)."""
    return fmean(f(math.sqrt(1 - math.sin(math.pi * (i + 0.5) / n) ** 2 / 2)) for i in range(n))


def _mean_excess(sd: float) -> float:
    """E[max(0, Z - RAIN_THRESHOLD)] for Z ~ N(0, sd²)."""
    a = RAIN_THRESHOLD / sd
    return sd * (NormalDist().pdf(a) - a * (1 - NormalDist().cdf(a)))


RAIN_EXCESS = _over_phases(_mean_excess)
"""Long-run mean of max(0, anomaly - threshold): divides a month's normal into a rate."""
RAIN_LOCAL_MEAN = _over_phases(lambda sd: math.exp((RAIN_SPREAD * sd) ** 2 / 2))
"""Long-run mean of the districts' lognormal factor, divided out so it adds no rain."""


@dataclass(frozen=True, slots=True)
class FeedStream:
    """One simulated Datastream and what its model needs from its Thing."""

    datastream: int
    measure: str
    key: str
    """The Thing's ``facility_key``: seeds the stream's own character."""
    district: str | None
    capacity: int = 0
    """Docks of a bike station, spaces of a car park, the typical crowd of a park, registered
    residents of a district."""


def find_streams(conn: Connection) -> list[FeedStream]:
    """The Datastreams the seeder created for this feed (none when the city data is not seeded)."""
    stmt = (
        select(datastreams.c.id, datastreams.c.properties, datastreams.c.district_code, things.c.properties)
        .join(things, things.c.id == datastreams.c.thing_id)
        .order_by(datastreams.c.id)
    )
    out = []
    for ident, props, district, thing in conn.execute(stmt):
        if not (isinstance(props, dict) and props.get("feed") == FEED and props.get("measure") in MEASURES):
            continue
        thing = thing if isinstance(thing, dict) else {}
        capacity = (
            thing.get("docks")
            or thing.get("capacity")
            or thing.get("scale")
            or thing.get("registered_population")
            or 0
        )
        out.append(
            FeedStream(int(ident), props["measure"], str(thing.get("facility_key")), district, int(capacity))
        )
    return out


def _bump(hour: float, centre: float, width: float) -> float:
    """A Gaussian bump in clock hours, wrapping round midnight."""
    d = (hour - centre + 12) % 24 - 12
    return math.exp(-0.5 * (d / width) ** 2)


def bike_fill(district: str | None, hour: float, weekend: bool) -> float:
    """Expected share of a station's docks holding a bike."""
    if weekend:
        return 0.5 - 0.15 * _bump(hour, 15.0, 3.0)
    if district in BUSINESS:
        return (
            0.35 + 0.45 * _bump(hour, 9.0, 1.5) + 0.2 * _bump(hour, 13.0, 3.0) - 0.25 * _bump(hour, 19.0, 1.8)
        )
    if district in MIXED:
        return 0.5 + 0.1 * _bump(hour, 9.5, 2.0) - 0.1 * _bump(hour, 19.0, 2.0)
    return 0.6 - 0.4 * _bump(hour, 8.3, 1.3) - 0.15 * _bump(hour, 13.0, 3.0) + 0.2 * _bump(hour, 20.0, 2.0)


def _window(hour: float, start: float, end: float, soft: float) -> float:
    """About 1 between ``start`` and ``end`` o'clock, 0 outside, with edges ``soft`` hours wide."""
    return 1 / (1 + math.exp(-(hour - start) / soft)) / (1 + math.exp(-(end - hour) / soft))


def parking_taken(district: str | None, hour: float, weekend: bool) -> float:
    """Expected share of a car park's spaces taken."""
    if weekend:
        if district in BUSINESS:
            return 0.2 + 0.35 * _bump(hour, 14.5, 3.5)
        if district in MIXED:
            return 0.45 + 0.25 * _bump(hour, 14.5, 3.5)
        return 0.8 - 0.15 * _window(hour, 10.0, 18.0, 1.0)
    if district in BUSINESS:
        return 0.15 + 0.75 * _window(hour, 8.0, 18.5, 0.7)
    if district in MIXED:
        return 0.35 + 0.3 * _window(hour, 9.0, 18.0, 0.8) + 0.2 * _bump(hour, 20.5, 2.0)
    return 0.85 - 0.5 * _window(hour, 8.5, 18.0, 0.9)


class CityFeeds:
    """Readings of every simulated city stream at a moment (see the module docstring)."""

    def __init__(self, model: CityModel, streams: Sequence[FeedStream]) -> None:
        self.model = model
        self.streams = list(streams)
        self._bias = {s.datastream: random.Random(f"{model.seed}:feed:{s.key}:{s.measure}").gauss(0, 1)
                      for s in self.streams}  # fmt: skip
        residents = {s.district: s.capacity for s in self.streams if s.measure == "living_population"}
        self._residents = {d: n for d, n in residents.items() if d is not None}
        # A car park's two streams (free spaces, occupancy) share one character: seeded by the lot.
        self._lot_bias = {s.key: random.Random(f"{model.seed}:feed:{s.key}:parking").gauss(0, 1)
                          for s in self.streams if s.measure in PARKING}  # fmt: skip

    def reading(self, s: FeedStream, t: datetime) -> float | int:
        day, hour = local_hours(t)
        weekend = day.weekday() >= 5
        bias = self._bias[s.datastream]
        noise = self.model._smooth(f"feed:{s.datastream}", t, 2 * 3600, 1.0)
        if s.measure == "bikes_available":
            share = bike_fill(s.district, hour, weekend) + 0.12 * bias + 0.08 * noise
            return round(max(0.0, min(1.0, share)) * s.capacity)
        if s.measure in PARKING:
            taken = self._parking(s, t, hour, weekend)
            if s.measure == "parking_available":
                return s.capacity - taken
            return round(100 * taken / s.capacity, 1) if s.capacity else 0.0
        if s.measure == "rainfall":
            return self.rainfall(s.district, t)
        if s.measure == "turbidity":
            return round(0.05 * math.exp(0.25 * bias + 0.15 * noise), 3)
        if s.measure == "residual_chlorine":
            return round(
                0.55 + 0.05 * bias + 0.03 * noise + 0.02 * math.cos(2 * math.pi * (hour - 15) / 24), 2
            )
        if s.measure == "ph":
            return round(7.2 + 0.12 * bias + 0.05 * noise, 2)
        if s.measure == "park_visitors":
            weather = math.exp(0.2 * self.model._smooth("park-weather", t, 12 * 3600, 1.0))
            crowd = activity(hour, weekend) * (1.6 if weekend else 1.0) * math.exp(0.1 * noise)
            return round(s.capacity * crowd * weather)
        if s.measure == "living_population":
            return round(self._living(s, weekend, hour) * (1 + 0.01 * noise))
        raise ValueError(f"unknown city feed measure {s.measure!r}")

    def rainfall(self, district: str | None, t: datetime) -> float:
        """Rain at ``t`` in ``district``, mm/h (see the module docstring)."""
        excess = self.model._smooth("humidity", t, 36 * 3600, 1.0) - RAIN_THRESHOLD
        if excess <= 0:
            return 0.0
        day, _ = local_hours(t)
        hours = 24 * calendar.monthrange(day.year, day.month)[1]
        rate = self.model.cal.normal(day.month).precipitation / (hours * RAIN_EXCESS)
        local = math.exp(RAIN_SPREAD * self.model._smooth(f"rain:{district}", t, 3 * 3600, 1.0))
        return round(rate * excess * local / RAIN_LOCAL_MEAN, 1)

    def _parking(self, s: FeedStream, t: datetime, hour: float, weekend: bool) -> int:
        """Spaces taken at the car park of ``s`` (the same for both of its streams)."""
        noise = self.model._smooth(f"feed:{s.key}:parking", t, 2 * 3600, 1.0)
        share = parking_taken(s.district, hour, weekend) + 0.06 * self._lot_bias[s.key] + 0.05 * noise
        return round(max(0.0, min(1.0, share)) * s.capacity)

    def _living(self, s: FeedStream, weekend: bool, hour: float) -> float:
        if s.district is None or not self._residents:
            return float(s.capacity)
        total = sum(self._residents.values())
        weights = {d: footfall_scale(d, weekend) * n for d, n in self._residents.items()}
        street_share = weights[s.district] / sum(weights.values())
        act = activity(hour, weekend)
        w = act / 2
        present = total * (1 + COMMUTERS[weekend] * act)
        return present * ((1 - w) * self._residents[s.district] / total + w * street_share)
