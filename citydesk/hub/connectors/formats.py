"""Payload formats shared by the connectors that read documents (HTTP bodies and files).

CSV, JSON (an array, or the array found at a ``records_path`` such as ``data.items``) and GeoJSON
FeatureCollections all become plain rows (dicts) for ``mapping.rows_to_batch``. Seoul's published
CSVs are the test of this module: UTF-8 with or without a BOM, CRLF line ends, and quoted header
cells with a newline inside (``"이산화질소\\nNO2 (ppm)"``), which become ``이산화질소 NO2 (ppm)``.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterable, Iterator
from typing import Any, Literal

from citydesk.hub.connectors.base import ConnectorError, snippet
from citydesk.hub.connectors.mapping import dig

Format = Literal["csv", "json", "geojson"]
LINE_FIELD = "_line"
"""Added to CSV rows: the line a row starts on, so a quarantined row can be found in the file."""


def normalise_header(name: str) -> str:
    """A header cell as mappings name it: BOM removed, whitespace (newlines too) collapsed."""
    return " ".join(name.replace("\ufeff", "").split())


def csv_rows(lines: Iterable[str], *, delimiter: str = ",") -> Iterator[dict[str, Any]]:
    """Rows of a CSV text as dicts keyed by the normalised header; blank lines are skipped.

    ``lines`` must come from a file opened with ``newline=""`` (or ``str.splitlines(keepends=True)``)
    so quoted cells may hold newlines. A short row simply lacks the missing columns (the mapping
    then rejects it with the column's name); it is never padded with invented values.
    """
    reader = csv.reader(lines, delimiter=delimiter)
    try:
        header = [normalise_header(h) for h in next(reader)]
    except StopIteration:
        return
    start = reader.line_num + 1
    for cells in reader:
        if any(c.strip() for c in cells):
            row: dict[str, Any] = dict(zip(header, cells, strict=False))
            row[LINE_FIELD] = start
            yield row
        start = reader.line_num + 1


def decode(data: bytes, encoding: str = "utf-8") -> str:
    """Bytes to text; a UTF-8 BOM is dropped. Undecodable input is a ``ConnectorError``."""
    codec = "utf-8-sig" if encoding.lower().replace("_", "-") in ("utf-8", "utf8") else encoding
    try:
        return data.decode(codec)
    except (UnicodeDecodeError, LookupError) as exc:
        raise ConnectorError(
            f"body is not {encoding} text ({exc.__class__.__name__}): {snippet(data)}"
        ) from None


def geojson_rows(doc: dict[str, Any]) -> list[dict[str, Any]]:
    """Each Feature's properties as a row, with its geometry under ``geometry`` (and ``id``)."""
    rows: list[dict[str, Any]] = []
    for feature in doc.get("features") or []:
        if not isinstance(feature, dict):
            rows.append({"feature": feature})
            continue
        row = dict(feature.get("properties") or {})
        row.setdefault("geometry", feature.get("geometry"))
        if "id" in feature:
            row.setdefault("id", feature["id"])
        rows.append(row)
    return rows


def json_records(doc: Any, records_path: str | None = None) -> list[Any]:
    """The records of a JSON document: the array at ``records_path``, the document, or its features."""
    if records_path:
        try:
            doc = dig(doc, records_path)
        except KeyError:
            raise ConnectorError(f"no {records_path!r} in the document: {snippet(repr(doc))}") from None
    if isinstance(doc, dict) and doc.get("type") == "FeatureCollection":
        return geojson_rows(doc)
    if isinstance(doc, dict):
        return [doc]
    if isinstance(doc, list):
        return doc
    raise ConnectorError(f"expected an array of records, got {type(doc).__name__}: {snippet(repr(doc))}")


def guess_format(name: str = "", content_type: str = "") -> Format | None:
    """The format a file name or Content-Type announces, if any."""
    lowered, ctype = name.lower(), content_type.lower()
    if lowered.endswith(".geojson") or "geo+json" in ctype:
        return "geojson"
    if lowered.endswith(".json") or "json" in ctype:
        return "json"
    if lowered.endswith((".csv", ".tsv", ".txt")) or "csv" in ctype or "text/plain" in ctype:
        return "csv"
    return None


def parse_body(
    data: bytes,
    fmt: Format,
    *,
    encoding: str = "utf-8",
    delimiter: str = ",",
    records_path: str | None = None,
) -> list[Any]:
    """The rows of a whole document held in memory (an HTTP body; files stream instead)."""
    text = decode(data, encoding)
    if fmt == "csv":
        return list(csv_rows(text.splitlines(keepends=True), delimiter=delimiter))
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ConnectorError(f"body is not JSON ({exc.msg} at line {exc.lineno}): {snippet(text)}") from None
    return json_records(doc, records_path)


def sniff(data: bytes) -> Format:
    """JSON if the body starts like JSON, else CSV: for servers that send no useful Content-Type."""
    head = data.lstrip(b"\xef\xbb\xbf \t\r\n")[:1]
    return "json" if head in (b"{", b"[") else "csv"
