"""Client streams that cannot hold the server: idle and total timeouts, and a cap on uploads.

A request stream is read on the handler's thread, and grpc's ``next()`` blocks for as long as
the client sends nothing: stalled uploads could hold every worker thread, so that nothing else,
health checks included, was answered. Two defences:

- :class:`UploadGate`: at most ``total`` streaming uploads at once, and at most ``per_key`` of
  one API key; more are refused at once (RESOURCE_EXHAUSTED), never queued.
- :func:`bounded`: each message must arrive within ``idle_s`` of the one before and the whole
  stream within ``total_s``; a reader thread feeds a one-slot queue so the handler can wait
  with a timeout. When the handler gives up, the RPC ends and the reader's ``next()`` returns.
"""

from __future__ import annotations

import hashlib
import queue
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TypeVar

from mediarec.server.service_errors import DeadlineExceededError, ResourceLimitError

T = TypeVar("T")
_END = object()


@dataclass(frozen=True)
class StreamLimits:
    idle_s: float
    total_s: float


class StreamTimeoutError(DeadlineExceededError):
    """A client stream sent nothing for too long, or took too long in all."""


def bounded(messages: Iterator[T], limits: StreamLimits, what: str) -> Iterator[T]:
    """``messages`` with an idle and a total timeout; raises :class:`StreamTimeoutError`."""
    slot: queue.Queue[object] = queue.Queue(maxsize=1)
    stop = threading.Event()

    def offer(item: object) -> bool:
        """Hand ``item`` to the handler; False once the handler has stopped listening."""
        while not stop.is_set():
            try:
                slot.put(item, timeout=0.5)
                return True
            except queue.Full:
                continue
        return False

    def read() -> None:
        try:
            for message in messages:
                if not offer(message):
                    return
            offer(_END)
        except BaseException as exc:  # the client cancelled, or the RPC ended: pass it on
            offer(exc)

    reader = threading.Thread(target=read, name="stream-reader", daemon=True)
    reader.start()
    deadline = time.monotonic() + limits.total_s
    try:
        while True:
            remaining = deadline - time.monotonic()
            wait = min(limits.idle_s, remaining)
            try:
                item = slot.get(timeout=max(0.0, wait))
            except queue.Empty:
                if remaining <= limits.idle_s:
                    raise StreamTimeoutError(
                        f"the {what} stream took longer than {limits.total_s:g} s in all"
                    ) from None
                raise StreamTimeoutError(
                    f"the {what} stream sent nothing for {limits.idle_s:g} s"
                ) from None
            if item is _END:
                return
            if isinstance(item, BaseException):
                raise item
            yield item  # type: ignore[misc]
    finally:
        stop.set()


class UploadGate:
    """Counts streaming uploads in flight, in all and per API key; thread-safe."""

    def __init__(self, total: int, per_key: int) -> None:
        self._total, self._per_key = total, per_key
        self._lock = threading.Lock()
        self._in_flight = 0
        self._by_key: dict[str, int] = {}

    def acquire(self, api_key: str | None) -> str:
        """A ticket for one upload, or :class:`ResourceLimitError` when a cap is reached."""
        key = hashlib.sha256((api_key or "").encode()).hexdigest()  # no raw key in memory
        with self._lock:
            if self._in_flight >= self._total:
                raise ResourceLimitError(
                    "upload", f"{self._in_flight} uploads are in flight, the server's limit"
                )
            if self._by_key.get(key, 0) >= self._per_key:
                raise ResourceLimitError(
                    "upload", f"this API key has {self._per_key} uploads in flight, its limit"
                )
            self._in_flight += 1
            self._by_key[key] = self._by_key.get(key, 0) + 1
        return key

    @contextmanager
    def admitted(self, api_key: str | None) -> Iterator[None]:
        """Hold one upload's place for the ``with`` block (refused as :meth:`acquire` is)."""
        ticket = self.acquire(api_key)
        try:
            yield
        finally:
            self.release(ticket)

    def release(self, ticket: str) -> None:
        with self._lock:
            self._in_flight -= 1
            left = self._by_key.get(ticket, 0) - 1
            if left > 0:
                self._by_key[ticket] = left
            else:
                self._by_key.pop(ticket, None)
