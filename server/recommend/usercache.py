"""Per-user work kept between requests, and computed ahead of them.

A Recommend call for a user with history spends about half its time on two things that do not
change from one request to the next: building the profile (history -> tastes, with a text-tower
pass for recent searches) and the nearest-neighbour searches of those tastes. ``UserCache``
keeps both per user (bounded, time-limited, versioned against invalidation) and
``Precomputer`` fills it from one background thread: for recently active users after each
derived-state rebuild, and again for a user shortly after their events. A request that finds
no entry computes it itself, as before, and leaves it for the next request.

Only what the request does not change is kept, for the default request of a surface (no
filter, seed or steering text, seen items excluded): the nearest-neighbour proposals of the
user's tastes, the proposals of the sources that read the catalogue's newest posts (fresh,
following), and the co-engagement scores and the proposals of the sources that read only the
derived-state snapshot (co-engagement, cohort, cold), and, while a learned ranker serves, what
the collaborative core makes of the user (their history in its items, their ALS vectors, their
item-kNN and RP3beta scores, its candidates). The catalogue sources' proposals are
reused only while the vector store reports the same content version, so a post indexed after
the entry was built reaches the user's next request through them, and the snapshot's only
while the recommender serves the same snapshot; the nearest-neighbour proposals are not
renewed for new posts (the fresh source covers those). Items the user has seen since are
dropped when candidates are gathered.
"""

from __future__ import annotations

import logging
import threading
import time
import weakref
from collections import OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

import numpy as np

from mediarec.server.recommend.collab import UserHistory, UserScores
from mediarec.server.recommend.hits import HitCounter
from mediarec.server.recommend.profile import UserProfile
from mediarec.server.recommend.sources import ProposalTuple
from mediarec.server.recommend.state import CoScores, DerivedState

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class CollabWork:
    """What the snapshot's collaborative core makes of the user, for the learned ranker."""

    history: UserHistory
    scores: UserScores  # without the per-item ALS array (``UserScores.kept``)
    candidates: np.ndarray  # item indices the core proposes (``collab_candidates`` per source)


@dataclass(frozen=True)
class SnapshotWork:
    """What a default request computed from one derived-state snapshot and the profile."""

    # A weak reference, so an entry never keeps a replaced snapshot alive.
    state: weakref.ref[DerivedState]
    coscores: CoScores
    proposals: dict[str, tuple[ProposalTuple, ...]]  # source -> proposals
    collab: CollabWork | None = None  # added by the warming, or the first learned request

    def is_for(self, state: DerivedState) -> bool:
        return self.state() is state


@dataclass
class UserEntry:
    profile: UserProfile
    built_monotonic: float
    # Nearest-neighbour proposals of a surface's default request, by surface.
    nearest: dict[str, tuple[ProposalTuple, ...]] = field(default_factory=dict)
    # The catalogue sources' proposals (source -> proposals) of a surface's default request,
    # by surface, with the store's content version they were read at.
    catalogue: dict[str, tuple[int, dict[str, tuple[ProposalTuple, ...]]]] = field(
        default_factory=dict
    )
    # The snapshot sources' work, for every surface (none of them reads it).
    snapshot: SnapshotWork | None = None


class UserCache:
    """Bounded LRU of :class:`UserEntry`, valid for ``ttl_s`` (monotonic and request time).

    ``version(user)`` changes whenever the user is invalidated (or the whole cache cleared), so
    a computation that started before an invalidation cannot store its (stale) result after it.
    Versions come from one counter that only grows: a user without a counter of their own reads
    the floor, which ``clear()`` and pruning raise to the newest version.
    """

    def __init__(
        self,
        max_entries: int,
        ttl_s: float,
        *,
        max_bytes: int = 0,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._max_entries = max_entries
        self._ttl_s = ttl_s
        self._max_bytes = max_bytes  # 0: no bound in bytes
        self._monotonic = monotonic
        self._lock = threading.Lock()
        self._entries: OrderedDict[str, UserEntry] = OrderedDict()
        # Each entry's estimated size, measured when stored and again at each hit: requests
        # add a surface's proposals to an entry after it is stored.
        self._sizes: dict[str, int] = {}
        self._bytes = 0
        self._versions: dict[str, int] = {}
        self._newest = 0  # the last version handed out
        self._floor = 0  # the version of every user without a counter
        self.counts = HitCounter()

    def get(self, user_id: str, now: float) -> UserEntry | None:
        """The user's entry if it is younger than the TTL by both clocks, else None."""
        with self._lock:
            entry = self._entries.get(user_id)
            if entry is not None and self._monotonic() - entry.built_monotonic > self._ttl_s:
                self._drop(user_id)  # expired: its bytes go back now, not at eviction
                entry = None
            fresh = entry is not None and abs(now - entry.profile.built_at) <= self._ttl_s
            self.counts.record(int(fresh), int(not fresh))
            if entry is None or not fresh:
                return None
            self._entries.move_to_end(user_id)
            size = user_entry_bytes(entry)
            self._bytes += size - self._sizes[user_id]
            self._sizes[user_id] = size
            self._evict()
            return entry

    @property
    def size_bytes(self) -> int:
        with self._lock:
            return self._bytes

    def _drop(self, user_id: str) -> bool:
        """Forget one entry (the lock is held); True if there was one."""
        if self._entries.pop(user_id, None) is None:
            return False
        self._bytes -= self._sizes.pop(user_id)
        return True

    def _evict(self) -> None:
        """Least recently used first, until within both bounds, and then the expired ones
        among the least recently used (the lock is held)."""
        while self._entries and (
            len(self._entries) > self._max_entries
            or (self._max_bytes and self._bytes > self._max_bytes)
        ):
            self._drop(next(iter(self._entries)))
        now = self._monotonic()
        while self._entries:
            user_id, entry = next(iter(self._entries.items()))
            if now - entry.built_monotonic <= self._ttl_s:
                break
            self._drop(user_id)

    def is_warm(self, user_id: str) -> bool:
        """Whether the user has an entry in the first half of its lifetime (rebuilding it
        now would be wasted work)."""
        with self._lock:
            entry = self._entries.get(user_id)
            return entry is not None and not self.is_aging(entry)

    def is_aging(self, entry: UserEntry) -> bool:
        """Past half its lifetime: still served, but worth rebuilding before it expires."""
        return self._monotonic() - entry.built_monotonic >= self._ttl_s / 2

    def version(self, user_id: str) -> int:
        with self._lock:
            return self._versions.get(user_id, self._floor)

    def put(self, user_id: str, entry: UserEntry, version: int) -> bool:
        """Store ``entry`` unless the user was invalidated since ``version`` was read."""
        if self._max_entries <= 0:
            return False
        with self._lock:
            if self._versions.get(user_id, self._floor) != version:
                return False
            self._drop(user_id)
            self._entries[user_id] = entry
            self._sizes[user_id] = user_entry_bytes(entry)
            self._bytes += self._sizes[user_id]
            self._evict()
            return user_id in self._entries

    def invalidate(self, user_id: str) -> bool:
        """Drop the user's entry; True if there was one."""
        with self._lock:
            self._newest += 1
            self._versions[user_id] = self._newest
            if len(self._versions) > 4 * max(1, self._max_entries):
                # Forgetting the counters is safe once the floor passes them all: computations
                # in flight then fail their check and simply store nothing.
                self._floor = self._newest
                self._versions.clear()
            return self._drop(user_id)

    def clear(self) -> None:
        with self._lock:
            self._newest += 1
            self._floor = self._newest
            self._versions.clear()
            self._entries.clear()
            self._sizes.clear()
            self._bytes = 0

    def __len__(self) -> int:
        with self._lock:
            return len(self._entries)


# Estimated costs in CPython: one element of a profile's dicts, sets and tuples (a slot and a
# short id), one kept proposal (a 3-tuple with its strings), and an entry's fixed part.
_ELEMENT_BYTES = 120
_PROPOSAL_BYTES = 160
_ENTRY_BYTES = 4096


def user_entry_bytes(entry: UserEntry) -> int:
    """About how much memory an entry holds: its vectors exactly, the rest by element counts,
    so measuring it costs a few dozen len() calls, not a walk over every id."""
    profile, summary = entry.profile, entry.profile.summary
    elements = (
        len(summary.positives) + len(summary.positive_at) + len(summary.negatives)
        + len(summary.seen) + 2 * len(summary.recent_seen) + len(summary.impressions)
        + len(summary.hidden_creators) + len(summary.creator_affinity) + len(summary.searches)
        + len(profile.follows) + len(profile.liked_topics) + len(profile.liked_tags)
        + len(profile.engaged_creators)
        + sum(len(c.media_ids) for c in profile.clusters)
    )  # fmt: skip
    vectors = (
        sum(c.vector.nbytes for c in profile.clusters)
        + sum(t.vector.nbytes for t in profile.interests)
        + profile.negative_vectors.nbytes
        + sum(v.nbytes for v in profile.positive_vectors.values())
        + (profile.taste.nbytes if profile.taste is not None else 0)
    )
    proposals = sum(len(kept) for kept in entry.nearest.values()) + sum(
        len(by_source) for _, sources in entry.catalogue.values() for by_source in sources.values()
    )
    work = entry.snapshot
    if work is not None:
        proposals += sum(len(by_source) for by_source in work.proposals.values())
        coscores = work.coscores
        vectors += coscores.items.nbytes + coscores.totals.nbytes + coscores.counts.nbytes
        collab = work.collab
        if collab is not None:
            history = collab.history
            vectors += history.positives.nbytes + history.interactions.nbytes
            vectors += collab.scores.nbytes + collab.candidates.nbytes
    return _ENTRY_BYTES + elements * _ELEMENT_BYTES + int(vectors) + proposals * _PROPOSAL_BYTES


class Precomputer:
    """One daemon thread that runs ``warm(user_id)`` for scheduled users, oldest first.

    Bursts coalesce: a user scheduled again while queued is warmed once, ``delay_s`` after
    their last scheduling (a session's events arrive in quick succession; a user who keeps
    acting is served by their own requests meanwhile). Users scheduled without a delay go
    first. ``warm`` should skip users that a request already warmed.
    """

    def __init__(
        self,
        warm: Callable[[str], None],
        delay_s: float,
        *,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._warm = warm
        self._delay_s = delay_s
        self._monotonic = monotonic
        self._changed = threading.Condition()
        self._ready: OrderedDict[str, None] = OrderedDict()  # due now, in order
        self._delayed: OrderedDict[str, float] = OrderedDict()  # user -> when it is due
        self._busy = False
        self._current = ""  # the user being warmed
        self._closed = False
        self._thread: threading.Thread | None = None

    def schedule(self, user_ids: Iterable[str], *, delay: bool = True) -> None:
        due = self._monotonic() + (self._delay_s if delay else 0.0)
        with self._changed:
            if self._closed:
                return
            for user_id in user_ids:
                if not user_id or user_id in self._ready:
                    continue
                if not delay:
                    self._delayed.pop(user_id, None)
                    self._ready[user_id] = None
                else:
                    self._delayed[user_id] = due
                    self._delayed.move_to_end(user_id)  # keeps the queue in order of due time
            if (self._ready or self._delayed) and self._thread is None:
                self._thread = threading.Thread(
                    target=self._loop, name="recommend-precompute", daemon=True
                )
                self._thread.start()
            self._changed.notify_all()

    def cancel(self, user_id: str) -> None:
        """Unschedule a user and wait for a warming of theirs in progress to end."""
        with self._changed:
            self._ready.pop(user_id, None)
            self._delayed.pop(user_id, None)
            while self._busy and self._current == user_id:
                self._changed.wait()

    def wait_idle(self, timeout: float | None = None) -> bool:
        """Wait until nothing is queued or running (tests, benchmarks); False on timeout."""
        deadline = None if timeout is None else self._monotonic() + timeout
        with self._changed:
            while self._ready or self._delayed or self._busy:
                left = None if deadline is None else deadline - self._monotonic()
                if left is not None and left <= 0:
                    return False
                self._changed.wait(left)
            return True

    def close(self) -> None:
        with self._changed:
            self._closed = True
            self._ready.clear()
            self._delayed.clear()
            self._changed.notify_all()
            thread = self._thread
        if thread is not None:
            thread.join(10.0)

    def _loop(self) -> None:
        while True:
            with self._changed:
                while not self._closed:
                    if self._ready:
                        user_id, _ = self._ready.popitem(last=False)
                        self._busy, self._current = True, user_id
                        break
                    if self._delayed:  # all share one delay: the first is due first
                        user_id, due = next(iter(self._delayed.items()))
                        wait = due - self._monotonic()
                        if wait <= 0:
                            del self._delayed[user_id]
                            self._busy, self._current = True, user_id
                            break
                        self._changed.wait(wait)
                    else:
                        self._changed.wait()
                if self._closed:
                    self._busy = False
                    self._changed.notify_all()
                    return
            try:
                self._warm(user_id)
            except Exception:  # a user's bad data must not stop the others' precompute
                logger.exception("precomputing a user's recommendations failed")
                logger.debug("the user whose precompute failed: %r", user_id)
            finally:
                with self._changed:
                    self._busy, self._current = False, ""
                    self._changed.notify_all()
