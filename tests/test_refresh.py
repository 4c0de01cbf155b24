"""When the background rebuild of derived state starts (server/recommend/refresh.py)."""

from __future__ import annotations

import threading
import time
from dataclasses import replace

import pytest

from mediarec.server.recommend.refresh import Refresher
from mediarec.server.recommend.settings import RecommendSettings

SETTINGS = replace(
    RecommendSettings(),
    refresh_min_events=10,
    refresh_min_interval_s=30.0,
    refresh_max_interval_s=900.0,
    refresh_max_pending_events=100,
)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def refresher(settings: RecommendSettings = SETTINGS) -> tuple[Refresher, list[float], Clock]:
    clock = Clock()
    builds: list[float] = []
    built = threading.Event()

    def rebuild() -> None:
        builds.append(clock.now)
        built.set()

    r = Refresher(rebuild, settings, monotonic=clock)
    r.built = built  # type: ignore[attr-defined]
    return r, builds, clock


def settle(r: Refresher) -> None:
    assert r.wait(5)


@pytest.mark.parametrize(
    ("events", "seconds_since_last", "rebuilds"),
    [
        (5, 60.0, 0),  # too few events
        (10, 60.0, 1),  # enough events, interval passed
        (10, 5.0, 0),  # enough events inside the interval: deferred, not now
        (100, 5.0, 1),  # the count alone, whatever the interval
        (1, 901.0, 1),  # the longest interval, while events keep coming
    ],
    ids=["few", "enough", "inside-interval", "count-alone", "max-interval"],
)
def test_notify_rebuilds_now_only_when_a_rule_says_so(
    events: int, seconds_since_last: float, rebuilds: int
) -> None:
    r, builds, clock = refresher()
    r.run_now()  # a rebuild at t=1000 sets the interval's start
    builds.clear()
    clock.now += seconds_since_last
    r.notify(events)
    settle(r)
    assert len(builds) == rebuilds
    r.close()


def test_events_that_arrive_inside_the_interval_are_rebuilt_when_it_ends() -> None:
    # A bulk replay right after start-up ends inside the interval; no later event comes.
    r, builds, clock = refresher(replace(SETTINGS, refresh_min_interval_s=0.3))
    r.run_now()
    builds.clear()
    r.built.clear()  # type: ignore[attr-defined]
    r.notify(50)  # the monotonic clock stands still: the interval has not passed by it
    assert builds == []
    assert r.built.wait(5)  # type: ignore[attr-defined]
    settle(r)
    assert len(builds) == 1
    r.close()


def test_close_cancels_a_deferred_rebuild() -> None:
    r, builds, _ = refresher(replace(SETTINGS, refresh_min_interval_s=0.2))
    r.run_now()
    builds.clear()
    r.built.clear()  # type: ignore[attr-defined]
    r.notify(50)
    r.close()
    assert not r.built.wait(0.5)  # type: ignore[attr-defined]
    assert builds == []


def test_a_rebuild_in_the_meantime_cancels_a_deferred_one() -> None:
    r, builds, _ = refresher(replace(SETTINGS, refresh_min_interval_s=0.3))
    r.run_now()
    r.notify(50)  # deferred to the end of the interval
    r.run_now()  # a Refresh takes the events in first
    builds.clear()
    r.built.clear()  # type: ignore[attr-defined]
    assert not r.built.wait(0.6)  # type: ignore[attr-defined]
    assert builds == []
    r.close()


@pytest.mark.parametrize(
    ("seconds_since_last", "rebuilds"), [(60.0, 0), (901.0, 1)], ids=["inside", "past-max"]
)
def test_served_pages_alone_rebuild_once_the_longest_interval_has_passed(
    seconds_since_last: float, rebuilds: int
) -> None:
    # What serving adds (fatigue, the served log) waits in memory for a rebuild: a server
    # that serves but receives no events must still rebuild now and then.
    r, builds, clock = refresher()
    r.run_now()
    builds.clear()
    clock.now += seconds_since_last
    r.notify_served(20)
    settle(r)
    assert len(builds) == rebuilds
    r.close()


@pytest.mark.parametrize("served", [False, True], ids=["events", "served"])
def test_a_little_pending_work_then_silence_is_rebuilt_when_the_longest_interval_ends(
    served: bool,
) -> None:
    r, builds, clock = refresher(replace(SETTINGS, refresh_max_interval_s=0.3))
    r.run_now()
    builds.clear()
    r.built.clear()  # type: ignore[attr-defined]
    # Fewer events than refresh_min_events (or only served pages), and nothing more comes.
    r.notify_served(3) if served else r.notify(3)
    assert builds == []
    assert r.built.wait(5)  # type: ignore[attr-defined]
    settle(r)
    assert len(builds) == 1
    r.close()


def test_enough_events_move_a_later_deferred_rebuild_earlier() -> None:
    r, builds, clock = refresher(
        replace(SETTINGS, refresh_min_interval_s=0.2, refresh_max_interval_s=60.0)
    )
    r.run_now()
    builds.clear()
    r.built.clear()  # type: ignore[attr-defined]
    r.notify(3)  # deferred to the end of the longest interval, a minute away
    r.notify(20)  # now enough: due when the shortest interval ends
    assert r.built.wait(5)  # type: ignore[attr-defined]
    settle(r)
    assert len(builds) == 1
    r.close()


def test_pages_served_while_a_rebuild_waits_to_start_queue_no_second_one() -> None:
    clock = Clock()
    builds: list[float] = []
    release = threading.Event()

    def rebuild() -> None:
        builds.append(clock.now)
        release.wait(5)

    r = Refresher(rebuild, SETTINGS, monotonic=clock)
    refresh = threading.Thread(target=r.run_now)  # a Refresh in flight holds the build lock
    refresh.start()
    while not builds:
        time.sleep(0.01)
    clock.now += 901.0
    for _ in range(20):  # the first page starts a background rebuild, which waits its turn
        r.notify_served(20)
    release.set()
    refresh.join(5)
    settle(r)
    assert len(builds) == 2  # the Refresh and one background rebuild, not a third after it
    r.close()
