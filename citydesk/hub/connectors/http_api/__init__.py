"""Connector kind ``http_api``: polls a URL that answers JSON or CSV (e.g. Seoul Open API services)."""
