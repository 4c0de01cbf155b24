"""Client streams with idle and total timeouts, and the cap on streaming calls in flight."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import pytest

from mediarec.server.grpc.streams import StreamLimits, StreamTimeoutError, UploadGate, bounded
from mediarec.server.service_errors import ResourceLimitError


def slow(delays: list[float], release: threading.Event | None = None) -> Iterator[int]:
    for i, delay in enumerate(delays):
        time.sleep(delay)
        yield i
    if release is not None:
        release.wait(5)


def test_a_stream_within_its_limits_passes_through_in_order() -> None:
    assert list(bounded(slow([0.0, 0.05, 0.05]), StreamLimits(1.0, 5.0), "test")) == [0, 1, 2]


def test_a_stream_that_goes_quiet_ends_after_the_idle_timeout() -> None:
    gate = threading.Event()
    started = time.monotonic()
    got = []
    with pytest.raises(StreamTimeoutError, match="sent nothing for 0.3 s"):
        for item in bounded(slow([0.0], release=gate), StreamLimits(0.3, 10.0), "test"):
            got.append(item)
    gate.set()
    assert got == [0] and time.monotonic() - started < 2.0


def test_a_steady_trickle_still_ends_at_the_total_timeout() -> None:
    with pytest.raises(StreamTimeoutError, match="longer than 0.5 s in all"):
        list(bounded(slow([0.1] * 50), StreamLimits(0.3, 0.5), "test"))


def test_an_error_of_the_stream_reaches_the_handler() -> None:
    def broken() -> Iterator[int]:
        yield 1
        raise ConnectionResetError("client went away")

    with pytest.raises(ConnectionResetError):
        list(bounded(broken(), StreamLimits(1.0, 5.0), "test"))


@pytest.mark.parametrize(
    ("total", "per_key", "keys", "refused_at"),
    [
        (2, 2, ["a", "a", "a"], 2),  # the server's cap
        (5, 2, ["a", "b", "a", "a"], 3),  # one key's cap
        (5, 2, ["a", "b", "c", "d"], None),
        (3, 1, [None, None], 1),  # no keys configured: one shared count
    ],
)
def test_the_upload_gate_refuses_past_either_cap(
    total: int, per_key: int, keys: list[str | None], refused_at: int | None
) -> None:
    gate = UploadGate(total, per_key)
    tickets = []
    for i, key in enumerate(keys):
        if i == refused_at:
            with pytest.raises(ResourceLimitError):
                gate.acquire(key)
            return
        tickets.append(gate.acquire(key))
    for ticket in tickets:
        gate.release(ticket)
    assert gate.acquire(keys[0])  # every ticket released: room again
