"""A fixed-bucket histogram kept by a component and read by ``/metrics`` at scrape time, so
the component needs no metrics library (thread-safe)."""

from __future__ import annotations

import bisect
import threading
from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class BucketCounts:
    bounds: tuple[float, ...]  # upper bounds, ascending; +Inf is implied
    counts: tuple[int, ...]  # per bucket (not cumulative), one more than ``bounds``
    total: float  # sum of the observed values

    @property
    def count(self) -> int:
        return sum(self.counts)


class Buckets:
    def __init__(self, bounds: Sequence[float]) -> None:
        self._bounds = tuple(sorted(bounds))
        self._counts = [0] * (len(self._bounds) + 1)
        self._total = 0.0
        self._lock = threading.Lock()

    def observe(self, value: float) -> None:
        with self._lock:
            self._counts[bisect.bisect_left(self._bounds, value)] += 1
            self._total += value

    def snapshot(self) -> BucketCounts:
        with self._lock:
            return BucketCounts(self._bounds, tuple(self._counts), self._total)
