"""Alembic environment: the engine comes from ``citydesk.db.migrate`` (never from a URL here)."""

from alembic import context

from citydesk.db.schema import metadata

config = context.config
engine = config.attributes["engine"]

with engine.begin() as connection:
    context.configure(
        connection=connection,
        target_metadata=metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        transaction_per_migration=False,
    )
    context.run_migrations()
