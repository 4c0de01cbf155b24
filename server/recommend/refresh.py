"""Rebuilds derived state off the request path: in a background thread, one at a time.

``notify(n)`` counts new events and starts a background rebuild once enough have arrived:
``refresh_min_events`` of them, at most one rebuild per ``refresh_min_interval_s`` (events that
arrive inside the interval get a rebuild when it ends, even if no more come), at least one per
``refresh_max_interval_s`` while events keep coming, and at once, whatever the interval, when
``refresh_max_pending_events`` are waiting. Served pages count toward the longest interval
only: what they add (fatigue, the served log) waits in memory until a rebuild takes it in, so a
server that serves but receives no events still rebuilds once per ``refresh_max_interval_s``.
Whatever is pending when no rule is due yet is picked up when one becomes due, even if nothing
else arrives. ``run_now()`` rebuilds synchronously, after any rebuild in flight. Requests never
wait on either.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from mediarec.server.recommend.settings import RecommendSettings

logger = logging.getLogger(__name__)


class Refresher:
    def __init__(
        self,
        rebuild: Callable[[], None],
        settings: RecommendSettings,
        *,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._rebuild = rebuild
        self._settings = settings
        self._monotonic = monotonic
        self._build_lock = threading.Lock()  # one rebuild at a time
        self._lock = threading.Lock()  # guards the fields below
        self._pending_events = 0
        self._pending_served = 0  # items served since the last rebuild started
        self._last_started = float("-inf")
        self._thread: threading.Thread | None = None
        self._again = False
        self._running = False
        self._closed = False
        self._deferred: threading.Timer | None = None  # a rebuild due when an interval ends
        self._deferred_at = float("inf")  # when it fires (monotonic)
        # Bumped whenever a rebuild takes the pending work: a timer set before then is stale.
        self._generation = 0

    @property
    def running(self) -> bool:
        """True while a rebuild is in flight."""
        return self._running or self._build_lock.locked()

    def notify(self, events: int) -> None:
        """``events`` new events were logged; maybe start a background rebuild."""
        with self._lock:
            self._pending_events += events
        self._check()

    def notify_served(self, items: int) -> None:
        """``items`` were served; they count toward the longest interval only."""
        with self._lock:
            self._pending_served += items
        self._check()

    def _check(self) -> None:
        """Start a rebuild when a rule is due, else defer one to when the next rule will be."""
        with self._lock:
            since = self._monotonic() - self._last_started
            s = self._settings
            pending = self._pending_events > 0 or self._pending_served > 0
            enough = self._pending_events >= s.refresh_min_events
            due = (
                (enough and since >= s.refresh_min_interval_s)
                or self._pending_events >= s.refresh_max_pending_events
                or (pending and since >= s.refresh_max_interval_s)
            )
            if due or not pending:
                defer_s = None
            else:
                defer_s = (s.refresh_min_interval_s if enough else s.refresh_max_interval_s) - since
            generation = self._generation
        if due:
            self.request()
        elif defer_s is not None:
            self._defer(defer_s, generation)

    def _defer(self, delay_s: float, generation: int) -> None:
        # Without this, a burst that ends inside the interval (an import right after start-up),
        # or a few events followed by silence, would wait for the next event to be picked up,
        # which may never come. One timer at a time: the earliest wins.
        with self._lock:
            if self._closed or generation != self._generation:  # a rebuild took the work
                return
            fires_at = self._monotonic() + max(0.0, delay_s)
            alive = self._deferred is not None and self._deferred.is_alive()
            if alive and self._deferred_at <= fires_at:
                return
            if self._deferred is not None:
                self._deferred.cancel()
            self._deferred = threading.Timer(
                max(0.0, delay_s), self._deferred_due, args=(generation,)
            )
            self._deferred.daemon = True
            self._deferred_at = fires_at
            self._deferred.start()

    def _deferred_due(self, generation: int) -> None:
        # The timer was set for when a rule becomes due. A rebuild since the deferral (Refresh,
        # an import, the count rule) took the pending work in; then there is nothing to do.
        with self._lock:
            due = generation == self._generation and (
                self._pending_events > 0 or self._pending_served > 0
            )
        if due:
            self.request()

    def request(self) -> None:
        """Start a background rebuild now (or once more after the one in flight)."""
        with self._lock:
            if self._closed:
                return
            if self._running:
                self._again = True
                return
            self._running = True
            # Taken now, not when the thread gets going: until then every page served would
            # still find the rule due and queue a second rebuild right after this one.
            self._take_pending()
            self._thread = threading.Thread(
                target=self._loop, name="recommend-refresh", daemon=True
            )
            self._thread.start()

    def run_now(self) -> None:
        """Rebuild synchronously (waits for a rebuild in flight first)."""
        with self._build_lock:
            self._run_once()

    def wait(self, timeout: float | None = None) -> bool:
        """Wait for the background rebuild in flight, if any; False on timeout."""
        thread = self._thread
        if thread is None:
            return True
        thread.join(timeout)
        return not thread.is_alive()

    def close(self, timeout: float | None = 10.0) -> None:
        with self._lock:
            self._closed = True
            self._again = False
            if self._deferred is not None:
                self._deferred.cancel()
        self.wait(timeout)

    def _loop(self) -> None:
        while True:
            with self._build_lock:
                try:
                    self._run_once()
                except Exception:  # a failed rebuild keeps the old snapshot; log and go on
                    logger.exception("rebuilding the recommender's derived state failed")
            with self._lock:
                if not self._again or self._closed:
                    self._running = False
                    return
                self._again = False

    def _run_once(self) -> None:
        with self._lock:
            self._take_pending()
        self._rebuild()

    def _take_pending(self) -> None:
        """A rebuild is starting and reads everything logged so far (the lock is held)."""
        self._pending_events = 0
        self._pending_served = 0
        self._last_started = self._monotonic()
        self._generation += 1
        if self._deferred is not None:
            self._deferred.cancel()
            self._deferred = None
