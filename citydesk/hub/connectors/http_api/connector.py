"""The ``http_api`` connector: one GET (or POST) per poll, the body read as JSON or CSV and mapped.

Every failure a city API produces becomes a ``ConnectorError`` naming the status and the start of
the body: HTTP errors, timeouts, bodies that are not JSON, and the Seoul Open API's habit of
answering 200 with ``{"RESULT": {"CODE": "INFO-200", ...}}`` instead of the expected records.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator
from typing import Any
from urllib.parse import urlsplit

import httpx

from citydesk.hub.connectors.base import Connector, ConnectorError, RunContext, snippet
from citydesk.hub.connectors.formats import Format, guess_format, parse_body, sniff
from citydesk.hub.connectors.http_api.config import HttpApiConfig
from citydesk.hub.connectors.mapping import check_sample, iter_batches
from citydesk.hub.records import Batch

SAMPLE_ROWS = 20


def _fill(template: str, key: str) -> str:
    return template.replace("{api_key}", key)


class HttpApiConnector(Connector):
    config_model = HttpApiConfig

    async def fetch(self, config: HttpApiConfig, ctx: RunContext) -> list[Any]:
        """The records of one request, or ``ConnectorError`` (the key never appears in a message)."""
        key = config.api_key.get_secret_value() if config.api_key else ""
        url = _fill(config.url, key)
        shown = config.url if not key else config.url.replace("{api_key}", "***")
        host = urlsplit(url).netloc
        try:
            response = await ctx.http.request(
                config.method,
                url,
                headers={k: _fill(v, key) for k, v in config.headers.items()},
                params={k: _fill(v, key) for k, v in config.params.items()},
                timeout=config.timeout_seconds,
            )
        except httpx.TimeoutException:
            raise ConnectorError(f"no answer from {host} within {config.timeout_seconds:g} s") from None
        except httpx.HTTPError as exc:
            raise ConnectorError(f"cannot reach {host}: {exc.__class__.__name__}: {exc}") from None
        if response.status_code >= 400:
            raise ConnectorError(
                f"HTTP {response.status_code} from {shown}: {snippet(response.content)}",
                details={"status": response.status_code},
            )
        fmt: Format
        if config.format != "auto":
            fmt = config.format
        else:
            fmt = guess_format(urlsplit(url).path, response.headers.get("content-type", "")) or sniff(
                response.content
            )
            fmt = "json" if fmt == "geojson" else fmt
        return parse_body(
            response.content,
            fmt,
            encoding=config.encoding,
            delimiter=config.delimiter,
            records_path=config.records_path,
        )

    async def check(self, config: HttpApiConfig, ctx: RunContext) -> None:
        rows = await self.fetch(config, ctx)
        check_sample(rows[:SAMPLE_ROWS], config.mapping, timezone=ctx.timezone)

    async def run(self, config: HttpApiConfig, ctx: RunContext) -> AsyncGenerator[Batch, None]:
        rows = await self.fetch(config, ctx)
        for batch in iter_batches(rows, config.mapping, timezone=ctx.timezone):
            yield batch
