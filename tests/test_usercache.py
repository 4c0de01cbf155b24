"""UserCache and Precomputer: pure logic (profiles are stand-ins; no store is involved)."""

from __future__ import annotations

import threading

import numpy as np

from mediarec.server.recommend.profile import EngagementSummary, UserProfile
from mediarec.server.recommend.usercache import Precomputer, UserCache, UserEntry, user_entry_bytes


class Clock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


def profile(built_at: float, seen: int = 0) -> UserProfile:
    """An empty profile (``seen`` items in its history), built at ``built_at``."""
    ids = tuple(f"m{i}" for i in range(seen))
    return UserProfile(
        user_id="u", summary=EngagementSummary(seen=frozenset(ids)), clusters=(), interests=(),
        follows=frozenset(), negative_vectors=np.zeros((0, 8), np.float32),
        negative_weights=np.zeros(0, np.float32), positive_vectors={}, liked_topics={},
        liked_tags={}, engaged_creators=frozenset(), confidence=0.0, taste=None,
        built_at=built_at,
    )  # fmt: skip


def entry(clock: Clock, built_at: float = 5_000.0, seen: int = 0) -> UserEntry:
    return UserEntry(profile(built_at, seen), clock())


def test_an_entry_lives_for_the_ttl_by_both_clocks() -> None:
    clock = Clock()
    cache = UserCache(10, ttl_s=60, monotonic=clock)
    assert cache.put("u", entry(clock), cache.version("u"))
    assert cache.get("u", now=5_030.0) is not None
    assert cache.get("u", now=5_100.0) is None  # a request replaying a time far from the build
    clock.t += 61
    assert cache.get("u", now=5_000.0) is None  # simply too old


def test_expired_entries_give_back_their_bytes_without_waiting_for_eviction() -> None:
    clock = Clock()
    cache = UserCache(10, ttl_s=60, monotonic=clock)
    for user in ("a", "b"):
        assert cache.put(user, entry(clock), cache.version(user))
    one = cache.size_bytes // 2
    clock.t += 61
    assert cache.get("a", now=5_000.0) is None and cache.size_bytes == one  # read: dropped
    assert cache.put("c", entry(clock), cache.version("c"))  # "b", least recently used, too
    assert len(cache) == 1 and cache.size_bytes == one


def test_a_computation_that_started_before_an_invalidation_is_not_stored() -> None:
    clock = Clock()
    cache = UserCache(10, ttl_s=60, monotonic=clock)
    version = cache.version("u")  # a request starts building ...
    assert not cache.invalidate("u")  # ... an event arrives meanwhile (no entry yet)
    assert not cache.put("u", entry(clock), version)
    assert cache.get("u", now=5_000.0) is None
    assert cache.put("u", entry(clock), cache.version("u"))
    assert cache.invalidate("u")
    assert cache.get("u", now=5_000.0) is None


def test_the_cache_is_bounded_least_recently_used_first() -> None:
    clock = Clock()
    cache = UserCache(2, ttl_s=60, monotonic=clock)
    for user in ("a", "b"):
        cache.put(user, entry(clock), cache.version(user))
    cache.get("a", now=5_000.0)  # "b" is now the least recently used
    cache.put("c", entry(clock), cache.version("c"))
    assert len(cache) == 2
    assert cache.get("b", now=5_000.0) is None
    assert cache.get("a", now=5_000.0) is not None


def test_is_warm_and_clear() -> None:
    clock = Clock()
    cache = UserCache(10, ttl_s=60, monotonic=clock)
    cache.put("u", entry(clock), cache.version("u"))
    assert cache.is_warm("u")  # younger than half the TTL
    clock.t += 31
    assert not cache.is_warm("u")
    cache.clear()
    assert len(cache) == 0 and not cache.is_warm("u")


def test_the_precomputer_warms_each_scheduled_user_once_and_survives_failures() -> None:
    warmed: list[str] = []
    lock = threading.Lock()

    def warm(user: str) -> None:
        with lock:
            warmed.append(user)
        if user == "bad":
            raise ValueError("broken history")

    precomputer = Precomputer(warm, delay_s=0.05)
    try:
        precomputer.schedule(["a", "bad", "a", "b"])
        precomputer.schedule(["b", "c"], delay=False)
        assert precomputer.wait_idle(timeout=10)
        assert sorted(warmed) == ["a", "b", "bad", "c"]
        precomputer.schedule(["a"])  # once done, a user can be scheduled again
        assert precomputer.wait_idle(timeout=10)
        assert warmed.count("a") == 2
    finally:
        precomputer.close()
    precomputer.schedule(["late"])  # closed: ignored
    assert "late" not in warmed


def test_scheduling_waits_the_delay() -> None:
    started = threading.Event()
    precomputer = Precomputer(lambda user: started.set(), delay_s=30.0)
    try:
        precomputer.schedule(["u"])
        assert not started.wait(0.3)  # not before its delay ...
        assert not precomputer.wait_idle(timeout=0.1)
        precomputer.schedule(["v"], delay=False)  # a user due now does not wait behind "u"
        assert started.wait(5.0)
    finally:
        precomputer.close()


def test_clearing_or_evicting_never_lets_older_work_back_in() -> None:
    clock = Clock()
    cache = UserCache(1, ttl_s=60, monotonic=clock)
    started = cache.version("u")  # work for a user without an entry starts ...
    cache.clear()  # ... and a full refresh happens meanwhile
    assert not cache.put("u", entry(clock), started)

    started = cache.version("u")
    cache.invalidate("u")  # the user's event
    cache.put("v", entry(clock), cache.version("v"))
    cache.put("w", entry(clock), cache.version("w"))  # evicts "v" (one entry at most)
    assert not cache.put("u", entry(clock), started)
    for user in ("a", "b", "c", "d", "e"):  # enough invalidations to prune the counters
        cache.invalidate(user)
    assert not cache.put("u", entry(clock), started)
    assert cache.put("u", entry(clock), cache.version("u"))


def test_cancel_unschedules_a_user_and_waits_for_their_warming() -> None:
    inside, release = threading.Event(), threading.Event()
    warmed: list[str] = []

    def warm(user: str) -> None:
        if user == "slow":
            inside.set()
            release.wait(10)
        warmed.append(user)

    precomputer = Precomputer(warm, delay_s=30.0)
    try:
        precomputer.schedule(["slow"], delay=False)
        precomputer.schedule(["later"])
        assert inside.wait(5)
        precomputer.cancel("later")  # queued: simply dropped
        cancelled = threading.Thread(target=precomputer.cancel, args=("slow",))
        cancelled.start()
        cancelled.join(0.2)
        assert cancelled.is_alive()  # waits for the warming in progress ...
        release.set()
        cancelled.join(5)
        assert not cancelled.is_alive() and warmed == ["slow"]  # ... which then ends
        assert precomputer.wait_idle(timeout=5)
    finally:
        precomputer.close()


def test_entries_past_the_byte_bound_leave_oldest_first_and_growth_is_counted() -> None:
    clock = Clock()
    one = user_entry_bytes(entry(clock, seen=100))
    cache = UserCache(100, ttl_s=60, max_bytes=int(2.5 * one), monotonic=clock)
    for user in "abc":
        assert cache.put(user, entry(clock, seen=100), cache.version(user))
    assert len(cache) == 2 and cache.size_bytes == 2 * one  # "a" went first
    kept = cache.get("c", now=5_000.0)
    assert kept is not None
    kept.nearest["FEED"] = tuple((f"m{i}", "content", 1.0) for i in range(100))
    assert cache.get("c", now=5_000.0) is not None  # re-measured: it grew past the bound ...
    assert cache.get("b", now=5_000.0) is None  # ... so the older entry went
    assert cache.size_bytes == user_entry_bytes(kept)
    assert cache.invalidate("c") and cache.size_bytes == 0


def test_an_entry_bigger_than_the_whole_bound_is_not_kept() -> None:
    clock = Clock()
    cache = UserCache(10, ttl_s=60, max_bytes=1024, monotonic=clock)
    assert not cache.put("u", entry(clock, seen=1000), cache.version("u"))
    assert len(cache) == 0 and cache.size_bytes == 0


def test_the_core_work_kept_with_the_snapshot_work_is_counted() -> None:
    import weakref

    from mediarec.server.recommend.collab import UserHistory, UserScores, UserTaste
    from mediarec.server.recommend.rows import RowValues
    from mediarec.server.recommend.state import CoEngagement, DerivedState
    from mediarec.server.recommend.usercache import CollabWork, SnapshotWork

    state = DerivedState()
    with_scores = entry(Clock())
    with_scores.snapshot = SnapshotWork(weakref.ref(state), CoEngagement().scores({}), {})
    before = user_entry_bytes(with_scores)
    column = RowValues(np.arange(1000), np.ones(1000))
    taste = UserTaste(np.ones(64, np.float32), np.ones(64, np.float32), 1.0)
    scores = UserScores(taste, column, column, column, column, column)
    history = UserHistory(np.arange(10), np.arange(30), 0.0, 1.0)
    work = CollabWork(history, scores, np.arange(200))
    with_scores.snapshot = SnapshotWork(weakref.ref(state), CoEngagement().scores({}), {}, work)
    grown = user_entry_bytes(with_scores) - before
    assert grown >= 5 * column.nbytes + 2 * 64 * 4 + 40 * 8 + 200 * 8
