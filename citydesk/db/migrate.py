"""Schema migrations: one Alembic history applied to SQLite and PostgreSQL alike.

``citydesk migrate`` calls ``upgrade``; the server calls ``check_current`` at start and refuses
to run on a database that is behind, with a message that says what to do.
"""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine

from citydesk.errors import DatabaseNotMigrated

MIGRATIONS = Path(__file__).parent / "migrations"


def alembic_config(engine: Engine) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.attributes["engine"] = engine
    return cfg


def head_revision(engine: Engine) -> str | None:
    return ScriptDirectory.from_config(alembic_config(engine)).get_current_head()


def current_revision(engine: Engine) -> str | None:
    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def upgrade(engine: Engine, revision: str = "head") -> None:
    """Apply every pending migration (idempotent: an up-to-date database is left as is)."""
    command.upgrade(alembic_config(engine), revision)


def check_current(engine: Engine) -> None:
    """Raise ``DatabaseNotMigrated`` unless the database is at the newest revision."""
    current, head = current_revision(engine), head_revision(engine)
    if current != head:
        where = engine.url.render_as_string(hide_password=True)
        state = "has no citydesk schema" if current is None else f"is at revision {current}, not {head}"
        raise DatabaseNotMigrated(
            f"The database {where} {state}. Run `citydesk migrate` (same DATABASE_URL) first.",
            {"current": current, "head": head},
        )
