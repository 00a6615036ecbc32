"""The city's geography: district and dong boundaries, and point → district/dong/H3 lookup.

Other sub-packages import geo only through this module. Boundaries are read from files
(:func:`read_districts`, :func:`read_dongs`; Seoul's are packaged), stored with
:func:`load_boundaries`, and served from memory by :class:`CityGeo`, which is always built from the
database (``CityGeo.from_db``) so every worker answers alike. Districts are keyed by MOIS
``SIG_CD``; see ``citydesk/geo/data/README.md`` for the data and its two code systems.
"""

from citydesk.geo.api import router
from citydesk.geo.boundaries import District, Dong, LayerSpec, read_districts, read_dongs
from citydesk.geo.service import CityGeo, DistrictInfo, DongInfo, LoadCounts, load_boundaries

__all__ = [
    "CityGeo",
    "District",
    "DistrictInfo",
    "Dong",
    "DongInfo",
    "LayerSpec",
    "LoadCounts",
    "load_boundaries",
    "read_districts",
    "read_dongs",
    "router",
]
