"""The ``sql_db`` connector: pages through another database's rows with a read-only query.

With a cursor column each page is ``SELECT * FROM (<query>) AS src WHERE src.<col> > :cursor
ORDER BY src.<col> LIMIT <batch>``; the cursor in ``ctx.state`` advances only after the page's
batch is committed (code after ``yield``), so a crash re-reads a page, which dedupe absorbs,
instead of skipping one. The session is read-only three ways: the config accepts one SELECT, the
session refuses writes (PostgreSQL ``default_transaction_read_only``, SQLite ``query_only``,
MySQL ``TRANSACTION READ ONLY``), and every transaction is rolled back. Blocking driver calls run
in a worker thread; one engine (no pool) lives for one run.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import Engine, create_engine, event, text
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.pool import NullPool

from citydesk.hub.connectors.base import Connector, ConnectorError, RunContext
from citydesk.hub.connectors.mapping import check_sample, iter_batches, rows_to_batch
from citydesk.hub.connectors.sql_db.config import SqlDbConfig
from citydesk.hub.records import Batch

SAMPLE_ROWS = 20
DEFAULT_DRIVERS = {"postgresql": "postgresql+psycopg", "mysql": "mysql+pymysql", "mariadb": "mariadb+pymysql"}
READ_ONLY_SQL = {"sqlite": "PRAGMA query_only = ON", "mysql": "SET SESSION TRANSACTION READ ONLY"}


def encode_cursor(value: Any) -> Any:
    """A cursor value as JSON for ``source_status.cursor`` (times and decimals keep their type)."""
    if isinstance(value, datetime):
        return {"datetime": value.isoformat()}
    if isinstance(value, date):
        return {"date": value.isoformat()}
    if isinstance(value, Decimal):
        return {"decimal": str(value)}
    return value


def decode_cursor(value: Any) -> Any:
    if isinstance(value, dict):
        if "datetime" in value:
            return datetime.fromisoformat(value["datetime"])
        if "date" in value:
            return date.fromisoformat(value["date"])
        if "decimal" in value:
            return Decimal(value["decimal"])
    return value


def _url(config: SqlDbConfig) -> URL:
    url = make_url(config.url)
    if config.password is not None:
        url = url.set(password=config.password.get_secret_value())
    if "+" not in url.drivername and url.drivername in DEFAULT_DRIVERS:
        url = url.set(drivername=DEFAULT_DRIVERS[url.drivername])
    if url.get_backend_name() == "sqlite":
        if not url.database or url.database == ":memory:":
            raise ConnectorError("a SQLite source needs a database file")
        # mode=ro: a mistyped path is an error, not a new empty database file.
        url = url.set(database=f"file:{url.database}", query={"mode": "ro", "uri": "true"})
    return url


def _message(exc: BaseException) -> str:
    orig = getattr(exc, "orig", None) or exc
    first = str(orig).strip().splitlines()
    return f"{orig.__class__.__name__}: {first[0] if first else ''}"


class SqlDbConnector(Connector):
    config_model = SqlDbConfig

    def open(self, config: SqlDbConfig) -> Engine:
        url = _url(config)
        backend = url.get_backend_name()
        connect_args: dict[str, Any] = {}
        if backend == "postgresql":
            timeout_ms = int(config.timeout_seconds * 1000)
            connect_args = {
                "options": f"-c default_transaction_read_only=on -c statement_timeout={timeout_ms}",
                "connect_timeout": 10,
            }
        try:
            engine = create_engine(url, poolclass=NullPool, connect_args=connect_args)
        except (ImportError, SQLAlchemyError) as exc:
            raise ConnectorError(f"cannot use {backend}: {_message(exc)}") from None
        statement = READ_ONLY_SQL.get("mysql" if backend == "mariadb" else backend)
        if statement is not None:

            def _read_only(dbapi_conn: Any, _record: Any) -> None:
                cur = dbapi_conn.cursor()
                cur.execute(statement)
                cur.close()

            event.listen(engine, "connect", _read_only)
        return engine

    def fetch(self, engine: Engine, config: SqlDbConfig, cursor: Any, limit: int) -> list[dict[str, Any]]:
        """One page of rows (blocking: call it in a thread). Always rolled back."""
        params: dict[str, Any] = {"cursor": cursor} if ":cursor" in config.query else {}
        sql = config.query
        if config.cursor_column:
            col = engine.dialect.identifier_preparer.quote(config.cursor_column)
            where = f" WHERE src.{col} > :cursor" if cursor is not None else ""
            sql = f"SELECT * FROM ({config.query}) AS src{where} ORDER BY src.{col} LIMIT :limit"
            params.update(cursor=cursor, limit=limit)
        try:
            with engine.connect() as conn:
                result = conn.execute(text(sql), params)
                rows = [dict(r._mapping) for r in result.fetchmany(limit + 1)]
                conn.rollback()
        except SQLAlchemyError as exc:
            raise ConnectorError(f"query failed: {_message(exc)}") from None
        if config.cursor_column and rows and config.cursor_column not in rows[0]:
            raise ConnectorError(
                f"the query returns no column {config.cursor_column!r} (it has {', '.join(rows[0])})"
            )
        if not config.cursor_column and len(rows) > limit:
            raise ConnectorError(f"the query returns more than {limit} rows: set a cursor column")
        return rows[:limit]

    async def check(self, config: SqlDbConfig, ctx: RunContext) -> None:
        engine = self.open(config)
        try:
            start = decode_cursor(ctx.state.get("cursor", config.cursor_start))
            limit = SAMPLE_ROWS if config.cursor_column else config.max_rows
            rows = await asyncio.to_thread(self.fetch, engine, config, start, limit)
        finally:
            engine.dispose()
        check_sample(rows[:SAMPLE_ROWS], config.mapping, timezone=ctx.timezone)

    async def run(self, config: SqlDbConfig, ctx: RunContext) -> AsyncGenerator[Batch, None]:
        engine = self.open(config)
        try:
            if not config.cursor_column:
                rows = await asyncio.to_thread(self.fetch, engine, config, None, config.max_rows)
                for batch in iter_batches(
                    rows, config.mapping, timezone=ctx.timezone, size=config.batch_size
                ):
                    yield batch
                return
            cursor = decode_cursor(ctx.state.get("cursor", config.cursor_start))
            while True:
                rows = await asyncio.to_thread(self.fetch, engine, config, cursor, config.batch_size)
                if not rows:
                    return
                yield rows_to_batch(rows, config.mapping, timezone=ctx.timezone)
                # Committed: only now does the cursor move past these rows.
                cursor = rows[-1][config.cursor_column]
                ctx.state["cursor"] = encode_cursor(cursor)
                if len(rows) < config.batch_size:
                    return
        finally:
            engine.dispose()
