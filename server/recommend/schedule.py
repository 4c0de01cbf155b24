"""A background job that runs every ``interval_s`` until closed (the learned ranker's training)."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

logger = logging.getLogger(__name__)


class Periodic:
    """Runs ``job`` every ``interval_s`` seconds on a daemon thread; a failing run is logged
    and the next one still comes. ``close()`` stops it (waiting for a run in flight)."""

    def __init__(self, job: Callable[[], None], interval_s: float, name: str) -> None:
        if interval_s <= 0:
            raise ValueError(f"interval_s must be > 0, got {interval_s}")
        self._job = job
        self._interval_s = interval_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name=name, daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        while not self._stop.wait(self._interval_s):
            try:
                self._job()
            except Exception:  # the service goes on with the model it has
                logger.exception("scheduled %s failed", self._thread.name)

    def close(self, timeout: float | None = None) -> None:
        self._stop.set()
        if self._thread is not threading.current_thread():
            self._thread.join(timeout)
