"""Packaged boundary files (GeoJSON) and their provenance (``README.md``).

A package, not a bare folder, so that setuptools ships the ``*.geojson`` files in the wheel and
``importlib.resources`` finds them wherever citydesk is installed.
"""
