"""Index a folder: decode threads ahead of overlapping commits, bounded in memory.

The pipeline keeps the model busy: a pool of decode threads reads, hashes and decodes files
(PIL and PyAV release the GIL) up to a bounded number of items ahead, and full batches are
committed (one forward pass per batch, then durable writes) by two commit threads where the sink
allows it, so one batch is embedded while the one before it is written: writes wait on fsync,
and the model would idle through them. Where the items go is an :class:`IndexSink`.

Re-running is cheap and safe: unchanged files (same content hash and metadata) are skipped
before decoding, and writes are idempotent upserts keyed by the media id, so an interrupted
run continues where it stopped without duplicates.
"""

from __future__ import annotations

import logging
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from pathlib import Path
from typing import Any

from mediarec.server.indexing.describe import read_metadata
from mediarec.server.indexing.folder import FolderFile, read_extensions, scan_folder
from mediarec.server.indexing.manifest import Manifests
from mediarec.server.indexing.report import (
    FileResult,
    FileStatus,
    IndexReport,
)
from mediarec.server.indexing.sidecars import Fields
from mediarec.server.indexing.sinks import (
    IndexAborted,
    IndexSink,
    PreparedFile,
)

logger = logging.getLogger(__name__)


# How far decoding may run ahead of the commits, in batches: one batch being embedded while the
# next is decoded keeps the model fed; more only costs memory.
BATCHES_AHEAD = 2
# Without a progress bar (not a TTY), a log line this often shows the run is alive.
PROGRESS_LOG_INTERVAL_S = 15.0


def index_folder(
    folder: Path,
    sink: IndexSink,
    *,
    workers: int,
    batch_size: int,
    progress: bool = False,
    stop_event: threading.Event | None = None,
    exclude: Sequence[Path] = (),
    manifests: Manifests | None = None,
    id_prefix: str = "",
) -> IndexReport:
    """Index every supported file under ``folder`` into ``sink``; never raises for a bad file.

    Decode threads run up to ``BATCHES_AHEAD`` batches ahead of the commits, of which up to
    ``sink.concurrent_commits`` run at once. Setting ``stop_event`` or a ``KeyboardInterrupt``
    starts no new commit; the ones in flight finish (a write cannot be taken back half-way) and
    are reported. Either way the report says which files were done; the rest are ``not_processed``.
    ``manifests`` give metadata by file (sidecars still win); the manifest files themselves are
    not counted as skipped.
    """
    manifests = manifests or Manifests({}, (), ())
    scan = scan_folder(folder, (*exclude, *manifests.files), id_prefix)
    files = scan.files
    found = {f.rel for f in files}
    report = IndexReport(
        str(folder),
        sink.target,
        len(files),
        extensions_read=read_extensions(),
        skipped_by_extension=scan.skipped,
        manifests=tuple(str(p) for p in manifests.files),
        unmatched_records=(
            *(f"{rel}: no such media file" for rel in sorted(manifests.fields) if rel not in found),
            *(f"{entry}: outside the folder" for entry in manifests.outside),
        ),
    )
    stop = stop_event or threading.Event()
    started = time.monotonic()
    meter = _Progress(len(files), enabled=progress)
    pool = ThreadPoolExecutor(max(1, workers), thread_name_prefix="decode")
    try:
        _run(files, sink, pool, batch_size, stop, report, meter, manifests)
    except KeyboardInterrupt:
        logger.info("interrupted; no further batches were started")
        report.interrupted = True
    except IndexAborted as exc:
        report.aborted = str(exc)
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
        meter.close()
        report.elapsed_s = time.monotonic() - started
    report.interrupted = report.interrupted or (stop.is_set() and report.not_processed > 0)
    return report


def _run(
    files: Sequence[FolderFile],
    sink: IndexSink,
    pool: ThreadPoolExecutor,
    batch_size: int,
    stop: threading.Event,
    report: IndexReport,
    meter: _Progress,
    manifests: Manifests,
) -> None:
    def record(result: FileResult) -> None:
        report.results.append(result)
        meter.update(result)

    limit = max(1, sink.concurrent_commits)
    committer = ThreadPoolExecutor(limit, thread_name_prefix="commit")
    in_flight: deque[Future[list[FileResult]]] = deque()
    try:
        batches = _prepared_batches(files, sink, pool, batch_size, stop, record, manifests)
        for batch in batches:
            if len(in_flight) == limit:
                # A failed commit raises here and stays queued for _record_all to report; a
                # finished one leaves the queue before its results are recorded, never twice.
                results = in_flight[0].result()
                in_flight.popleft()
                for result in results:
                    record(result)
            if stop.is_set():
                return
            in_flight.append(committer.submit(_commit, sink, batch))
    finally:
        # However the run ends, the commits in flight finish (a write cannot be taken back
        # half-way) and are reported, so the report matches the store.
        committer.shutdown(wait=True)
        _record_all(in_flight, record)


def _record_commit(commit: Future[list[FileResult]], record: Callable[[FileResult], None]) -> None:
    try:
        results = commit.result()
    except IndexAborted as exc:
        # The sink stopped part-way: what it did store before that is in the report too.
        for result in exc.done:
            record(result)
        raise
    for result in results:
        record(result)


def _record_all(
    commits: deque[Future[list[FileResult]]], record: Callable[[FileResult], None]
) -> None:
    """Record finished commits in order, then raise the first interrupt among them, else the
    first failure (IndexAborted): whoever pressed Ctrl-C gets the interrupted exit status
    (130) even when another commit aborted."""
    failure: BaseException | None = None
    while commits:
        try:
            _record_commit(commits.popleft(), record)
        except BaseException as exc:  # re-raised below
            interrupt = isinstance(exc, KeyboardInterrupt)
            if failure is None or (interrupt and not isinstance(failure, KeyboardInterrupt)):
                failure = exc
    if failure is not None:
        raise failure


def _prepared_batches(
    files: Sequence[FolderFile],
    sink: IndexSink,
    pool: ThreadPoolExecutor,
    batch_size: int,
    stop: threading.Event,
    record: Callable[[FileResult], None],
    manifests: Manifests,
) -> Iterator[list[PreparedFile]]:
    """Batches of changed files in folder order; unchanged and failed files are recorded."""
    todo = iter(files)
    pending: deque[tuple[FolderFile, Future[PreparedFile]]] = deque()
    window = BATCHES_AHEAD * batch_size
    batch: list[PreparedFile] = []
    while True:
        while len(pending) < window and (file := next(todo, None)) is not None:
            listed = manifests.listed(file.rel)
            pending.append((file, pool.submit(_prepare, sink, file, listed)))
        if stop.is_set():
            return  # no new commit starts after a stop, so a partial batch is not wanted
        if not pending:
            break
        file, future = pending[0]
        if not future.done():
            wait([future], timeout=0.25, return_when=FIRST_COMPLETED)  # to notice `stop`
            continue
        pending.popleft()
        try:
            prepared = future.result()
        except IndexAborted:
            raise
        except Exception as exc:  # one bad file must not stop the folder; it is reported
            logger.debug("failed to prepare %s", file.rel, exc_info=True)
            record(FileResult(file.rel, file.media_id, FileStatus.FAILED, reason=_reason(exc)))
            continue
        if prepared.work is None:
            record(FileResult(file.rel, file.media_id, FileStatus.UNCHANGED, prepared.media_type))
            continue
        batch.append(prepared)
        if len(batch) >= batch_size:
            yield batch
            batch = []
    if batch:
        yield batch


def _prepare(sink: IndexSink, file: FolderFile, listed: Fields | None) -> PreparedFile:
    return sink.prepare(file, read_metadata(file, listed))


def _commit(sink: IndexSink, batch: list[PreparedFile]) -> list[FileResult]:
    """Commit a batch; if it fails as a whole, commit its items one by one to find the culprit."""
    try:
        return sink.commit(batch)
    except IndexAborted:
        raise
    except Exception as exc:
        if len(batch) == 1:
            file = batch[0].file
            logger.debug("failed to commit %s", file.rel, exc_info=True)
            return [FileResult(file.rel, file.media_id, FileStatus.FAILED, reason=_reason(exc))]
        logger.warning("a batch of %d failed (%s); retrying one by one", len(batch), exc)
        return [result for item in batch for result in _commit(sink, [item])]


def _reason(exc: BaseException) -> str:
    text = str(exc).strip()
    return text if text else type(exc).__name__


class _Progress:
    """A tqdm bar on stderr (files/s and ETA), or a log line now and then when there is none."""

    def __init__(self, total: int, *, enabled: bool) -> None:
        self._total = total
        self._done = 0
        self._started = time.monotonic()
        self._last_log = self._started
        self._bar: Any = None
        if enabled:
            from tqdm import tqdm

            self._bar = tqdm(total=total, unit="file", file=sys.stderr, dynamic_ncols=True)

    def update(self, result: FileResult) -> None:
        self._done += 1
        if self._bar is not None:
            self._bar.update(1)
            return
        now = time.monotonic()
        if now - self._last_log >= PROGRESS_LOG_INTERVAL_S:
            self._last_log = now
            rate = self._done / (now - self._started)
            logger.info("indexed %d/%d files (%.1f files/s)", self._done, self._total, rate)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
