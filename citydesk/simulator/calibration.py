"""Real Seoul figures the simulator is calibrated on: 2019 daily PM per district, monthly climate.

Pure functions over the packaged CSVs (``data/README.md`` gives their provenance). The simulated
city should look like Seoul on the dashboard — yellow-dust days in March, clean air in August,
Gangnam and Dobong differing the way they really did — so levels come from published data, not
from constants. Districts are keyed by ``SIG_CD``; the air-quality file names stations by Korean
district name, so names are joined to codes through the geo package's boundaries, never by number.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date
from importlib.resources import files
from statistics import fmean

AVERAGE_ROW = "평균"
"""Station name of the Seoul-wide average row in the air-quality file."""
CALENDAR_YEAR = 2019
DAYS = 365


@dataclass(frozen=True, slots=True)
class ClimateNormal:
    """One month's climate normal (mean over the years in the file)."""

    month: int
    temp_mean: float
    temp_max: float
    """Mean daily maximum, °C."""
    temp_min: float
    """Mean daily minimum, °C."""
    humidity: float
    wind: float
    precipitation: float
    """Mean monthly total, mm (the rainfall feed of ``simulator.city`` is scaled to it)."""


@dataclass(frozen=True, slots=True)
class Calibration:
    """Per-district daily PM levels for a 365-day year and monthly climate normals."""

    pm10: Mapping[str, tuple[float, ...]]
    """SIG_CD -> 365 daily means, µg/m³ (index 0 = 1 January)."""
    pm25: Mapping[str, tuple[float, ...]]
    climate: tuple[ClimateNormal, ...]
    """Twelve months, January first."""
    names: Mapping[str, str]
    """SIG_CD -> Korean district name."""
    filled: Mapping[str, int]
    """SIG_CD -> how many district-days (PM10 or PM2.5) were filled from the Seoul average."""

    def districts(self) -> list[str]:
        return sorted(self.pm10)

    def daily(self, measure: str, district: str, day: date) -> float:
        """The real 2019 daily mean for ``day``'s calendar day (any year; 29 Feb uses 28 Feb)."""
        series = (self.pm10 if measure == "pm10" else self.pm25)[district]
        return series[day_index(day)]

    def normal(self, month: int) -> ClimateNormal:
        return self.climate[month - 1]


def day_index(day: date) -> int:
    """Index 0..364 of ``day``'s month and day within 2019 (which has no 29 February)."""
    d = 28 if (day.month, day.day) == (2, 29) else day.day
    return (date(CALENDAR_YEAR, day.month, d) - date(CALENDAR_YEAR, 1, 1)).days


def _number(text: str) -> float | None:
    text = text.strip()
    return float(text) if text else None


def parse_air_quality(
    rows: Iterable[list[str]], codes: Mapping[str, str]
) -> tuple[dict[str, list[float | None]], dict[str, list[float | None]], list[float], list[float]]:
    """Rows of the air-quality CSV (header first) -> (pm10, pm25) per code, and the two averages.

    ``codes`` maps Korean district name to SIG_CD; stations not in it are ignored. Missing values
    stay ``None`` here; :func:`fill_gaps` decides what replaces them.
    """
    it = iter(rows)
    header = [h.split("\n")[0].strip() for h in next(it)]
    i_date, i_name = header.index("날짜"), header.index("측정소명")
    i_pm10, i_pm25 = header.index("미세먼지"), header.index("초미세먼지")
    pm10: dict[str, list[float | None]] = {c: [None] * DAYS for c in codes.values()}
    pm25: dict[str, list[float | None]] = {c: [None] * DAYS for c in codes.values()}
    avg10: list[float | None] = [None] * DAYS
    avg25: list[float | None] = [None] * DAYS
    for row in it:
        if not row or not row[i_date][:4].isdigit():
            continue  # the "전체" whole-year summary row
        idx = day_index(date.fromisoformat(row[i_date].strip()))
        name = row[i_name].strip()
        v10, v25 = _number(row[i_pm10]), _number(row[i_pm25])
        if name == AVERAGE_ROW:
            avg10[idx], avg25[idx] = v10, v25
        elif name in codes:
            pm10[codes[name]][idx], pm25[codes[name]][idx] = v10, v25
    return pm10, pm25, _complete(avg10, "Seoul average PM10"), _complete(avg25, "Seoul average PM2.5")


def _complete(series: list[float | None], what: str) -> list[float]:
    """The average rows have no gaps in 2019; should a future file have some, carry neighbours."""
    known = [(i, v) for i, v in enumerate(series) if v is not None]
    if not known:
        raise ValueError(f"{what}: no values at all")
    out: list[float] = []
    for i, v in enumerate(series):
        out.append(v if v is not None else min(known, key=lambda kv: abs(kv[0] - i))[1])
    return out


def fill_gaps(series: list[float | None], average: list[float]) -> tuple[tuple[float, ...], int]:
    """Fill missing days from the Seoul average, scaled by how this district compares to it.

    A station down for a day leaves a hole; the city-wide mean that day knows whether it was a
    dusty day, and the ratio over the year keeps a cleaner-than-average district cleaner.
    """
    pairs = [(v, a) for v, a in zip(series, average, strict=True) if v is not None and a > 0]
    ratio = sum(v for v, _ in pairs) / sum(a for _, a in pairs) if pairs else 1.0
    filled = sum(1 for v in series if v is None)
    out = tuple(v if v is not None else round(a * ratio, 1) for v, a in zip(series, average, strict=True))
    return out, filled


def parse_climate(rows: Iterable[list[str]]) -> tuple[ClimateNormal, ...]:
    """Rows of the monthly weather CSV (header first) -> twelve monthly normals."""
    it = iter(rows)
    header = [h.strip() for h in next(it)]
    names = ("기온", "최고기온", "최저기온", "상대습도", "풍속", "강수량")
    cols = {k: header.index(k) for k in ("기간", *names)}
    by_month: dict[int, list[list[float]]] = {m: [] for m in range(1, 13)}
    for row in it:
        if not row or "-" not in row[cols["기간"]]:
            continue
        month = int(row[cols["기간"]].split("-")[1])
        values = [_number(row[cols[k]]) for k in names]
        if all(v is not None for v in values):
            by_month[month].append([v for v in values if v is not None])
    normals = []
    for month, rows_ in by_month.items():
        if not rows_:
            raise ValueError(f"climate file has no complete row for month {month}")
        mean, tmax, tmin, hum, wind, rain = (round(fmean(col), 2) for col in zip(*rows_, strict=True))
        normals.append(ClimateNormal(month, mean, tmax, tmin, hum, wind, rain))
    return tuple(normals)


def build_calibration(
    air_rows: Iterable[list[str]], climate_rows: Iterable[list[str]], codes: Mapping[str, str]
) -> Calibration:
    """A :class:`Calibration` from parsed CSV rows; ``codes`` maps Korean name -> SIG_CD."""
    pm10_raw, pm25_raw, avg10, avg25 = parse_air_quality(air_rows, codes)
    pm10: dict[str, tuple[float, ...]] = {}
    pm25: dict[str, tuple[float, ...]] = {}
    filled: dict[str, int] = {}
    for code in sorted(pm10_raw):
        if all(v is None for v in pm10_raw[code]):
            continue  # a district with no station in the file: not calibrated, not simulated
        pm10[code], n10 = fill_gaps(pm10_raw[code], avg10)
        pm25[code], n25 = fill_gaps(pm25_raw[code], avg25)
        filled[code] = n10 + n25
    names = {code: name for name, code in codes.items() if code in pm10}
    return Calibration(pm10, pm25, parse_climate(climate_rows), names, filled)


def _packaged_rows(name: str) -> list[list[str]]:
    text = (files("citydesk.simulator.data") / name).read_text(encoding="utf-8-sig")
    return list(csv.reader(io.StringIO(text, newline="")))


def seoul_district_codes() -> dict[str, str]:
    """Korean name -> SIG_CD for Seoul's 25 gu, from the boundaries the geo package ships."""
    from citydesk.geo import read_districts

    return {d.name_ko: d.code for d in read_districts()}


def load_calibration(codes: Mapping[str, str] | None = None) -> Calibration:
    """Seoul's calibration from the packaged CSVs.

    ``codes`` (Korean name -> SIG_CD) defaults to the packaged Seoul boundaries; pass the live
    ``CityGeo.districts()`` names to calibrate exactly the districts the database holds.
    """
    return build_calibration(
        _packaged_rows("seoul_air_quality_daily_by_district_2019.csv"),
        _packaged_rows("seoul_monthly_weather_2005_2021.csv"),
        seoul_district_codes() if codes is None else codes,
    )
