"""The thin gRPC MediaService: parse the request, call the domain, convert the answer.

Domain errors propagate as exceptions; the server-wide ErrorMappingInterceptor turns them into
status codes through the one table in server/grpc/errors.py.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path

import grpc

from mediarec.server.embed_batcher import Priority, embeds
from mediarec.server.grpc import convert
from mediarec.server.grpc.auth import bearer_token
from mediarec.server.grpc.cpu_gate import CpuGate
from mediarec.server.grpc.server_info import server_info_to_proto
from mediarec.server.grpc.streams import StreamLimits, UploadGate, bounded
from mediarec.server.indexing.indexer import validate_media_id, validate_metadata
from mediarec.server.media import SourcedItem
from mediarec.server.observability.tally import MEDIA_INDEXED
from mediarec.server.runtime import ServiceState
from mediarec.server.service_errors import InvalidArgumentError, ResourceLimitError
from mediarec.v1 import media_pb2, media_pb2_grpc

logger = logging.getLogger(__name__)

_SHA256_HEX = re.compile(r"^[0-9a-f]{64}$")
# A ListMedia message holds up to this many items, and stops near this size: every client's
# default receive limit (4 MiB) holds it, whatever the sources' lengths.
LIST_BATCH = 1000
LIST_BATCH_BYTES = 1 << 20


class MediaServicer(media_pb2_grpc.MediaServiceServicer):
    def __init__(
        self, state: ServiceState, gate: UploadGate, limits: StreamLimits, cpu: CpuGate
    ) -> None:
        self._state = state
        self._gate = gate
        self._limits = limits
        self._cpu = cpu

    @embeds(Priority.BULK)
    def IndexMedia(  # noqa: N802 (gRPC method names are fixed by the proto)
        self, request: media_pb2.IndexMediaRequest, context: grpc.ServicerContext
    ) -> media_pb2.IndexMediaResponse:
        deps = self._state.require()
        deps.require_room()
        metadata = convert.metadata_from_proto(request.metadata)
        content = request.WhichOneof("content")
        if content == "data":
            with self._cpu.admitted(context.time_remaining()):
                item = deps.indexer.prepare_bytes(metadata, request.data)
        elif content == "embeddings":
            emb = request.embeddings
            item = deps.indexer.prepare_vectors(
                metadata,
                model_id=emb.model_id,
                visual=list(emb.visual.values) if emb.HasField("visual") else None,
                caption=list(emb.caption.values) if emb.HasField("caption") else None,
                frames=[(f.timestamp_s, list(f.vector.values)) for f in emb.frames],
            )
        else:
            item = deps.indexer.prepare_caption_only(metadata)
        result = deps.indexer.index(item)
        self._state.tally.add(MEDIA_INDEXED, result.outcome.value)
        return media_pb2.IndexMediaResponse(result=convert.index_result_to_proto(result))

    @embeds(Priority.BULK)
    def UploadMedia(  # noqa: N802
        self,
        request_iterator: Iterator[media_pb2.UploadMediaRequest],
        context: grpc.ServicerContext,
    ) -> media_pb2.UploadMediaResponse:
        self._state.require()  # UNAVAILABLE before the gate while the server loads
        with self._gate.admitted(bearer_token(context.invocation_metadata())):
            return self._upload(bounded(request_iterator, self._limits, "upload"), context)

    def _upload(
        self,
        request_iterator: Iterator[media_pb2.UploadMediaRequest],
        context: grpc.ServicerContext,
    ) -> media_pb2.UploadMediaResponse:
        deps = self._state.require()
        deps.require_room()
        cancelled = threading.Event()
        context.add_callback(cancelled.set)
        first = next(request_iterator, None)
        if first is None or first.WhichOneof("part") != "header":
            raise InvalidArgumentError("header", "the first upload message must be the header")
        header = first.header
        metadata = convert.metadata_from_proto(header.metadata)
        # Refuse bad metadata before the client streams what may be hundreds of megabytes.
        validate_metadata(metadata, deps.indexer.limits)
        limit = deps.settings.server.max_upload_bytes
        if header.total_size_bytes <= 0:
            raise InvalidArgumentError("header.total_size_bytes", "the upload is empty")
        if header.total_size_bytes > limit:
            raise ResourceLimitError(
                "header.total_size_bytes",
                f"upload of {header.total_size_bytes} bytes is over the limit of {limit}",
            )
        expected_sha = header.sha256.lower()
        if not _SHA256_HEX.match(expected_sha):
            raise InvalidArgumentError("header.sha256", "sha256 must be 64 lowercase hex digits")
        spool = self._spool(request_iterator, header.total_size_bytes, expected_sha, cancelled)
        try:
            with self._cpu.admitted(context.time_remaining()):
                item = deps.indexer.prepare_bytes(metadata, spool, content_sha256=expected_sha)
            result = deps.indexer.index(item)
        finally:
            spool.unlink(missing_ok=True)
        self._state.tally.add(MEDIA_INDEXED, result.outcome.value)
        return media_pb2.UploadMediaResponse(result=convert.index_result_to_proto(result))

    def _spool(
        self,
        chunks: Iterator[media_pb2.UploadMediaRequest],
        total: int,
        expected_sha: str,
        cancelled: threading.Event,
    ) -> Path:
        """Write the chunks to a server-owned temp file, checking size and hash on the way."""
        spool_dir = self._state.require().spool_dir
        fd, name = tempfile.mkstemp(prefix="upload-", dir=spool_dir)
        path = Path(name)
        digest = hashlib.sha256()
        received = 0
        try:
            with os.fdopen(fd, "wb") as handle:
                for message in chunks:
                    if cancelled.is_set():
                        raise InvalidArgumentError("chunk", "the upload was cancelled")
                    if message.WhichOneof("part") != "chunk":
                        raise InvalidArgumentError("header", "only the first message is a header")
                    received += len(message.chunk)
                    if received > total:
                        raise InvalidArgumentError(
                            "chunk", f"the chunks carry more than the declared {total} bytes"
                        )
                    digest.update(message.chunk)
                    handle.write(message.chunk)
                handle.flush()
            if received != total:
                raise InvalidArgumentError(
                    "chunk", f"received {received} bytes but the header declared {total}"
                )
            if digest.hexdigest() != expected_sha:
                raise InvalidArgumentError(
                    "header.sha256", "the uploaded bytes do not match the declared sha256"
                )
        except BaseException:
            path.unlink(missing_ok=True)
            raise
        return path

    def GetMedia(  # noqa: N802
        self, request: media_pb2.GetMediaRequest, context: grpc.ServicerContext
    ) -> media_pb2.GetMediaResponse:
        item = self._state.require().search.get(_media_id(request.media_id))
        return media_pb2.GetMediaResponse(media=convert.stored_item_to_proto(item))

    def DeleteMedia(  # noqa: N802
        self, request: media_pb2.DeleteMediaRequest, context: grpc.ServicerContext
    ) -> media_pb2.DeleteMediaResponse:
        media_id = _media_id(request.media_id)
        deps = self._state.require()
        with deps.indexer.write_lock:
            deleted = deps.search.delete(media_id, allow_missing=request.allow_missing)
        return media_pb2.DeleteMediaResponse(media_id=media_id, deleted=deleted)

    def ListMedia(  # noqa: N802
        self, request: media_pb2.ListMediaRequest, context: grpc.ServicerContext
    ) -> Iterator[media_pb2.ListMediaResponse]:
        search = self._state.require().search
        # A slow reader holds a worker for as long as it reads: the streaming calls' gate
        # bounds how many may, so listings can never take every worker.
        with self._gate.admitted(bearer_token(context.invocation_metadata())):
            yield from self._listed(search.sourced(request.source_prefix))

    @staticmethod
    def _listed(items: Iterator[SourcedItem]) -> Iterator[media_pb2.ListMediaResponse]:
        batch, size = media_pb2.ListMediaResponse(), 0
        for item in items:
            batch.items.add(
                media_id=item.media_id, source=item.source, content_sha256=item.content_sha256
            )
            size += len(item.media_id) + len(item.source.encode()) + 80
            if len(batch.items) == LIST_BATCH or size >= LIST_BATCH_BYTES:
                yield batch
                batch, size = media_pb2.ListMediaResponse(), 0
        if batch.items:
            yield batch

    @embeds(Priority.INTERACTIVE)
    def SearchMedia(  # noqa: N802
        self, request: media_pb2.SearchMediaRequest, context: grpc.ServicerContext
    ) -> media_pb2.SearchMediaResponse:
        search = self._state.require().search
        k = search.resolve_k(request.k)
        search_filter = convert.filter_from_proto(request.filter)
        query = request.WhichOneof("query")
        if query == "text":
            match = convert.text_match_from_proto(request.text_match)
            hits = search.by_text(request.text, k, search_filter, match)
        elif query == "image":
            with self._cpu.admitted(context.time_remaining()):
                image = search.decode_query(request.image)
            hits = search.by_image(image, k, search_filter)
        elif query == "media_id":
            hits = search.similar_to(_media_id(request.media_id), k, search_filter)
        else:
            raise InvalidArgumentError("query", "set one of text, image or media_id")
        return media_pb2.SearchMediaResponse(
            results=[convert.hit_to_proto(hit) for hit in hits],
            model_id=self._state.require().encoder.model_id,
        )

    def GetServerInfo(  # noqa: N802
        self, request: media_pb2.GetServerInfoRequest, context: grpc.ServicerContext
    ) -> media_pb2.GetServerInfoResponse:
        return server_info_to_proto(
            self._state.require(), self._state.started_at, self._state.imports.running()
        )

    def GetThumbnail(  # noqa: N802
        self, request: media_pb2.GetThumbnailRequest, context: grpc.ServicerContext
    ) -> media_pb2.GetThumbnailResponse:
        search = self._state.require().search
        jpeg = search.thumbnail(_media_id(request.media_id), request.frame_index)
        return media_pb2.GetThumbnailResponse(jpeg=jpeg)


def _media_id(media_id: str) -> str:
    # An id that IndexMedia would refuse can never be stored: malformed, not merely unknown.
    return validate_media_id(media_id, "media_id")
