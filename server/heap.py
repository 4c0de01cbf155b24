"""The garbage collector's view of a serving process, set once at startup."""

from __future__ import annotations

import gc
import logging
import threading
import time

logger = logging.getLogger(__name__)


def freeze_startup_objects() -> int:
    """Move every object alive now (imported libraries, the loaded model, the opened stores)
    to the collector's permanent generation, so full collections skip them; returns how many.

    torch, transformers and grpc leave hundreds of thousands of tracked objects behind, none
    of which ever becomes garbage, and a full collection walks them all each time, while the
    Recommend call it falls into waits. Objects made later (caches, requests) are collected
    as usual.
    """
    gc.collect()
    gc.freeze()
    frozen = gc.get_freeze_count()
    logger.info("%d startup objects frozen out of garbage collection", frozen)
    return frozen


class FullCollections:
    """Full collections on a timer, instead of whenever the old generation has grown by a
    quarter.

    A serving process keeps caches (user profiles and candidates, item infos, rankings for
    paging) whose objects reach the old generation and are replaced as they age, so the
    default policy runs a full collection every hundred or so Recommend calls, and the call it
    falls into waits for it: the slowest warm calls (`make bench-speed`). Young generations
    are still collected as usual; only unreachable cycles that survive into the old one wait
    up to ``interval_s`` to be freed.
    """

    # Automatic full collections need this many young collections first: never, in practice.
    _NEVER = 1 << 30

    def __init__(self, interval_s: float) -> None:
        if gc.get_threshold()[2] == self._NEVER:
            raise RuntimeError("full collections are already on a timer in this process")
        self._interval_s = interval_s
        self._stop = threading.Event()
        self._previous = gc.get_threshold()
        young, middle, _ = self._previous
        gc.set_threshold(young, middle, self._NEVER)
        self._thread = threading.Thread(target=self._run, name="full-gc", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(self._interval_s):
            started = time.monotonic()
            found = gc.collect()
            logger.debug("full collection: %d unreachable in %.0f ms", found,
                         1000 * (time.monotonic() - started))  # fmt: skip

    def close(self) -> None:
        """Stop the timer and give the collector its previous thresholds back."""
        self._stop.set()
        self._thread.join()
        gc.set_threshold(*self._previous)


def schedule_full_collections(interval_s: float) -> FullCollections | None:
    """Full collections every ``interval_s`` seconds; 0 keeps CPython's default policy."""
    if interval_s == 0:
        return None
    if interval_s < 1.0:
        raise ValueError(
            f"full collections every {interval_s} s would stall requests without pause; "
            "use at least 1 s, or 0 for CPython's default policy"
        )
    return FullCollections(interval_s)
