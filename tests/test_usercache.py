"""UserCache and Precomputer: pure logic (profiles are stand-ins; no store is involved)."""

from __future__ import annotations

import threading
from typing import Any

from server.recommend.usercache import Precomputer, UserCache, UserEntry


class Clock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


class Profile:
    """Just what UserCache reads of a UserProfile."""

    def __init__(self, built_at: float) -> None:
        self.built_at = built_at


def entry(clock: Clock, built_at: float = 5_000.0) -> UserEntry:
    profile: Any = Profile(built_at)
    return UserEntry(profile, clock())


def test_an_entry_lives_for_the_ttl_by_both_clocks() -> None:
    clock = Clock()
    cache = UserCache(10, ttl_s=60, monotonic=clock)
    assert cache.put("u", entry(clock), cache.version("u"))
    assert cache.get("u", now=5_030.0) is not None
    assert cache.get("u", now=5_100.0) is None  # a request replaying a time far from the build
    clock.t += 61
    assert cache.get("u", now=5_000.0) is None  # simply too old


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
