"""The served-log writer's flush under steady traffic (pure logic: a stand-in store)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import pytest

from mediarec.server.recommend.servedlog import ServedLogWriter
from mediarec.server.recommend.types import ServedItem


class SlowStore:
    """Records what it stores; each commit takes a few milliseconds, like an fsync."""

    def __init__(self) -> None:
        self.stored: list[str] = []

    def log_served(self, items: list[ServedItem]) -> None:
        time.sleep(0.003)
        self.stored += [item.request_id for item in items]


def item(request_id: str) -> ServedItem:
    return ServedItem(request_id, "u", "m", 0, 1.0, 1.0, (), {}, 0.0)


def test_a_flush_returns_under_steady_traffic_with_everything_before_it_stored() -> None:
    # Pages keep coming while a commit runs, so the queue is never empty at once: a flush
    # that waited for an empty queue would never return.
    store = SlowStore()
    writer = ServedLogWriter(store)  # type: ignore[arg-type]
    stop = threading.Event()

    def traffic() -> None:
        n = 0
        while not stop.is_set():
            writer.submit([item(f"bg{n}")])
            n += 1
            time.sleep(0.0002)

    threads = [threading.Thread(target=traffic) for _ in range(2)]
    for t in threads:
        t.start()
    try:
        time.sleep(0.05)
        writer.submit([item("mine")])
        assert returns_soon(writer.flush), "flush never returned while traffic went on"
        assert "mine" in store.stored
    finally:
        stop.set()
        for t in threads:
            t.join()
        writer.close()


def returns_soon(call: Callable[[], None]) -> bool:
    done = threading.Event()
    threading.Thread(target=lambda: (call(), done.set()), daemon=True).start()
    return done.wait(5)


def test_close_stores_what_was_submitted() -> None:
    store = SlowStore()
    writer = ServedLogWriter(store)  # type: ignore[arg-type]
    for n in range(50):
        writer.submit([item(f"r{n}")])
    writer.close()
    assert sorted(store.stored) == sorted(f"r{n}" for n in range(50))
    assert returns_soon(writer.flush)  # nothing is left to wait for


class DyingStore:
    def log_served(self, items: list[ServedItem]) -> None:
        raise SystemExit  # not an Exception: the writer thread ends


def test_a_flush_returns_when_the_writer_has_died(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(threading, "excepthook", lambda args: None)  # the death is expected
    writer = ServedLogWriter(DyingStore())  # type: ignore[arg-type]
    writer.submit([item("a")])
    assert returns_soon(writer.flush)
    writer.close()  # joins the dead thread, so its end is reported while the hook is patched


class BlockedThenDyingStore:
    """Holds the first commit until ``release`` is set, then ends the writer thread."""

    def __init__(self) -> None:
        self.entered, self.release = threading.Event(), threading.Event()

    def log_served(self, items: list[ServedItem]) -> None:
        self.entered.set()
        self.release.wait(10)
        raise SystemExit


def test_a_submit_waiting_for_room_returns_when_the_writer_has_died(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # A Recommend call waits in submit() inside the forget fence: if it never returned, a
    # ForgetUser of its user would wait for it for good.
    monkeypatch.setattr(threading, "excepthook", lambda args: None)  # the death is expected
    store = BlockedThenDyingStore()
    writer = ServedLogWriter(store, max_pending=1)  # type: ignore[arg-type]
    writer.submit([item("taken")])  # the writer holds it in the blocked commit
    assert store.entered.wait(10)
    writer.submit([item("queued")])  # the queue is full now
    done = threading.Event()
    threading.Thread(
        target=lambda: (writer.submit([item("waiting")]), done.set()), daemon=True
    ).start()
    assert not done.wait(0.2)  # waits for room
    store.release.set()  # the writer dies without taking anything more off the queue
    assert done.wait(5)
    assert returns_soon(writer.flush)
    writer.close()  # the queue is still full: closing must not wait for room either
