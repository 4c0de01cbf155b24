"""The collector in a serving process: startup objects frozen, full collections on a timer."""

from __future__ import annotations

import gc
import time

import pytest

from mediarec.server.heap import FullCollections, freeze_startup_objects, schedule_full_collections


def test_startup_objects_are_frozen_and_later_garbage_is_still_collected() -> None:
    try:
        frozen = freeze_startup_objects()
        assert frozen > 1000  # at least this test run's imports
        # A frozen object that dies later (freed by another thread of the test process) leaves
        # the permanent generation, so the count can only have dropped since the call.
        assert 0 < gc.get_freeze_count() <= frozen

        class Cycle:
            pass

        a, b = Cycle(), Cycle()
        a.other, b.other = b, a  # type: ignore[attr-defined]
        del a, b
        assert gc.collect() >= 2  # made after the freeze: still collected
    finally:
        gc.unfreeze()
    assert gc.get_freeze_count() == 0


def test_full_collections_run_on_the_timer_not_when_the_old_generation_grows() -> None:
    before = gc.get_threshold()
    full: list[float] = []

    def on_collect(phase: str, info: dict[str, int]) -> None:
        if phase == "stop" and info["generation"] == 2:
            full.append(time.monotonic())

    gc.callbacks.append(on_collect)
    started = time.monotonic()
    scheduled = FullCollections(0.2)  # schedule_full_collections asks for at least 1 s
    try:
        assert gc.get_threshold()[:2] == before[:2]  # young generations: as before
        assert gc.get_threshold()[2] >= 1 << 30  # the old one: only on the timer
        with pytest.raises(RuntimeError, match="already on a timer"):
            FullCollections(0.2)
        # Plenty of long-lived objects: CPython's default would run full collections here.
        keep = [[i] for i in range(300_000)]
        deadline = started + 5.0
        while len(full) < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert len(full) >= 2, "the timer ran no full collections"
        assert all(t - started >= 0.15 for t in full)  # none before the first tick
        assert len(keep) == 300_000
    finally:
        gc.callbacks.remove(on_collect)
        scheduled.close()
    assert gc.get_threshold() == before
    assert schedule_full_collections(0) is None
    with pytest.raises(ValueError, match="at least 1 s"):
        schedule_full_collections(0.01)
