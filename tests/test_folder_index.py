"""The folder indexer against real parts: Qdrant Edge in tmp_path, real decoding, the CLIP path.

Fixtures build one sample folder (demo-world photos with .txt/.json sidecars, two MP4 videos,
a corrupt JPEG and a photo with a malformed sidecar) and one loaded model per module.
"""

from __future__ import annotations

import dataclasses
import json
import shutil
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import numpy as np
import pytest

from mediarec.encoders.registry import BUNDLED_WEIGHTS_DIR, DEMO_MODEL_ID
from mediarec.encoders.synthetic.sample_folder import SampleItem, write_sample_folder
from mediarec.server.cli import main
from mediarec.server.cli.index import graceful_ctrl_c
from mediarec.server.config import Settings, load_settings
from mediarec.server.indexing.describe import read_metadata
from mediarec.server.indexing.folder import FolderFile, media_id_for, scan_folder
from mediarec.server.indexing.indexer import MEDIA_ID_PATTERN
from mediarec.server.indexing.pipeline import index_folder
from mediarec.server.indexing.report import FileResult, FileStatus, IndexReport, default_report_path
from mediarec.server.indexing.sidecars import SidecarError
from mediarec.server.indexing.sinks import (
    OVERLAPPING_COMMITS,
    ClientSink,
    EmbeddedSink,
    IndexAborted,
    IndexSink,
    PreparedFile,
)
from mediarec.server.media import ItemMetadata, Location, MediaType
from mediarec.server.runtime import ServiceDeps, ServiceState, open_deps

N_PHOTOS = 6
CORRUPT = "photos/zz_corrupt.jpg"
BAD_SIDECAR = "photos/zz_bad_sidecar.jpg"


# -- fixtures --------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def model_id() -> str:
    if not (BUNDLED_WEIGHTS_DIR / DEMO_MODEL_ID / "open_clip_model.safetensors").is_file():
        pytest.skip("the bundled demo model's weights are missing")
    return DEMO_MODEL_ID


def make_settings(model_id: str, data_dir: Path, **extra: object) -> Settings:
    overrides = {
        "model_id": model_id,
        "data_dir": str(data_dir),
        "host": "127.0.0.1",
        "port": 0,
        "batch_size": 4,
        "video_frames": 4,
        **extra,
    }
    return load_settings(overrides, {}, None)


@pytest.fixture(scope="module")
def sample(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[SampleItem]]:
    folder = tmp_path_factory.mktemp("media")
    items = write_sample_folder(folder, n_photos=N_PHOTOS)
    first_photo = items[0].path.read_bytes()
    (folder / CORRUPT).write_bytes(first_photo[: len(first_photo) // 3])  # truncated JPEG
    shutil.copy(items[1].path, folder / BAD_SIDECAR)
    (folder / BAD_SIDECAR).with_suffix(".json").write_text('{"created_at": "last tuesday"}')
    (folder / "notes.md").write_text("not media")
    (folder / ".thumbnails").mkdir()
    shutil.copy(items[0].path, folder / ".thumbnails" / "hidden.jpg")
    return folder, items


@pytest.fixture(scope="module")
def deps(model_id: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServiceDeps]:
    opened = open_deps(make_settings(model_id, tmp_path_factory.mktemp("data")))
    yield opened
    opened.close()


@pytest.fixture
def fresh_deps(deps: ServiceDeps) -> ServiceDeps:
    """The module's deps with an empty store (reopening a store per test costs seconds)."""
    deps.store.delete(list(deps.store.iter_ids()))
    assert deps.store.count() == 0
    return deps


def run(folder: Path, sink: IndexSink, **kwargs: object) -> IndexReport:
    options: dict = {"workers": 2, "batch_size": 4, **kwargs}
    return index_folder(folder, sink, **options)


# -- scanning and sidecars (pure) -----------------------------------------------------------


def test_scan_is_recursive_sorted_and_skips_hidden_and_non_media(tmp_path: Path) -> None:
    names = ("b/2.PNG", "a.jpg", "a.txt", "b/1.mov.json", ".hidden.jpg", ".cache/x.jpg", "c.txt",
             "d.json", "b/1.mov", "notes")  # fmt: skip
    for name in names:
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_bytes(b"x")
    report = tmp_path / "report.jpg"  # even a report path that looks like media is skipped
    report.write_bytes(b"x")
    scan = scan_folder(tmp_path, exclude=[report])
    files = scan.files
    assert [(f.rel, f.kind) for f in files] == [
        ("a.jpg", "image"),
        ("b/1.mov", "video"),
        ("b/2.PNG", "image"),
    ]
    assert [f.media_id for f in files] == ["a.jpg", "b/1.mov", "b/2.PNG"]
    # Sidecars of media files are read, not skipped; other files are counted by extension.
    assert scan.skipped == {"": 1, ".json": 1, ".txt": 1}


def test_media_ids_of_awkward_paths_are_valid_readable_and_distinct() -> None:
    awkward = ["my photos/cat 1.jpg", "my_photos/cat_1.jpg", "_x/é.jpg", "ü.png"]
    ids = [media_id_for(p) for p in awkward]
    assert all(MEDIA_ID_PATTERN.match(i) for i in ids)
    assert ids[0].startswith("my_photos/cat_1.jpg@")
    assert ids[1] == "my_photos/cat_1.jpg"  # a clean path is its own id
    assert len(set(ids)) == len(ids)


def _file(folder: Path, name: str) -> FolderFile:
    path = folder / name
    path.write_bytes(b"")
    return FolderFile(path, name, name, "image")


def test_json_sidecar_fields_and_txt_fallback(tmp_path: Path) -> None:
    media = _file(tmp_path, "a.jpg")
    (tmp_path / "a.json").write_text(
        json.dumps(
            {
                "caption": " surf at dawn ",
                "tags": ["surf", "sea"],
                "creator": "ana",
                "created_at": "2024-05-01T12:00:00Z",
                "location": {"region": "PT", "latitude": 38.7, "longitude": -9.1},
            }
        )
    )
    assert read_metadata(media) == ItemMetadata(
        media_id="a.jpg",
        source=str(media.path),
        creator_id="ana",
        caption="surf at dawn",
        tags=("surf", "sea"),
        created_at=1714564800,
        location=Location("PT", 38.7, -9.1),
    )
    other = _file(tmp_path, "b.jpg")
    (tmp_path / "b.jpg.json").write_text('{"creator_id": "bo", "created_at": 1700000000}')
    (tmp_path / "b.txt").write_text("caption from the text file\n")
    meta = read_metadata(other)
    assert (meta.caption, meta.creator_id, meta.created_at) == (
        "caption from the text file",
        "bo",
        1700000000,
    )
    bare = _file(tmp_path, "c.jpg")
    # Nothing said when it was made: the file's mtime is the best guess.
    mtime = int(bare.path.stat().st_mtime)
    assert read_metadata(bare) == ItemMetadata(
        media_id="c.jpg", created_at=mtime, source=str(bare.path)
    )


@pytest.mark.parametrize(
    "content",
    [
        "{not json",
        "[1, 2]",
        '{"caption": 3}',
        '{"tags": [1]}',
        '{"created_at": "soon"}',
        '{"created_at": true}',
        '{"location": {"latitude": "north"}}',
    ],
)
def test_malformed_json_sidecar_is_a_sidecar_error(tmp_path: Path, content: str) -> None:
    media = _file(tmp_path, "a.jpg")
    (tmp_path / "a.json").write_text(content)
    with pytest.raises(SidecarError, match=r"a\.json"):
        read_metadata(media)


# -- indexing in-process --------------------------------------------------------------------


def _by_path(report: IndexReport) -> dict[str, FileResult]:
    return {r.path: r for r in report.results}


def test_indexes_everything_with_types_and_sidecar_metadata(
    sample: tuple[Path, list[SampleItem]], fresh_deps: ServiceDeps
) -> None:
    folder, items = sample
    report = run(folder, EmbeddedSink(fresh_deps))
    results = _by_path(report)
    assert report.total_files == len(items) + 2  # the hidden copy and notes.md are not media
    assert report.count(FileStatus.CREATED) == len(items)
    assert {r.path for r in report.failures} == {CORRUPT, BAD_SIDECAR}
    assert all(r.reason for r in report.failures)
    assert fresh_deps.store.count() == len(items)
    for item in items:
        rel = item.path.relative_to(folder).as_posix()
        stored = fresh_deps.search.get(rel)
        assert results[rel].status is FileStatus.CREATED
        assert stored.media_type.value == item.kind == results[rel].media_type
        assert stored.metadata.caption == item.caption
        sidecar = item.path.with_suffix(".json")
        if sidecar.exists():
            doc = json.loads(sidecar.read_text())
            assert stored.metadata.tags == tuple(doc["tags"])
            assert stored.metadata.creator_id == doc["creator_id"]
            assert stored.metadata.created_at is not None and stored.metadata.created_at > 0
        if item.kind == "video":
            assert len(stored.frame_timestamps_s) == 4
            assert 0 <= stored.frame_timestamps_s[-1] <= stored.duration_s


def test_reindexing_unchanged_folder_adds_nothing(
    sample: tuple[Path, list[SampleItem]], fresh_deps: ServiceDeps
) -> None:
    folder, items = sample
    run(folder, EmbeddedSink(fresh_deps))
    again = run(folder, EmbeddedSink(fresh_deps))
    assert again.count(FileStatus.UNCHANGED) == len(items)
    assert again.count(FileStatus.CREATED) + again.count(FileStatus.UPDATED) == 0
    assert fresh_deps.store.count() == len(items)


def test_changed_sidecar_updates_only_that_file(
    tmp_path: Path, sample: tuple[Path, list[SampleItem]], fresh_deps: ServiceDeps
) -> None:
    folder = tmp_path / "copy"
    shutil.copytree(sample[0], folder)
    run(folder, EmbeddedSink(fresh_deps))
    (folder / "photos" / "photo_000.txt").write_text("a brand new caption")
    again = _by_path(run(folder, EmbeddedSink(fresh_deps)))
    changed = [p for p, r in again.items() if r.status in (FileStatus.CREATED, FileStatus.UPDATED)]
    assert changed == ["photos/photo_000.jpg"]
    assert again["photos/photo_000.jpg"].status is FileStatus.UPDATED
    assert fresh_deps.search.get("photos/photo_000.jpg").metadata.caption == "a brand new caption"


def test_a_metadata_change_reuses_the_stored_vectors_instead_of_embedding_again(
    tmp_path: Path, sample: tuple[Path, list[SampleItem]], fresh_deps: ServiceDeps
) -> None:
    """A new caption costs one text embedding; a new mtime (created_at) costs none."""
    import os

    from mediarec.server.store import schema

    folder = tmp_path / "copy"
    shutil.copytree(sample[0], folder)
    run(folder, EmbeddedSink(fresh_deps))
    ids = ["photos/photo_000.jpg", "photos/photo_002.jpg"]  # .txt sidecars: no created_at
    before = fresh_deps.store.get(ids, with_vectors=True)
    (folder / "photos" / "photo_000.txt").write_text("a brand new caption")
    os.utime(folder / "photos" / "photo_002.jpg", (1_500_000_000, 1_500_000_000))
    assert fresh_deps.batcher is not None
    sent = fresh_deps.batcher.stats().items
    again = _by_path(run(folder, EmbeddedSink(fresh_deps)))
    assert [again[i].status for i in ids] == [FileStatus.UPDATED, FileStatus.UPDATED]
    assert fresh_deps.batcher.stats().items - sent == 1  # the new caption; no picture
    after = fresh_deps.store.get(ids, with_vectors=True)
    for media_id in ids:
        np.testing.assert_array_equal(
            after[media_id].vectors[schema.VISUAL], before[media_id].vectors[schema.VISUAL]
        )
    caption = schema.CAPTION
    assert not np.allclose(after[ids[0]].vectors[caption], before[ids[0]].vectors[caption])
    np.testing.assert_array_equal(after[ids[1]].vectors[caption], before[ids[1]].vectors[caption])
    assert fresh_deps.search.get(ids[1]).metadata.created_at == 1_500_000_000


class InterruptingSink:
    """Delegates to a real sink, then interrupts: Ctrl-C inside commit number ``at``."""

    def __init__(self, inner: IndexSink, at: int, stop: threading.Event | None = None) -> None:
        self._inner = inner
        self._at = at
        self._stop = stop
        self.commits = 0

    @property
    def target(self) -> str:
        return self._inner.target

    @property
    def concurrent_commits(self) -> int:
        return self._inner.concurrent_commits

    def prepare(self, file: FolderFile, metadata: ItemMetadata) -> PreparedFile:
        return self._inner.prepare(file, metadata)

    def commit(self, items: Sequence[PreparedFile]) -> list[FileResult]:
        self.commits += 1
        if self.commits == self._at:
            if self._stop is None:
                raise KeyboardInterrupt
            self._stop.set()  # like the first Ctrl-C: this batch is finished, then it stops
        return self._inner.commit(items)


def test_ctrl_c_mid_run_then_rerun_completes_without_duplicates(
    sample: tuple[Path, list[SampleItem]], fresh_deps: ServiceDeps
) -> None:
    folder, items = sample
    sink = InterruptingSink(EmbeddedSink(fresh_deps), at=2)
    first = run(folder, sink, batch_size=2)
    assert first.interrupted
    done = first.count(FileStatus.CREATED)  # batches in flight beside the interrupted one
    assert 2 <= done < len(items) and first.not_processed > 0
    assert fresh_deps.store.count() == done  # the report says exactly what was stored
    second = run(folder, EmbeddedSink(fresh_deps), batch_size=2)
    assert not second.interrupted and second.not_processed == 0
    assert second.count(FileStatus.UNCHANGED) == done
    assert second.count(FileStatus.CREATED) == len(items) - done
    assert fresh_deps.store.count() == len(items)
    video_ids = [i.path.relative_to(folder).as_posix() for i in items if i.kind == "video"]
    assert all(len(fresh_deps.store.get_frames(v)) == 4 for v in video_ids)


def test_stop_event_starts_no_new_commit_and_finishes_those_in_flight(
    sample: tuple[Path, list[SampleItem]], fresh_deps: ServiceDeps
) -> None:
    folder, items = sample
    stop = threading.Event()
    sink = InterruptingSink(EmbeddedSink(fresh_deps), at=1, stop=stop)
    report = run(folder, sink, batch_size=3, stop_event=stop)
    assert report.interrupted and 1 <= sink.commits <= OVERLAPPING_COMMITS
    assert report.count(FileStatus.CREATED) == 3 * sink.commits == fresh_deps.store.count()


class RecordingSink:
    """A pure-logic sink: each file's "work" is its path; commits are scripted per call."""

    def __init__(
        self, on_commit: Callable[[int], None], concurrency: int = OVERLAPPING_COMMITS
    ) -> None:
        self._on_commit = on_commit
        self._concurrency = concurrency
        self._lock = threading.Lock()
        self.calls = 0
        self.running = 0
        self.most_at_once = 0
        self.stored: list[str] = []

    @property
    def target(self) -> str:
        return "memory"

    @property
    def concurrent_commits(self) -> int:
        return self._concurrency

    def prepare(self, file: FolderFile, metadata: ItemMetadata) -> PreparedFile:
        return PreparedFile(file, file.rel, "image")

    def commit(self, items: Sequence[PreparedFile]) -> list[FileResult]:
        with self._lock:
            self.calls += 1
            self.running += 1
            self.most_at_once = max(self.most_at_once, self.running)
            call = self.calls
        try:
            self._on_commit(call)
        finally:
            with self._lock:
                self.running -= 1
        with self._lock:
            self.stored += [item.work for item in items]
        return [
            FileResult(item.file.rel, item.file.media_id, FileStatus.CREATED, item.media_type)
            for item in items
        ]


def _tiny_folder(folder: Path, n: int) -> Path:
    for i in range(n):
        (folder / f"{i:02d}.jpg").write_bytes(b"not decoded by RecordingSink")
    return folder


def test_the_next_batch_is_committed_while_the_previous_one_is_still_committing(
    tmp_path: Path,
) -> None:
    both_in_flight = threading.Barrier(2, timeout=10)  # breaks if commits ran one at a time

    def first_two_meet(call: int) -> None:
        if call <= 2:
            both_in_flight.wait()

    sink = RecordingSink(first_two_meet)
    report = run(_tiny_folder(tmp_path, 6), sink, batch_size=2)
    assert report.count(FileStatus.CREATED) == 6 and sink.calls == 3
    assert sorted(sink.stored) == [f"{i:02d}.jpg" for i in range(6)]


def test_a_sink_that_allows_one_commit_at_a_time_gets_one(tmp_path: Path) -> None:
    sink = RecordingSink(lambda call: time.sleep(0.02), concurrency=1)
    report = run(_tiny_folder(tmp_path, 6), sink, batch_size=2)
    assert report.count(FileStatus.CREATED) == 6 and sink.most_at_once == 1


def test_embedded_sink_overlaps_commits_only_behind_the_batching_worker(
    fresh_deps: ServiceDeps,
) -> None:
    assert fresh_deps.batcher is not None  # batching is on by default
    assert EmbeddedSink(fresh_deps).concurrent_commits == OVERLAPPING_COMMITS
    # Without the worker two forward passes would run at once and fight over the cores.
    assert EmbeddedSink(dataclasses.replace(fresh_deps, batcher=None)).concurrent_commits == 1


def test_an_aborted_commit_still_reports_the_commits_in_flight(tmp_path: Path) -> None:
    def abort_second(call: int) -> None:
        if call == 2:
            raise IndexAborted("the server went away")

    sink = RecordingSink(abort_second)
    report = run(_tiny_folder(tmp_path, 8), sink, batch_size=2)
    assert report.aborted == "the server went away"
    created = sorted(r.path for r in report.results if r.status is FileStatus.CREATED)
    assert created == sorted(sink.stored) and len(created) >= 2
    assert report.not_processed == 8 - len(created)


class HalfwaySink(RecordingSink):
    """Its second commit stores the batch's first file, then loses the server."""

    def commit(self, items: Sequence[PreparedFile]) -> list[FileResult]:
        results = super().commit(items)
        if self.calls == 2:
            raise IndexAborted("the server went away", done=results[:1])
        return results


def test_files_stored_before_a_commit_aborted_are_reported_as_stored(tmp_path: Path) -> None:
    sink = HalfwaySink(lambda call: None, concurrency=1)
    report = run(_tiny_folder(tmp_path, 8), sink, batch_size=3)
    assert report.aborted == "the server went away"
    created = sorted(r.path for r in report.results if r.status is FileStatus.CREATED)
    # The first batch (3 files) and the first file of the second: 4 stored and reported.
    assert created == ["00.jpg", "01.jpg", "02.jpg", "03.jpg"]
    assert report.not_processed == 4


# -- the command ----------------------------------------------------------------------------


def _cli_index(folder: Path, settings: Settings, *extra: str) -> int:
    return main(
        [
            "index",
            str(folder),
            "--model-id",
            settings.model.id,
            "--data-dir",
            str(settings.storage.data_dir),
            "--batch-size",
            "4",
            "--topics-top-k",  # topics are tested through `deps`; embedding them costs seconds
            "0",
            "--no-progress",
            *extra,
        ]
    )


def test_cli_reports_failures_and_exits_nonzero_only_when_strict(
    tmp_path: Path,
    sample: tuple[Path, list[SampleItem]],
    deps: ServiceDeps,
    capsys: pytest.CaptureFixture[str],
) -> None:
    folder, items = sample
    settings = make_settings(deps.encoder.model_id, tmp_path / "data")
    assert _cli_index(folder, settings) == 0
    out = capsys.readouterr().out
    assert CORRUPT in out and BAD_SIDECAR in out
    # The default place is under the data dir, never in the user's folder.
    report_file = default_report_path(Path(settings.storage.data_dir), folder)
    assert report_file.is_relative_to(tmp_path / "data") and not any(folder.glob("*report*"))
    report = json.loads(report_file.read_text())
    assert report["counts"]["files"] == len(items) + 2
    assert report["counts"]["created"] == len(items)
    assert report["counts"]["failed"] == 2
    statuses = {r["path"]: r["status"] for r in report["results"]}
    assert statuses[CORRUPT] == statuses[BAD_SIDECAR] == "failed"
    assert {r["status"] for r in report["results"]} == {"created", "failed"}
    report_path = tmp_path / "out" / "report.json"
    assert _cli_index(folder, settings, "--strict", "--report", str(report_path)) == 1
    again = json.loads(report_path.read_text())
    assert again["counts"]["files"] == len(items) + 2  # the first report is not media
    assert again["counts"]["unchanged"] == len(items) and again["counts"]["created"] == 0


def test_cli_says_the_store_is_locked_by_a_server_and_suggests_server(
    tmp_path: Path,
    sample: tuple[Path, list[SampleItem]],
    deps: ServiceDeps,
    capsys: pytest.CaptureFixture[str],
) -> None:
    settings = deps.settings  # the module's deps hold this store open, as a server would
    assert _cli_index(sample[0], settings) == 2
    err = capsys.readouterr().err
    assert "in use by a running server" in err and "--server" in err


# -- through a running server --------------------------------------------------------------


class CountingClient:
    """Wraps a real client, counting uploads."""

    def __init__(self, inner: object) -> None:
        self._inner = inner
        self.uploads = 0

    def __getattr__(self, name: str) -> object:
        return getattr(self._inner, name)

    def index_file(self, *args: object, **kwargs: object) -> object:
        self.uploads += 1
        return self._inner.index_file(*args, **kwargs)  # type: ignore[attr-defined]


def test_server_mode_indexes_then_skips_unchanged_files_without_uploading(
    tmp_path: Path,
    sample: tuple[Path, list[SampleItem]],
    fresh_deps: ServiceDeps,
    capsys: pytest.CaptureFixture[str],
) -> None:
    from mediarec.client import MediarecClient
    from mediarec.server.app import build_server

    folder, items = sample
    running = build_server(fresh_deps.settings, ServiceState(fresh_deps))
    target = f"127.0.0.1:{running.port}"
    try:
        report_path = tmp_path / "report.json"
        code = main(["index", str(folder), "--server", target, "--report", str(report_path)])
        assert code == 0
        report = json.loads(report_path.read_text())
        assert report["counts"]["created"] == len(items)
        assert {r["path"] for r in report["results"] if r["status"] == "failed"} == {
            CORRUPT,
            BAD_SIDECAR,
        }
        video = next(i for i in items if i.kind == "video").path.relative_to(folder).as_posix()
        assert fresh_deps.search.get(video).media_type is MediaType.VIDEO
        with MediarecClient(target) as client:
            counting = CountingClient(client)
            again = run(folder, ClientSink(counting))  # type: ignore[arg-type]
        assert again.count(FileStatus.UNCHANGED) == len(items)
        assert counting.uploads == 1  # only the corrupt file, which the server refuses again
        assert fresh_deps.store.count() == len(items)
    finally:
        running.server.stop(0).wait()


def test_first_ctrl_c_requests_a_stop_and_the_second_interrupts() -> None:
    import os
    import signal

    stop = threading.Event()
    before = signal.getsignal(signal.SIGINT)
    with pytest.raises(KeyboardInterrupt), graceful_ctrl_c(stop):
        os.kill(os.getpid(), signal.SIGINT)
        time.sleep(0.05)  # the handler runs in the main thread between bytecodes
        assert stop.is_set()
        os.kill(os.getpid(), signal.SIGINT)
        time.sleep(1)
    assert signal.getsignal(signal.SIGINT) is before


def test_a_batch_is_stored_in_one_upsert_and_finds_duplicates_within_itself(
    fresh_deps: ServiceDeps,
) -> None:
    """A batch's media points go to the store in one upsert (one sync), so the store cannot
    see the batch's own earlier items: exact and near duplicates among them are still named."""
    import io

    from mediarec.encoders.synthetic.world import WorldGenerator

    image = WorldGenerator(8, image_size=128).post().image

    def encoded(img: object, quality: int) -> bytes:
        buffer = io.BytesIO()
        img.save(buffer, format="JPEG", quality=quality)  # type: ignore[attr-defined]
        return buffer.getvalue()

    original = encoded(image, 95)
    indexer = fresh_deps.indexer
    prepared = [
        indexer.prepare_bytes(ItemMetadata(media_id="batch-original"), original),
        indexer.prepare_bytes(ItemMetadata(media_id="batch-copy"), original),
        indexer.prepare_bytes(
            ItemMetadata(media_id="batch-repost"), encoded(image.resize((112, 112)), 60)
        ),
    ]
    upserts: list[int] = []
    store_upsert = fresh_deps.store.upsert

    def counting_upsert(points: Sequence[object]) -> None:
        upserts.append(len(points))
        store_upsert(points)  # type: ignore[arg-type]

    fresh_deps.store.upsert = counting_upsert  # type: ignore[method-assign]
    try:
        results = indexer.commit(prepared)
    finally:
        del fresh_deps.store.upsert  # the instance attribute shadowed the method
    assert upserts == [3]
    first, copy, repost = results
    assert not first.duplicate and first.near_duplicate_of == ""
    assert copy.duplicate and copy.duplicate_of == "batch-original"
    assert copy.near_duplicate_of == "batch-original"
    assert not repost.duplicate
    assert repost.near_duplicate_of in ("batch-original", "batch-copy")
    assert fresh_deps.search.get("batch-repost").near_duplicate_of == repost.near_duplicate_of
    assert fresh_deps.store.count() == 3


def test_an_interrupt_wins_over_an_abort_among_the_commits_in_flight() -> None:
    """Ctrl-C while another commit aborts still ends the run as interrupted (exit 130)."""
    from collections import deque
    from concurrent.futures import Future

    from mediarec.server.indexing.pipeline import _record_all

    aborted: Future[list[FileResult]] = Future()
    aborted.set_exception(IndexAborted("the server went away"))
    interrupted: Future[list[FileResult]] = Future()
    interrupted.set_exception(KeyboardInterrupt())
    done: Future[list[FileResult]] = Future()
    done.set_result([FileResult("a.jpg", "a", FileStatus.CREATED)])
    recorded: list[FileResult] = []
    with pytest.raises(KeyboardInterrupt):
        _record_all(deque([aborted, done, interrupted]), recorded.append)
    assert [r.path for r in recorded] == ["a.jpg"]  # the others were still recorded
