"""``mediarec events import FILE``: bulk-load engagement history from CSV, JSONL or Parquet.

Through a running server with ``--server`` (the ImportEvents RPC), or in-process against the
data dir. Either way the rows take the same path: the client's conversion to ``mediarec.v1``
events, the server's validation and idempotence, and one rebuild of the derived state at the
end. Rows the file reader or the server rejects are listed with their line numbers.
"""

from __future__ import annotations

import csv
import logging
import sys
from array import array
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from mediarec.client.eventfile import BadRow, EventFileError, Row, read_events
from mediarec.server.cli.common import (
    EXIT_FAILED,
    EXIT_OK,
    CommandError,
    open_local_deps,
    server_error,
)

if TYPE_CHECKING:
    from mediarec.client import Event, ImportEventsResult
    from mediarec.server.config import Settings

logger = logging.getLogger(__name__)

CHUNK_EVENTS = 5000
CHUNK_BYTES = 1 << 20
SHOWN_ERRORS = 20
KEPT_UNREADABLE = 10_000  # unreadable rows listed; the count covers all of them


@dataclass(frozen=True)
class RejectedRow:
    line: int
    event_id: str
    error: str


class _Sent:
    """The file line of each row sent, by stream position (the server numbers rows so): eight
    bytes a row. And the rows that could not be read at all, the first KEPT_UNREADABLE listed."""

    def __init__(self) -> None:
        self.lines = array("q")
        self.unreadable: list[RejectedRow] = []
        self.unreadable_count = 0

    def events(self, rows: Iterable[Row | BadRow]) -> Iterator[Event]:
        for row in rows:
            if isinstance(row, BadRow):
                self.unreadable_count += 1
                if len(self.unreadable) < KEPT_UNREADABLE:
                    self.unreadable.append(RejectedRow(row.line, row.event_id, row.error))
                continue
            self.lines.append(row.line)
            yield row.event


def run_import(
    settings: Settings,
    path: Path,
    *,
    fmt: str | None = None,
    server: str | None = None,
    api_key: str | None = None,
    report: Path | None = None,
    progress: bool = True,
) -> int:
    """Import the file, print a summary and the first rejected rows; 0 when every row was
    stored or was a duplicate, 1 when some were rejected or the import failed, 2 when the
    store is locked by a running server."""
    sent = _Sent()
    try:
        rows = read_events(path, fmt)
        with _progress(progress) as advance:
            events = sent.events(rows)
            if server:
                result = _import_server(server, api_key, events, advance)
            else:
                result = _import_local(settings, events, advance)
    except EventFileError as exc:
        print(f"mediarec events import: {exc}", file=sys.stderr)
        return EXIT_FAILED
    except CommandError as exc:
        print(f"mediarec events import: {exc}", file=sys.stderr)
        return exc.exit_code
    rejected = sent.unreadable + [
        RejectedRow(sent.lines[e.row] if e.row < len(sent.lines) else -1, e.event_id, e.error)
        for e in result.errors
    ]
    rejected.sort(key=lambda r: r.line)
    total_rejected = sent.unreadable_count + result.rejected_count
    truncated = result.errors_truncated or sent.unreadable_count > len(sent.unreadable)
    print(
        f"imported {path.name}: {result.accepted_count} stored, "
        f"{result.duplicate_count} duplicates, {total_rejected} rejected; "
        f"derived state version {result.state.version} "
        f"({result.state.events_included} events)"
    )
    _print_rejected(rejected, total_rejected, truncated, report, sys.stderr)
    if report is not None:
        write_report(report, rejected)
    return EXIT_FAILED if total_rejected else EXIT_OK


def _import_server(
    target: str, api_key: str | None, events: Iterable[Event], advance: Callable[[int], None]
) -> ImportEventsResult:
    from mediarec.client import MediarecClient, MediarecError

    with MediarecClient(target, api_key=api_key) as client:
        try:
            limits = client.server_info(timeout_s=10).limits
            chunk_events = min(CHUNK_EVENTS, limits.import_chunk_events or CHUNK_EVENTS)
            chunk_bytes = min(CHUNK_BYTES, limits.max_message_bytes // 2)
            return client.import_events(
                events, chunk_events=chunk_events, chunk_bytes=chunk_bytes, on_chunk=advance
            )
        except MediarecError as exc:
            raise CommandError(
                f"the import through {target} failed: {server_error(exc, api_key)}", EXIT_FAILED
            ) from exc


def _import_local(
    settings: Settings, events: Iterable[Event], advance: Callable[[int], None]
) -> ImportEventsResult:
    from mediarec.client import convert as client_convert
    from mediarec.server.grpc.recommend_convert import event_from_proto, import_response
    from mediarec.server.recommend.importer import import_events
    from mediarec.server.recommend.types import Event as DomainEvent
    from mediarec.server.recommend.types import EventResult

    def chunks() -> Iterator[list[DomainEvent | EventResult]]:
        chunk: list[DomainEvent | EventResult] = []
        for event in events:
            chunk.append(event_from_proto(client_convert.event_to_proto(event)))
            if len(chunk) == CHUNK_EVENTS:
                yield chunk
                advance(len(chunk))
                chunk = []
        if chunk:
            yield chunk
            advance(len(chunk))

    deps = open_local_deps(settings)
    try:
        result = import_events(
            chunks(),
            deps.engagement,
            deps.recommender,
            max_errors=settings.recommend.import_max_errors,
        )
    finally:
        deps.close()
    # One conversion for both paths: the local result goes through the response message.
    return client_convert.import_result_from_proto(import_response(result))


class _progress:
    """A tqdm counter of rows sent (the total of a streamed file is unknown), or nothing."""

    def __init__(self, enabled: bool) -> None:
        self._enabled = enabled and sys.stderr.isatty()
        self._bar: Any = None

    def __enter__(self) -> Callable[[int], None]:
        if not self._enabled:
            return lambda n: None
        from tqdm import tqdm

        self._bar = tqdm(unit=" events", unit_scale=True, desc="importing", file=sys.stderr)
        return self._bar.update

    def __exit__(self, *exc: object) -> None:
        if self._bar is not None:
            self._bar.close()


def _print_rejected(
    rejected: Sequence[RejectedRow],
    total: int,
    truncated: bool,
    report: Path | None,
    out: TextIO,
) -> None:
    if not total:
        return
    for row in rejected[:SHOWN_ERRORS]:
        where = f"line {row.line}" if row.line >= 0 else "a row"
        print(f"  {where} ({row.event_id or 'no event_id'}): {row.error}", file=out)
    listed = len(rejected)
    if truncated:
        print(
            f"  {listed} of the {total} rejected rows are listed (the server lists "
            "recommend.import_max_errors of its own)",
            file=out,
        )
    elif listed > SHOWN_ERRORS and report is None:
        print(f"  ... {listed - SHOWN_ERRORS} more; --report FILE writes them all", file=out)
    if report is not None:
        print(f"  rejected rows written to {report}", file=out)


def write_report(path: Path, rejected: Sequence[RejectedRow]) -> None:
    """The rejected rows as CSV: line, event_id, error."""
    with path.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["line", "event_id", "error"])
        for row in rejected:
            writer.writerow([row.line, row.event_id, row.error])
