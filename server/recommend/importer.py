"""Bulk import of engagement history: store chunk by chunk, then rebuild the derived state once.

Rows follow the rules of LogEvents (validation, idempotence by event_id), but the per-event
rebuild triggers are skipped: one synchronous rebuild at the end makes the imported history
visible to the next request. The summary counts every row and lists the first rejected ones,
so memory stays bounded whatever the size of the import.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from typing import Protocol

from mediarec.server.recommend.types import EngagementStore, Event, EventResult, StateInfo

logger = logging.getLogger(__name__)


class ImportTarget(Protocol):
    """What an import needs of the recommender (``Recommender`` satisfies it)."""

    def on_events(self, events: Sequence[Event], *, schedule_rebuild: bool = True) -> None: ...

    def refresh(self) -> StateInfo: ...

    def refresh_in_background(self) -> None: ...

    def state_info(self) -> StateInfo: ...


@dataclass(frozen=True)
class RowError:
    row: int  # position in the whole import, from 0
    event_id: str
    error: str


@dataclass
class ImportSummary:
    """Counts of an import so far and its first ``max_errors`` rejected rows."""

    max_errors: int
    accepted: int = 0
    duplicates: int = 0
    rejected: int = 0
    rows: int = 0
    errors: list[RowError] = field(default_factory=list)

    @property
    def errors_truncated(self) -> bool:
        return self.rejected > len(self.errors)

    def add(self, results: Sequence[EventResult]) -> None:
        """Count one chunk's results (in row order) and keep its rejections while room lasts."""
        for offset, result in enumerate(results):
            if result.accepted:
                self.accepted += 1
            elif result.duplicate:
                self.duplicates += 1
            else:
                self.rejected += 1
                if len(self.errors) < self.max_errors:
                    self.errors.append(RowError(self.rows + offset, result.event_id, result.error))
        self.rows += len(results)


@dataclass(frozen=True)
class ImportProgress:
    """How far one running import has got."""

    started_at: float  # unix seconds
    rows: int = 0
    accepted: int = 0
    duplicates: int = 0
    rejected: int = 0


class RunningImports:
    """The imports running now and their counts, for a status page to show."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._running: dict[int, ImportProgress] = {}
        self._next = 0

    @contextmanager
    def track(self) -> Iterator[Callable[[Sequence[EventResult]], None]]:
        """Registers an import for its duration; yields the function that counts a chunk."""
        with self._lock:
            key = self._next
            self._next += 1
            self._running[key] = ImportProgress(started_at=time.time())

        def count(results: Sequence[EventResult]) -> None:
            accepted = sum(1 for r in results if r.accepted)
            duplicates = sum(1 for r in results if r.duplicate)
            with self._lock:
                now = self._running[key]
                self._running[key] = replace(
                    now,
                    rows=now.rows + len(results),
                    accepted=now.accepted + accepted,
                    duplicates=now.duplicates + duplicates,
                    rejected=now.rejected + len(results) - accepted - duplicates,
                )

        try:
            yield count
        finally:
            with self._lock:
                del self._running[key]

    def running(self) -> list[ImportProgress]:
        """A snapshot, oldest first."""
        with self._lock:
            return [self._running[key] for key in sorted(self._running)]


@dataclass(frozen=True)
class ImportResult:
    summary: ImportSummary
    state: StateInfo


def import_events(
    chunks: Iterable[Sequence[Event | EventResult]],
    engagement: EngagementStore,
    recommender: ImportTarget,
    *,
    max_errors: int,
    on_chunk: Callable[[Sequence[EventResult]], None] | None = None,
) -> ImportResult:
    """Store every chunk (an ``EventResult`` stands for a row already rejected upstream), then
    rebuild, unless nothing new was stored. When the import fails part-way, what was stored
    stays stored (a rerun reports it as duplicates) and a background rebuild picks it up.
    ``on_chunk`` sees each chunk's results as it is stored, so a count of them holds even
    when a later chunk fails."""
    summary = ImportSummary(max_errors=max_errors)
    try:
        for chunk in chunks:
            events = [row for row in chunk if isinstance(row, Event)]
            stored = iter(engagement.log_events(events) if events else [])
            results = [row if isinstance(row, EventResult) else next(stored) for row in chunk]
            accepted = [
                row for row, result in zip(chunk, results, strict=True)
                if isinstance(row, Event) and result.accepted
            ]  # fmt: skip
            recommender.on_events(accepted, schedule_rebuild=False)
            summary.add(results)
            if on_chunk is not None:
                on_chunk(results)
    except BaseException:
        if summary.accepted:
            recommender.refresh_in_background()
        raise
    if not summary.accepted:  # nothing new: no rebuild (an empty or fully duplicate import)
        return ImportResult(summary, recommender.state_info())
    try:
        state = recommender.refresh()
    except BaseException:
        recommender.refresh_in_background()
        raise
    logger.info(
        "imported %d rows: %d accepted, %d duplicates, %d rejected; derived state version %d",
        summary.rows, summary.accepted, summary.duplicates, summary.rejected, state.version,
    )
    return ImportResult(summary, state)
