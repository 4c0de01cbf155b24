"""Counts of what the service did (media indexed, events taken in), kept by the API layer and
read by ``/metrics``. Thread-safe; the counts only grow."""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Mapping

MEDIA_INDEXED = "media_indexed"  # by outcome: created, updated, unchanged
EVENTS = "events"  # by outcome: accepted, duplicate, rejected


class Tally:
    """Named counters, each split by an outcome label."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counts: dict[str, Counter[str]] = {}

    def add(self, name: str, outcome: str, n: int = 1) -> None:
        if n <= 0:
            return
        with self._lock:
            self._counts.setdefault(name, Counter())[outcome] += n

    def snapshot(self) -> dict[str, Mapping[str, int]]:
        with self._lock:
            return {name: dict(counts) for name, counts in self._counts.items()}
