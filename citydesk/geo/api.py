"""``/api/geo``: districts and dongs as GeoJSON (RFC 7946), and point lookup.

Boundaries are read from the database on each request (they are small and rarely asked for, and
this keeps the response equal to what is stored); lookups use the app's in-memory ``CityGeo``.
Routes are plain ``def``: they run in the threadpool, as the database access is synchronous.
"""

from __future__ import annotations

from typing import Any, Protocol

import orjson
from fastapi import APIRouter, Depends, Query, Response
from sqlalchemy import Engine, select

from citydesk.errors import NotFound
from citydesk.geo.models import districts, dongs
from citydesk.geo.service import CityGeo
from citydesk.web.deps import get_app

GEOJSON = "application/geo+json"

router = APIRouter(prefix="/api/geo", tags=["geo"])


class GeoApp(Protocol):
    """What these routes need of the app object."""

    engine: Engine
    geo: CityGeo


def _geojson(body: dict[str, Any]) -> Response:
    return Response(orjson.dumps(body), media_type=GEOJSON)


def _feature(row: Any, *extra: str) -> dict[str, Any]:
    props = {"code": row.code, "name_ko": row.name_ko, "name_en": row.name_en}
    props.update({k: getattr(row, k) for k in extra})
    return {"type": "Feature", "id": row.code, "geometry": row.geometry, "properties": props}


def _collection(features: list[dict[str, Any]]) -> dict[str, Any]:
    return {"type": "FeatureCollection", "features": features}


@router.get("/districts", response_class=Response, responses={200: {"content": {GEOJSON: {}}}})
def list_districts(app: GeoApp = Depends(get_app)) -> Response:
    """All districts; properties ``code`` (MOIS SIG_CD), ``name_ko``, ``name_en``."""
    with app.engine.connect() as conn:
        rows = conn.execute(select(districts).order_by(districts.c.code)).all()
    return _geojson(_collection([_feature(r) for r in rows]))


@router.get("/districts/{code}", response_class=Response, responses={200: {"content": {GEOJSON: {}}}})
def get_district(code: str, app: GeoApp = Depends(get_app)) -> Response:
    """One district as a GeoJSON Feature."""
    with app.engine.connect() as conn:
        row = conn.execute(select(districts).where(districts.c.code == code)).first()
    if row is None:
        raise NotFound(f"no district with code {code!r} (codes are MOIS SIG_CD, e.g. 11680)")
    return _geojson(_feature(row))


@router.get("/dongs", response_class=Response, responses={200: {"content": {GEOJSON: {}}}})
def list_dongs(
    district: str | None = Query(None, description="SIG_CD of a district, e.g. 11680"),
    app: GeoApp = Depends(get_app),
) -> Response:
    """Administrative dongs, all or one district's; adds ``district_code`` to the properties."""
    query = select(dongs).order_by(dongs.c.code)
    with app.engine.connect() as conn:
        if district is not None:
            known = conn.execute(select(districts.c.code).where(districts.c.code == district)).first()
            if known is None:
                raise NotFound(f"no district with code {district!r} (codes are MOIS SIG_CD, e.g. 11680)")
            query = query.where(dongs.c.district_code == district)
        rows = conn.execute(query).all()
    return _geojson(_collection([_feature(r, "district_code") for r in rows]))


@router.get("/lookup")
def lookup(
    lon: float = Query(..., ge=-180, le=180),
    lat: float = Query(..., ge=-90, le=90),
    app: GeoApp = Depends(get_app),
) -> dict[str, Any]:
    """District, dong and H3 cell of a WGS84 point; ``null`` district/dong outside the city."""
    geo = app.geo
    district = geo.district_of(lon, lat)
    dong = geo.dong_of(lon, lat)
    d_info = geo.district_info(district) if district else None
    g_info = geo.dong_info(dong) if dong else None
    return {
        "district": d_info._asdict() if d_info else None,
        "dong": g_info._asdict() if g_info else None,
        "h3": geo.h3_cell(lon, lat),
    }
