"""Served items go to the engagement store from a background thread, off the request path.

A durable SQLite commit costs an fsync (milliseconds); a Recommend response should not wait
for it. The served log is training data, not something a client was promised, so the trade is
a crash losing the last moments of it. Fatigue does not depend on it: the recommender counts
impressions in memory as it serves. ``flush()`` waits until everything submitted before it is
stored (a rebuild and ``forget_user`` call it, so a forgotten user's impressions never land
later); what other requests submit meanwhile does not hold it up. ``close()`` stores what was
submitted before it.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Sequence

from mediarec.server.recommend.types import EngagementStore, ServedItem

logger = logging.getLogger(__name__)

_MAX_BATCH = 2000
_PUT_RETRY_S = 0.5  # how often a submit that waits for room checks that the writer still runs


class ServedLogWriter:
    def __init__(self, engagement: EngagementStore, max_pending: int = 10_000) -> None:
        self._engagement = engagement
        # (sequence number, items) per response; None stops the writer.
        self._queue: queue.Queue[tuple[int, list[ServedItem]] | None] = queue.Queue(
            maxsize=max_pending
        )
        # Responses are numbered as they are submitted; ``_stored_through`` is the highest
        # number up to which every response is stored (or failed). A flush waits for the
        # number it saw, not for an empty queue, which steady traffic may never leave.
        self._progress = threading.Condition()
        self._submitted = 0
        self._stored_through = 0
        self._stored_beyond: set[int] = set()  # stored, but an earlier one is not yet
        self._stopped = False  # the writer has returned (closed, or died): nothing more lands
        self._thread = threading.Thread(target=self._run, name="served-log", daemon=True)
        self._thread.start()
        self._closed = False

    def submit(self, items: Sequence[ServedItem]) -> None:
        """Queue items for storage (blocks only when ``max_pending`` responses are waiting,
        and gives up once the writer has stopped: nothing would take them off the queue)."""
        if items and not self._closed:
            with self._progress:
                self._submitted += 1
                number = self._submitted
            self._put((number, list(items)))

    def flush(self) -> None:
        """Return once every item submitted so far is stored (or failed and was logged), or
        once the writer has stopped."""
        with self._progress:
            wanted = self._submitted
            self._progress.wait_for(lambda: self._stored_through >= wanted or self._stopped)

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._put(None)
        self._thread.join()

    def _put(self, entry: tuple[int, list[ServedItem]] | None) -> None:
        """Queue ``entry``, waiting for room while the writer runs (a dead one frees none)."""
        while True:
            try:
                self._queue.put(entry, timeout=_PUT_RETRY_S)
                return
            except queue.Full:
                if self._stopped:
                    return

    def _run(self) -> None:
        try:
            self._write_until_stopped()
        finally:
            with self._progress:
                self._stopped = True
                self._progress.notify_all()

    def _write_until_stopped(self) -> None:
        while True:
            first = self._queue.get()
            if first is None:
                return
            batches = [first]
            stop = False
            while sum(len(b) for _, b in batches) < _MAX_BATCH:
                try:
                    more = self._queue.get_nowait()
                except queue.Empty:
                    break
                if more is None:
                    stop = True
                    break
                batches.append(more)
            try:
                self._engagement.log_served([item for _, batch in batches for item in batch])
            except Exception:  # the store is failing; requests go on, the loss is logged
                logger.exception("logging %d served responses failed", len(batches))
            with self._progress:
                self._stored_beyond.update(number for number, _ in batches)
                while self._stored_through + 1 in self._stored_beyond:
                    self._stored_through += 1
                    self._stored_beyond.remove(self._stored_through)
                self._progress.notify_all()
            if stop:
                return
