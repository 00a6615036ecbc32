"""citydesk.geo on the real Seoul boundaries: codes, lookups, storage on both databases, and the API."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import h3
import numpy as np
import pytest
import shapely
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import Engine, create_engine, select, text

from citydesk.config import Settings
from citydesk.db.engine import make_engine
from citydesk.db.metadata import metadata
from citydesk.errors import ValidationFailed
from citydesk.geo import (
    CityGeo,
    District,
    Dong,
    LayerSpec,
    load_boundaries,
    read_districts,
    read_dongs,
    router,
)
from citydesk.geo.boundaries import (
    KOSTAT2013_OFFSET,
    fit_offset,
    kostat_to_district_codes,
    read_features,
    seoul_kostat_gu_file,
)
from citydesk.geo.models import districts as districts_table
from citydesk.geo.models import dongs as dongs_table

PG_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"

# The table in data/README.md: name, KOSTAT 2013 code, MOIS SIG_CD.
README_TABLE = {
    "종로구": ("11010", "11110"),
    "중구": ("11020", "11140"),
    "용산구": ("11030", "11170"),
    "성동구": ("11040", "11200"),
    "광진구": ("11050", "11215"),
    "동대문구": ("11060", "11230"),
    "중랑구": ("11070", "11260"),
    "성북구": ("11080", "11290"),
    "강북구": ("11090", "11305"),
    "도봉구": ("11100", "11320"),
    "노원구": ("11110", "11350"),
    "은평구": ("11120", "11380"),
    "서대문구": ("11130", "11410"),
    "마포구": ("11140", "11440"),
    "양천구": ("11150", "11470"),
    "강서구": ("11160", "11500"),
    "구로구": ("11170", "11530"),
    "금천구": ("11180", "11545"),
    "영등포구": ("11190", "11560"),
    "동작구": ("11200", "11590"),
    "관악구": ("11210", "11620"),
    "서초구": ("11220", "11650"),
    "강남구": ("11230", "11680"),
    "송파구": ("11240", "11710"),
    "강동구": ("11250", "11740"),
}

CITY_HALL = (126.9780, 37.5665)
GANGNAM_GU_OFFICE = (127.0473, 37.5172)
COEX = (127.0590, 37.5115)
HAN_RIVER_BANPO = (126.9960, 37.5150)
GWACHEON = (126.99, 37.43)  # inside the configured bbox, outside Seoul
INCHEON = (126.65, 37.45)  # outside the bbox


@pytest.fixture(scope="module")
def records() -> tuple[list[District], list[Dong]]:
    return read_districts(), read_dongs()


@pytest.fixture(scope="module")
def geo(records: tuple[list[District], list[Dong]]) -> CityGeo:
    s = Settings()
    return CityGeo(*records, bbox=s.city_bbox, h3_resolution=s.h3_resolution)


# -- reading ---------------------------------------------------------------------------------------


def test_districts_are_keyed_by_sig_cd(records: tuple[list[District], list[Dong]]) -> None:
    districts, _ = records
    by_name = {d.name_ko: d for d in districts}
    assert len(districts) == 25
    assert by_name["강남구"].code == "11680"
    assert by_name["종로구"].code == "11110"
    assert by_name["강남구"].name_en == "Gangnam-gu"
    # KOSTAT 11230 is kept beside 강남구, never as its key: as a SIG_CD it is 동대문구.
    assert by_name["강남구"].kostat_code == "11230"
    assert {d.code: d.name_ko for d in districts}["11230"] == "동대문구"
    assert {d.name_ko: (d.kostat_code, d.code) for d in districts} == README_TABLE


def test_kostat_join_on_names_matches_readme(records: tuple[list[District], list[Dong]]) -> None:
    mapping = kostat_to_district_codes(records[0])
    assert mapping == {kostat: sig for kostat, sig in README_TABLE.values()}
    kostat_names = {
        f["properties"]["code"]: f["properties"]["name"] for f in read_features(seoul_kostat_gu_file())
    }
    assert all(README_TABLE[name][0] == code for code, name in kostat_names.items())


def test_dongs_map_to_the_25_districts(records: tuple[list[District], list[Dong]]) -> None:
    districts, dongs = records
    codes = {d.code for d in districts}
    assert len(dongs) == 423
    assert len({g.code for g in dongs}) == 423
    assert all(len(g.code) == 7 and g.kostat_code == g.code for g in dongs)
    assert {g.district_code for g in dongs} == codes  # every district has dongs, none is orphaned
    by_code = {g.code: g for g in dongs}
    assert by_code["1123059"].name_ko == "삼성2동" and by_code["1123059"].district_code == "11680"
    assert by_code["1101053"].name_ko == "사직동" and by_code["1101053"].district_code == "11110"
    kostat_to_sig = {k: s for k, s in README_TABLE.values()}
    assert all(kostat_to_sig[g.code[:5]] == g.district_code for g in dongs)


def test_geometries_are_valid_polygons(records: tuple[list[District], list[Dong]]) -> None:
    for geometry in [r.geometry for r in records[0]] + [r.geometry for r in records[1]]:
        geom = shapely.from_geojson(json.dumps(geometry))
        assert geom.is_valid and geom.geom_type in ("Polygon", "MultiPolygon") and not geom.is_empty
        x0, y0, x1, y1 = geom.bounds
        assert 126.7 < x0 < x1 < 127.3 and 37.4 < y0 < y1 < 37.75


def test_kostat_offset_is_what_the_data_says(records: tuple[list[District], list[Dong]]) -> None:
    """The shipped correction equals a fresh fit of KOSTAT gu onto JUSO gu (to ~10 m)."""
    juso = {d.name_ko: shapely.from_geojson(json.dumps(d.geometry)) for d in records[0]}
    kostat = {
        f["properties"]["name"]: shapely.geometry.shape(f["geometry"])
        for f in read_features(seoul_kostat_gu_file())
    }
    names = sorted(juso)
    dlon, dlat = fit_offset([juso[n] for n in names], [kostat[n] for n in names])
    assert abs(dlon - KOSTAT2013_OFFSET[0]) < 1e-4 and abs(dlat - KOSTAT2013_OFFSET[1]) < 1e-4


def test_other_city_with_its_own_property_names() -> None:
    square = {"type": "Polygon", "coordinates": [[[0, 0], [1, 0], [1, 1], [0, 1], [0, 0]]]}
    bowtie = {"type": "Polygon", "coordinates": [[[0, 0], [1, 1], [1, 0], [0, 1], [0, 0]]]}
    gu = {
        "type": "FeatureCollection",
        "features": [
            {"type": "Feature", "geometry": square, "properties": {"id": "A1", "nm": "에이"}},
        ],
    }
    dong = {
        "type": "FeatureCollection",
        "features": [
            {"type": "Feature", "geometry": bowtie, "properties": {"id": "A1001", "nm": "비"}},
        ],
    }
    spec = LayerSpec(code="id", name_ko="nm", name_en="en", parent_digits=2)
    [district] = read_districts(gu, spec)
    [d] = read_dongs(dong, spec)
    assert (district.code, district.name_en, district.kostat_code) == ("A1", "에이", None)
    assert d.district_code == "A1"
    assert d.geometry["type"] == "MultiPolygon"  # the invalid bow-tie was repaired by make_valid
    with pytest.raises(ValueError, match="no district"):
        read_dongs(dong, spec, parent_codes={"B2": "B2"})


# -- lookups ---------------------------------------------------------------------------------------


def test_known_places(geo: CityGeo) -> None:
    assert geo.district_of(*CITY_HALL) == "11140"  # 중구
    dong = geo.dong_of(*CITY_HALL)
    assert dong is not None and geo.dong_info(dong).district_code == "11140"  # type: ignore[union-attr]
    for place in (GANGNAM_GU_OFFICE, COEX):
        assert geo.district_of(*place) == "11680"
        code = geo.dong_of(*place)
        assert code is not None and code.startswith("11230")  # KOSTAT prefix of 강남구
    assert geo.dong_info(geo.dong_of(*COEX) or "").name_ko == "삼성1동"  # type: ignore[union-attr]
    # Gangnam station sits on the 강남구/서초구 boundary road; its usual coordinate is 5 m inside
    # 서초구 in these (and the full-resolution) JUSO boundaries.
    assert geo.district_of(127.0276, 37.4979) in {"11650", "11680"}


def test_river_and_outside(geo: CityGeo) -> None:
    # The Han river is divided between the riverside gu: a river point is in the city.
    assert geo.in_city(*HAN_RIVER_BANPO) and geo.district_of(*HAN_RIVER_BANPO) is not None
    for place in (GWACHEON, INCHEON):
        assert geo.district_of(*place) is None and geo.dong_of(*place) is None
        assert not geo.in_city(*place)
    assert geo.in_city(*CITY_HALL)
    assert h3.get_resolution(geo.h3_cell(*INCHEON)) == 9
    assert geo.h3_cell(*CITY_HALL) == h3.latlng_to_cell(CITY_HALL[1], CITY_HALL[0], 9)


def test_dong_is_always_in_the_reported_district(geo: CityGeo) -> None:
    rng = np.random.default_rng(7)
    for lon, lat in zip(rng.uniform(126.76, 127.19, 3000), rng.uniform(37.42, 37.71, 3000), strict=True):
        district, dong = geo.district_of(lon, lat), geo.dong_of(lon, lat)
        if dong is not None:
            assert geo.dong_info(dong).district_code == district  # type: ignore[union-attr]
        if district is None:
            assert dong is None


def test_edges_ties_and_tolerance() -> None:
    def square(code: str, x0: float) -> District:
        ring = [[x0, 0], [x0 + 1, 0], [x0 + 1, 1], [x0, 1], [x0, 0]]
        return District(code, code, code, None, {"type": "Polygon", "coordinates": [ring]})

    geo = CityGeo([square("B", 1), square("A", 0)], [], bbox=(-1, -1, 3, 2), h3_resolution=7)
    assert geo.district_of(1.0, 0.5) == "A"  # on the shared edge: lowest code
    assert geo.district_of(2.001, 0.5) == "B"  # ~110 m outside: within the 200 m tolerance
    assert geo.in_city(2.001, 0.5)
    assert geo.district_of(2.01, 0.5) is None and not geo.in_city(2.01, 0.5)  # ~1.1 km outside
    lons, lats = [1.0, 2.001, 2.01, 0.5, 2.9], [0.5, 0.5, 0.5, 0.5, 1.9]
    assert geo.district_codes_for_points(lons, lats) == ["A", "B", None, "A", None]
    empty = CityGeo([], [], bbox=(0, 0, 1, 1), h3_resolution=7)
    assert empty.in_city(0.5, 0.5) and not empty.in_city(2, 2) and empty.district_of(0.5, 0.5) is None


def test_vectorised_agrees_with_single(geo: CityGeo, records: tuple[list[District], list[Dong]]) -> None:
    rng = np.random.default_rng(42)
    lons = rng.uniform(126.70, 127.25, 2000)
    lats = rng.uniform(37.38, 37.75, 2000)
    # plus points within ~300 m of district edges, where ties and the tolerance matter
    edges = shapely.boundary(shapely.from_geojson([json.dumps(d.geometry) for d in records[0]]))
    along = shapely.line_interpolate_point(edges, rng.uniform(0, 1, (40, 25)), normalized=True).ravel()
    jitter = rng.normal(0, 0.002, (2, along.size))
    lons = np.r_[lons, shapely.get_x(along) + jitter[0]]
    lats = np.r_[lats, shapely.get_y(along) + jitter[1]]
    bulk = geo.district_codes_for_points(lons, lats)
    single = [geo.district_of(x, y) for x, y in zip(lons.tolist(), lats.tolist(), strict=True)]
    assert bulk == single
    assert sum(c is not None for c in bulk) > 1000


def test_district_of_geometry(geo: CityGeo) -> None:
    point = {"type": "Point", "coordinates": list(CITY_HALL)}
    assert geo.district_of_geometry(point) == "11140"
    assert geo.district_of_geometry({"type": "Feature", "geometry": point, "properties": {}}) == "11140"
    x, y = COEX
    box = shapely.geometry.mapping(shapely.box(x - 0.001, y - 0.001, x + 0.001, y + 0.001))
    assert geo.district_of_geometry({"type": "Feature", "geometry": box, "properties": None}) == "11680"
    line = {"type": "LineString", "coordinates": [[x, y], [x + 0.002, y + 0.001]]}
    assert geo.district_of_geometry(line) == "11680"
    assert geo.district_of_geometry({"type": "Feature", "geometry": None, "properties": {}}) is None
    assert geo.district_of_geometry({"type": "Point", "coordinates": list(INCHEON)}) is None
    with pytest.raises(ValidationFailed):
        geo.district_of_geometry({"type": "Polygon", "coordinates": "nope"})


def test_districts_listing(geo: CityGeo) -> None:
    listing = geo.districts()
    assert len(listing) == 25 and [c for c, _, _ in listing] == sorted(c for c, _, _ in listing)
    assert ("11680", "강남구", "Gangnam-gu") in listing


def test_lookup_speed(geo: CityGeo) -> None:
    """Point lookup well under 50 µs; a 1,000-point batch in a few ms (best of 3, to damp noise)."""
    rng = np.random.default_rng(3)
    xs, ys = rng.uniform(126.76, 127.19, 5000).tolist(), rng.uniform(37.42, 37.71, 5000).tolist()

    def per_call() -> float:
        t = time.perf_counter()
        for x, y in zip(xs, ys, strict=True):
            geo.district_of(x, y)
        return (time.perf_counter() - t) / len(xs)

    assert min(per_call() for _ in range(3)) < 50e-6
    bx, by = np.array(xs[:1000]), np.array(ys[:1000])

    def batch() -> float:
        t = time.perf_counter()
        geo.district_codes_for_points(bx, by)
        return time.perf_counter() - t

    assert min(batch() for _ in range(3)) < 0.05


# -- storage ---------------------------------------------------------------------------------------


def _snapshot(engine: Engine) -> tuple[list[Any], list[Any]]:
    with engine.connect() as conn:
        d = conn.execute(select(districts_table).order_by(districts_table.c.code)).all()
        g = conn.execute(select(dongs_table).order_by(dongs_table.c.code)).all()
    return [tuple(r) for r in d], [tuple(r) for r in g]


def _check_load_is_idempotent(engine: Engine, records: tuple[list[District], list[Dong]]) -> None:
    metadata.create_all(engine, tables=[districts_table, dongs_table])
    districts, dongs = records
    with engine.begin() as conn:
        counts = load_boundaries(conn, districts, dongs)
    assert counts == (25, 423)
    first = _snapshot(engine)
    with engine.begin() as conn:
        load_boundaries(conn, districts, dongs)
    assert _snapshot(engine) == first
    assert len(first[0]) == 25 and len(first[1]) == 423
    # an upsert updates in place ...
    renamed = [
        District(d.code, d.name_ko, "Gangnam", d.kostat_code, d.geometry) if d.code == "11680" else d
        for d in districts
    ]
    with engine.begin() as conn:
        load_boundaries(conn, renamed, dongs)
    with engine.connect() as conn:
        name = conn.execute(select(districts_table.c.name_en).where(districts_table.c.code == "11680"))
        assert name.scalar_one() == "Gangnam"
    # ... and the index built from the rows answers like the one built from the files.
    with engine.connect() as conn:
        geo = CityGeo.from_db(conn, Settings())
    assert geo.district_of(*CITY_HALL) == "11140" and geo.district_of(*COEX) == "11680"
    assert geo.dong_info(geo.dong_of(*COEX) or "").name_ko == "삼성1동"  # type: ignore[union-attr]
    # prune drops what the new set lacks
    keep = [d for d in districts if d.code == "11680"]
    with engine.begin() as conn:
        load_boundaries(conn, keep, [g for g in dongs if g.district_code == "11680"], prune=True)
    d_rows, g_rows = _snapshot(engine)
    assert [r[0] for r in d_rows] == ["11680"] and len(g_rows) == 22
    with engine.begin() as conn, pytest.raises(ValueError, match="unknown districts"):
        load_boundaries(conn, [], dongs)


def test_load_boundaries_sqlite(tmp_path: Path, records: tuple[list[District], list[Dong]]) -> None:
    engine = make_engine("sqlite:///" + str(tmp_path / "geo.db"))
    try:
        _check_load_is_idempotent(engine, records)
    finally:
        engine.dispose()


@pytest.fixture
def pg_schema_engine() -> Iterator[Engine]:
    """An engine whose search_path is a throwaway schema on the local test database."""
    schema = f"geo_test_{uuid.uuid4().hex[:10]}"
    admin = create_engine(PG_URL, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.execute(text(f"CREATE SCHEMA {schema}"))
    except Exception as exc:  # server down or no such database: not this test's business
        admin.dispose()
        pytest.skip(f"PostgreSQL not reachable at {PG_URL}: {exc.__class__.__name__}")
    engine = create_engine(PG_URL, connect_args={"options": f"-csearch_path={schema}"})
    try:
        yield engine
    finally:
        engine.dispose()
        with admin.connect() as conn:
            conn.execute(text(f"DROP SCHEMA IF EXISTS {schema} CASCADE"))
        admin.dispose()


@pytest.mark.postgres
def test_load_boundaries_postgres(
    pg_schema_engine: Engine, records: tuple[list[District], list[Dong]]
) -> None:
    _check_load_is_idempotent(pg_schema_engine, records)


# -- API -------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def client(
    tmp_path_factory: pytest.TempPathFactory, records: tuple[list[District], list[Dong]], geo: CityGeo
) -> Iterator[TestClient]:
    from citydesk.web.errors import install_error_handlers

    engine = make_engine("sqlite:///" + str(tmp_path_factory.mktemp("geo-api") / "api.db"))
    metadata.create_all(engine, tables=[districts_table, dongs_table])
    with engine.begin() as conn:
        load_boundaries(conn, *records)
    api = FastAPI()
    install_error_handlers(api)
    api.include_router(router)
    api.state.citydesk = SimpleNamespace(engine=engine, geo=geo)
    with TestClient(api) as c:
        yield c
    engine.dispose()


def test_api_districts(client: TestClient) -> None:
    r = client.get("/api/geo/districts")
    assert r.status_code == 200 and r.headers["content-type"].startswith("application/geo+json")
    body = r.json()
    assert body["type"] == "FeatureCollection" and len(body["features"]) == 25
    for f in body["features"]:
        assert f["type"] == "Feature" and f["geometry"]["type"] in ("Polygon", "MultiPolygon")
        assert set(f["properties"]) == {"code", "name_ko", "name_en"}
    one = client.get("/api/geo/districts/11680").json()
    assert one["type"] == "Feature" and one["properties"] == {
        "code": "11680",
        "name_ko": "강남구",
        "name_en": "Gangnam-gu",
    }
    missing = client.get("/api/geo/districts/99999")
    assert missing.status_code == 404
    err = missing.json()["error"]
    assert err["code"] == "not_found" and err["details"] is None and "99999" in err["message"]


def test_api_dongs(client: TestClient, records: tuple[list[District], list[Dong]]) -> None:
    everything = client.get("/api/geo/dongs").json()
    assert len(everything["features"]) == 423
    gangnam = client.get("/api/geo/dongs", params={"district": "11680"}).json()
    expected = sorted(g.code for g in records[1] if g.district_code == "11680")
    assert [f["properties"]["code"] for f in gangnam["features"]] == expected
    assert all(f["properties"]["district_code"] == "11680" for f in gangnam["features"])
    assert client.get("/api/geo/dongs", params={"district": "99999"}).status_code == 404


def test_api_lookup(client: TestClient) -> None:
    lon, lat = CITY_HALL
    body = client.get("/api/geo/lookup", params={"lon": lon, "lat": lat}).json()
    assert body["district"] == {"code": "11140", "name_ko": "중구", "name_en": "Jung-gu"}
    assert body["dong"]["district_code"] == "11140" and set(body["dong"]) == {
        "code",
        "name_ko",
        "name_en",
        "district_code",
    }
    assert body["h3"] == h3.latlng_to_cell(lat, lon, 9)
    outside = client.get("/api/geo/lookup", params={"lon": INCHEON[0], "lat": INCHEON[1]}).json()
    assert outside["district"] is None and outside["dong"] is None and outside["h3"]
    assert client.get("/api/geo/lookup", params={"lon": 0, "lat": 200}).status_code == 400
