"""A bound on CPU-heavy request work: decoding photos and video frames.

Decoding runs in C with the GIL released, so every request thread decoding at once can take
every core, and cheap calls (get, search by text, recommend, events) then wait for CPU behind
them. The gate lets at most ``slots`` requests decode at a time (by default one core fewer
than the machine has), keeps at most ``max_waiting`` more waiting for a slot (each waiting
request holds a gRPC worker thread, so that bound leaves threads for everything else), and
refuses the rest at once with RESOURCE_EXHAUSTED: a client retries later rather than queueing
without end. A waiting request gives up when its own deadline passes. Embedding is bounded
separately: the embed batcher runs one forward pass at a time.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager

from mediarec.server.service_errors import DeadlineExceededError, ResourceLimitError


def default_slots() -> int:
    """One core fewer than the machine has, and at least one."""
    return max(1, (os.cpu_count() or 2) - 1)


class CpuGate:
    """At most ``slots`` holders at once and ``max_waiting`` waiting; the rest are refused."""

    def __init__(self, slots: int, max_waiting: int) -> None:
        if slots < 1 or max_waiting < 0:
            raise ValueError("a CPU gate needs at least one slot and a non-negative queue")
        self.slots = slots
        self.max_waiting = max_waiting
        self._free = threading.Semaphore(slots)
        self._lock = threading.Lock()
        self._waiting = 0

    @property
    def waiting(self) -> int:
        with self._lock:
            return self._waiting

    @contextmanager
    def admitted(self, timeout_s: float | None = None) -> Iterator[None]:
        """Hold a slot for the body; ``timeout_s`` is how long the caller may wait for one
        (None: as long as it takes)."""
        if not self._free.acquire(blocking=False):
            with self._lock:
                if self._waiting >= self.max_waiting:
                    raise ResourceLimitError(
                        "cpu",
                        f"the server is decoding {self.slots} uploads with {self._waiting} more "
                        "waiting; retry shortly",
                    )
                self._waiting += 1
            try:
                acquired = self._free.acquire(timeout=timeout_s)
            finally:
                with self._lock:
                    self._waiting -= 1
            if not acquired:
                raise DeadlineExceededError(
                    "the request's deadline passed while it waited to decode its media"
                )
        try:
            yield
        finally:
            self._free.release()
