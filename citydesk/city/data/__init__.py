"""Packaged city-status data (CSV) and its provenance (``README.md``).

A package, not a bare folder, so that setuptools ships the ``*.csv`` files in the wheel and
``importlib.resources`` finds them wherever citydesk is installed.
"""
