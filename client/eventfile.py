"""Engagement events from a file: CSV, JSON Lines or Parquet, one event per row.

Columns (a header row in CSV, keys in JSONL, column names in Parquet): ``event_id``,
``user_id``, ``kind`` (an :class:`EventKind` name in any case, e.g. ``like``) and ``timestamp``
(unix seconds, or an ISO 8601 time, UTC when it has no offset) are required; ``media_id``,
``creator_id``, ``dwell_ms``, ``watch_fraction``, ``query``, ``hashtag``, ``device``,
``local_hour``, ``region`` and ``request_id`` are optional. docs/recommend.md has the table.

Rows that cannot be read (a missing column, a timestamp that is not a time) come out as
:class:`BadRow` with one sentence; every other rule is the server's, as for LogEvents.
Reading is streamed, so a file of any size takes bounded memory. Parquet needs ``pyarrow``
(the ``parquet`` extra).
"""

from __future__ import annotations

import csv
import json
import math
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from mediarec.client.types import ClientContext, Event, EventKind, Location

FORMATS = ("csv", "jsonl", "parquet")
_SUFFIXES = {".csv": "csv", ".jsonl": "jsonl", ".ndjson": "jsonl", ".parquet": "parquet"}
_KINDS = {kind.name.lower(): kind for kind in EventKind if kind is not EventKind.UNSPECIFIED}
_PARQUET_BATCH_ROWS = 8192


class EventFileError(ValueError):
    """The file as a whole cannot be read (unknown format, unreadable, no header)."""


@dataclass(frozen=True)
class BadRow:
    line: int  # 1-based line (CSV: counting the header; JSONL) or row number (Parquet)
    event_id: str
    error: str


@dataclass(frozen=True)
class Row:
    line: int
    event: Event


def file_format(path: Path, declared: str | None = None) -> str:
    """``csv``, ``jsonl`` or ``parquet``: ``declared``, else from the file's suffix."""
    if declared:
        if declared not in FORMATS:
            raise EventFileError(f"unknown format {declared!r}; use one of {', '.join(FORMATS)}")
        return declared
    found = _SUFFIXES.get(path.suffix.lower())
    if found is None:
        known = ", ".join(sorted(_SUFFIXES))
        raise EventFileError(
            f"cannot tell the format of {path.name} from its suffix ({known}); pass --format"
        )
    return found


def read_events(path: Path, fmt: str | None = None) -> Iterator[Row | BadRow]:
    """Every row of the file as an event or a :class:`BadRow`, in file order.

    The format, the file and its header are checked here, at once, so a file that cannot be
    read fails before anything is sent; the rows are then read lazily.
    """
    fmt = file_format(path, fmt)
    opened = {"csv": _csv_records, "jsonl": _jsonl_records, "parquet": _parquet_records}[fmt](
        path
    )
    return _rows(opened)


def _rows(records: Iterator[tuple[int, dict[str, Any] | str]]) -> Iterator[Row | BadRow]:
    for line, record in records:
        if isinstance(record, str):
            yield BadRow(line, "", record)
            continue
        try:
            yield Row(line, event_from_record(record))
        except ValueError as exc:
            yield BadRow(line, str(record.get("event_id") or ""), str(exc))


def event_from_record(record: Mapping[str, Any]) -> Event:
    """One event from a row's named values; ``ValueError`` with one sentence when unreadable."""
    for name in ("event_id", "user_id", "kind", "timestamp"):
        if _text(record.get(name)) == "":
            raise ValueError(f"the {name} column is missing or empty.")
    kind_name = _text(record["kind"]).lower().replace("-", "_").replace(" ", "_")
    kind = _KINDS.get(kind_name)
    if kind is None:
        raise ValueError(f"kind {record['kind']!r} is unknown; use one of {', '.join(_KINDS)}.")
    local_hour = _number(record, "local_hour", int)
    region = _text(record.get("region"))
    device = _text(record.get("device"))
    context = None
    if device or region or local_hour is not None:
        location = Location(region=region) if region else None
        context = ClientContext(device=device, local_hour=local_hour, location=location)
    return Event(
        event_id=_text(record["event_id"]),
        user_id=_text(record["user_id"]),
        kind=kind,
        timestamp=parse_timestamp(record["timestamp"]),
        media_id=_text(record.get("media_id")),
        creator_id=_text(record.get("creator_id")),
        dwell_ms=_number(record, "dwell_ms", int) or 0,
        watch_fraction=_number(record, "watch_fraction", float) or 0.0,
        query=_text(record.get("query")),
        hashtag=_text(record.get("hashtag")),
        context=context,
        request_id=_text(record.get("request_id")),
    )


def parse_timestamp(value: Any) -> float:
    """Unix seconds from a number, a numeric string or an ISO 8601 time (UTC if naive)."""
    if isinstance(value, datetime):
        moment = value
    elif isinstance(value, int | float) and not isinstance(value, bool):
        seconds = float(value)
        if not math.isfinite(seconds):
            raise ValueError(f"timestamp {value!r} is not a finite number.")
        return seconds
    else:
        text = _text(value)
        try:
            return float(text)
        except ValueError:
            pass
        try:
            moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
        except ValueError:
            raise ValueError(
                f"timestamp {text!r} is neither unix seconds nor an ISO 8601 time."
            ) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.timestamp()


def _text(value: Any) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    return str(value).strip()


def _number(record: Mapping[str, Any], name: str, kind: type[int] | type[float]) -> Any:
    text = _text(record.get(name))
    if text == "":
        return None
    try:
        number = float(text)
    except ValueError:
        raise ValueError(f"{name} {text!r} is not a number.") from None
    if kind is int:
        if not number.is_integer():
            raise ValueError(f"{name} {text!r} is not a whole number.")
        return int(number)
    return number


def _csv_records(path: Path) -> Iterator[tuple[int, dict[str, Any] | str]]:
    handle = _open_text(path)
    reader = csv.DictReader(handle)
    if not reader.fieldnames:
        handle.close()
        raise EventFileError(f"{path.name} has no header row")
    return _csv_rows(handle, reader)


def _csv_rows(
    handle: Any, reader: csv.DictReader[str]
) -> Iterator[tuple[int, dict[str, Any] | str]]:
    with handle:
        for record in reader:
            yield reader.line_num, record


def _jsonl_records(path: Path) -> Iterator[tuple[int, dict[str, Any] | str]]:
    return _jsonl_rows(_open_text(path))


def _jsonl_rows(handle: Any) -> Iterator[tuple[int, dict[str, Any] | str]]:
    with handle:
        for line, text in enumerate(handle, start=1):
            if not text.strip():
                continue
            try:
                record = json.loads(text)
            except json.JSONDecodeError as exc:
                yield line, f"the line is not JSON ({exc.msg})."
                continue
            if not isinstance(record, dict):
                yield line, "the line is JSON but not an object."
                continue
            yield line, record


def _parquet_records(path: Path) -> Iterator[tuple[int, dict[str, Any] | str]]:
    try:
        import pyarrow.parquet as pq
    except ImportError as exc:
        raise EventFileError(
            "reading Parquet needs pyarrow: pip install 'mediarec[parquet]'"
        ) from exc
    try:
        table = pq.ParquetFile(path)
    except (OSError, ValueError) as exc:
        raise EventFileError(f"{path.name} is not a readable Parquet file: {exc}") from exc
    return _parquet_rows(path, table)


def _parquet_rows(path: Path, table: Any) -> Iterator[tuple[int, dict[str, Any] | str]]:
    row = 0
    try:
        for batch in table.iter_batches(batch_size=_PARQUET_BATCH_ROWS):
            for record in batch.to_pylist():
                row += 1
                yield row, record
    except (OSError, ValueError) as exc:  # pyarrow's errors derive from these
        raise EventFileError(f"{path.name} cannot be read past row {row}: {exc}") from exc


def _open_text(path: Path) -> Any:
    try:
        return path.open(encoding="utf-8-sig", newline="")
    except OSError as exc:
        raise EventFileError(f"cannot read {path}: {exc.strerror}") from exc
