"""Configuration of a ``sql_db`` source: which database, which query, which column is the cursor."""

from __future__ import annotations

import re

from pydantic import Field, field_validator
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

from citydesk.hub.connectors.base import ConnectorConfig, Secret
from citydesk.hub.connectors.mapping import Mapping

SUPPORTED = ("postgresql", "sqlite", "mysql", "mariadb")
_READ_START = re.compile(r"^\s*(select|with)\b", re.IGNORECASE)


class SqlDbConfig(ConnectorConfig):
    url: str = Field(description="SQLAlchemy URL without the password, e.g. postgresql://reader@db/air")
    password: Secret | None = Field(default=None, description="kept secret: never shown back")
    query: str = Field(
        description="one SELECT (or WITH ... SELECT); may use :cursor",
        json_schema_extra={"format": "multiline"},
    )
    cursor_column: str | None = Field(
        default=None, description="a unique, increasing column (e.g. id): each run takes only newer rows"
    )
    cursor_start: int | float | str | None = Field(default=None, description="take rows after this value")
    batch_size: int = Field(default=1000, ge=1, le=10_000)
    max_rows: int = Field(default=100_000, ge=1, description="without a cursor: refuse larger results")
    timeout_seconds: float = Field(default=30.0, gt=0, le=600)
    mapping: Mapping

    @field_validator("url")
    @classmethod
    def _url(cls, value: str) -> str:
        try:
            url = make_url(value)
        except ArgumentError:
            raise ValueError("not a database URL (e.g. postgresql://user@host/db)") from None
        if url.get_backend_name() not in SUPPORTED:
            raise ValueError(
                f"unsupported database {url.get_backend_name()!r}; use one of {', '.join(SUPPORTED)}"
            )
        if url.password is not None:
            raise ValueError("put the password in the password field, not in the URL")
        return value

    @field_validator("query")
    @classmethod
    def _one_select(cls, value: str) -> str:
        body = value.strip().rstrip(";").strip()
        if not _READ_START.match(body):
            raise ValueError("the query must be a single SELECT (or WITH ... SELECT)")
        if ";" in body:
            raise ValueError("the query must be a single statement (no ';' inside)")
        return body

    @field_validator("cursor_column")
    @classmethod
    def _identifier(cls, value: str | None) -> str | None:
        if value is not None and not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", value):
            raise ValueError("the cursor column must be a plain column name")
        return value
