"""Where a folder run's items go: this process's store, or a running server over gRPC."""

from __future__ import annotations

import hashlib
import logging
import os
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Protocol

from mediarec.client import (
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
from mediarec.client import Location as ClientLocation
from mediarec.client import MediaType as ClientMediaType
from mediarec.server.indexing.folder import FolderFile
from mediarec.server.indexing.report import (
    FileResult,
    FileStatus,
)
from mediarec.server.media import ItemMetadata, StoredItem
from mediarec.server.payload import stored_item

if TYPE_CHECKING:
    from mediarec.server.indexing.indexer import PreparedItem
    from mediarec.server.runtime import ServiceDeps


logger = logging.getLogger(__name__)


# Commits in flight at once where a sink allows it: the next batch's forward pass overlaps this
# batch's fsync-bound writes.
OVERLAPPING_COMMITS = 2


class IndexAborted(RuntimeError):
    """The sink cannot go on (server gone, credentials refused): stop the whole run.

    ``done`` holds the results of the batch's items that were stored before it stopped.
    """

    def __init__(self, message: str, done: Sequence[FileResult] = ()) -> None:
        super().__init__(message)
        self.done = list(done)


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


class IdTakenError(ValueError):
    """A media id already holds a different file; indexing this one would overwrite it."""


def check_id_free(file: FolderFile, stored_source: str, stored_sha: str, sha: str) -> None:
    """Refuse to give ``file`` an id that another file holds.

    The same path with new bytes is an edit. Another path is refused while the stored file
    still exists there (even with the same bytes: two copies are two items), and accepted only
    as a move: the stored file is gone and this one has its bytes (the stored source follows
    it). An item stored without a source (through the API, or by an older mediarec) cannot be
    told apart, so it is replaced as before.
    """
    if not stored_source or stored_source == str(file.path):
        return
    if not os.path.exists(stored_source) and stored_sha and stored_sha == sha:
        return
    raise IdTakenError(
        f"media id {file.media_id!r} already holds {stored_source}, another file; "
        "index this folder with --id-prefix to keep both"
    )


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
        from mediarec.encoders.preprocess import resize_and_crop

        indexer = self._deps.indexer

        def id_guard(stored: StoredItem, sha: str) -> None:
            check_id_free(file, stored.metadata.source, stored.content_sha256, sha)

        if file.kind == "image":  # read once: the same bytes are hashed and decoded
            raw = file.path.read_bytes()
            sha = hashlib.sha256(raw).hexdigest()
            item = indexer.prepare_bytes(metadata, raw, sha, check_existing=id_guard)
        else:  # videos stream from disk
            item = indexer.prepare_bytes(metadata, file.path, check_existing=id_guard)
        if item.unchanged is not None:
            return PreparedFile(file, None, item.unchanged.media_type.value)
        if self._preprocess is not None:
            # Resize here, in a decode thread, rather than on the model's thread; the encoder's
            # own resize_and_crop is then a no-op, so the vectors are exactly the same.
            item.images = [resize_and_crop(image, self._preprocess) for image in item.images]
        return PreparedFile(file, item, item.media_type.value)

    def sourced(self, prefix: str) -> list[tuple[str, str]]:
        return [(item.media_id, item.source) for item in self._deps.search.sourced(prefix)]

    def delete(self, media_id: str, source: str) -> bool:
        with self._deps.indexer.write_lock:
            stored = self._deps.store.get([media_id]).get(media_id)
            if stored is None or stored_item(media_id, stored.payload).metadata.source != source:
                return False  # gone already, or another file took the id since the plan
            return self._deps.search.delete(media_id, allow_missing=True)

    def commit(self, items: Sequence[PreparedFile]) -> list[FileResult]:
        prepared: list[PreparedItem] = [p.work for p in items]
        indexed = self._deps.indexer.commit(prepared)
        return [
            FileResult(p.file.rel, p.file.media_id, FileStatus(done.outcome.value), p.media_type)
            for p, done in zip(items, indexed, strict=True)
        ]


# Listing a big store through a server takes a while; it is one stream, read whole.
LIST_TIMEOUT_S = 3600.0


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
        if stored is not None:
            check_id_free(file, stored.metadata.source, stored.content_sha256, sha)
        unchanged = (
            stored is not None and stored.content_sha256 == sha
            and _same_metadata(stored.metadata, wanted)
        )  # fmt: skip
        # An item stored before thumbnails were made is sent anyway: the server answers
        # "unchanged" and makes them, without embedding the file again.
        if stored is not None and unchanged and self._has_thumbnail(stored):
            return PreparedFile(file, None, stored.metadata.media_type.name.lower())
        return PreparedFile(file, (wanted, sha))

    def _has_thumbnail(self, stored: MediaItem) -> bool:
        if stored.metadata.media_type not in (ClientMediaType.IMAGE, ClientMediaType.VIDEO):
            return True
        try:
            _call(lambda: self._client.get_thumbnail(stored.media_id))
        except NotFound:
            return False
        return True

    def sourced(self, prefix: str) -> list[tuple[str, str]]:
        # Read whole before any file is checked, so the stream never waits on the disk.
        try:
            listed = self._client.list_media(source_prefix=prefix, timeout_s=LIST_TIMEOUT_S)
            return [(item.media_id, item.source) for item in listed]
        except MediarecError as exc:
            raise IndexAborted(f"cannot list the stored items: {exc}") from exc

    def delete(self, media_id: str, source: str) -> bool:
        try:
            try:
                stored = self._client.get_media(media_id)
            except NotFound:
                return False
            if stored.metadata.source != source:
                return False  # another file took the id since the plan
            return bool(self._client.delete_media(media_id, allow_missing=True))
        except MediarecError as exc:
            raise IndexAborted(f"cannot delete {media_id}: {exc}") from exc

    def commit(self, items: Sequence[PreparedFile]) -> list[FileResult]:
        # Uploads run side by side: the server decodes and batches requests across calls.
        futures = [self._uploads.submit(self._upload, item) for item in items]
        done: list[FileResult] = []
        aborted: IndexAborted | None = None
        for item, future in zip(items, futures, strict=True):  # all finish before this returns
            try:
                done.append(future.result())
            except IndexAborted as exc:
                aborted = aborted or exc
                file = item.file
                why = f"the server went away during the upload ({exc}); run again to know"
                done.append(FileResult(file.rel, file.media_id, FileStatus.UNKNOWN, reason=why))
        if aborted is not None:
            # One upload's failure must not hide the others': each stored file is reported.
            raise IndexAborted(str(aborted), done) from aborted
        return done

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
        source=metadata.source,
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
        and stored.source == wanted.source
    )
