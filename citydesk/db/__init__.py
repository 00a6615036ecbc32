"""Database access: one engine factory, one metadata, one Alembic history for SQLite and PostgreSQL."""

from citydesk.db.engine import is_postgres, make_engine
from citydesk.db.metadata import metadata
from citydesk.db.migrate import check_current, upgrade

__all__ = ["check_current", "is_postgres", "make_engine", "metadata", "upgrade"]
