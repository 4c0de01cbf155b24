"""A typed, context-managed Python client for the mediarec gRPC API (grpcio + protobuf only).

    with MediarecClient("127.0.0.1:50051", api_key=None) as client:
        client.wait_until_serving(timeout_s=60)
        result = client.index_file("clip.mp4", MediaMetadata(media_id="clip-1", caption="surf"))
        hits = client.search_text("surfing at sunset", k=5)

Every call has a deadline (``default_timeout_s``, or ``upload_timeout_s`` for uploads) and every
failed call raises a ``mediarec.client.errors.MediarecError`` subclass.
"""

from __future__ import annotations

import hashlib
import os
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any, cast

import grpc
from google.protobuf import wrappers_pb2

from mediarec.client import convert
from mediarec.client.errors import DeadlineExceeded, MediarecError, Unavailable, from_rpc_error
from mediarec.client.types import (
    ClientContext,
    Embeddings,
    Event,
    ForgetReport,
    ImportEventsResult,
    IndexResult,
    ListedMedia,
    LogEventsResult,
    MediaFilter,
    MediaItem,
    MediaMetadata,
    Recommendation,
    RecommendFilter,
    RecommendPage,
    RecommendState,
    SearchHit,
    ServerInfo,
    ServingStatus,
    Surface,
    TextMatch,
    UserInfo,
)
from mediarec.v1 import (
    admin_pb2,
    admin_pb2_grpc,
    media_pb2,
    media_pb2_grpc,
    recommend_pb2,
    recommend_pb2_grpc,
)

DEFAULT_TIMEOUT_S = 30.0
DEFAULT_IMPORT_CHUNK_EVENTS = 5000
DEFAULT_IMPORT_CHUNK_BYTES = 1 << 20  # well under the server's default 4 MiB message cap
DEFAULT_UPLOAD_TIMEOUT_S = 600.0
# 1 MiB chunks stay far below the default 4 MiB message cap while keeping per-message overhead low.
DEFAULT_CHUNK_BYTES = 1 << 20
DEFAULT_MAX_RECEIVE_BYTES = 64 << 20
HEALTH_CHECK_METHOD = "/grpc.health.v1.Health/Check"


class UploadSourceChangedError(RuntimeError):
    """The file changed between hashing it and streaming it, so the upload was cancelled."""


class MediarecClient:
    """One channel to a mediarec server, with a typed method per RPC."""

    def __init__(
        self,
        target: str,
        *,
        api_key: str | None = None,
        tls: bool = False,
        tls_root_cert: bytes | str | Path | None = None,
        tls_server_name: str | None = None,
        default_timeout_s: float = DEFAULT_TIMEOUT_S,
        upload_timeout_s: float = DEFAULT_UPLOAD_TIMEOUT_S,
        chunk_bytes: int = DEFAULT_CHUNK_BYTES,
        max_receive_message_bytes: int = DEFAULT_MAX_RECEIVE_BYTES,
    ) -> None:
        """Open a channel to ``target`` ("host:port").

        ``tls_root_cert`` (PEM bytes or a path) implies ``tls``; without it, TLS uses the
        system roots. ``tls_server_name`` overrides the name checked in the server's certificate.
        The API key is sent as ``authorization: Bearer <key>`` metadata on every call.
        """
        if default_timeout_s <= 0 or upload_timeout_s <= 0:
            raise ValueError("timeouts must be positive")
        if chunk_bytes <= 0:
            raise ValueError("chunk_bytes must be positive")
        self._target = target
        self._default_timeout_s = default_timeout_s
        self._upload_timeout_s = upload_timeout_s
        self._chunk_bytes = chunk_bytes
        self._metadata: tuple[tuple[str, str], ...] = (
            (("authorization", f"Bearer {api_key}"),) if api_key else ()
        )
        options: list[tuple[str, Any]] = [
            ("grpc.max_receive_message_length", max_receive_message_bytes),
        ]
        if tls_server_name:
            options.append(("grpc.ssl_target_name_override", tls_server_name))
        if tls or tls_root_cert is not None:
            root = _read_pem(tls_root_cert) if tls_root_cert is not None else None
            credentials = grpc.ssl_channel_credentials(root_certificates=root)
            self._channel = grpc.secure_channel(target, credentials, options=options)
        else:
            self._channel = grpc.insecure_channel(target, options=options)
        self._media = media_pb2_grpc.MediaServiceStub(self._channel)
        self._recommend = recommend_pb2_grpc.RecommendationServiceStub(self._channel)
        self._admin = admin_pb2_grpc.AdminServiceStub(self._channel)
        # grpc.health.v1's request {string service = 1} and response {enum status = 1} have the
        # wire format of StringValue and Int32Value, so health needs no extra package.
        self._health_check = self._channel.unary_unary(
            HEALTH_CHECK_METHOD,
            request_serializer=wrappers_pb2.StringValue.SerializeToString,
            response_deserializer=wrappers_pb2.Int32Value.FromString,
        )

    # -- lifecycle -------------------------------------------------------------------------

    def __enter__(self) -> MediarecClient:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        """Close the channel; in-flight calls are cancelled."""
        self._channel.close()

    @property
    def target(self) -> str:
        return self._target

    # -- indexing --------------------------------------------------------------------------

    def index_media(
        self,
        metadata: MediaMetadata,
        data: bytes | None = None,
        *,
        timeout_s: float | None = None,
    ) -> IndexResult:
        """Index an image or video sent inline (``data``), or a caption-only post (no data).

        Inline data must fit the server's message cap; use ``index_file`` for large files.
        """
        request = media_pb2.IndexMediaRequest(metadata=convert.metadata_to_proto(metadata))
        if data is not None:
            request.data = data
        response = self._unary("IndexMedia", self._media.IndexMedia, request, timeout_s)
        return convert.index_result_from_proto(response.result)

    def index_embeddings(
        self,
        metadata: MediaMetadata,
        embeddings: Embeddings,
        *,
        timeout_s: float | None = None,
    ) -> IndexResult:
        """Index precomputed vectors for the server's model ("bring your own vectors")."""
        request = media_pb2.IndexMediaRequest(
            metadata=convert.metadata_to_proto(metadata),
            embeddings=convert.embeddings_to_proto(embeddings),
        )
        response = self._unary("IndexMedia", self._media.IndexMedia, request, timeout_s)
        return convert.index_result_from_proto(response.result)

    def index_file(
        self,
        path: str | os.PathLike[str],
        metadata: MediaMetadata,
        *,
        sha256: str | None = None,
        timeout_s: float | None = None,
    ) -> IndexResult:
        """Stream a local image or video file with UploadMedia, in chunks, in constant memory.

        The header carries the file's size and SHA-256; pass ``sha256`` when it is already known
        (e.g. from a skip-unchanged check) to save one read of the file. The bytes sent are
        hashed again on the fly, and the upload is cancelled with ``UploadSourceChangedError``
        if the file changed in between.
        """
        file_path = Path(path)
        size = file_path.stat().st_size
        expected = sha256.lower() if sha256 else file_sha256(file_path, self._chunk_bytes)
        header = media_pb2.UploadMediaHeader(
            metadata=convert.metadata_to_proto(metadata),
            total_size_bytes=size,
            sha256=expected,
        )
        source = _FileUpload(file_path, header, size, expected, self._chunk_bytes)
        try:
            response = self._media.UploadMedia(
                source.requests(),
                timeout=timeout_s or self._upload_timeout_s,
                metadata=self._metadata,
            )
        except grpc.RpcError as error:
            # A failure inside our request iterator surfaces as CANCELLED; report the cause.
            if source.failure is not None:
                raise source.failure from error
            raise from_rpc_error(error, "UploadMedia") from error
        return convert.index_result_from_proto(response.result)

    # -- reading and deleting --------------------------------------------------------------

    def get_media(self, media_id: str, *, timeout_s: float | None = None) -> MediaItem:
        """The stored item; raises ``NotFound`` for an unknown id."""
        request = media_pb2.GetMediaRequest(media_id=media_id)
        response = self._unary("GetMedia", self._media.GetMedia, request, timeout_s)
        return convert.media_item_from_proto(response.media)

    def get_thumbnail(
        self, media_id: str, frame_index: int = 0, *, timeout_s: float | None = None
    ) -> bytes:
        """The JPEG thumbnail made at index time: a photo's, or a video's ``frame_index``-th
        sampled frame's."""
        request = media_pb2.GetThumbnailRequest(media_id=media_id, frame_index=frame_index)
        response = self._unary("GetThumbnail", self._media.GetThumbnail, request, timeout_s)
        return bytes(response.jpeg)

    def delete_media(
        self, media_id: str, *, allow_missing: bool = False, timeout_s: float | None = None
    ) -> bool:
        """Delete an item; True if it existed. Unknown ids raise ``NotFound`` unless allowed."""
        request = media_pb2.DeleteMediaRequest(media_id=media_id, allow_missing=allow_missing)
        response = self._unary("DeleteMedia", self._media.DeleteMedia, request, timeout_s)
        return bool(response.deleted)

    def list_media(
        self, *, source_prefix: str = "", timeout_s: float | None = None
    ) -> Iterator[ListedMedia]:
        """Every stored item's id, source and content hash (only sources starting with
        ``source_prefix`` when given), streamed in batches as it is read; in no order.

        ``timeout_s`` bounds the whole listing (default: the client's default timeout).
        """
        request = media_pb2.ListMediaRequest(source_prefix=source_prefix)
        try:
            for response in self._media.ListMedia(
                request, timeout=timeout_s or self._default_timeout_s, metadata=self._metadata
            ):
                for item in response.items:
                    yield ListedMedia(item.media_id, item.source, item.content_sha256)
        except grpc.RpcError as error:
            raise from_rpc_error(error, "ListMedia") from error

    # -- search ----------------------------------------------------------------------------

    def search_text(
        self,
        text: str,
        *,
        k: int = 10,
        media_filter: MediaFilter | None = None,
        match: TextMatch = TextMatch.UNSPECIFIED,
        timeout_s: float | None = None,
    ) -> list[SearchHit]:
        """Items closest to a free-text query, best first.

        ``match`` picks the vectors matched: pictures and captions fused by rank (the server's
        default), pictures only, or captions only.
        """
        wire_match = cast(media_pb2.TextMatch, int(match))  # the stubs type it as the enum
        request = media_pb2.SearchMediaRequest(text=text, text_match=wire_match)
        return self._search(request, k, media_filter, timeout_s)

    def search_image(
        self,
        image: bytes,
        *,
        k: int = 10,
        media_filter: MediaFilter | None = None,
        timeout_s: float | None = None,
    ) -> list[SearchHit]:
        """Items closest to an encoded query image, best first."""
        request = media_pb2.SearchMediaRequest(image=image)
        return self._search(request, k, media_filter, timeout_s)

    def search_similar(
        self,
        media_id: str,
        *,
        k: int = 10,
        media_filter: MediaFilter | None = None,
        timeout_s: float | None = None,
    ) -> list[SearchHit]:
        """"More like this": items closest to a stored item, which itself is left out."""
        request = media_pb2.SearchMediaRequest(media_id=media_id)
        return self._search(request, k, media_filter, timeout_s)

    # -- recommendations -------------------------------------------------------------------

    def log_events(
        self, events: Sequence[Event], *, timeout_s: float | None = None
    ) -> LogEventsResult:
        """Log engagement events; one result per event, so a bad event never fails the batch.

        Idempotent by ``event_id``: resending a batch after a timeout reports the events that
        arrived the first time as duplicates and counts them once.
        """
        request = recommend_pb2.LogEventsRequest(
            events=[convert.event_to_proto(event) for event in events]
        )
        response = self._unary("LogEvents", self._recommend.LogEvents, request, timeout_s)
        return convert.log_events_result_from_proto(response)

    def import_events(
        self,
        events: Iterable[Event],
        *,
        chunk_events: int = DEFAULT_IMPORT_CHUNK_EVENTS,
        chunk_bytes: int = DEFAULT_IMPORT_CHUNK_BYTES,
        on_chunk: Callable[[int], None] | None = None,
        timeout_s: float | None = None,
    ) -> ImportEventsResult:
        """Stream historical events to the server in chunks; returns when the server has stored
        them and rebuilt its derived state, so the next ``recommend`` uses them.

        A chunk holds at most ``chunk_events`` events and about ``chunk_bytes`` bytes (keep
        both under the server's ``limits.import_chunk_events`` and message size).
        ``events`` is read lazily (a generator over a large file is fine); ``on_chunk(n)`` is
        called as each chunk of ``n`` events is sent. An exception raised by ``events``
        cancels the import and is raised here. Idempotent by ``event_id``: an import that
        failed part-way can be run again, and what arrived before counts as duplicates.
        ``timeout_s`` bounds the whole import (default: none).
        """
        if chunk_events <= 0 or chunk_bytes <= 0:
            raise ValueError("chunk_events and chunk_bytes must be positive")
        failure: list[BaseException] = []

        def requests() -> Iterator[recommend_pb2.ImportEventsRequest]:
            chunk: list[recommend_pb2.Event] = []
            size = 0
            try:
                for event in events:
                    message = convert.event_to_proto(event)
                    chunk.append(message)
                    size += message.ByteSize() + 8  # the field's tag and length
                    if len(chunk) == chunk_events or size >= chunk_bytes:
                        yield recommend_pb2.ImportEventsRequest(events=chunk)
                        if on_chunk is not None:
                            on_chunk(len(chunk))
                        chunk, size = [], 0
            except Exception as exc:  # reading the events failed: grpc would hide why
                failure.append(exc)
                raise
            if chunk:
                yield recommend_pb2.ImportEventsRequest(events=chunk)
                if on_chunk is not None:
                    on_chunk(len(chunk))

        try:
            response = self._recommend.ImportEvents(
                requests(), timeout=timeout_s, metadata=self._metadata
            )
        except grpc.RpcError as error:
            if failure:
                raise failure[0] from error
            raise from_rpc_error(error, "ImportEvents") from error
        return convert.import_result_from_proto(response)

    def refresh(self, *, timeout_s: float | None = None) -> RecommendState:
        """Rebuild the recommender's derived state now (AdminService; needs an admin key
        when the server has keys); returns the new state once the rebuild has finished.
        ``timeout_s`` bounds the wait (default: none, as a large rebuild takes a while)."""
        try:
            response = self._admin.Refresh(
                admin_pb2.RefreshRequest(), timeout=timeout_s, metadata=self._metadata
            )
        except grpc.RpcError as error:
            raise from_rpc_error(error, "Refresh") from error
        return convert.recommend_state_from_proto(response.state)

    def recommend(
        self,
        user_id: str,
        *,
        k: int = 0,
        surface: Surface = Surface.FEED,
        context: ClientContext | None = None,
        seed_media_id: str = "",
        steering_text: str = "",
        media_filter: RecommendFilter | None = None,
        exclude_seen: bool | None = None,
        page_cursor: str = "",
        dry_run: bool = False,
        timeout_s: float | None = None,
    ) -> RecommendPage:
        """A page of recommendations for ``user_id``; ``k = 0`` uses the server's default.

        ``exclude_seen`` None keeps the server's default (seen items are left out). Pass the
        previous page's ``next_page_cursor`` as ``page_cursor`` to continue the same ranking.
        ``dry_run`` previews: nothing is logged or cached, and no cursor is returned.
        """
        request = recommend_pb2.RecommendRequest(
            user_id=user_id,
            k=k,
            surface=cast(recommend_pb2.Surface, int(surface)),
            seed_media_id=seed_media_id,
            steering_text=steering_text,
            page_cursor=page_cursor,
            dry_run=dry_run,
        )
        if context is not None:
            request.context.CopyFrom(convert.context_to_proto(context))
        if media_filter is not None:
            request.filter.CopyFrom(convert.recommend_filter_to_proto(media_filter))
        if exclude_seen is not None:
            request.exclude_seen = exclude_seen
        response = self._unary("Recommend", self._recommend.Recommend, request, timeout_s)
        return convert.recommend_page_from_proto(response)

    def similar_media(
        self,
        media_id: str,
        *,
        user_id: str = "",
        k: int = 0,
        media_filter: RecommendFilter | None = None,
        dry_run: bool = False,
        timeout_s: float | None = None,
    ) -> list[Recommendation]:
        """Items like ``media_id`` (content and co-engagement), personalised if ``user_id``;
        ``dry_run`` caches nothing of the user's."""
        request = recommend_pb2.SimilarMediaRequest(
            media_id=media_id, user_id=user_id, k=k, dry_run=dry_run
        )
        if media_filter is not None:
            request.filter.CopyFrom(convert.recommend_filter_to_proto(media_filter))
        response = self._unary("SimilarMedia", self._recommend.SimilarMedia, request, timeout_s)
        return [convert.recommendation_from_proto(item) for item in response.items]

    def set_interests(
        self, user_id: str, text: str, *, timeout_s: float | None = None
    ) -> tuple[str, ...]:
        """Declare interests in free text ("hiking, street food, cats"); returns them parsed."""
        request = recommend_pb2.SetInterestsRequest(user_id=user_id, text=text)
        response = self._unary("SetInterests", self._recommend.SetInterests, request, timeout_s)
        return tuple(response.interests)

    def forget_user(self, user_id: str, *, timeout_s: float | None = None) -> ForgetReport:
        """Delete every event, profile and derived state of ``user_id``; returns the counts."""
        request = recommend_pb2.ForgetUserRequest(user_id=user_id)
        response = self._unary("ForgetUser", self._recommend.ForgetUser, request, timeout_s)
        return convert.forget_report_from_proto(response)

    def get_user(
        self, user_id: str, *, recent_events: int = 0, timeout_s: float | None = None
    ) -> UserInfo:
        """What the server holds about ``user_id``: their newest events (``recent_events``,
        0 means 20) and their declared interests."""
        request = recommend_pb2.GetUserRequest(user_id=user_id, recent_events=recent_events)
        response = self._unary("GetUser", self._recommend.GetUser, request, timeout_s)
        return convert.user_info_from_proto(user_id, response)

    # -- service information ---------------------------------------------------------------

    def server_info(self, *, timeout_s: float | None = None) -> ServerInfo:
        """Model, store, counts and limits of the server."""
        request = media_pb2.GetServerInfoRequest()
        response = self._unary("GetServerInfo", self._media.GetServerInfo, request, timeout_s)
        return convert.server_info_from_proto(response)

    def health(
        self, service: str = "", *, wait_for_ready: bool = False, timeout_s: float | None = None
    ) -> ServingStatus:
        """The grpc.health.v1 status of ``service`` ("" is the whole server)."""
        response = self._unary(
            "Health/Check",
            self._health_check,
            wrappers_pb2.StringValue(value=service),
            timeout_s,
            wait_for_ready=wait_for_ready,
        )
        return convert.enum_from_proto(ServingStatus, response.value)

    def wait_until_serving(
        self, *, timeout_s: float = 60.0, service: str = "", poll_s: float = 0.2
    ) -> None:
        """Block until health reports SERVING; raises ``DeadlineExceeded`` after ``timeout_s``."""
        deadline = time.monotonic() + timeout_s
        last: str = "no answer yet"
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise DeadlineExceeded(
                    grpc.StatusCode.DEADLINE_EXCEEDED,
                    f"{self._target} not SERVING after {timeout_s:g} s ({last})",
                    "Health/Check",
                )
            try:
                status = self.health(service, wait_for_ready=True, timeout_s=remaining)
            except (Unavailable, DeadlineExceeded) as error:
                last = str(error)
            else:
                if status is ServingStatus.SERVING:
                    return
                last = status.name
            time.sleep(min(poll_s, max(0.0, deadline - time.monotonic())))

    # -- plumbing --------------------------------------------------------------------------

    def _search(
        self,
        request: media_pb2.SearchMediaRequest,
        k: int,
        media_filter: MediaFilter | None,
        timeout_s: float | None,
    ) -> list[SearchHit]:
        request.k = k
        if media_filter is not None:
            request.filter.CopyFrom(convert.filter_to_proto(media_filter))
        response = self._unary("SearchMedia", self._media.SearchMedia, request, timeout_s)
        return convert.search_hits_from_proto(response.results)

    def _unary(
        self,
        method: str,
        call: Callable[..., Any],
        request: Any,
        timeout_s: float | None,
        *,
        wait_for_ready: bool = False,
    ) -> Any:
        try:
            return call(
                request,
                timeout=timeout_s or self._default_timeout_s,
                metadata=self._metadata,
                wait_for_ready=wait_for_ready,
            )
        except grpc.RpcError as error:
            raise from_rpc_error(error, method) from error


class _FileUpload:
    """The UploadMedia request stream of one file, remembering why it failed if it did."""

    def __init__(
        self,
        path: Path,
        header: media_pb2.UploadMediaHeader,
        size: int,
        sha256: str,
        chunk_bytes: int,
    ) -> None:
        self._path = path
        self._header = header
        self._size = size
        self._sha256 = sha256
        self._chunk_bytes = chunk_bytes
        self.failure: BaseException | None = None

    def requests(self) -> Iterator[media_pb2.UploadMediaRequest]:
        try:
            yield media_pb2.UploadMediaRequest(header=self._header)
            digest = hashlib.sha256()
            sent = 0
            with self._path.open("rb") as handle:
                while chunk := handle.read(self._chunk_bytes):
                    digest.update(chunk)
                    sent += len(chunk)
                    if sent > self._size:
                        break
                    yield media_pb2.UploadMediaRequest(chunk=chunk)
            if sent != self._size or digest.hexdigest() != self._sha256:
                # Raising before the stream ends makes grpc cancel the call: nothing is indexed.
                raise UploadSourceChangedError(
                    f"{self._path} changed during upload (size or SHA-256 differs); retry"
                )
        except Exception as error:  # recorded, then re-raised so grpc cancels the call
            self.failure = error
            raise


def file_sha256(path: str | os.PathLike[str], chunk_bytes: int = DEFAULT_CHUNK_BYTES) -> str:
    """Lowercase hex SHA-256 of a file, read in chunks."""
    digest = hashlib.sha256()
    with Path(path).open("rb") as handle:
        while chunk := handle.read(chunk_bytes):
            digest.update(chunk)
    return digest.hexdigest()


def _read_pem(value: bytes | str | Path) -> bytes:
    return value if isinstance(value, bytes) else Path(value).read_bytes()


__all__ = ["MediarecClient", "MediarecError", "UploadSourceChangedError", "file_sha256"]
