"""Read district (gu) and dong boundary files into plain records, ready to store.

Pure functions: nothing here touches the database or keeps state. Any city's GeoJSON works given a
:class:`LayerSpec` naming its properties; the defaults read Seoul's packaged files (``data/``).

Two Seoul-specific facts shape the defaults (see ``data/README.md``):

* **Codes.** Districts are keyed by MOIS ``SIG_CD`` (강남구 11680). The dong file uses KOSTAT 2013
  census codes whose first five digits are a *KOSTAT* gu code (강남구 11230, which is 동대문구 in
  ``SIG_CD``), so its parents are mapped to ``SIG_CD`` by joining the two gu files on Korean name,
  never by comparing numbers.
* **Position.** The KOSTAT 2013 polygons sit about 190 m east and 310 m south of their true
  WGS84 position (southkorea/seoul-maps issue #2: the classic Bessel-datum offset). The JUSO gu
  file is correct, so dongs are moved by :data:`KOSTAT2013_OFFSET`, fitted by
  :func:`fit_offset` against the JUSO districts; without this ~8 % of in-city points got a dong
  of a different district than the district layer's answer, with it ~2 %.
"""

from __future__ import annotations

import json
import logging
import os
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from importlib.resources import files
from importlib.resources.abc import Traversable
from typing import Any

import numpy as np
import shapely
from shapely.geometry.base import BaseGeometry

log = logging.getLogger(__name__)

Source = str | os.PathLike[str] | Traversable | Mapping[str, Any]
"""A GeoJSON FeatureCollection: a file path, a package resource, or the already-parsed object."""

KOSTAT2013_OFFSET: tuple[float, float] = (-0.00211, 0.00280)
"""Degrees (lon, lat) to add to KOSTAT 2013 (seoul-maps) vertices to line them up with JUSO/WGS84.

Fitted with :func:`fit_offset` on the 25 gu of both files (the simple and full-resolution pairs
give the same answer); it matches the Tokyo→WGS84 datum shift at Seoul (−0.0022°, +0.0028°)."""

COORD_DECIMALS = 7
"""Stored coordinates are rounded to 1e-7° (≈1 cm): more digits are float noise from the shift."""


@dataclass(frozen=True, slots=True)
class LayerSpec:
    """How to read one boundary file: which feature properties hold what, and any known correction."""

    code: str
    name_ko: str
    name_en: str
    kostat_code: str | None = None
    """Property holding a KOSTAT census code to keep beside the key (None: there is none)."""
    offset: tuple[float, float] = (0.0, 0.0)
    """Degrees (lon, lat) added to every vertex, for files known to be shifted."""
    parent_digits: int = 5
    """Dong files only: how many leading digits of the code name the parent district."""


SEOUL_GU = LayerSpec(code="SIG_CD", name_ko="SIG_KOR_NM", name_en="SIG_ENG_NM")
SEOUL_KOSTAT_GU = LayerSpec(code="code", name_ko="name", name_en="name_eng", kostat_code="code")
SEOUL_DONG = LayerSpec(
    code="code", name_ko="name", name_en="name_eng", kostat_code="code", offset=KOSTAT2013_OFFSET
)


@dataclass(frozen=True, slots=True)
class District:
    """One district (gu) as stored in ``districts``: ``code`` is the MOIS ``SIG_CD``."""

    code: str
    name_ko: str
    name_en: str
    kostat_code: str | None
    geometry: dict[str, Any]
    """GeoJSON Polygon or MultiPolygon, WGS84, valid."""


@dataclass(frozen=True, slots=True)
class Dong:
    """One administrative dong as stored in ``dongs``.

    For Seoul ``code`` is the 7-digit KOSTAT 2013 census code (the only code the boundary file
    carries) and ``district_code`` the parent's ``SIG_CD``.
    """

    code: str
    name_ko: str
    name_en: str
    district_code: str
    kostat_code: str | None
    geometry: dict[str, Any]


def _data(name: str) -> Traversable:
    return files("citydesk.geo.data") / name


def seoul_gu_file() -> Traversable:
    return _data("seoul_gu_juso2015_simple.geojson")


def seoul_kostat_gu_file() -> Traversable:
    return _data("seoul_gu_kostat2013_simple.geojson")


def seoul_dong_file() -> Traversable:
    return _data("seoul_dong_admin_kostat2013_simple.geojson")


def read_features(source: Source) -> list[dict[str, Any]]:
    """The features of a GeoJSON FeatureCollection, refusing anything else."""
    if isinstance(source, Mapping):
        obj: Any = source
    elif isinstance(source, Traversable):
        obj = json.loads(source.read_text(encoding="utf-8"))
    else:
        with open(source, encoding="utf-8") as fh:
            obj = json.load(fh)
    if not isinstance(obj, Mapping) or obj.get("type") != "FeatureCollection":
        raise ValueError("boundary file is not a GeoJSON FeatureCollection")
    return list(obj["features"])


def _polygonal(geom: BaseGeometry) -> BaseGeometry:
    """Keep only the polygonal parts (``make_valid`` may return a collection with stray lines)."""
    if geom.geom_type in ("Polygon", "MultiPolygon"):
        return geom
    parts = [g for g in shapely.get_parts(geom) if g.geom_type in ("Polygon", "MultiPolygon")]
    return shapely.union_all(parts) if parts else shapely.Polygon()


def clean_geometry(obj: Mapping[str, Any], offset: tuple[float, float] = (0.0, 0.0)) -> BaseGeometry:
    """Parse, shift, round and (if needed) repair one boundary geometry.

    Rounding comes before validation so that the stored geometry is the one that was checked.
    """
    geom = shapely.from_geojson(json.dumps(obj))
    shift = np.asarray(offset, dtype=float)
    geom = shapely.transform(geom, lambda c: np.round(c + shift, COORD_DECIMALS))
    if not geom.is_valid:
        reason = shapely.is_valid_reason(geom)
        geom = _polygonal(shapely.make_valid(geom))
        log.warning("repaired invalid boundary geometry (%s)", reason)
    else:
        geom = _polygonal(geom)
    if geom.is_empty:
        raise ValueError("boundary geometry is empty or not polygonal")
    return geom


def _geojson(geom: BaseGeometry) -> dict[str, Any]:
    out: dict[str, Any] = json.loads(shapely.to_geojson(geom))
    return out


def _text(props: Mapping[str, Any], key: str, what: str) -> str:
    value = props.get(key)
    if value is None or str(value).strip() == "":
        raise ValueError(f"feature without {what} (property {key!r}): {dict(props)}")
    return str(value).strip()


def _unique(codes: Sequence[str], what: str) -> None:
    dupes = sorted(c for c, n in Counter(codes).items() if n > 1)
    if dupes:
        raise ValueError(f"duplicate {what} codes: {dupes}")


def kostat_gu_codes(source: Source | None = None, spec: LayerSpec = SEOUL_KOSTAT_GU) -> dict[str, str]:
    """Korean gu name → KOSTAT gu code, from a KOSTAT gu file (default: the packaged 2013 one)."""
    out: dict[str, str] = {}
    for feat in read_features(seoul_kostat_gu_file() if source is None else source):
        props = feat["properties"]
        out[_text(props, spec.name_ko, "name")] = _text(props, spec.code, "code")
    return out


def read_districts(
    source: Source | None = None,
    spec: LayerSpec = SEOUL_GU,
    *,
    kostat_source: Source | None = None,
) -> list[District]:
    """District records from a gu file, sorted by code.

    With no arguments: Seoul's 25 gu from the packaged JUSO file, each given its KOSTAT code by
    Korean-name join with the packaged KOSTAT gu file. For another city pass its file and spec
    (and a KOSTAT-style file only if it has one).
    """
    if source is None:
        source = seoul_gu_file()
        kostat_source = seoul_kostat_gu_file() if kostat_source is None else kostat_source
    kostat = kostat_gu_codes(kostat_source) if kostat_source is not None else {}
    records = []
    for feat in read_features(source):
        props = feat["properties"]
        name_ko = _text(props, spec.name_ko, "Korean name")
        own_kostat = props.get(spec.kostat_code) if spec.kostat_code else None
        records.append(
            District(
                code=_text(props, spec.code, "code"),
                name_ko=name_ko,
                name_en=str(props.get(spec.name_en) or name_ko).strip(),
                kostat_code=str(own_kostat) if own_kostat else kostat.get(name_ko),
                geometry=_geojson(clean_geometry(feat["geometry"], spec.offset)),
            )
        )
    _unique([r.code for r in records], "district")
    missing = sorted(set(kostat) - {r.name_ko for r in records})
    if missing:
        raise ValueError(f"KOSTAT gu names without a district of the same name: {missing}")
    log.info("read %d districts", len(records))
    return sorted(records, key=lambda r: r.code)


def kostat_to_district_codes(
    districts: Sequence[District] | None = None, kostat_source: Source | None = None
) -> dict[str, str]:
    """KOSTAT gu code → district code (``SIG_CD``), joined on Korean name, never on number."""
    if districts is None:
        districts = read_districts()
    by_name = {d.name_ko: d.code for d in districts}
    out: dict[str, str] = {}
    for name, kostat in kostat_gu_codes(kostat_source).items():
        if name not in by_name:
            raise ValueError(f"KOSTAT gu {name!r} ({kostat}) has no district of that name")
        out[kostat] = by_name[name]
    if len(set(out.values())) != len(out):
        raise ValueError("two KOSTAT gu codes map to the same district")
    return out


def read_dongs(
    source: Source | None = None,
    spec: LayerSpec = SEOUL_DONG,
    *,
    parent_codes: Mapping[str, str] | None = None,
) -> list[Dong]:
    """Dong records from a dong file, sorted by code.

    The parent district is the code's first ``spec.parent_digits`` digits, translated through
    ``parent_codes`` when the dong file uses another code system than the districts (Seoul: KOSTAT
    → ``SIG_CD``, built by :func:`kostat_to_district_codes` when reading the packaged file). A
    prefix missing from ``parent_codes`` is an error, not a silent orphan.
    """
    if source is None:
        source = seoul_dong_file()
        parent_codes = kostat_to_district_codes() if parent_codes is None else parent_codes
    records = []
    for feat in read_features(source):
        props = feat["properties"]
        code = _text(props, spec.code, "code")
        prefix = code[: spec.parent_digits]
        if parent_codes is None:
            district_code = prefix
        elif prefix in parent_codes:
            district_code = parent_codes[prefix]
        else:
            raise ValueError(f"dong {code}: no district for code prefix {prefix}")
        name_ko = _text(props, spec.name_ko, "Korean name")
        own_kostat = props.get(spec.kostat_code) if spec.kostat_code else None
        records.append(
            Dong(
                code=code,
                name_ko=name_ko,
                name_en=str(props.get(spec.name_en) or name_ko).strip(),
                district_code=district_code,
                kostat_code=str(own_kostat) if own_kostat else None,
                geometry=_geojson(clean_geometry(feat["geometry"], spec.offset)),
            )
        )
    _unique([r.code for r in records], "dong")
    log.info("read %d dongs in %d districts", len(records), len({r.district_code for r in records}))
    return sorted(records, key=lambda r: r.code)


def fit_offset(
    reference: Sequence[BaseGeometry], moved: Sequence[BaseGeometry], *, start_step: float = 0.002
) -> tuple[float, float]:
    """The (dlon, dlat) that best lays ``moved`` over ``reference`` (paired polygons).

    Minimises the summed symmetric-difference area by a shrinking 5×5 grid search (to ~1e-5°).
    Used to derive :data:`KOSTAT2013_OFFSET`; kept so the constant can be re-checked (tests do).
    """
    ref = np.asarray(reference, dtype=object)
    mov = np.asarray(moved, dtype=object)

    def cost(d: tuple[float, float]) -> float:
        shifted = shapely.transform(mov, lambda c: c + np.asarray(d))
        return float(shapely.area(shapely.symmetric_difference(ref, shifted)).sum())

    best, step = (0.0, 0.0), start_step
    steps = (-2, -1, 0, 1, 2)
    while step > 1e-5:
        grid = [(best[0] + i * step, best[1] + j * step) for i in steps for j in steps]
        best = min(grid, key=cost)
        step /= 2
    return (round(best[0], 5), round(best[1], 5))
