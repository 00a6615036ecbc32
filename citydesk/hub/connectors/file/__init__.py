"""Connector kind ``file``: CSV, JSON and GeoJSON files, watched as a source or imported once by the CLI."""
