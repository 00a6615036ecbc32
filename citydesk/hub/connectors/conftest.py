"""Connector tests use the project's real-database fixtures (SQLite file and PostgreSQL)."""

from tests.conftest import app, db_url, pg_url, sqlite_url

__all__ = ["app", "db_url", "pg_url", "sqlite_url"]
