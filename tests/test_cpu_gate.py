"""The CPU gate: at most its slots decode at once, a bounded number wait, the rest are refused
at once, and a waiter leaves when its deadline passes; then the same through a real server."""

from __future__ import annotations

import io
import threading
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from mediarec.client import MediaMetadata, MediarecClient, ResourceExhausted
from mediarec.server.grpc.cpu_gate import CpuGate, default_slots
from mediarec.server.service_errors import DeadlineExceededError, ResourceLimitError
from tests.servers import serve_demo


def hold(gate: CpuGate, release: threading.Event, entered: threading.Event) -> threading.Thread:
    def body() -> None:
        with gate.admitted():
            entered.set()
            release.wait(10)

    thread = threading.Thread(target=body)
    thread.start()
    assert entered.wait(5)
    return thread


def test_a_full_gate_queues_up_to_its_bound_and_refuses_the_rest() -> None:
    gate = CpuGate(slots=1, max_waiting=1)
    release = threading.Event()
    holder = hold(gate, release, threading.Event())
    waited: list[float] = []

    def wait_for_a_slot() -> None:
        started = time.monotonic()
        with gate.admitted(timeout_s=10):
            waited.append(time.monotonic() - started)

    waiter = threading.Thread(target=wait_for_a_slot)
    waiter.start()
    for _ in range(100):
        if gate.waiting == 1:
            break
        time.sleep(0.01)
    refused = pytest.raises(ResourceLimitError, match="decoding 1 uploads with 1 more waiting")
    with refused, gate.admitted():
        pass
    release.set()
    holder.join(5)
    waiter.join(5)
    assert len(waited) == 1 and gate.waiting == 0


def test_a_waiter_leaves_when_its_deadline_passes_and_slots_come_back() -> None:
    gate = CpuGate(slots=1, max_waiting=4)
    release = threading.Event()
    holder = hold(gate, release, threading.Event())
    with pytest.raises(DeadlineExceededError), gate.admitted(timeout_s=0.05):
        pass
    assert gate.waiting == 0
    release.set()
    holder.join(5)
    with pytest.raises(RuntimeError), gate.admitted(timeout_s=0.05):  # a failing body
        raise RuntimeError("decode failed")  # gives its slot back too
    with gate.admitted(timeout_s=0.05):
        pass


@pytest.mark.parametrize(("slots", "waiting"), [(0, 0), (1, -1)])
def test_a_gate_needs_a_slot_and_a_queue(slots: int, waiting: int) -> None:
    with pytest.raises(ValueError):
        CpuGate(slots, waiting)
    assert default_slots() >= 1


def large_png(side: int = 6000) -> bytes:
    """A smooth gradient: a small file whose decode takes a good part of a second."""
    ramp = np.linspace(0, 255, side, dtype=np.float32)
    pixels = np.stack(
        [np.broadcast_to(ramp, (side, side)), np.broadcast_to(ramp[:, None], (side, side)),
         np.full((side, side), 128.0, np.float32)], axis=-1,
    ).astype(np.uint8)  # fmt: skip
    out = io.BytesIO()
    Image.fromarray(pixels).save(out, format="PNG", compress_level=9)
    return out.getvalue()


def test_decoding_uploads_beyond_the_gate_are_refused_while_cheap_calls_go_on(
    tmp_path: Path,
) -> None:
    # Three workers and one decode slot: nobody waits (3 - 1 - 2), the second decoder is
    # refused, and two threads stay free for everything else.
    server = serve_demo(tmp_path / "data", workers=3, cpu_workers=1)
    target = f"127.0.0.1:{server.port}"
    data = large_png()
    try:
        with MediarecClient(target) as client:
            client.index_media(MediaMetadata("cheap", caption="a cheap caption-only post"))
            start = threading.Barrier(3)
            outcomes: list[str] = []

            def upload(n: int) -> Callable[[], None]:
                def run() -> None:
                    start.wait()
                    try:
                        client.index_media(MediaMetadata(f"big-{n}"), data, timeout_s=60)
                        outcomes.append("indexed")
                    except ResourceExhausted as exc:
                        assert "decoding 1 uploads" in str(exc)
                        outcomes.append("refused")

                return run

            threads = [threading.Thread(target=upload(n)) for n in range(2)]
            for thread in threads:
                thread.start()
            start.wait()
            time.sleep(0.2)  # the decoders are busy now
            assert client.get_media("cheap", timeout_s=5).media_id == "cheap"
            for thread in threads:
                thread.join(60)
        assert sorted(outcomes) == ["indexed", "refused"]
    finally:
        server.stop(0)
