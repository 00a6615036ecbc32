"""What the status screens say about a measure: its bilingual label and its health bands.

Pure tables and functions (no database): the dashboard names a measure by its ObservedProperty
name, as the S-DoT network and the simulator do. A measure missing from ``LABELS`` is shown under
its own name in both languages, so a city's new feed appears without a code change.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

Label = dict[str, str]

LABELS: dict[str, Label] = {
    "PM10": {"ko": "미세먼지", "en": "Fine dust (PM10)"},
    "PM2.5": {"ko": "초미세먼지", "en": "Ultrafine dust (PM2.5)"},
    "Temperature": {"ko": "기온", "en": "Temperature"},
    "Humidity": {"ko": "습도", "en": "Humidity"},
    "Illuminance": {"ko": "조도", "en": "Illuminance"},
    "Noise": {"ko": "소음", "en": "Noise"},
    "Vibration": {"ko": "진동", "en": "Vibration"},
    "Wind direction": {"ko": "풍향", "en": "Wind direction"},
    "Wind speed": {"ko": "풍속", "en": "Wind speed"},
    "UV index": {"ko": "자외선 지수", "en": "UV index"},
    "Floating population": {"ko": "유동인구", "en": "Floating population"},
}
"""The S-DoT measures under the ObservedProperty names the simulator provisions."""


@dataclass(frozen=True, slots=True)
class Band:
    """One health band: ``low``..``high`` inclusive in whole units (``high`` None: open-ended)."""

    level: str
    low: int
    high: int | None
    label: Label


def _bands(limits: tuple[int, int, int]) -> tuple[Band, ...]:
    good, moderate, bad = limits
    return (
        Band("good", 0, good, {"ko": "좋음", "en": "Good"}),
        Band("moderate", good + 1, moderate, {"ko": "보통", "en": "Moderate"}),
        Band("bad", moderate + 1, bad, {"ko": "나쁨", "en": "Bad"}),
        Band("very_bad", bad + 1, None, {"ko": "매우나쁨", "en": "Very bad"}),
    )


BANDS: dict[str, tuple[Band, ...]] = {
    "PM10": _bands((30, 80, 150)),
    "PM2.5": _bands((15, 35, 75)),
}
"""Korea's Ministry of Environment forecast grades for particulate matter (㎍/㎥, daily mean),
in force since 27 March 2018: PM10 좋음 0–30, 보통 31–80, 나쁨 81–150, 매우나쁨 151+;
PM2.5 0–15, 16–35, 36–75, 76+. Source: 찾기쉬운 생활법령정보 (Ministry of Government Legislation),
"미세먼지 예보 등급을 나누는 기준이 무엇인가요?",
https://www.easylaw.go.kr/CSP/OnhunqueansInfoRetrieve.laf?onhunqnaAstSeq=96&onhunqueSeq=5499
(its table prints the PM10 보통 upper bound as "81", a typo beside 나쁨 "81 ~ 150"). Other measures
have no bands. The grades are for daily means; the dashboard applies them to the latest values, as
Seoul's own live maps do, to colour the map rather than to issue a forecast."""


def label(measure: str) -> Label:
    """The bilingual label of ``measure``; its own name in both languages when not in the table."""
    return LABELS.get(measure, {"ko": measure, "en": measure})


def level(measure: str, value: float | None) -> str | None:
    """The band ``value`` falls in, or None (no value, or a measure without bands).

    Bands are stated in whole units; a fractional mean belongs to the band whose upper limit it does
    not exceed (30.4 ㎍/㎥ of PM10 is past "0–30", so moderate).
    """
    bands = BANDS.get(measure)
    if bands is None or value is None:
        return None
    for band in bands:
        if band.high is None or value <= band.high:
            return band.level
    raise AssertionError("the last band is open-ended")


def levels(measure: str) -> list[dict[str, Any]] | None:
    """The bands of ``measure`` as the API gives them (``to`` None: and above), or None."""
    bands = BANDS.get(measure)
    if bands is None:
        return None
    return [{"level": b.level, "from": b.low, "to": b.high, "label": b.label} for b in bands]
