"""Served items go to the engagement store from a background thread, off the request path.

A durable SQLite commit costs an fsync (milliseconds); a Recommend response should not wait
for it. The served log is training data, not something a client was promised, so the trade is
a crash losing the last moments of it. Fatigue does not depend on it: the recommender counts
impressions in memory as it serves. ``flush()`` waits until everything submitted is stored
(``forget_user`` and ``close`` call it, so a forgotten user's impressions never land later).
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Sequence

from mediarec.server.recommend.types import EngagementStore, ServedItem

logger = logging.getLogger(__name__)

_MAX_BATCH = 2000


class ServedLogWriter:
    def __init__(self, engagement: EngagementStore, max_pending: int = 10_000) -> None:
        self._engagement = engagement
        self._queue: queue.Queue[list[ServedItem] | None] = queue.Queue(maxsize=max_pending)
        self._thread = threading.Thread(target=self._run, name="served-log", daemon=True)
        self._thread.start()
        self._closed = False

    def submit(self, items: Sequence[ServedItem]) -> None:
        """Queue items for storage (blocks only when ``max_pending`` responses are waiting)."""
        if items and not self._closed:
            self._queue.put(list(items))

    def flush(self) -> None:
        """Return once every item submitted so far is stored (or failed and was logged)."""
        self._queue.join()

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._queue.put(None)
        self._thread.join()

    def _run(self) -> None:
        while True:
            first = self._queue.get()
            if first is None:
                self._queue.task_done()
                return
            batches = [first]
            stop = False
            while sum(len(b) for b in batches) < _MAX_BATCH:
                try:
                    more = self._queue.get_nowait()
                except queue.Empty:
                    break
                if more is None:
                    stop = True
                    break
                batches.append(more)
            try:
                self._engagement.log_served([item for batch in batches for item in batch])
            except Exception:  # the store is failing; requests go on, the loss is logged
                logger.exception("logging %d served responses failed", len(batches))
            for _ in range(len(batches) + (1 if stop else 0)):
                self._queue.task_done()
            if stop:
                return
