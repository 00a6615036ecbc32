"""The ``file`` connector and ``import_file``, the function behind ``citydesk import FILE --source NAME``.

Files are read in batches of 1,000 rows (CSV streams from disk; JSON and GeoJSON are parsed whole)
and every batch goes through the ingest pipeline with ``dedupe=True``, so importing the same file
twice stores each observation once. As a scheduled source, a file is re-read only when its size or
time changes, and ``ctx.state`` records how many rows are committed: a run that crashed half-way
resumes after the last committed batch instead of starting over.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncGenerator, Iterator
from dataclasses import dataclass
from functools import partial
from itertools import islice
from pathlib import Path
from typing import TYPE_CHECKING, Any

from citydesk.errors import NotFound
from citydesk.hub.connectors.base import Connector, ConnectorError, RunContext
from citydesk.hub.connectors.file.config import FileConfig
from citydesk.hub.connectors.formats import Format, csv_rows, guess_format, json_records
from citydesk.hub.connectors.mapping import Mapping, check_sample, iter_batches
from citydesk.hub.records import Batch
from citydesk.hub.sources import service as sources
from citydesk.hub.sources.types import RunOutcome

if TYPE_CHECKING:
    from citydesk.web.app import App

BATCH_SIZE = 1000
SAMPLE_ROWS = 20


def file_format(path: Path, declared: str) -> Format:
    if declared != "auto":
        return declared  # type: ignore[return-value]
    found = guess_format(path.name)
    if found is None:
        raise ConnectorError(f"cannot tell the format of {path.name}: name it .csv, .json or .geojson")
    return found


def read_rows(
    path: Path, fmt: Format, *, encoding: str = "utf-8", delimiter: str = ",", records_path: str | None = None
) -> Iterator[Any]:
    """The rows of a file; I/O and decoding problems become ``ConnectorError`` (also mid-file)."""
    codec = "utf-8-sig" if encoding.lower().replace("_", "-") in ("utf-8", "utf8") else encoding
    try:
        if fmt == "csv":
            with path.open(newline="", encoding=codec) as fh:
                yield from csv_rows(fh, delimiter=delimiter)
            return
        with path.open(encoding=codec) as fh:
            doc = json.load(fh)
    except OSError as exc:
        raise ConnectorError(f"cannot read {path}: {exc.strerror or exc}") from None
    except (UnicodeDecodeError, LookupError) as exc:
        raise ConnectorError(f"{path.name} is not {encoding} text: {exc}") from None
    except json.JSONDecodeError as exc:
        raise ConnectorError(f"{path.name} is not JSON ({exc.msg} at line {exc.lineno})") from None
    yield from json_records(doc, records_path)


def positioned(mapping: Mapping, fmt: Format) -> Mapping:
    """GeoJSON features carry their position: use it unless the mapping says otherwise."""
    if fmt == "geojson" and not (mapping.lon_field or mapping.geometry_field):
        return mapping.model_copy(update={"geometry_field": "geometry"})
    return mapping


def _allowed(path: Path, roots: tuple[Path, ...] | None) -> Path:
    resolved = path.expanduser().resolve()
    if roots is not None and not any(resolved.is_relative_to(r.resolve()) for r in roots):
        raise ConnectorError(f"{path} is outside the import folder ({', '.join(str(r) for r in roots)})")
    return resolved


class _Counted:
    """Counts the rows taken from a file, so the state can say how many are committed."""

    def __init__(self, rows: Iterator[Any]) -> None:
        self.rows = rows
        self.taken = 0

    def __iter__(self) -> _Counted:
        return self

    def __next__(self) -> Any:
        row = next(self.rows)
        self.taken += 1
        return row


def file_batches(
    config: FileConfig, *, timezone: str, roots: tuple[Path, ...] | None = None, skip: int = 0
) -> tuple[_Counted, Iterator[Batch]]:
    """Batches of ``BATCH_SIZE`` rows of the configured file, after skipping ``skip`` rows."""
    path = _allowed(Path(config.path), roots)
    fmt = file_format(path, config.format)
    rows = _Counted(
        read_rows(
            path, fmt, encoding=config.encoding, delimiter=config.delimiter, records_path=config.records_path
        )
    )
    for _ in range(skip):
        next(rows, None)
    return rows, iter_batches(rows, positioned(config.mapping, fmt), timezone=timezone, size=BATCH_SIZE)


class FileConnector(Connector):
    config_model = FileConfig

    async def check(self, config: FileConfig, ctx: RunContext) -> None:
        path = _allowed(Path(config.path), ctx.file_roots)
        if not path.is_file():
            raise ConnectorError(f"no file {path}")
        fmt = file_format(path, config.format)

        def sample() -> list[Any]:
            rows = read_rows(
                path,
                fmt,
                encoding=config.encoding,
                delimiter=config.delimiter,
                records_path=config.records_path,
            )
            return list(islice(rows, SAMPLE_ROWS))

        rows = await asyncio.to_thread(sample)
        check_sample(rows, positioned(config.mapping, fmt), timezone=ctx.timezone)

    async def run(self, config: FileConfig, ctx: RunContext) -> AsyncGenerator[Batch, None]:
        path = _allowed(Path(config.path), ctx.file_roots)
        try:
            stat = path.stat()
        except OSError as exc:
            raise ConnectorError(f"cannot read {path}: {exc.strerror or exc}") from None
        version = {"size": stat.st_size, "mtime_ns": stat.st_mtime_ns}
        same = all(ctx.state.get(k) == v for k, v in version.items())
        if same and ctx.state.get("complete") and config.only_if_changed:
            return
        skip = int(ctx.state.get("rows", 0)) if same and not ctx.state.get("complete") else 0
        opened = partial(file_batches, config, timezone=ctx.timezone, roots=ctx.file_roots, skip=skip)
        counted, batches = await asyncio.to_thread(opened)
        while (batch := await asyncio.to_thread(next, batches, None)) is not None:
            taken = counted.taken
            yield batch
            # Committed: a crash from here on resumes after these rows.
            ctx.state.update(version, rows=taken, complete=False)
        ctx.state.update(version, rows=counted.taken, complete=True)


@dataclass
class ImportReport:
    """What ``citydesk import`` prints."""

    path: str
    source_id: int | None
    batches: int
    stored: int
    duplicates: int
    rejected: int
    seconds: float


def import_file(
    app: App,
    path: str | Path,
    *,
    source_name: str,
    mapping: Mapping | None = None,
    format: str = "auto",
    encoding: str | None = None,
) -> ImportReport:
    """Import a file once through the ingest pipeline (synchronous: the CLI's path).

    The mapping (and reading options) come from the named source, or from ``mapping`` when given.
    The source's status records the import; rejects are quarantined under it.
    """
    source = sources.find_source(app.engine, source_name)
    if source is None and mapping is None:
        raise NotFound(f"no source named {source_name!r}: create it first, or give a mapping")
    raw = source.config if source is not None else {}
    if mapping is None:
        if "mapping" not in raw:
            raise NotFound(f"source {source_name!r} has no field mapping: give one")
        mapping = Mapping.model_validate(raw["mapping"])
    options = raw if source is not None and source.kind == "file" else {}
    config = FileConfig.model_validate(
        {
            "path": str(path),
            "format": format if format != "auto" else options.get("format", "auto"),
            "encoding": encoding or options.get("encoding", "utf-8"),
            "delimiter": options.get("delimiter", ","),
            "records_path": options.get("records_path"),
            "mapping": mapping,
        }
    )
    source_id = source.id if source is not None else None
    outcome = RunOutcome()
    started = time.perf_counter()
    try:
        for batch in file_batches(config, timezone=app.settings.timezone)[1]:
            outcome.add(
                app.ingest.ingest(
                    batch.observations,
                    channel="file",
                    source_id=source_id,
                    dedupe=True,
                    rejected=batch.rejected,
                )
            )
    except ConnectorError as exc:
        outcome.error = exc.message
    if source_id is not None:
        sources.record_run(app.engine, source_id, outcome, now=app.now())
    if outcome.error is not None:
        raise ConnectorError(outcome.error)
    return ImportReport(
        str(path),
        source_id,
        outcome.batches,
        outcome.stored,
        outcome.duplicates,
        outcome.rejected,
        round(time.perf_counter() - started, 3),
    )
