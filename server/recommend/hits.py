"""Hit and miss counts of an in-memory cache, for ``/metrics`` (thread-safe)."""

from __future__ import annotations

import threading
from dataclasses import dataclass


@dataclass(frozen=True)
class HitCounts:
    hits: int
    misses: int


class HitCounter:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._hits = 0
        self._misses = 0

    def record(self, hits: int, misses: int) -> None:
        with self._lock:
            self._hits += hits
            self._misses += misses

    def snapshot(self) -> HitCounts:
        with self._lock:
            return HitCounts(self._hits, self._misses)
