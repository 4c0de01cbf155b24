"""``mediarec index DIR``: index a folder of photos and videos, with their sidecar metadata.

The pipeline keeps the model busy: a pool of decode threads reads, hashes and decodes files
(PIL and PyAV release the GIL) up to a bounded number of items ahead, and full batches are
committed (one forward pass per batch, then durable writes) by two commit threads where the sink
allows it, so one batch is embedded while the one before it is written: writes wait on fsync,
and the model would idle through them. Where the items go is an :class:`IndexSink`: the
embedded store in this process, or a running server over gRPC.

Re-running is cheap and safe: unchanged files (same content hash and metadata) are skipped
before decoding, and writes are idempotent upserts keyed by the media id, so an interrupted
run continues where it stopped without duplicates.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import re
import signal
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Any, Protocol

from client import (
    IndexOutcome,
    MediaItem,
    MediaMetadata,
    MediarecClient,
    MediarecError,
    NotFound,
    PermissionDenied,
    Unauthenticated,
    Unavailable,
    UploadSourceChangedError,
    file_sha256,
)
from client import Location as ClientLocation
from encoders.images import SUPPORTED_IMAGE_EXTENSIONS, SUPPORTED_VIDEO_EXTENSIONS
from server.indexing import MEDIA_ID_PATTERN
from server.media import ItemMetadata, Location

if TYPE_CHECKING:
    import argparse

    from server.config import Settings
    from server.indexing import PreparedItem
    from server.runtime import ServiceDeps

logger = logging.getLogger(__name__)

DEFAULT_REPORT_NAME = ".mediarec-index-report.json"
EXIT_OK = 0
EXIT_FAILED = 1
EXIT_UNUSABLE = 2  # bad folder, locked store: nothing was attempted
EXIT_INTERRUPTED = 130  # the shell convention for "stopped by SIGINT"
# How far decoding may run ahead of the commits, in batches: one batch being embedded while the
# next is decoded keeps the model fed; more only costs memory.
BATCHES_AHEAD = 2
# Commits in flight at once where a sink allows it: the next batch's forward pass overlaps this
# batch's fsync-bound writes.
OVERLAPPING_COMMITS = 2
# Without a progress bar (not a TTY), a log line this often shows the run is alive.
PROGRESS_LOG_INTERVAL_S = 15.0


class FileStatus(StrEnum):
    CREATED = "created"
    UPDATED = "updated"
    UNCHANGED = "unchanged"
    FAILED = "failed"


class SidecarError(ValueError):
    """A sidecar file exists but cannot be used; the message names the file and the field."""


class IndexAborted(RuntimeError):
    """The sink cannot go on (server gone, credentials refused): stop the whole run."""


# -- the folder -----------------------------------------------------------------------------


@dataclass(frozen=True)
class FolderFile:
    path: Path  # absolute
    rel: str  # relative to the folder, POSIX form
    media_id: str
    kind: str  # "image" or "video", from the extension (the bytes decide in the end)


def media_id_for(rel: str) -> str:
    """The media id of a file: its relative path, or a cleaned path plus a hash of the original.

    Paths with characters a media id cannot hold (spaces, accents, ...) keep a readable id;
    the hash suffix keeps two such paths from ever sharing one.
    """
    if MEDIA_ID_PATTERN.match(rel):
        return rel
    cleaned = re.sub(r"[^A-Za-z0-9._:/@+=-]", "_", rel).lstrip("._:/@+=-") or "file"
    digest = hashlib.sha1(rel.encode("utf-8", "surrogateescape")).hexdigest()[:12]
    return f"{cleaned[:240]}@{digest}"


def scan_folder(folder: Path, exclude: Sequence[Path] = ()) -> list[FolderFile]:
    """Supported media files under ``folder``, recursively, sorted by relative path.

    Hidden files and folders (names starting with ".") and the paths in ``exclude`` are
    skipped; symlinked folders are not followed, so a link loop cannot trap the walk.
    """
    root = folder.resolve()
    excluded = {p.resolve() for p in exclude}
    found: list[FolderFile] = []
    for directory, subdirs, names in os.walk(root):
        subdirs[:] = sorted(d for d in subdirs if not d.startswith("."))
        for name in names:
            kind = _kind_of(name)
            path = Path(directory) / name
            if name.startswith(".") or kind is None or path in excluded or not path.is_file():
                continue
            rel = path.relative_to(root).as_posix()
            found.append(FolderFile(path, rel, media_id_for(rel), kind))
    found.sort(key=lambda f: f.rel)
    return found


def _kind_of(name: str) -> str | None:
    suffix = os.path.splitext(name)[1].lower()
    if suffix in SUPPORTED_IMAGE_EXTENSIONS:
        return "image"
    if suffix in SUPPORTED_VIDEO_EXTENSIONS:
        return "video"
    return None


# -- sidecars -------------------------------------------------------------------------------


def read_metadata(file: FolderFile) -> ItemMetadata:
    """The item's metadata from ``name.json`` and/or ``name.txt`` next to the media file.

    Both ``photo.json`` and ``photo.jpg.json`` are recognised (the longer name wins). The JSON
    object may hold ``caption``, ``tags`` (list or comma-separated), ``creator_id`` (or
    ``creator``), ``created_at`` (ISO 8601 or unix seconds) and ``location`` (a region string
    or ``{region, latitude, longitude}``). A ``.txt`` sidecar is the caption when the JSON
    has none. Raises :class:`SidecarError` for a sidecar that cannot be used.
    """
    fields: dict[str, Any] = {}
    json_path = _sidecar(file.path, ".json")
    if json_path is not None:
        fields = _parse_json_sidecar(json_path)
    if not fields.get("caption"):
        txt_path = _sidecar(file.path, ".txt")
        if txt_path is not None:
            fields["caption"] = _read_text(txt_path).strip()
    return ItemMetadata(media_id=file.media_id, **fields)


def _sidecar(media: Path, suffix: str) -> Path | None:
    for candidate in (media.with_name(media.name + suffix), media.with_suffix(suffix)):
        if candidate.is_file():
            return candidate
    return None


def _read_text(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise SidecarError(f"sidecar {path.name} is not UTF-8 text ({exc.reason})") from exc


def _parse_json_sidecar(path: Path) -> dict[str, Any]:
    try:
        doc = json.loads(_read_text(path))
    except json.JSONDecodeError as exc:
        raise SidecarError(
            f"sidecar {path.name} is not valid JSON ({exc.msg}, line {exc.lineno})"
        ) from exc
    if not isinstance(doc, dict):
        raise SidecarError(f"sidecar {path.name} must hold a JSON object")

    def bad(key: str, why: str) -> SidecarError:
        return SidecarError(f"sidecar {path.name}: {key} {why}")

    fields: dict[str, Any] = {}
    if "caption" in doc:
        if not isinstance(doc["caption"], str):
            raise bad("caption", "must be a string")
        fields["caption"] = doc["caption"].strip()
    if "tags" in doc:
        fields["tags"] = _tags(doc["tags"], bad)
    creator = doc.get("creator_id", doc.get("creator"))
    if creator is not None:
        if not isinstance(creator, str | int) or isinstance(creator, bool):
            raise bad("creator_id", "must be a string")
        fields["creator_id"] = str(creator)
    if doc.get("created_at") is not None:
        fields["created_at"] = _unix_seconds(doc["created_at"], bad)
    if doc.get("location") is not None:
        fields["location"] = _location(doc["location"], bad)
    return fields


def _tags(value: Any, bad: Callable[[str, str], SidecarError]) -> tuple[str, ...]:
    if isinstance(value, str):
        return tuple(t.strip() for t in value.split(",") if t.strip())
    if not isinstance(value, list) or not all(isinstance(t, str) for t in value):
        raise bad("tags", "must be a list of strings")
    return tuple(t.strip() for t in value if t.strip())


def _unix_seconds(value: Any, bad: Callable[[str, str], SidecarError]) -> int:
    if isinstance(value, int | float) and not isinstance(value, bool):
        return int(value)
    if isinstance(value, str):
        try:
            moment = datetime.fromisoformat(value.strip())
        except ValueError:
            pass
        else:  # a time without a zone is taken as UTC, like the API does
            return int((moment if moment.tzinfo else moment.replace(tzinfo=UTC)).timestamp())
    raise bad("created_at", f"must be ISO 8601 or unix seconds, got {value!r}")


def _location(value: Any, bad: Callable[[str, str], SidecarError]) -> Location:
    if isinstance(value, str):
        return Location(region=value)
    if not isinstance(value, dict):
        raise bad("location", "must be a region string or an object")
    region = value.get("region", "")
    coords = [value.get("latitude"), value.get("longitude")]
    if not isinstance(region, str) or any(
        c is not None and (not isinstance(c, int | float) or isinstance(c, bool)) for c in coords
    ):
        raise bad("location", "needs a string region and numeric latitude/longitude")
    latitude, longitude = (None if c is None else float(c) for c in coords)
    return Location(region=region, latitude=latitude, longitude=longitude)


# -- results and the report ----------------------------------------------------------------


@dataclass(frozen=True)
class FileResult:
    path: str
    media_id: str
    status: FileStatus
    media_type: str = ""
    reason: str = ""

    def as_dict(self) -> dict[str, str]:
        return {
            "path": self.path,
            "media_id": self.media_id,
            "status": self.status.value,
            "media_type": self.media_type,
            "reason": self.reason,
        }


@dataclass
class IndexReport:
    folder: str
    target: str
    total_files: int
    results: list[FileResult] = field(default_factory=list)
    interrupted: bool = False
    aborted: str = ""  # why the sink stopped the run, if it did
    started_at: float = field(default_factory=time.time)
    elapsed_s: float = 0.0

    def count(self, status: FileStatus) -> int:
        return sum(1 for r in self.results if r.status is status)

    @property
    def failures(self) -> list[FileResult]:
        return [r for r in self.results if r.status is FileStatus.FAILED]

    @property
    def not_processed(self) -> int:
        return self.total_files - len(self.results)

    def counts(self) -> dict[str, int]:
        counts = {status.value: self.count(status) for status in FileStatus}
        return {"files": self.total_files, **counts, "not_processed": self.not_processed}

    def as_dict(self) -> dict[str, Any]:
        return {
            "folder": self.folder,
            "target": self.target,
            "started_at": datetime.fromtimestamp(self.started_at, UTC).isoformat(),
            "elapsed_s": round(self.elapsed_s, 3),
            "files_per_s": round(len(self.results) / self.elapsed_s, 2) if self.elapsed_s else 0,
            "interrupted": self.interrupted,
            "aborted": self.aborted,
            "counts": self.counts(),
            "results": [r.as_dict() for r in sorted(self.results, key=lambda r: r.path)],
        }


def write_report(report: IndexReport, path: Path) -> None:
    """Write the JSON report atomically (a reader never sees half a report)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.partial")
    partial.write_text(json.dumps(report.as_dict(), indent=2) + "\n", encoding="utf-8")
    os.replace(partial, path)


# -- sinks: where prepared items go ---------------------------------------------------------


@dataclass
class PreparedFile:
    """A file ready to commit; ``work`` is the sink's own payload, None when unchanged."""

    file: FolderFile
    work: Any
    media_type: str = ""


class IndexSink(Protocol):
    @property
    def target(self) -> str:
        """Where items go, for the report ("embedded store at ...", "server at ...")."""
        ...

    def prepare(self, file: FolderFile, metadata: ItemMetadata) -> PreparedFile:
        """Hash and decode (or check) one file; runs in decode threads; raises for a bad file."""
        ...

    @property
    def concurrent_commits(self) -> int:
        """How many ``commit`` calls may run at once, from different threads (at least 1)."""
        ...

    def commit(self, items: Sequence[PreparedFile]) -> list[FileResult]:
        """Store a batch of changed files, results in order; may raise IndexAborted."""
        ...


class EmbeddedSink:
    """Indexes into this process's model and store (``open_deps``)."""

    def __init__(self, deps: ServiceDeps) -> None:
        self._deps = deps
        # Vectors-only models have no preprocessing; they cannot index media files anyway.
        self._preprocess = getattr(deps.encoder, "preprocess_spec", None)

    @property
    def target(self) -> str:
        storage = self._deps.settings.storage
        if storage.qdrant_url:
            return f"Qdrant at {storage.qdrant_url}"
        return f"embedded store at {storage.data_dir}"

    @property
    def concurrent_commits(self) -> int:
        # The batching worker runs one forward pass at a time, so a second commit queues its
        # pass behind the first one's and is embedded while the first is written. Without it,
        # two passes would run at once and fight over the cores.
        return OVERLAPPING_COMMITS if self._deps.batcher is not None else 1

    def prepare(self, file: FolderFile, metadata: ItemMetadata) -> PreparedFile:
        from encoders.preprocess import resize_and_crop

        indexer = self._deps.indexer
        if file.kind == "image":  # read once: the same bytes are hashed and decoded
            raw = file.path.read_bytes()
            item = indexer.prepare_bytes(metadata, raw, hashlib.sha256(raw).hexdigest())
        else:  # videos stream from disk
            item = indexer.prepare_bytes(metadata, file.path)
        if item.unchanged is not None:
            return PreparedFile(file, None, item.unchanged.media_type.value)
        if self._preprocess is not None:
            # Resize here, in a decode thread, rather than on the model's thread; the encoder's
            # own resize_and_crop is then a no-op, so the vectors are exactly the same.
            item.images = [resize_and_crop(image, self._preprocess) for image in item.images]
        return PreparedFile(file, item, item.media_type.value)

    def commit(self, items: Sequence[PreparedFile]) -> list[FileResult]:
        prepared: list[PreparedItem] = [p.work for p in items]
        indexed = self._deps.indexer.commit(prepared)
        return [
            FileResult(p.file.rel, p.file.media_id, FileStatus(done.outcome.value), p.media_type)
            for p, done in zip(items, indexed, strict=True)
        ]


class ClientSink:
    """Indexes through a running server: checks each file, then streams the changed ones."""

    def __init__(self, client: MediarecClient, upload_threads: int = 4) -> None:
        self._client = client
        self._uploads = ThreadPoolExecutor(upload_threads, thread_name_prefix="upload")

    @property
    def target(self) -> str:
        return f"server at {self._client.target}"

    @property
    def concurrent_commits(self) -> int:
        return OVERLAPPING_COMMITS  # the server batches concurrent uploads itself

    def close(self) -> None:
        self._uploads.shutdown(wait=True, cancel_futures=True)

    def prepare(self, file: FolderFile, metadata: ItemMetadata) -> PreparedFile:
        sha = file_sha256(file.path)
        wanted = _client_metadata(metadata)
        stored: MediaItem | None
        try:
            stored = _call(lambda: self._client.get_media(file.media_id))
        except NotFound:
            stored = None
        if stored and stored.content_sha256 == sha and _same_metadata(stored.metadata, wanted):
            return PreparedFile(file, None, stored.metadata.media_type.name.lower())
        return PreparedFile(file, (wanted, sha))

    def commit(self, items: Sequence[PreparedFile]) -> list[FileResult]:
        # Uploads run side by side: the server decodes and batches requests across calls.
        futures = [self._uploads.submit(self._upload, item) for item in items]
        return [f.result() for f in futures]

    def _upload(self, item: PreparedFile) -> FileResult:
        metadata, sha = item.work
        file = item.file
        try:
            done = _call(lambda: self._client.index_file(file.path, metadata, sha256=sha))
        except (MediarecError, UploadSourceChangedError, OSError) as exc:
            return FileResult(file.rel, file.media_id, FileStatus.FAILED, reason=str(exc))
        status = {
            IndexOutcome.CREATED: FileStatus.CREATED,
            IndexOutcome.UPDATED: FileStatus.UPDATED,
        }.get(done.outcome, FileStatus.UNCHANGED)
        return FileResult(file.rel, file.media_id, status, done.media_type.name.lower())


def _call(call: Callable[[], Any]) -> Any:
    """Run one client call; errors no other file could get past abort the run."""
    try:
        return call()
    except (Unauthenticated, PermissionDenied, Unavailable) as exc:
        raise IndexAborted(str(exc)) from exc


def _client_metadata(metadata: ItemMetadata) -> MediaMetadata:
    location = metadata.location
    coordinates = (location.latitude, location.longitude)
    has_location = bool(location.region) or coordinates != (None, None)
    return MediaMetadata(
        media_id=metadata.media_id,
        creator_id=metadata.creator_id,
        caption=metadata.caption,
        tags=metadata.tags,
        created_at=(
            datetime.fromtimestamp(metadata.created_at, UTC)
            if metadata.created_at is not None
            else None
        ),
        location=(
            ClientLocation(location.region, location.latitude, location.longitude)
            if has_location
            else None
        ),
    )


def _same_metadata(stored: MediaMetadata, wanted: MediaMetadata) -> bool:
    """Whether the server already holds ``wanted`` for this item."""

    def stamp(moment: datetime | None) -> int | None:
        return None if moment is None else int(moment.timestamp())

    empty = ClientLocation()
    return (
        stored.creator_id == wanted.creator_id
        and stored.caption == wanted.caption
        and tuple(stored.tags) == tuple(wanted.tags)
        # No created_at of our own: the server stamped the first indexing time; keep it.
        and (wanted.created_at is None or stamp(stored.created_at) == stamp(wanted.created_at))
        and (stored.location or empty) == (wanted.location or empty)
    )


# -- the pipeline ---------------------------------------------------------------------------


def index_folder(
    folder: Path,
    sink: IndexSink,
    *,
    workers: int,
    batch_size: int,
    progress: bool = False,
    stop_event: threading.Event | None = None,
    exclude: Sequence[Path] = (),
) -> IndexReport:
    """Index every supported file under ``folder`` into ``sink``; never raises for a bad file.

    Decode threads run up to ``BATCHES_AHEAD`` batches ahead of the commits, of which up to
    ``sink.concurrent_commits`` run at once. Setting ``stop_event`` or a ``KeyboardInterrupt``
    starts no new commit; the ones in flight finish (a write cannot be taken back half-way) and
    are reported. Either way the report says which files were done; the rest are ``not_processed``.
    """
    files = scan_folder(folder, exclude)
    report = IndexReport(str(folder), sink.target, len(files))
    stop = stop_event or threading.Event()
    started = time.monotonic()
    meter = _Progress(len(files), enabled=progress)
    pool = ThreadPoolExecutor(max(1, workers), thread_name_prefix="decode")
    try:
        _run(files, sink, pool, batch_size, stop, report, meter)
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
) -> None:
    def record(result: FileResult) -> None:
        report.results.append(result)
        meter.update(result)

    limit = max(1, sink.concurrent_commits)
    committer = ThreadPoolExecutor(limit, thread_name_prefix="commit")
    in_flight: deque[Future[list[FileResult]]] = deque()
    try:
        for batch in _prepared_batches(files, sink, pool, batch_size, stop, record):
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
    for result in commit.result():
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
) -> Iterator[list[PreparedFile]]:
    """Batches of changed files in folder order; unchanged and failed files are recorded."""
    todo = iter(files)
    pending: deque[tuple[FolderFile, Future[PreparedFile]]] = deque()
    window = BATCHES_AHEAD * batch_size
    batch: list[PreparedFile] = []
    while True:
        while len(pending) < window and (file := next(todo, None)) is not None:
            pending.append((file, pool.submit(_prepare, sink, file)))
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


def _prepare(sink: IndexSink, file: FolderFile) -> PreparedFile:
    return sink.prepare(file, read_metadata(file))


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


# -- the command ----------------------------------------------------------------------------


def run_index_command(args: argparse.Namespace, settings: Settings) -> int:
    """``mediarec index``: exit 0, 1 (``--strict`` with failures, or the run could not go on),
    2 (nothing attempted: no such folder, store locked) or 130 (interrupted)."""
    folder: Path = args.folder
    if not folder.is_dir():
        print(f"mediarec index: {folder} is not a folder", file=sys.stderr)
        return EXIT_UNUSABLE
    report_path: Path = args.report or folder / DEFAULT_REPORT_NAME
    stop = threading.Event()
    report: IndexReport | None = None
    try:
        with _open_sink(args, settings) as sink, graceful_ctrl_c(stop):
            report = index_folder(
                folder,
                sink,
                workers=args.decode_workers or os.cpu_count() or 1,
                batch_size=settings.model.batch_size,
                progress=not args.no_progress and sys.stderr.isatty(),
                stop_event=stop,
                exclude=(report_path,),
            )
    except CommandError as exc:
        print(f"mediarec index: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        if report is None:
            print("mediarec index: interrupted before indexing started", file=sys.stderr)
            return EXIT_INTERRUPTED
        # Interrupted while closing the store: everything reported is durable already.
    try:
        write_report(report, report_path)
    except OSError as exc:
        print(f"mediarec index: cannot write the report {report_path}: {exc}", file=sys.stderr)
    _print_summary(report, report_path)
    if report.interrupted:
        return EXIT_INTERRUPTED
    if report.aborted or (args.strict and report.failures):
        return EXIT_FAILED
    return EXIT_OK


class CommandError(Exception):
    """A command cannot start; the message is one sentence for the user."""

    def __init__(self, message: str, exit_code: int) -> None:
        super().__init__(message)
        self.exit_code = exit_code


def locked_store_message(settings: Settings) -> str:
    return (
        f"the store in {settings.storage.data_dir} is in use by a running server; stop it, or "
        "send the work to that server with --server HOST:PORT"
    )


@contextlib.contextmanager
def _open_sink(args: argparse.Namespace, settings: Settings) -> Iterator[IndexSink]:
    if args.server:
        with _client_sink(args.server, args.api_key or os.environ.get("MEDIAREC_API_KEY")) as sink:
            yield sink
        return
    deps = open_local_deps(settings)
    try:
        yield EmbeddedSink(deps)
    finally:
        deps.close()


def open_local_deps(settings: Settings, locked_message: str | None = None) -> ServiceDeps:
    """``open_deps`` with its expected failures turned into one-sentence :class:`CommandError`.

    The store lock and the ranker file are checked before the (slow) model load, so a running
    server or a ranker that must be trained again is named at once. ``locked_message`` replaces
    the local commands' advice (``--server``) where it does not apply.
    """
    from encoders.base import EncoderError
    from server.engagement.schema import SchemaVersionError
    from server.recommend.learned import LearnedRankerFileError
    from server.recommend.ranker import RankerFileError, load_or_default
    from server.runtime import open_deps
    from server.store import EDGE_SUBDIR, StoreError, StoreLockedError
    from server.store.lock import DirLock

    try:
        if not settings.storage.qdrant_url:
            probe = DirLock(Path(settings.storage.data_dir) / EDGE_SUBDIR)
            probe.acquire()
            probe.release()
        load_or_default(settings.recommend.ranker_path or "")
        return open_deps(settings)
    except StoreLockedError as exc:
        logger.debug("store locked: %s", exc)
        message = locked_message or locked_store_message(settings)
        raise CommandError(message, EXIT_UNUSABLE) from exc
    # files this version cannot use
    except (RankerFileError, LearnedRankerFileError, SchemaVersionError) as exc:
        raise CommandError(str(exc), EXIT_UNUSABLE) from exc
    except (EncoderError, StoreError) as exc:
        raise CommandError(str(exc), EXIT_FAILED) from exc


@contextlib.contextmanager
def _client_sink(target: str, api_key: str | None) -> Iterator[ClientSink]:
    with MediarecClient(target, api_key=api_key) as client:
        try:
            info = client.server_info(timeout_s=10)
        except MediarecError as exc:
            raise CommandError(f"cannot use the server at {target}: {exc}", EXIT_FAILED) from exc
        logger.info("indexing through %s (model %s)", target, info.model_id)
        sink = ClientSink(client)
        try:
            yield sink
        finally:
            sink.close()


@contextlib.contextmanager
def graceful_ctrl_c(stop: threading.Event) -> Iterator[None]:
    """First Ctrl-C: finish the batch in hand, then stop. A second one interrupts at once."""
    if threading.current_thread() is not threading.main_thread():
        yield  # signal handlers can only be installed from the main thread
        return
    previous = signal.getsignal(signal.SIGINT)

    def on_sigint(signum: int, frame: FrameType | None) -> None:
        print(
            "\nmediarec index: stopping after the current batch (Ctrl-C again to stop now)",
            file=sys.stderr,
        )
        stop.set()
        signal.signal(signal.SIGINT, signal.default_int_handler)

    signal.signal(signal.SIGINT, on_sigint)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


def _print_summary(report: IndexReport, report_path: Path) -> None:
    counts = report.counts()
    rate = len(report.results) / report.elapsed_s if report.elapsed_s else 0.0
    print(
        f"{len(report.results)} of {report.total_files} files in {report.elapsed_s:.1f} s "
        f"({rate:.1f} files/s): {counts['created'] + counts['updated']} indexed "
        f"({counts['created']} new, {counts['updated']} updated), {counts['unchanged']} "
        f"unchanged, {counts['failed']} failed"
    )
    for failure in sorted(report.failures, key=lambda r: r.path):
        print(f"  failed: {failure.path}: {failure.reason}")
    if report.aborted:
        print(f"stopped early: {report.aborted}", file=sys.stderr)
    elif report.interrupted:
        print(
            f"interrupted: {report.not_processed} files not processed; run again to continue",
            file=sys.stderr,
        )
    print(f"report: {report_path}")
