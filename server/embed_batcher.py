"""Cross-request dynamic batching: concurrent RPCs that need the encoder share forward passes.

One forward pass over 16 texts costs far less than 16 passes over one text, so the server
puts a :class:`BatchingEncoder` between its domain code and the model. It satisfies the same
:class:`encoders.Encoder` protocol; each ``embed_texts`` / ``embed_images`` call becomes one
*job* in a queue, and a single worker thread runs the model:

* it takes the most urgent job, then waits at most ``max_wait_s`` (counted from that job's
  arrival) for more jobs of the same modality and priority, up to ``max_items`` items;
* the items of the chosen jobs go through one ``embed_*`` call of the wrapped encoder and every
  job gets its own rows back, in order (a call larger than ``max_items`` is queued as several
  jobs of at most ``max_items``, so other work can run between its passes);
* interactive work (search queries, interests) is served ahead of bulk indexing, except that a
  bulk job waiting longer than ``bulk_max_delay_s`` is served as if interactive, so steady
  interactive traffic cannot starve indexing;
* a job whose deadline passes while it waits is dropped with
  :class:`~mediarec.server.service_errors.DeadlineExceededError`: its caller stops waiting at the
  deadline   (freeing its RPC thread) unless the job is already in a running pass;
* if a merged pass fails, each job is rerun alone, so one request's bad input cannot fail the
  others; each job then gets its own result or its own exception.

Images are decoded by the caller before they get here and, for encoders with ``embed_pixels``,
resized and normalised in the caller's thread too: the worker only runs the model.

Priority and deadline travel with the calling thread in a context variable: servicer methods
are decorated with :func:`embeds`, which reads the RPC's deadline from its context.
"""

from __future__ import annotations

import functools
import inspect
import logging
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from enum import Enum, IntEnum
from typing import Any, Protocol, TypeVar

import numpy as np
from PIL import Image

from mediarec.encoders import Encoder
from mediarec.server.observability.buckets import BucketCounts, Buckets
from mediarec.server.service_errors import DeadlineExceededError, UnavailableError

logger = logging.getLogger(__name__)

# Histogram buckets of /metrics: a lone query up to a full batch, a millisecond to a minute.
PASS_ITEM_BOUNDS = (1, 2, 4, 8, 16, 32, 64, 128, 256)
PASS_SECOND_BOUNDS = (0.001, 0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 60.0)

# gRPC reports "no deadline" as a remaining time of decades; anything this long is none.
_NO_DEADLINE_S = 365 * 24 * 3600.0
_JOIN_TIMEOUT_S = 60.0


class Priority(IntEnum):
    """Lower runs first."""

    INTERACTIVE = 0  # a person is waiting: search queries, interests, steering text
    BULK = 1  # indexing: throughput matters more than the latency of one item


class Modality(Enum):
    TEXT = "text"
    IMAGE = "image"  # PIL images, for encoders that preprocess inside ``embed_images``
    PIXELS = "pixels"  # (3, size, size) tensors the caller's thread already preprocessed


@dataclass(frozen=True)
class EmbedScope:
    """How urgent the calling request's encoder work is, and until when it is worth doing."""

    priority: Priority = Priority.INTERACTIVE
    deadline: float | None = None  # a time.monotonic() instant; None: no deadline


_UNSCOPED = EmbedScope()  # work outside any RPC: interactive, no deadline
# Per-request, not global: every thread and task sees its own value (None outside a scope).
_SCOPE: ContextVar[EmbedScope | None] = ContextVar("mediarec_embed_scope", default=None)


@contextmanager
def embed_scope(priority: Priority, deadline: float | None = None) -> Iterator[EmbedScope]:
    """Encoder calls made inside the block carry ``priority`` and ``deadline``."""
    scope = EmbedScope(priority, deadline)
    token = _SCOPE.set(scope)
    try:
        yield scope
    finally:
        _SCOPE.reset(token)


def current_scope() -> EmbedScope:
    return _SCOPE.get() or _UNSCOPED


class HasTimeRemaining(Protocol):
    """The part of ``grpc.ServicerContext`` the deadline needs."""

    def time_remaining(self) -> float | None: ...


def rpc_deadline(
    context: HasTimeRemaining, clock: Callable[[], float] = time.monotonic
) -> float | None:
    """The RPC's deadline as a ``clock`` instant, or None when the client set none."""
    remaining = context.time_remaining()
    if remaining is None or remaining > _NO_DEADLINE_S:
        return None
    return clock() + remaining


_Method = TypeVar("_Method", bound=Callable[..., Any])


def embeds(priority: Priority) -> Callable[[_Method], _Method]:
    """Decorate a unary-response servicer method ``(self, request, context)``: its encoder
    work runs at ``priority`` and is dropped once the RPC's deadline has passed."""

    def decorate(method: _Method) -> _Method:
        if inspect.isgeneratorfunction(method):
            raise TypeError("embeds() wraps unary-response methods only")

        @functools.wraps(method)
        def wrapper(self: Any, request: Any, context: Any) -> Any:
            with embed_scope(priority, rpc_deadline(context)):
                return method(self, request, context)

        return wrapper  # type: ignore[return-value]

    return decorate


@dataclass(eq=False)
class _Job:
    """One caller's items, waiting for their rows."""

    modality: Modality
    items: Sequence[Any]
    priority: Priority
    deadline: float | None
    sequence: int  # arrival order, the tie-break within a priority
    arrived: float  # for a later part of a split call: when the part before it was taken
    call: int  # the caller's call: the sequence number of its first job
    done: threading.Event = field(default_factory=threading.Event)
    result: np.ndarray | None = None
    error: BaseException | None = None

    def succeed(self, rows: np.ndarray) -> None:
        self.result = rows
        self.done.set()

    def fail(self, error: BaseException) -> None:
        self.error = error
        self.done.set()

    def wait(self, timeout: float | None = None) -> np.ndarray | None:
        """The rows, or None if ``timeout`` seconds passed first; raises the job's error."""
        if not self.done.wait(timeout):
            return None
        if self.error is not None:
            raise self.error
        assert self.result is not None
        return self.result


@dataclass(frozen=True)
class BatcherStats:
    forward_passes: int  # calls into the wrapped encoder, including reruns after a failure
    items: int  # items sent to the wrapped encoder (texts plus images, reruns included)
    jobs: int  # jobs served, successfully or not (a call over max_items is several jobs)
    dropped_expired: int  # jobs dropped because their deadline had passed
    queued: int  # jobs waiting now
    pass_items: BucketCounts | None = None  # items per forward pass
    pass_seconds: BucketCounts | None = None  # seconds per forward pass


class BatchingEncoder:
    """An :class:`encoders.Encoder` that gathers concurrent calls into shared forward passes.

    Thread-safe. The worker thread starts on the first call; :meth:`close` stops it and fails
    queued work with :class:`~mediarec.server.service_errors.UnavailableError`.
    """

    def __init__(
        self,
        encoder: Encoder,
        *,
        max_items: int = 32,
        max_wait_s: float = 0.003,
        bulk_max_delay_s: float = 0.25,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if max_items < 1:
            raise ValueError(f"max_items must be at least 1, got {max_items}")
        if max_wait_s < 0:
            raise ValueError(f"max_wait_s must not be negative, got {max_wait_s}")
        self._encoder = encoder
        self._max_items = max_items
        self._max_wait_s = max_wait_s
        self._bulk_max_delay_s = bulk_max_delay_s
        self._clock = clock
        self._changed = threading.Condition()
        self._pending: list[_Job] = []
        self._sequence = 0
        self._closed = False
        self._worker: threading.Thread | None = None
        self._forward_passes = 0
        self._pass_items = Buckets(PASS_ITEM_BOUNDS)
        self._pass_seconds = Buckets(PASS_SECOND_BOUNDS)
        self._items = 0
        self._jobs = 0
        self._dropped_expired = 0

    # -- the Encoder protocol -----------------------------------------------------------------
    @property
    def inner(self) -> Encoder:
        return self._encoder

    @property
    def model_id(self) -> str:
        return self._encoder.model_id

    @property
    def dim(self) -> int:
        return self._encoder.dim

    @property
    def preprocess_spec(self) -> Any:
        """The wrapped encoder's preprocessing (JPEG draft size), None for vectors-only models."""
        return getattr(self._encoder, "preprocess_spec", None)

    def load(self) -> None:
        self._encoder.load()

    def embed_texts(self, texts: Sequence[str]) -> np.ndarray:
        return self._submit(Modality.TEXT, [str(text) for text in texts])

    def embed_images(self, images: Sequence[Image.Image]) -> np.ndarray:
        spec = self.preprocess_spec
        if not images or spec is None or not hasattr(self._encoder, "embed_pixels"):
            return self._submit(Modality.IMAGE, list(images))
        from mediarec.encoders.preprocess import images_to_tensor

        # Resize and normalise here, in the caller's thread, so the one worker thread that
        # runs the model does nothing else; the rows are those embed_images would give.
        return self._submit(Modality.PIXELS, list(images_to_tensor(images, spec)))

    # -- life-cycle ---------------------------------------------------------------------------
    def stats(self) -> BatcherStats:
        with self._changed:
            return BatcherStats(
                forward_passes=self._forward_passes,
                items=self._items,
                jobs=self._jobs,
                dropped_expired=self._dropped_expired,
                queued=len(self._pending),
                pass_items=self._pass_items.snapshot(),
                pass_seconds=self._pass_seconds.snapshot(),
            )

    def close(self) -> None:
        """Fail queued work, let a running forward pass finish, stop the worker. Idempotent."""
        with self._changed:
            self._closed = True
            for job in self._pending:
                job.fail(UnavailableError("The server is shutting down; retry elsewhere."))
            self._pending.clear()
            self._changed.notify_all()
            worker = self._worker
        if worker is not None and worker is not threading.current_thread():
            worker.join(_JOIN_TIMEOUT_S)
            if worker.is_alive():
                logger.warning("embed batcher worker still busy after %.0fs", _JOIN_TIMEOUT_S)

    def __enter__(self) -> BatchingEncoder:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- callers ------------------------------------------------------------------------------
    def _submit(self, modality: Modality, items: list[Any]) -> np.ndarray:
        if not items:
            return np.zeros((0, self.dim), dtype=np.float32)
        scope = current_scope()
        step = self._max_items
        with self._changed:
            if self._closed:
                raise UnavailableError("The server is shutting down; retry elsewhere.")
            jobs: list[_Job] = []
            call = self._sequence + 1  # the call is known by its first job's sequence number
            # A call larger than one pass becomes several jobs, so that interactive work can
            # run between the passes of, say, a long video's frames.
            for start in range(0, len(items), step):
                self._sequence += 1
                jobs.append(
                    _Job(modality, items[start : start + step], scope.priority, scope.deadline,
                         self._sequence, self._clock(), call)
                )  # fmt: skip
            self._pending += jobs
            self._start_worker()
            self._changed.notify_all()
        try:
            return np.concatenate([self._wait(job) for job in jobs], axis=0)
        except BaseException:
            with self._changed:
                self._withdraw(call)
            raise

    def _wait(self, job: _Job) -> np.ndarray:
        if job.deadline is None:
            rows = job.wait()
        else:
            rows = job.wait(max(0.0, job.deadline - self._clock()))
            if rows is None:
                rows = self._give_up(job)
        assert rows is not None
        return rows

    def _withdraw(self, call: int) -> None:
        """Drop the queued jobs of a call that has failed (the lock is held): the rest of it
        is not worth a forward pass."""
        withdrawn = [job for job in self._pending if job.call == call]
        for job in withdrawn:
            self._pending.remove(job)
            job.fail(UnavailableError("Another part of this request failed."))
        self._jobs += len(withdrawn)

    def _give_up(self, job: _Job) -> np.ndarray:
        """At its deadline the caller leaves, unless its pass is already running."""
        with self._changed:
            if job in self._pending:
                self._expire([job])
        rows = job.wait()  # a running pass is never abandoned half-way: it ends soon
        assert rows is not None
        return rows

    def _start_worker(self) -> None:
        if self._worker is None or not self._worker.is_alive():  # never queue for a dead worker
            self._worker = threading.Thread(target=self._work, name="embed-batcher", daemon=True)
            self._worker.start()

    # -- the worker ---------------------------------------------------------------------------
    def _work(self) -> None:
        try:
            while True:
                batch = self._next_batch()
                if batch is None:
                    return
                if batch:
                    self._run(batch)
        except BaseException:
            # Never leave callers waiting on a dead worker: fail what is queued; the next call
            # starts a fresh worker.
            logger.exception("embed batcher worker stopped unexpectedly")
            with self._changed:
                for job in self._pending:
                    job.fail(UnavailableError("The encoder worker stopped unexpectedly."))
                self._pending.clear()
                self._worker = None  # this thread is on its way out; the next call starts one
            raise

    def _next_batch(self) -> list[_Job] | None:
        """The next jobs to run together ([] when all were expired); None once closed."""
        with self._changed:
            while not self._pending and not self._closed:
                self._changed.wait()
            if self._closed:
                return None
            now = self._clock()
            first = min(self._pending, key=lambda job: self._urgency(job, now))
            gather_until = first.arrived + self._max_wait_s
            while not self._closed and self._fellow_items(first) < self._max_items:
                left = gather_until - self._clock()
                if left <= 0:
                    break
                self._changed.wait(left)
            if self._closed:
                return None
            self._drop_expired()
            return self._take_batch()

    def _urgency(self, job: _Job, now: float) -> tuple[int, int]:
        """Sort key: interactive first, oldest first; bulk that waited too long counts as
        interactive (it still never shares a pass with interactive work)."""
        aged = job.priority is Priority.BULK and now - job.arrived >= self._bulk_max_delay_s
        return (int(Priority.INTERACTIVE) if aged else int(job.priority), job.sequence)

    def _fellow_items(self, first: _Job) -> int:
        """Items queued that could share a pass with ``first`` (itself included)."""
        return sum(len(job.items) for job in self._pending if _compatible(job, first))

    def _drop_expired(self) -> None:
        now = self._clock()
        self._expire(
            [job for job in self._pending if job.deadline is not None and job.deadline <= now]
        )

    def _expire(self, jobs: Sequence[_Job]) -> None:
        """Drop queued ``jobs`` whose deadline passed (the lock is held)."""
        for job in jobs:
            self._pending.remove(job)
            job.fail(_deadline_error())
        self._dropped_expired += len(jobs)
        self._jobs += len(jobs)

    def _take_batch(self) -> list[_Job]:
        """The most urgent job plus compatible ones, in urgency order, within ``max_items``."""
        now = self._clock()
        ordered = sorted(self._pending, key=lambda job: self._urgency(job, now))
        if not ordered:
            return []
        batch, size = [ordered[0]], len(ordered[0].items)
        for job in ordered[1:]:
            if _compatible(job, batch[0]) and size + len(job.items) <= self._max_items:
                batch.append(job)
                size += len(job.items)
        for job in batch:
            self._pending.remove(job)
        # The rest of a split call ages from now, not from when the call came: otherwise, once
        # aged, all its remaining passes would run ahead of newer interactive work.
        taken_calls = {job.call for job in batch}
        for job in self._pending:
            if job.call in taken_calls:
                job.arrived = now
        return batch

    def _run(self, batch: list[_Job]) -> None:
        try:
            try:
                rows = self._forward(batch[0].modality, [i for job in batch for i in job.items])
            except Exception as error:
                if len(batch) == 1:
                    batch[0].fail(error)
                    return
                # Find out whose items failed: rerun each job alone, each gets its own outcome.
                logger.info("merged pass of %d jobs failed (%s); rerunning each", len(batch), error)
                for job in batch:
                    self._run_alone(job)
                return
            offset = 0
            for job in batch:
                job.succeed(rows[offset : offset + len(job.items)])
                offset += len(job.items)
        finally:
            for job in batch:  # never leave a caller waiting, whatever went wrong above
                if not job.done.is_set():
                    job.fail(UnavailableError("The encoder worker stopped unexpectedly."))
            with self._changed:
                self._jobs += len(batch)
                for job in batch:
                    if job.error is not None:
                        self._withdraw(job.call)

    def _run_alone(self, job: _Job) -> None:
        try:
            job.succeed(self._forward(job.modality, job.items))
        except Exception as error:
            job.fail(error)

    def _forward(self, modality: Modality, items: Sequence[Any]) -> np.ndarray:
        with self._changed:
            self._forward_passes += 1
            self._items += len(items)
        started = time.perf_counter()
        try:
            if modality is Modality.TEXT:
                rows = self._encoder.embed_texts(items)
            elif modality is Modality.IMAGE:
                rows = self._encoder.embed_images(items)
            else:
                rows = self._embed_pixels(items)
        finally:
            self._pass_items.observe(len(items))
            self._pass_seconds.observe(time.perf_counter() - started)
        if len(rows) != len(items):
            raise RuntimeError(f"the encoder returned {len(rows)} rows for {len(items)} items")
        return rows

    def _embed_pixels(self, pixels: Sequence[Any]) -> np.ndarray:
        import torch

        embed = self._encoder.embed_pixels  # type: ignore[attr-defined]
        # embed_pixels runs what it is given at once; chunk as embed_images would have.
        options = getattr(self._encoder, "options", None)
        step = getattr(options, "batch_size", None) or self._max_items
        parts = [
            embed(torch.stack(list(pixels[start : start + step])))
            for start in range(0, len(pixels), step)
        ]
        return np.concatenate(parts, axis=0)


def _deadline_error() -> DeadlineExceededError:
    return DeadlineExceededError("The request's deadline passed before it was embedded.")


def _compatible(job: _Job, first: _Job) -> bool:
    """Jobs share a pass only with the same modality and priority: a search query must not
    wait behind 31 indexing images."""
    return job.modality is first.modality and job.priority is first.priority
