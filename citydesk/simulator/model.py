"""What an S-DoT sensor would read at a given place and moment: the simulator's physics, kept pure.

No I/O and no clock: a reading is a function of the measure, the district, an aware time and the
sensor's own state (a ``random.Random`` seeded from the run's seed and the sensor's key), so a
seed replays the same city. Three layers make the curves look like Seoul's:

* **levels** from real data — 2019's daily PM10/PM2.5 per district for the same calendar day,
  climate normals for the month (interpolated between months so there is no jump on the 1st);
* **daily cycles** in Seoul local time — rush-hour PM peaks, temperature lowest just before
  sunrise and highest mid-afternoon, the sun's real elevation for light and UV, people and noise
  following a weekday or weekend rhythm that depends on the kind of district;
* **noise** — city- or district-wide weather wanders smoothly (shared by nearby sensors, as real
  weather is), each sensor adds its own offset and autocorrelated noise, and PM sometimes spikes
  (a truck idling, a barbecue) ×3–6, decaying within ~30 minutes, which is what alert rules catch.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

from citydesk.simulator.calibration import Calibration

SEOUL = ZoneInfo("Asia/Seoul")
LATITUDE, LONGITUDE = 37.5665, 126.978
MEASURES = (
    "pm10", "pm25", "temperature", "humidity", "illuminance", "noise",
    "vibration", "wind_direction", "wind_speed", "uv", "floating_population",
)  # fmt: skip
COUNT_MEASURES = frozenset({"floating_population"})
NOMINAL_INTERVAL_S = 60.0
"""Spike chances are stated per reading at this interval and scaled for other intervals."""

# Share of people out and about per local hour (0..23), from the familiar shape of Seoul's living
# population: a commuter city on weekdays, a late, broad afternoon at weekends.
WEEKDAY = (0.25, 0.15, 0.10, 0.07, 0.07, 0.12, 0.30, 0.65, 0.95, 0.80, 0.65, 0.70,
           0.90, 0.85, 0.70, 0.70, 0.75, 0.90, 1.00, 0.90, 0.70, 0.60, 0.50, 0.38)  # fmt: skip
WEEKEND = (0.35, 0.25, 0.15, 0.10, 0.07, 0.08, 0.12, 0.20, 0.30, 0.45, 0.60, 0.75,
           0.85, 0.90, 0.95, 0.95, 0.90, 0.85, 0.80, 0.75, 0.65, 0.55, 0.48, 0.42)  # fmt: skip
BUSINESS = frozenset({"11110", "11140", "11560", "11650", "11680"})
"""Jongno, Jung, Yeongdeungpo, Seocho, Gangnam: offices fill them on weekdays."""
MIXED = frozenset({"11170", "11200", "11215", "11230", "11410", "11440", "11500", "11530",
                   "11545", "11590", "11620", "11710"})  # fmt: skip
"""Districts with universities, markets or business parks beside housing."""


@dataclass(frozen=True, slots=True)
class ModelParams:
    spike_chance: float = 0.002
    """Chance that a PM reading starts a spike, per reading at the nominal 1-minute interval."""
    spike_factor: tuple[float, float] = (3.0, 6.0)
    spike_tau_s: float = 600.0
    """e-folding time of a spike: after 30 minutes 5 % of the excess is left."""


@dataclass(slots=True)
class SensorState:
    """One sensor's private randomness and memory; advance it in time order."""

    key: str
    rng: random.Random
    pm_bias: float
    temp_offset: float
    noise_offset: float
    exposure: float
    """How open the site is (wind, light): 1 = open square, lower = street canyon."""
    footfall: float
    noise: dict[str, float] = field(default_factory=dict)
    last: dict[str, datetime] = field(default_factory=dict)
    spike_start: dict[str, datetime] = field(default_factory=dict)
    spike_factor: dict[str, float] = field(default_factory=dict)
    spikes: dict[str, int] = field(default_factory=dict)
    """How many spikes each measure has started (for tests and the status page)."""

    @classmethod
    def new(cls, seed: int, key: str) -> SensorState:
        rng = random.Random(f"{seed}:sensor:{key}")
        return cls(
            key=key,
            rng=rng,
            pm_bias=max(-0.08, min(0.08, rng.gauss(0, 0.04))),
            temp_offset=rng.gauss(0, 0.4),
            noise_offset=rng.gauss(0, 2.5),
            exposure=rng.uniform(0.6, 1.0),
            footfall=math.exp(rng.gauss(0, 0.35)),
        )


def local_hours(t: datetime) -> tuple[date, float]:
    """Seoul local date and hour of day (fractional); refuses naive times."""
    if t.tzinfo is None or t.utcoffset() is None:
        raise ValueError("simulator times must be zone-aware")
    lt = t.astimezone(SEOUL)
    return lt.date(), lt.hour + lt.minute / 60 + (lt.second + lt.microsecond / 1e6) / 3600


def _solar(t: datetime) -> tuple[float, float]:
    """(declination rad, equation of time min) by NOAA's Fourier approximation."""
    u = t.astimezone(ZoneInfo("UTC"))
    g = 2 * math.pi / 365 * (u.timetuple().tm_yday - 1 + (u.hour - 12) / 24)
    eqt = 229.18 * (0.000075 + 0.001868 * math.cos(g) - 0.032077 * math.sin(g)
                    - 0.014615 * math.cos(2 * g) - 0.040849 * math.sin(2 * g))  # fmt: skip
    decl = (0.006918 - 0.399912 * math.cos(g) + 0.070257 * math.sin(g)
            - 0.006758 * math.cos(2 * g) + 0.000907 * math.sin(2 * g)
            - 0.002697 * math.cos(3 * g) + 0.00148 * math.sin(3 * g))  # fmt: skip
    return decl, eqt


def sun_elevation(t: datetime, lat: float = LATITUDE, lon: float = LONGITUDE) -> float:
    """The sun's elevation in degrees above the horizon at ``t`` (aware) seen from (lat, lon)."""
    decl, eqt = _solar(t)
    u = t.astimezone(ZoneInfo("UTC"))
    solar_min = u.hour * 60 + u.minute + u.second / 60 + eqt + 4 * lon
    ha = math.radians(solar_min / 4 - 180)
    phi = math.radians(lat)
    s = math.sin(phi) * math.sin(decl) + math.cos(phi) * math.cos(decl) * math.cos(ha)
    return math.degrees(math.asin(max(-1.0, min(1.0, s))))


def sunrise_hour(t: datetime, lat: float = LATITUDE, lon: float = LONGITUDE) -> float:
    """Local (Seoul) clock hour of sunrise on ``t``'s day."""
    decl, eqt = _solar(t)
    phi = math.radians(lat)
    c = math.cos(math.radians(90.833)) / (math.cos(phi) * math.cos(decl)) - math.tan(phi) * math.tan(decl)
    ha0 = math.degrees(math.acos(max(-1.0, min(1.0, c))))
    return (720 - 4 * (lon + ha0) - eqt) / 60 + 9  # UTC minutes -> KST hours


def activity(hour: float, weekend: bool) -> float:
    """Share (0..1) of the day's peak street activity at a local hour, linearly interpolated."""
    curve = WEEKEND if weekend else WEEKDAY
    i = int(hour) % 24
    frac = hour - int(hour)
    return curve[i] * (1 - frac) + curve[(i + 1) % 24] * frac


def footfall_scale(district: str, weekend: bool) -> float:
    """How busy a district's streets are relative to the city rhythm: offices fill on weekdays."""
    if district in BUSINESS:
        return 1.0 if weekend else 1.8
    if district in MIXED:
        return 1.1 if weekend else 1.2
    return 0.9 if weekend else 0.8


def pm_shape(hour: float) -> float:
    """Rush-hour peaks (08:30, 20:30) and night-time build-up; averages exactly 1 over a day."""
    rush = 0.12 * math.cos(2 * math.pi * (hour - 8.5) / 12)
    return 1 + rush + 0.06 * math.cos(2 * math.pi * (hour - 22) / 24)


def temperature_shape(hour: float, rise: float) -> float:
    """0 at dawn (an hour before sunrise), 1 at 14:30, half-cosines between (the asymmetric day)."""
    low, high = rise - 1.0, 14.5
    if low <= hour < high:
        return (1 - math.cos(math.pi * (hour - low) / (high - low))) / 2
    since = (hour - high) % 24
    return (1 + math.cos(math.pi * since / (24 - (high - low)))) / 2


class CityModel:
    """Readings for one city from its calibration; ``seed`` fixes its shared weather."""

    def __init__(self, calibration: Calibration, seed: int = 2019, params: ModelParams | None = None) -> None:
        self.cal = calibration
        self.seed = seed
        self.params = params or ModelParams()
        self._knots: dict[tuple[str, int], float] = {}
        p = self.params
        mean_excess = (p.spike_factor[0] + p.spike_factor[1]) / 2 - 1
        self._spike_inflation = 1 + p.spike_chance / NOMINAL_INTERVAL_S * mean_excess * p.spike_tau_s
        """Expected share spikes add to a PM mean: divided out so daily means match the data."""

    def new_state(self, key: str) -> SensorState:
        return SensorState.new(self.seed, key)

    # -- shared, order-independent randomness ----------------------------------------------------
    def _smooth(self, channel: str, t: datetime, knot_s: float, sd: float) -> float:
        """Smooth noise shared by every sensor asking for ``channel``: seeded knots, cosine-blended."""
        x = t.timestamp() / knot_s
        k = math.floor(x)
        frac = (1 - math.cos(math.pi * (x - k))) / 2
        if len(self._knots) > 100_000:
            self._knots.clear()
        vals = []
        for kk in (k, k + 1):
            if (channel, kk) not in self._knots:
                self._knots[channel, kk] = random.Random(f"{self.seed}:{channel}:{kk}").gauss(0, 1)
            vals.append(self._knots[channel, kk])
        return sd * (vals[0] * (1 - frac) + vals[1] * frac)

    @staticmethod
    def _ar(state: SensorState, channel: str, t: datetime, sd: float, tau_s: float) -> float:
        """The sensor's own AR(1) noise: correlated over ``tau_s``, stationary sd ``sd``."""
        z = state.rng.gauss(0, 1)
        last = state.last.get(channel)
        if last is None:
            x = sd * z
        else:
            dt = (t - last).total_seconds()
            if dt <= 0:
                return state.noise[channel]
            rho = math.exp(-dt / tau_s)
            x = rho * state.noise[channel] + math.sqrt(1 - rho * rho) * sd * z
        state.noise[channel], state.last[channel] = x, t
        return x

    def _spike(self, measure: str, state: SensorState, t: datetime) -> float:
        """Multiplier from this sensor's PM spike (1 when none); may start a new one."""
        p = self.params
        last = state.last.get(f"spike:{measure}")
        dt = NOMINAL_INTERVAL_S if last is None else max(0.0, (t - last).total_seconds())
        state.last[f"spike:{measure}"] = t
        start = state.spike_start.get(measure)
        excess = 0.0
        if start is not None:
            age = (t - start).total_seconds()
            excess = (state.spike_factor[measure] - 1) * math.exp(-age / p.spike_tau_s)
        u = state.rng.random()
        if dt > 0 and excess < 0.05 and u < 1 - (1 - p.spike_chance) ** (dt / NOMINAL_INTERVAL_S):
            # The event began at some moment since the last reading, so a sparse cadence samples
            # it already decayed: the expected excess per unit time is the same at any cadence.
            start = t - timedelta(seconds=state.rng.random() * dt)
            state.spike_start[measure] = start
            state.spike_factor[measure] = state.rng.uniform(*p.spike_factor)
            state.spikes[measure] = state.spikes.get(measure, 0) + 1
            age = (t - start).total_seconds()
            excess = (state.spike_factor[measure] - 1) * math.exp(-age / p.spike_tau_s)
        return 1 + excess

    # -- levels ---------------------------------------------------------------------------------
    def _climate(self, day: date) -> tuple[float, float, float, float]:
        """(mean temp, daily range, humidity, wind) for ``day``, blended between month midpoints."""
        dim = (date(day.year + day.month // 12, day.month % 12 + 1, 1) - date(day.year, day.month, 1)).days
        pos = day.month - 1 + (day.day - 0.5) / dim - 0.5
        lo = math.floor(pos)
        f = pos - lo
        a, b = self.cal.normal(lo % 12 + 1), self.cal.normal((lo + 1) % 12 + 1)

        def mix(x: float, y: float) -> float:
            return x * (1 - f) + y * f

        return (
            mix(a.temp_mean, b.temp_mean),
            mix(a.temp_max - a.temp_min, b.temp_max - b.temp_min),
            mix(a.humidity, b.humidity),
            mix(a.wind, b.wind),
        )

    def pm_level(self, measure: str, district: str, day: date, hour: float) -> float:
        """The real daily mean, blended with the neighbouring day over 3 h either side of midnight."""
        level = self.cal.daily(measure, district, day)
        if hour < 3:
            w = 0.5 * (1 - hour / 3)
            level = level * (1 - w) + self.cal.daily(measure, district, day - timedelta(days=1)) * w
        elif hour > 21:
            w = 0.5 * (hour - 21) / 3
            level = level * (1 - w) + self.cal.daily(measure, district, day + timedelta(days=1)) * w
        return level

    # -- the reading ----------------------------------------------------------------------------
    def reading(self, measure: str, district: str, t: datetime, state: SensorState) -> float:
        """What the sensor ``state`` in ``district`` reads for ``measure`` at ``t`` (aware)."""
        day, hour = local_hours(t)
        weekend = day.weekday() >= 5
        if measure in ("pm10", "pm25"):
            shared = self._smooth(f"pm:{district}", t, 3 * 3600, 0.15)
            own = self._ar(state, measure, t, 0.08, 1800)
            level = self.pm_level(measure, district, day, hour) / self._spike_inflation
            value = level * pm_shape(hour) * math.exp(shared + own - (0.15**2 + 0.08**2) / 2)
            return round(value * (1 + state.pm_bias) * self._spike(measure, state, t), 1)
        mean, span, hum, wind = self._climate(day)
        if measure in ("temperature", "humidity"):
            swing = (span / 2) * (2 * temperature_shape(hour, sunrise_hour(t)) - 1)
            anomaly = self._smooth("temperature", t, 36 * 3600, 2.5)
            if measure == "temperature":
                own = self._ar(state, measure, t, 0.3, 1200)
                return round(mean + anomaly + swing + state.temp_offset + own, 1)
            wet = self._smooth("humidity", t, 36 * 3600, 9.0) + self._ar(state, measure, t, 2.0, 1800)
            return round(max(8.0, min(100.0, hum - 3.0 * swing - 1.5 * anomaly + wet)), 1)
        if measure in ("illuminance", "uv"):
            elev = sun_elevation(t)
            sin_e = max(0.0, math.sin(math.radians(elev)))
            cloud = max(0.15, min(1.0, 0.7 + self._smooth("cloud", t, 6 * 3600, 0.3)))
            own = math.exp(self._ar(state, measure, t, 0.05, 600))
            if measure == "uv":
                return round(min(11.0, 10.5 * sin_e**2.5 * (0.3 + 0.7 * cloud) * own), 1)
            twilight = 400 * max(0.0, min(1.0, (elev + 6) / 6)) ** 2
            return float(round((125_000 * sin_e**1.2 * cloud * state.exposure + twilight) * own))
        act = activity(hour, weekend)
        if measure == "noise":
            offset = 3.0 if district in BUSINESS else 1.0 if district in MIXED else -1.0
            own = self._ar(state, measure, t, 2.0, 600)
            return round(42 + 22 * act + offset + state.noise_offset + own, 1)
        if measure == "vibration":
            return round((0.02 + 0.25 * act) * math.exp(self._ar(state, measure, t, 0.35, 300)), 3)
        if measure == "wind_speed":
            gust = self._smooth("wind", t, 12 * 3600, 0.35) + self._ar(state, measure, t, 0.25, 600)
            diurnal = 1 + 0.3 * math.sin(2 * math.pi * (hour - 9) / 24)
            factor = math.exp(gust - (0.35**2 + 0.25**2) / 2) * (0.7 + 0.6 * (state.exposure - 0.6) / 0.4)
            return round(max(0.0, wind * diurnal * factor), 1)
        if measure == "wind_direction":
            # north-westerlies in the winter monsoon, south-westerlies in summer
            prevailing = 300.0 if day.month in (11, 12, 1, 2, 3) else 230.0 if 6 <= day.month <= 8 else 270.0
            drift = self._smooth("wind_dir", t, 8 * 3600, 50.0)
            return float(round(prevailing + drift + self._ar(state, measure, t, 25.0, 3600)) % 360)
        if measure == "floating_population":
            return float(self._people(district, weekend, act, t, state))
        raise ValueError(f"unknown measure {measure!r}")

    def _people(self, district: str, weekend: bool, act: float, t: datetime, state: SensorState) -> int:
        """People passing the sensor in the minute before ``t``: Poisson around the daily rhythm."""
        scale = footfall_scale(district, weekend)
        crowd = math.exp(self._ar(state, "floating_population", t, 0.15, 900))
        lam = 25 * act * scale * state.footfall * crowd
        if lam > 30:
            return max(0, round(state.rng.gauss(lam, math.sqrt(lam))))
        limit, k, prod = math.exp(-lam), 0, state.rng.random()
        while prod > limit:
            k += 1
            prod *= state.rng.random()
        return k
