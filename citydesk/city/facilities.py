"""The city's facilities read from the packaged files: real Seoul data plus a few synthetic places.

Every facility becomes a SensorThings Thing (``provision``). Its ``properties`` say what it is
(``facility`` kind, bilingual ``name``, ``address``, ``source``, the status ``section`` it feeds)
and ``streams`` which Datastreams it carries (``measure`` from ``catalog.MEASURES``, with an optional
series key such as the good a market's price is for). Reading is pure: no database here.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from dataclasses import dataclass, field
from importlib import resources
from typing import Any

from citydesk.city.catalog import GOODS, TAXES

DATA = "citydesk.city.data"
SOURCES = {
    "fire": "National Fire Agency, 119안전센터 현황 (2024-06-30), geocoded (VWorld) by github.com/phinics77/ds_2025",
    "er": "Seoul Open Data Plaza, 서울시 응급실 위치 정보 (2020-2024)",
    "bike": "Seoul Open Data Plaza, 공공자전거 대여소 정보 (2023-06)",
    "district": "Seoul registered population 2020 (주민등록인구) and CCTV by district 2016 (Seoul Open Data)",
    "synthetic": "citydesk demo: synthetic place list (approximate real positions), see citydesk/city/data/README.md",
    "rain": "citydesk demo: simulated rain gauge, scaled to Seoul's monthly precipitation normals 2005-2021",
    "parking": "citydesk demo: synthetic public car parks (invented positions and capacities), "
    "see citydesk/city/data/README.md",
}


@dataclass(frozen=True, slots=True)
class Stream:
    """A Datastream to create on a facility: its measure and, for keyed series, key and label."""

    measure: str
    feed: str
    """``simulator`` or ``file``: who writes its observations."""
    key: str | None = None
    label: tuple[str, str] | None = None


@dataclass(slots=True)
class Facility:
    key: str
    facility: str
    section: str
    name_ko: str
    name_en: str
    address: str
    source: str
    lon: float
    lat: float
    extra: dict[str, Any] = field(default_factory=dict)
    streams: list[Stream] = field(default_factory=list)
    synthetic: bool = False
    disclosure: str = "public"
    """Level of the Thing, its Location and its Datastreams (a staff-only car park is internal)."""

    def properties(self) -> dict[str, Any]:
        return {
            "facility": self.facility,
            "facility_key": self.key,
            "section": self.section,
            "name": {"ko": self.name_ko, "en": self.name_en},
            "address": self.address,
            "source": self.source,
            "synthetic": self.synthetic,
            **self.extra,
        }


def _rows(name: str) -> Iterator[dict[str, str]]:
    text = resources.files(DATA).joinpath(name).read_text(encoding="utf-8-sig")
    yield from csv.DictReader(io.StringIO(text, newline=""))


def _int(text: str) -> int:
    return int(float(text.strip().replace(",", "") or 0))


def fire_stations() -> list[Facility]:
    """Seoul's 119 safety centres (119안전센터)."""
    return [
        Facility(
            f"fire:{r['순번']}",
            "fire_station",
            "safety",
            r["119안전센터명"].strip(),
            f"119 Safety Centre {r['119안전센터명'].strip().removesuffix('119안전센터')}",
            r["주소"].strip(),
            SOURCES["fire"],
            float(r["경도"]),
            float(r["위도"]),
            {"phone": r["전화번호"].strip()},
        )
        for r in _rows("seoul_119_safety_centers_2024_geocoded.csv")
    ]


def emergency_rooms() -> list[Facility]:
    """Hospitals with an emergency room, with their emergency-care class."""
    return [
        Facility(
            f"er:{r['기관ID']}",
            "emergency_room",
            "safety",
            r["기관명"].strip(),
            f"Emergency room: {r['기관명'].strip()}",
            r["주소"].strip(),
            SOURCES["er"],
            float(r["병원경도"]),
            float(r["병원위도"]),
            {"class": r["응급의료기관코드명"].strip(), "phone": r["응급실전화"].strip()},
        )
        for r in _rows("seoul_emergency_rooms_2024.csv")
    ]


def bike_stations() -> list[Facility]:
    """Ddareungi stations; ``docks`` (LCD + QR) bounds the simulated bikes available."""
    out = []
    for r in _rows("ddareungi_bike_stations_202306.csv"):
        number, name = r["대여소번호"].strip(), r["보관소(대여소)명"].strip()
        docks = _int(r["LCD"]) + _int(r["QR"])
        out.append(
            Facility(
                f"bike:{number}",
                "bike_station",
                "transport",
                name,
                f"Ddareungi station {number}",
                r["상세주소"].strip(),
                SOURCES["bike"],
                float(r["경도"]),
                float(r["위도"]),
                {"station": number, "docks": docks, "district_name": r["자치구"].strip()},
                [Stream("bikes_available", "simulator")],
            )
        )
    return out


def district_statistics(districts: list[tuple[str, str, str, float, float]]) -> list[Facility]:
    """One Thing per district carrying its 2020 registered population, 2016 CCTV count and the
    living-population feed; ``districts`` are (SIG_CD, Korean name, English name, lon, lat) with a
    point inside the district."""
    population = {r["자치구"]: r for r in _rows("seoul_population_by_gu_dong_2020.csv") if r["동"] == "소계"}
    dongs: dict[str, list[dict[str, Any]]] = {}
    for r in _rows("seoul_population_by_gu_dong_2020.csv"):
        if r["동"] != "소계":
            dongs.setdefault(r["자치구"], []).append({"name": r["동"], "population": _int(r["전체"])})
    cctv = {r["기관명"]: _int(r["소계"]) for r in _rows("seoul_cctv_by_gu_2016.csv")}
    out = []
    for code, ko, en, lon, lat in districts:
        pop = population[ko]
        out.append(
            Facility(
                f"district:{code}",
                "district",
                "population",
                ko,
                en,
                ko,
                SOURCES["district"],
                lon,
                lat,
                {
                    "district": code,
                    "registered_population": _int(pop["전체"]),
                    "households": _int(pop["세대"]),
                    "aged_65_plus": _int(pop["65세이상"]),
                    "foreign_residents": _int(pop["외국인전체"]),
                    "cctv_cameras": cctv[ko],
                    "dongs": dongs.get(ko, []),
                },
                [Stream("living_population", "simulator")],
            )
        )
    return out


def rain_gauges(districts: list[tuple[str, str, str, float, float]]) -> list[Facility]:
    """A simulated rain gauge per district (where Seoul's weather stations would report), at the
    same point as the district's statistics Thing."""
    return [
        Facility(
            f"rain:{code}",
            "rain_gauge",
            "safety",
            f"{ko} 강우량계 (모의)",
            f"{en} rain gauge (simulated)",
            ko,
            SOURCES["rain"],
            lon,
            lat,
            {"district": code},
            [Stream("rainfall", "simulator")],
            synthetic=True,
        )
        for code, ko, en, lon, lat in districts
    ]


def synthetic_places() -> list[Facility]:
    """Purification centres, parks, markets and the city's finance office (``places.csv``)."""
    out = []
    for r in _rows("places.csv"):
        kind = r["facility"]
        streams: list[Stream]
        if kind == "water_plant":
            streams = [Stream(m, "simulator") for m in ("turbidity", "residual_chlorine", "ph")]
        elif kind == "park":
            streams = [Stream("park_visitors", "simulator")]
        elif kind == "market":
            streams = [Stream("retail_price", "file", g, label) for g, label in GOODS.items()]
        else:
            streams = [Stream("tax_revenue", "file", t, label) for t, label in TAXES.items()]
            streams.append(Stream("budget_execution", "file", "budget_execution_rate"))
        extra: dict[str, Any] = {"scale": int(r["scale"])} if r["scale"] else {}
        out.append(
            Facility(
                r["key"],
                kind,
                r["section"],
                r["name_ko"],
                r["name_en"],
                r["address"],
                SOURCES["synthetic"],
                float(r["lon"]),
                float(r["lat"]),
                extra,
                streams,
                synthetic=True,
            )
        )
    return out


def parking_lots() -> list[Facility]:
    """Public car parks with their ``capacity`` (``parking.csv``, synthetic): the simulator fills them."""
    return [
        Facility(
            r["key"],
            "parking_lot",
            "transport",
            r["name_ko"],
            r["name_en"],
            r["address"],
            SOURCES["parking"],
            float(r["lon"]),
            float(r["lat"]),
            {"capacity": int(r["capacity"])},
            [Stream("parking_available", "simulator"), Stream("parking_occupancy", "simulator")],
            synthetic=True,
            disclosure=r["disclosure"],
        )
        for r in _rows("parking.csv")
    ]
