"""Store boundaries, and answer "which district / dong / H3 cell is this point in?" fast.

:class:`CityGeo` is what a worker keeps in memory; it is built only from database rows
(:meth:`CityGeo.from_db`) so that every worker, after any reseed, rebuilds the same index.

Lookup rules (the same for single and vectorised calls):

* A point on a shared edge belongs to the district with the lowest code (deterministic).
* Simplified boundaries are off by up to ~100 m where real assets stand (6 of Seoul's 2,749 bike
  stations fall outside them, the farthest 104 m), and leave two tiny slivers between gu. So a
  point in no polygon but within ``edge_tolerance_m`` of one gets the nearest district; beyond
  that it is outside the city.
* ``in_city``: inside ``settings.city_bbox`` and, when districts are loaded, resolvable to a
  district by the rule above, so ``in_city`` and ``district_of`` never disagree.
* A dong is only reported within the district the district layer found (the 2013 dong layer and
  2015 gu layer disagree on ~2 % of in-city points, mostly in the Han river): the containing dong
  of that district, else its nearest dong within the tolerance, else None.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import fields
from typing import Any, NamedTuple

import h3
import numpy as np
import shapely
from shapely.geometry.base import BaseGeometry
from sqlalchemy import Connection, RowMapping, Table, delete, select, update
from sqlalchemy.dialects import postgresql, sqlite

from citydesk.config import Settings
from citydesk.errors import ValidationFailed
from citydesk.geo.boundaries import District, Dong
from citydesk.geo.models import districts as districts_table
from citydesk.geo.models import dongs as dongs_table

DEFAULT_EDGE_TOLERANCE_M = 200.0
METRES_PER_DEGREE_LAT = 111_320.0


class LoadCounts(NamedTuple):
    districts: int
    dongs: int


def _upsert(conn: Connection, table: Table, rows: list[dict[str, Any]]) -> None:
    """Insert-or-update by primary key ``code``, in the caller's transaction."""
    if not rows:
        return
    name = conn.dialect.name
    if name in ("sqlite", "postgresql"):
        ins = (sqlite if name == "sqlite" else postgresql).insert(table)
        cols = [c for c in rows[0] if c != "code"]
        stmt = ins.on_conflict_do_update(index_elements=["code"], set_={c: ins.excluded[c] for c in cols})
        conn.execute(stmt, rows)
        return
    for row in rows:  # any other dialect: portable, slower
        if conn.execute(update(table).where(table.c.code == row["code"]).values(**row)).rowcount == 0:
            conn.execute(table.insert().values(**row))


def load_boundaries(
    conn: Connection, districts: Sequence[District], dongs: Sequence[Dong], *, prune: bool = False
) -> LoadCounts:
    """Upsert districts then dongs (idempotent: loading twice leaves the same rows).

    Runs in the caller's transaction (use ``engine.begin()``). Upsert rather than delete+insert so
    rows other tables reference are never deleted on a reseed. ``prune=True`` also deletes dongs
    and districts absent from the input (for replacing a city's boundary set).
    """
    known = {d.code for d in districts}
    orphans = {g.district_code for g in dongs} - known
    if orphans:  # a partial load may add dongs to districts stored earlier
        orphans -= set(conn.execute(select(districts_table.c.code)).scalars())
    if orphans:
        raise ValueError(f"dongs refer to unknown districts: {sorted(orphans)}")
    _upsert(conn, districts_table, [_row(districts_table, d) for d in districts])
    _upsert(conn, dongs_table, [_row(dongs_table, g) for g in dongs])
    if prune:
        conn.execute(delete(dongs_table).where(dongs_table.c.code.not_in([g.code for g in dongs])))
        conn.execute(delete(districts_table).where(districts_table.c.code.not_in(sorted(known))))
    return LoadCounts(len(districts), len(dongs))


class DistrictInfo(NamedTuple):
    code: str
    name_ko: str
    name_en: str


class DongInfo(NamedTuple):
    code: str
    name_ko: str
    name_en: str
    district_code: str


class _Cell(NamedTuple):
    inside: int
    """Index of the one polygon covering the whole cell, or -1."""
    cands: tuple[int, ...]
    """Polygons touching the cell (ascending), to test the point against."""
    near: tuple[int, ...]
    """Polygons that may lie within tolerance of the cell (ascending); empty: nothing can match."""


class _Layer:
    """One set of polygons: prepared, in an STRtree, ordered by code so ties go to the lowest.

    Single-point lookups go through a coarse grid built once from the tree: creating a shapely
    Point and querying the tree costs ~20 µs, while a grid cell is found with two divisions and
    most cells lie wholly inside one polygon (no GEOS call at all) or beyond reach of every one.
    """

    GRID_CELLS = 128
    """Cells along the longer side of the layer's extent (Seoul: ~300 m cells)."""

    def __init__(
        self, codes: list[str], parents: list[str | None], geoms: list[BaseGeometry], tolerance_deg: float
    ) -> None:
        order = sorted(range(len(codes)), key=lambda i: codes[i])
        self.codes = [codes[i] for i in order]
        self.parents = [parents[i] for i in order]
        self.geoms = np.array([geoms[i] for i in order], dtype=object)
        self.glist = list(self.geoms)
        self.tol = tolerance_deg
        shapely.prepare(self.geoms)
        self.tree = shapely.STRtree(self.geoms)
        self._build_grid()
        # GEOS builds a prepared polygon's point index lazily, and that is not thread-safe; build it
        # here, in one thread, before the index is shared with the request threadpool.
        if len(self.geoms):
            pts = shapely.point_on_surface(self.geoms)
            shapely.intersects_xy(self.geoms, shapely.get_x(pts), shapely.get_y(pts))

    def _build_grid(self) -> None:
        self.cells: list[_Cell] = []
        self.inside = np.empty(0, dtype=np.intp)
        self.far = np.empty(0, dtype=bool)
        self.nx = self.ny = 0
        self.x0 = self.y0 = self.size = 0.0
        if not len(self.geoms):
            return
        x0, y0, x1, y1 = shapely.total_bounds(self.geoms)
        x0, y0, x1, y1 = x0 - self.tol, y0 - self.tol, x1 + self.tol, y1 + self.tol
        size = max(x1 - x0, y1 - y0) / self.GRID_CELLS
        nx, ny = int(np.ceil((x1 - x0) / size)), int(np.ceil((y1 - y0) / size))
        ix, iy = (a.ravel() for a in np.meshgrid(np.arange(nx), np.arange(ny), indexing="ij"))
        eps = 1e-9  # cells overlap a hair, so a point rounded into a neighbour cell is still covered
        boxes = shapely.box(
            x0 + ix * size - eps, y0 + iy * size - eps, x0 + (ix + 1) * size + eps, y0 + (iy + 1) * size + eps
        )
        cands = _group(len(boxes), *self.tree.query(boxes, predicate="intersects"))
        # ``near`` need only be a superset (each is measured exactly), so use cheap envelope tests:
        # polygons whose envelope meets the cell grown by the tolerance, and none at all where the
        # cell misses the union grown by the tolerance (2 % extra: buffers are inscribed polygons).
        grown = shapely.box(
            x0 + ix * size - self.tol,
            y0 + iy * size - self.tol,
            x0 + (ix + 1) * size + self.tol,
            y0 + (iy + 1) * size + self.tol,
        )
        near = _group(len(boxes), *self.tree.query(grown))
        reach = shapely.buffer(shapely.union_all(self.geoms), self.tol * 1.02)
        shapely.prepare(reach)
        near = [n if ok else () for n, ok in zip(near, shapely.intersects(reach, boxes), strict=True)]
        inside = np.full(len(boxes), -1, dtype=np.intp)
        single = np.array([len(c) == 1 for c in cands])
        if single.any():
            idx = np.flatnonzero(single)
            owner = np.array([cands[i][0] for i in idx], dtype=np.intp)
            covered = shapely.contains_properly(self.geoms[owner], boxes[idx])
            inside[idx[covered]] = owner[covered]
        self.cells = [_Cell(int(inside[i]), cands[i], near[i]) for i in range(len(boxes))]
        self.inside = inside
        self.far = np.array([not n for n in near], dtype=bool)
        self.nx, self.ny, self.x0, self.y0, self.size = nx, ny, float(x0), float(y0), float(size)

    def _cell(self, lon: float, lat: float) -> _Cell | None:
        cx = int((lon - self.x0) // self.size) if self.size else -1
        cy = int((lat - self.y0) // self.size) if self.size else -1
        if 0 <= cx < self.nx and 0 <= cy < self.ny:
            return self.cells[cx * self.ny + cy]
        return None

    def locate(self, lon: float, lat: float, district: str | None = None) -> int | None:
        """Index of the polygon covering the point, else the nearest within tolerance, else None.

        With ``district``, only polygons whose ``district_code`` is that are considered.
        """
        cell = self._cell(lon, lat)
        if cell is None or not cell.near:
            return None
        if cell.inside >= 0 and (district is None or self.parents[cell.inside] == district):
            return cell.inside
        for i in cell.cands:
            if (district is None or self.parents[i] == district) and shapely.intersects_xy(
                self.glist[i], lon, lat
            ):
                return i
        near = [i for i in cell.near if district is None or self.parents[i] == district]
        if not near:
            return None
        dist = shapely.distance(self.geoms[near], shapely.Point(lon, lat))
        best = int(np.argmin(dist))  # first of equals: the lowest code
        return near[best] if dist[best] <= self.tol else None

    def locate_many(self, lons: np.ndarray, lats: np.ndarray) -> np.ndarray:
        """Vectorised :meth:`locate` (no district filter): polygon index per point, -1 for none."""
        out = np.full(len(lons), -1, dtype=np.intp)
        if not len(self.geoms) or not len(lons):
            return out
        cx = np.floor((lons - self.x0) / self.size)
        cy = np.floor((lats - self.y0) / self.size)
        ok = (cx >= 0) & (cx < self.nx) & (cy >= 0) & (cy < self.ny)
        cell = np.where(ok, cx * self.ny + cy, 0).astype(np.intp)
        out[ok] = self.inside[cell[ok]]
        todo = np.flatnonzero(ok & (out < 0) & ~self.far[cell])
        if not len(todo):
            return out
        pts = shapely.points(lons[todo], lats[todo])
        pi, gi = self.tree.query(pts, predicate="intersects")
        found = _lowest_per_point(pi, gi)
        out[todo[list(found)]] = list(found.values())
        rest = np.array([k for k in range(len(todo)) if k not in found], dtype=np.intp)
        if len(rest):
            mi, ni = self.tree.query_nearest(pts[rest], max_distance=self.tol, all_matches=True)
            for k, i in _lowest_per_point(mi, ni).items():
                out[todo[rest[k]]] = i
        return out


def _group(n: int, left: np.ndarray, right: np.ndarray) -> list[tuple[int, ...]]:
    """Per left index 0..n-1, the ascending right indices paired with it."""
    out: list[list[int]] = [[] for _ in range(n)]
    for a, b in zip(left.tolist(), right.tolist(), strict=True):
        out[a].append(b)
    return [tuple(sorted(x)) for x in out]


def _lowest_per_point(pi: np.ndarray, gi: np.ndarray) -> dict[int, int]:
    """{point: lowest polygon index} from a tree query's (point, polygon) pairs."""
    best: dict[int, int] = {}
    for p, g in zip(pi.tolist(), gi.tolist(), strict=True):
        if p not in best or g < best[p]:
            best[p] = g
    return best


class CityGeo:
    """In-memory spatial index of the city's districts and dongs, for per-message lookups."""

    def __init__(
        self,
        districts: Sequence[District],
        dongs: Sequence[Dong],
        *,
        bbox: tuple[float, float, float, float],
        h3_resolution: int,
        edge_tolerance_m: float = DEFAULT_EDGE_TOLERANCE_M,
    ) -> None:
        tol = edge_tolerance_m / METRES_PER_DEGREE_LAT
        self.bbox = bbox
        self.h3_resolution = h3_resolution
        self._district_info = {d.code: DistrictInfo(d.code, d.name_ko, d.name_en) for d in districts}
        self._dong_info = {g.code: DongInfo(g.code, g.name_ko, g.name_en, g.district_code) for g in dongs}
        self._districts = _Layer(
            [d.code for d in districts], [None] * len(districts), _shapes(districts), tol
        )
        self._dongs = _Layer([g.code for g in dongs], [g.district_code for g in dongs], _shapes(dongs), tol)

    @classmethod
    def from_db(cls, conn: Connection, settings: Settings, **kwargs: Any) -> CityGeo:
        """Build the index from the ``districts`` and ``dongs`` tables (the only source of truth)."""
        d_rows = conn.execute(select(districts_table)).mappings().all()
        g_rows = conn.execute(select(dongs_table)).mappings().all()
        return cls(
            [District(**_fields(District, r)) for r in d_rows],
            [Dong(**_fields(Dong, r)) for r in g_rows],
            bbox=settings.city_bbox,
            h3_resolution=settings.h3_resolution,
            **kwargs,
        )

    # -- single points -------------------------------------------------------------------------

    def district_of(self, lon: float, lat: float) -> str | None:
        """``SIG_CD`` of the district the point is in (see module docstring for edge rules)."""
        i = self._districts.locate(lon, lat)
        return None if i is None else self._districts.codes[i]

    def dong_of(self, lon: float, lat: float) -> str | None:
        """Code of the dong the point is in, always a dong of :meth:`district_of`'s district."""
        if not len(self._districts.geoms):
            i = self._dongs.locate(lon, lat)
        else:
            district = self.district_of(lon, lat)
            if district is None:
                return None
            i = self._dongs.locate(lon, lat, district)
        return None if i is None else self._dongs.codes[i]

    def h3_cell(self, lon: float, lat: float) -> str:
        """The H3 cell (``settings.h3_resolution``) holding the point."""
        return str(h3.latlng_to_cell(lat, lon, self.h3_resolution))

    def in_city(self, lon: float, lat: float) -> bool:
        """Inside the configured bbox and, if districts are loaded, in (or just by) one of them."""
        x0, y0, x1, y1 = self.bbox
        if not (x0 <= lon <= x1 and y0 <= lat <= y1):
            return False
        return not len(self._districts.geoms) or self.district_of(lon, lat) is not None

    def district_of_geometry(self, geojson: Mapping[str, Any]) -> str | None:
        """District of a GeoJSON geometry or Feature: a point's own, else its representative point's.

        The representative point lies inside the shape (a centroid may not), so a line or polygon
        is filed under a district it actually touches.
        """
        obj: Any = geojson
        if isinstance(obj, Mapping) and obj.get("type") == "Feature":
            obj = obj.get("geometry")
        if not obj:  # a Feature without geometry (null or {}) has no district
            return None
        try:
            if obj.get("type") == "Point":
                lon, lat = (float(v) for v in obj["coordinates"][:2])
                return self.district_of(lon, lat)
            geom = shapely.from_geojson(json.dumps(obj))
            if geom.is_empty:
                return None
            rep = shapely.point_on_surface(geom)
        except (AttributeError, KeyError, TypeError, ValueError, shapely.errors.GEOSException) as exc:
            raise ValidationFailed("not a valid GeoJSON geometry or Feature", str(exc)) from exc
        return self.district_of(rep.x, rep.y)

    # -- names -----------------------------------------------------------------------------------

    def districts(self) -> list[DistrictInfo]:
        """All districts as (code, name_ko, name_en) tuples, by code."""
        return sorted(self._district_info.values())

    def district_info(self, code: str) -> DistrictInfo | None:
        return self._district_info.get(code)

    def dong_info(self, code: str) -> DongInfo | None:
        return self._dong_info.get(code)

    # -- bulk --------------------------------------------------------------------------------------

    def district_codes_for_points(
        self, lons: Sequence[float] | np.ndarray, lats: Sequence[float] | np.ndarray
    ) -> list[str | None]:
        """:meth:`district_of` for many points at once (for ingest batches); same answers."""
        x = np.asarray(lons, dtype=float)
        y = np.asarray(lats, dtype=float)
        if x.shape != y.shape:
            raise ValueError("lons and lats differ in length")
        idx = self._districts.locate_many(x, y)
        codes = self._districts.codes
        return [None if i < 0 else codes[i] for i in idx.tolist()]


def _row(table: Table, record: District | Dong) -> dict[str, Any]:
    """The table's columns taken from a record. ``dongs`` has no ``kostat_code`` column (a Seoul
    dong's code *is* its KOSTAT code); should one be added, it is filled with no change here."""
    return {c.name: getattr(record, c.name) for c in table.c if hasattr(record, c.name)}


def _fields(cls: type[District] | type[Dong], row: RowMapping) -> dict[str, Any]:
    """A record's fields from a table row; absent columns (``dongs.kostat_code``) give None."""
    out = {f.name: row.get(f.name) for f in fields(cls)}
    out["geometry"] = _obj(out["geometry"])
    return out


def _obj(value: Any) -> dict[str, Any]:
    """A JSON column's value as a dict (drivers without native JSON may hand back text)."""
    return json.loads(value) if isinstance(value, str | bytes) else dict(value)


def _shapes(records: Sequence[District] | Sequence[Dong]) -> list[BaseGeometry]:
    return list(shapely.from_geojson([json.dumps(r.geometry) for r in records])) if records else []
