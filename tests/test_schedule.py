"""The periodic background job that retrains the learned ranker."""

from __future__ import annotations

import threading

import pytest

from mediarec.server.recommend.schedule import Periodic


def test_a_failing_run_is_logged_and_the_next_one_still_comes() -> None:
    runs: list[int] = []
    done = threading.Event()

    def job() -> None:
        runs.append(1)
        if len(runs) == 1:
            raise RuntimeError("first run fails")
        done.set()

    periodic = Periodic(job, 0.01, "test job")
    try:
        assert done.wait(5.0)
    finally:
        periodic.close(5.0)
    count = len(runs)
    assert count >= 2
    done.clear()
    assert not done.wait(0.05) and len(runs) == count  # closed: no more runs


def test_the_interval_must_be_positive() -> None:
    with pytest.raises(ValueError, match="interval_s must be > 0"):
        Periodic(lambda: None, 0.0, "never")
