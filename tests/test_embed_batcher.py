"""Cross-request dynamic batching: merged forward passes, limits, deadlines, priority, errors.

Unit tests run the real demo CLIP behind a small recording wrapper that can hold the first
forward pass: while it is held, the other callers queue up, so what the batcher merges next is
deterministic rather than a matter of thread timing. The end-to-end test runs real gRPC.
"""

from __future__ import annotations

import io
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import grpc
import numpy as np
import pytest
from PIL import Image

from mediarec.client import MediaFilter, MediaMetadata, MediarecClient
from mediarec.encoders import Encoder, EncoderOptions, load_encoder
from mediarec.encoders.synthetic.world import WorldGenerator
from mediarec.server.app import build_server
from mediarec.server.config import load_settings
from mediarec.server.embed_batcher import (
    BatchingEncoder,
    Priority,
    current_scope,
    embed_scope,
    embeds,
    rpc_deadline,
)
from mediarec.server.grpc.errors import default_status_table, lookup_status
from mediarec.server.runtime import ServiceState, open_deps
from mediarec.server.service_errors import DeadlineExceededError, UnavailableError

WAIT_S = 20.0  # generous: the machine may be busy; tests never sleep this long when healthy
TEXTS = [
    f"a {colour} {shape}"
    for colour in ("red", "blue", "green")
    for shape in ("circle", "square", "star", "triangle")
]


@pytest.fixture(scope="module")
def demo() -> Encoder:
    return load_encoder("mediarec-demo")


@pytest.fixture(scope="module")
def images() -> list[Image.Image]:
    return [post.image for post in WorldGenerator(7, image_size=64).posts(12)]


class RecordingEncoder:
    """The real encoder plus a record of every forward pass; the first pass waits for release."""

    def __init__(self, encoder: Encoder, fails: Callable[[str], bool] | None = None) -> None:
        self._encoder = encoder
        self._fails = fails
        self.calls: list[tuple[str, list[Any]]] = []
        self.entered = threading.Event()
        self.release = threading.Event()

    @property
    def model_id(self) -> str:
        return self._encoder.model_id

    @property
    def dim(self) -> int:
        return self._encoder.dim

    def load(self) -> None:
        self._encoder.load()

    def embed_texts(self, texts: Sequence[str]) -> np.ndarray:
        self._enter("text", list(texts))
        if self._fails is not None and any(self._fails(text) for text in texts):
            raise ValueError("this text cannot be embedded")
        return self._encoder.embed_texts(texts)

    def embed_images(self, images: Sequence[Image.Image]) -> np.ndarray:
        self._enter("image", list(images))
        return self._encoder.embed_images(images)

    def sizes_after_first(self) -> list[int]:
        return [len(items) for _, items in self.calls[1:]]

    def _enter(self, kind: str, items: list[Any]) -> None:
        self.calls.append((kind, items))
        self.entered.set()
        assert self.release.wait(WAIT_S), "the test never released the held forward pass"


class RecordingPixelEncoder(RecordingEncoder):
    """Also offers what the torch encoders offer: preprocessing facts and ``embed_pixels``."""

    @property
    def preprocess_spec(self) -> Any:
        return self._encoder.preprocess_spec  # type: ignore[attr-defined]

    def embed_pixels(self, pixels: Any) -> np.ndarray:
        self._enter("pixels", list(pixels))
        return self._encoder.embed_pixels(pixels)  # type: ignore[attr-defined]


class Call:
    """``fn(*args)`` in its own thread, optionally inside an embed scope."""

    def __init__(
        self,
        fn: Callable[..., np.ndarray],
        *args: Any,
        priority: Priority = Priority.INTERACTIVE,
        deadline: float | None = None,
    ) -> None:
        self.result: np.ndarray | None = None
        self.error: BaseException | None = None
        self.jobs = 1  # jobs it queues in the batcher (more when over max_items)
        self._thread = threading.Thread(target=self._run, args=(fn, args, priority, deadline))
        self._thread.start()

    def _run(
        self, fn: Callable[..., np.ndarray], args: Any, priority: Priority, deadline: float | None
    ) -> None:
        try:
            with embed_scope(priority, deadline):
                self.result = fn(*args)
        except Exception as error:
            self.error = error

    def join(self) -> Call:
        self._thread.join(WAIT_S)
        assert not self._thread.is_alive(), "the call never returned"
        return self

    def value(self) -> np.ndarray:
        self.join()
        if self.error is not None:
            raise self.error
        assert self.result is not None
        return self.result


def wait_until(condition: Callable[[], bool]) -> None:
    deadline = time.monotonic() + WAIT_S
    while not condition():
        assert time.monotonic() < deadline, "condition never became true"
        time.sleep(0.002)


@contextmanager
def holding(
    recorder: RecordingEncoder, max_items: int = 32
) -> Iterator[tuple[BatchingEncoder, Call]]:
    """A batcher whose worker is stuck in a first pass (one text) until ``release`` is set."""
    # Bulk never ages into interactive here, however slow the machine: tests of strict
    # priority must not depend on timing.
    with BatchingEncoder(
        recorder, max_items=max_items, max_wait_s=0.0, bulk_max_delay_s=3600.0
    ) as batcher:
        blocker = Call(batcher.embed_texts, ["the first caller"])
        assert recorder.entered.wait(WAIT_S)
        try:
            yield batcher, blocker
        finally:
            recorder.release.set()  # before close(), which waits for the held pass


@pytest.fixture
def held(demo: Encoder) -> Iterator[tuple[RecordingEncoder, BatchingEncoder, Call]]:
    recorder = RecordingEncoder(demo)
    with holding(recorder) as (batcher, blocker):
        yield recorder, batcher, blocker


def queue(batcher: BatchingEncoder, calls: list[Call], call: Call, jobs: int = 1) -> None:
    """Add ``call`` (``jobs`` queued jobs) and wait until it is queued, so arrival order is
    the order of the test."""
    call.jobs = jobs
    calls.append(call)
    wait_until(lambda: batcher.stats().queued == sum(c.jobs for c in calls))


def cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.sum(a * b, axis=1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))


# -- merging -------------------------------------------------------------------------------------


def test_queued_text_calls_share_one_pass_and_match_unbatched_results(held, demo) -> None:
    recorder, batcher, blocker = held
    calls: list[Call] = []
    groups = [TEXTS[0:1], TEXTS[1:4], TEXTS[4:5], TEXTS[5:9]]  # several items per caller too
    for group in groups:
        queue(batcher, calls, Call(batcher.embed_texts, group))
    recorder.release.set()

    for group, call in zip(groups, calls, strict=True):
        got = call.value()
        assert got.shape == (len(group), demo.dim) and got.dtype == np.float32
        assert np.all(cosines(got, demo.embed_texts(group)) > 0.9999)
    blocker.value()
    assert recorder.sizes_after_first() == [1 + 3 + 1 + 4]
    assert [items for _, items in recorder.calls[1:]] == [[t for g in groups for t in g]]
    stats = batcher.stats()
    assert (stats.forward_passes, stats.jobs, stats.queued) == (2, 5, 0)


@pytest.mark.parametrize(
    ("wrapper", "kind"), [(RecordingEncoder, "image"), (RecordingPixelEncoder, "pixels")]
)
def test_queued_image_calls_share_one_pass_and_match_unbatched_results(
    demo, images, wrapper: type[RecordingEncoder], kind: str
) -> None:
    recorder = wrapper(demo)
    groups = [images[0:1], images[1:2], images[2:6]]
    with holding(recorder) as (batcher, _):
        calls: list[Call] = []
        for group in groups:
            queue(batcher, calls, Call(batcher.embed_images, group))
        recorder.release.set()
        results = [call.value() for call in calls]

    for group, got in zip(groups, results, strict=True):
        assert got.shape == (len(group), demo.dim) and got.dtype == np.float32
        assert np.all(cosines(got, demo.embed_images(group)) > 0.9999)
    assert [(k, len(items)) for k, items in recorder.calls[1:]] == [(kind, 6)]


def test_pixel_passes_are_chunked_by_the_encoders_batch_size(demo, images) -> None:
    recorder = RecordingPixelEncoder(demo)
    recorder.options = EncoderOptions(batch_size=2)  # type: ignore[attr-defined]
    recorder.release.set()
    with BatchingEncoder(recorder) as batcher:
        got = batcher.embed_images(images[:5])

    assert [(kind, len(items)) for kind, items in recorder.calls] == [
        ("pixels", n) for n in (2, 2, 1)
    ]
    assert np.all(cosines(got, demo.embed_images(images[:5])) > 0.9999)


def test_texts_and_images_never_share_a_pass(held) -> None:
    recorder, batcher, _ = held
    calls: list[Call] = []
    image = Image.new("RGB", (64, 64), "red")
    queue(batcher, calls, Call(batcher.embed_texts, ["red"]))
    queue(batcher, calls, Call(batcher.embed_images, [image]))
    queue(batcher, calls, Call(batcher.embed_texts, ["blue"]))
    recorder.release.set()

    for call in calls:
        call.value()
    assert [(kind, len(items)) for kind, items in recorder.calls[1:]] == [
        ("text", 2),
        ("image", 1),
    ]


def test_a_pass_holds_at_most_max_items_and_a_larger_request_is_split(demo) -> None:
    recorder = RecordingEncoder(demo)
    with holding(recorder, max_items=4) as (batcher, blocker):
        calls: list[Call] = []
        for text in TEXTS[:6]:
            queue(batcher, calls, Call(batcher.embed_texts, [text]))
        # Bigger than max_items: two jobs of 4 and 3, its rows still in order.
        queue(batcher, calls, Call(batcher.embed_texts, TEXTS[:7]), jobs=2)
        recorder.release.set()
        for call in [blocker, *calls]:
            call.value()
        whole = calls[-1].value()
        assert whole.shape == (7, demo.dim)
        assert cosines(whole, demo.embed_texts(TEXTS[:7])).min() > 0.9999

    assert recorder.sizes_after_first() == [4, 2, 4, 3]


def test_interactive_work_runs_between_the_passes_of_a_large_bulk_call(held) -> None:
    recorder, batcher, _ = held  # max_items 32
    calls: list[Call] = []
    bulk = [f"caption {i}" for i in range(70)]
    queue(batcher, calls, Call(batcher.embed_texts, bulk, priority=Priority.BULK), jobs=3)
    queue(batcher, calls, Call(batcher.embed_texts, ["a query"]))
    recorder.release.set()
    for call in calls:
        call.value()
    assert calls[0].value().shape[0] == 70
    assert [len(items) for _, items in recorder.calls[1:]] == [1, 32, 32, 6]
    assert recorder.calls[1][1] == ["a query"]


def test_the_parts_of_a_split_bulk_call_age_one_by_one(demo) -> None:
    """Once a bulk call has waited past bulk_max_delay, only its next pass jumps the queue: the
    part after it ages from then, so a newer query still runs before it."""
    recorder = RecordingEncoder(demo)
    with BatchingEncoder(recorder, max_items=2, max_wait_s=0.0, bulk_max_delay_s=0.5) as batcher:
        blocker = Call(batcher.embed_texts, ["the first caller"])
        assert recorder.entered.wait(WAIT_S)
        calls: list[Call] = []
        bulk = ["b1", "b2", "b3", "b4", "b5", "b6"]
        queue(batcher, calls, Call(batcher.embed_texts, bulk, priority=Priority.BULK), jobs=3)
        time.sleep(0.6)  # the whole bulk call is now overdue
        queue(batcher, calls, Call(batcher.embed_texts, ["new query"]))
        recorder.release.set()
        for call in (blocker, *calls):
            call.value()
    assert [items for _, items in recorder.calls[1:]] == [
        ["b1", "b2"], ["new query"], ["b3", "b4"], ["b5", "b6"]
    ]


def test_a_failing_part_of_a_large_call_withdraws_the_rest(demo) -> None:
    recorder = RecordingEncoder(demo, fails=lambda text: text == "bad")
    with holding(recorder, max_items=2) as (batcher, _):
        calls: list[Call] = []
        queue(batcher, calls, Call(batcher.embed_texts, ["bad", "b", "c", "d", "e"]), jobs=3)
        recorder.release.set()
        with pytest.raises(ValueError, match="cannot be embedded"):
            calls[0].value()
        wait_until(lambda: batcher.stats().queued == 0)
    # The first job failed; the other two never reached the model.
    assert [items for _, items in recorder.calls[1:]] == [["bad", "b"]]


def test_empty_input_needs_no_forward_pass(demo) -> None:
    with BatchingEncoder(demo) as batcher:
        assert batcher.embed_texts([]).shape == (0, demo.dim)
        assert batcher.embed_images([]).shape == (0, demo.dim)
        assert batcher.stats().forward_passes == 0


# -- deadlines and priority ----------------------------------------------------------------------


def test_work_whose_deadline_passed_is_dropped_unrun(held) -> None:
    recorder, batcher, _ = held
    too_late = Call(batcher.embed_texts, ["too late"], deadline=time.monotonic() - 1).join()
    assert isinstance(too_late.error, DeadlineExceededError)
    calls: list[Call] = []
    queue(batcher, calls, Call(batcher.embed_texts, ["in time"], deadline=time.monotonic() + 600))
    recorder.release.set()

    (in_time,) = (call.join() for call in calls)
    assert in_time.error is None and in_time.result is not None
    assert [items for _, items in recorder.calls[1:]] == [["in time"]]
    assert batcher.stats().dropped_expired == 1


def test_a_waiting_caller_leaves_at_its_deadline_while_the_worker_is_busy(held) -> None:
    recorder, batcher, _ = held
    started = time.monotonic()
    waiting = Call(batcher.embed_texts, ["short deadline"], deadline=started + 0.3).join()
    # The worker is still held in its first pass: the caller did not wait for it.
    assert not recorder.release.is_set()
    assert isinstance(waiting.error, DeadlineExceededError)
    assert 0.25 < time.monotonic() - started < 5.0
    assert batcher.stats().queued == 0 and batcher.stats().dropped_expired == 1
    recorder.release.set()
    assert recorder.calls[1:] == []  # the expired job never reached the model


def test_bulk_work_that_waited_too_long_runs_before_newer_interactive_work(demo) -> None:
    recorder = RecordingEncoder(demo)
    with BatchingEncoder(recorder, max_wait_s=0.0, bulk_max_delay_s=0.05) as batcher:
        blocker = Call(batcher.embed_texts, ["the first caller"])
        assert recorder.entered.wait(WAIT_S)
        calls: list[Call] = []
        queue(batcher, calls, Call(batcher.embed_texts, ["old bulk"], priority=Priority.BULK))
        time.sleep(0.1)  # the bulk job is now overdue
        queue(batcher, calls, Call(batcher.embed_texts, ["new query"]))
        recorder.release.set()
        for call in (blocker, *calls):
            call.value()
    assert [items for _, items in recorder.calls[1:]] == [["old bulk"], ["new query"]]


def test_interactive_work_runs_before_bulk_work_queued_earlier(held, images) -> None:
    recorder, batcher, _ = held
    calls: list[Call] = []
    queue(batcher, calls, Call(batcher.embed_images, images[:2], priority=Priority.BULK))
    queue(batcher, calls, Call(batcher.embed_texts, ["bulk caption"], priority=Priority.BULK))
    queue(batcher, calls, Call(batcher.embed_texts, ["a query"]))
    queue(batcher, calls, Call(batcher.embed_images, images[2:3]))
    recorder.release.set()

    for call in calls:
        call.value()
    order = [(kind, len(items)) for kind, items in recorder.calls[1:]]
    # Interactive first (oldest first within it), and a query never shares a pass with bulk.
    assert order == [("text", 1), ("image", 1), ("image", 2), ("text", 1)]
    assert recorder.calls[1][1] == ["a query"]


def test_embeds_decorator_carries_priority_and_the_rpc_deadline() -> None:
    class Context:
        def __init__(self, remaining: float) -> None:
            self.remaining = remaining

        def time_remaining(self) -> float:
            return self.remaining

    seen = []

    class Servicer:
        @embeds(Priority.BULK)
        def Index(self, request: object, context: Context) -> None:  # noqa: N802
            seen.append(current_scope())

    before = time.monotonic()
    Servicer().Index(None, Context(5.0))
    Servicer().Index(None, Context(1e12))  # what gRPC reports when the client set no deadline
    assert seen[0].priority is Priority.BULK
    assert seen[0].deadline is not None and before + 4.9 < seen[0].deadline < before + 60
    assert seen[1].deadline is None
    assert rpc_deadline(Context(0.0), clock=lambda: 100.0) == 100.0


def test_deadline_error_maps_to_deadline_exceeded() -> None:
    error = DeadlineExceededError("late")
    assert lookup_status(error, default_status_table()) is grpc.StatusCode.DEADLINE_EXCEEDED


# -- errors and shutdown -------------------------------------------------------------------------


def test_one_callers_bad_input_fails_only_that_caller(demo) -> None:
    recorder = RecordingEncoder(demo, fails=lambda text: "boom" in text)
    with holding(recorder) as (batcher, blocker):
        calls: list[Call] = []
        for texts in (["fine one"], ["boom"], ["fine two", "fine three"]):
            queue(batcher, calls, Call(batcher.embed_texts, texts))
        recorder.release.set()
        blocker.value()
        good, bad, good_too = (call.join() for call in calls)

    assert isinstance(bad.error, ValueError)
    assert good.error is None and good_too.error is None
    assert np.all(cosines(good.value(), demo.embed_texts(["fine one"])) > 0.9999)
    assert np.all(cosines(good_too.value(), demo.embed_texts(["fine two", "fine three"])) > 0.9999)


def test_a_failing_encoder_fails_every_waiter(demo) -> None:
    recorder = RecordingEncoder(demo, fails=lambda text: True)
    with holding(recorder) as (batcher, blocker):
        calls: list[Call] = []
        for text in TEXTS[:3]:
            queue(batcher, calls, Call(batcher.embed_texts, [text]))
        recorder.release.set()
        errors = [call.join().error for call in [blocker, *calls]]

    assert all(isinstance(error, ValueError) for error in errors)
    assert len({id(error) for error in errors}) == len(errors)  # each raises its own


def test_close_fails_queued_work_and_refuses_new_work(demo) -> None:
    recorder = RecordingEncoder(demo)
    batcher = BatchingEncoder(recorder, max_wait_s=0.0)
    blocker = Call(batcher.embed_texts, ["running"])
    assert recorder.entered.wait(WAIT_S)
    calls: list[Call] = []
    queue(batcher, calls, Call(batcher.embed_texts, ["queued"]))
    closing = threading.Thread(target=batcher.close)
    closing.start()
    assert isinstance(calls[0].join().error, UnavailableError)
    recorder.release.set()  # the running pass still finishes and is delivered
    closing.join(WAIT_S)
    assert blocker.value().shape == (1, demo.dim)
    with pytest.raises(UnavailableError):
        batcher.embed_texts(["after close"])


# -- end to end over gRPC ------------------------------------------------------------------------


def jpeg(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.convert("RGB").save(buffer, "JPEG", quality=90)
    return buffer.getvalue()


def test_concurrent_text_searches_over_grpc_are_batched_and_correct(tmp_path) -> None:
    settings = load_settings(
        {
            "model_id": "mediarec-demo",
            "data_dir": str(tmp_path / "data"),
            "port": 0,
            "workers": 16,
            "batching": True,
            "batching_max_wait_ms": 20.0,
        },
        {},
        None,
    )
    deps = open_deps(settings)
    assert deps.batcher is not None and deps.encoder is deps.batcher
    running = build_server(settings, ServiceState(deps))
    client = MediarecClient(f"127.0.0.1:{running.port}")
    try:
        for i, post in enumerate(WorldGenerator(2024, image_size=64).posts(40)):
            client.index_media(
                MediaMetadata(media_id=f"p{i:02d}", creator_id="w", caption=post.caption),
                jpeg(post.image),
            )
        queries = TEXTS + ["something red", "something blue", "a star", "a square"]
        assert len(queries) == 16
        only_world = MediaFilter(creator_ids=("w",))
        expected = {q: client.search_text(q, k=5, media_filter=only_world) for q in queries}
        before = deps.batcher.stats().forward_passes
        start = threading.Barrier(len(queries))

        def search(query: str) -> list:
            start.wait(WAIT_S)
            return client.search_text(query, k=5, media_filter=only_world)

        calls = [Call(search, q) for q in queries]
        results = {q: call.value() for q, call in zip(queries, calls, strict=True)}
        passes = deps.batcher.stats().forward_passes - before
    finally:
        client.close()
        running.stop(0)

    for query in queries:
        got, want = results[query], expected[query]
        assert [hit.item.media_id for hit in got] == [hit.item.media_id for hit in want]
        assert [hit.score for hit in got] == pytest.approx([hit.score for hit in want], abs=1e-4)
    assert passes < len(queries), "16 concurrent queries never shared a forward pass"


# The dying worker's exception is the point of the test, not a stray one.
@pytest.mark.filterwarnings("ignore::pytest.PytestUnhandledThreadExceptionWarning")
def test_queued_callers_fail_instead_of_hanging_when_the_worker_dies(demo, monkeypatch) -> None:
    recorder = RecordingEncoder(demo)
    with holding(recorder) as (batcher, blocker):
        calls: list[Call] = []
        queue(batcher, calls, Call(batcher.embed_texts, ["queued"]))

        def broken(*args: object) -> None:
            raise RuntimeError("bug in the batch picker")

        monkeypatch.setattr(batcher, "_next_batch", broken)
        recorder.release.set()
        assert blocker.value() is not None  # the pass that was running still finishes
        (queued,) = (call.join() for call in calls)
        assert isinstance(queued.error, UnavailableError)
        monkeypatch.undo()
        assert batcher.embed_texts(["after"]).shape[0] == 1  # a fresh worker serves new work
