"""Search by text, image or stored item ("more like this"), and reading stored items back."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import replace
from enum import StrEnum

import numpy as np
from PIL import Image

from mediarec.encoders import Encoder
from mediarec.encoders.images import decode_image
from mediarec.encoders.media_errors import MediaDecodeError
from mediarec.server.indexing.indexer import MAX_SOURCE_CHARS, decode_failure, jpeg_draft_size
from mediarec.server.media import MediaHit, MediaType, SourcedItem, StoredItem
from mediarec.server.payload import SOURCE, stored_item
from mediarec.server.service_errors import InvalidArgumentError, NotFoundError, ResourceLimitError
from mediarec.server.store import Fusion, SearchFilter, SearchHit, VectorStore, schema
from mediarec.server.thumbnails import Thumbnails

logger = logging.getLogger(__name__)


class TextMatch(StrEnum):
    """Which stored vectors a text query is matched against."""

    HYBRID = "hybrid"  # pictures and captions, fused by rank
    PIXELS = "pixels"  # pictures (video frames too); caption-only posts by their caption
    CAPTIONS = "captions"  # captions only


class MediaSearch:
    def __init__(
        self,
        encoder: Encoder,
        store: VectorStore,
        *,
        default_k: int = 10,
        max_k: int = 1000,
        max_image_pixels: int = 80_000_000,
        max_text_chars: int = 2200,
        fusion: Fusion | None = None,
        thumbnails: Thumbnails | None = None,
    ) -> None:
        self._encoder = encoder
        self._store = store
        self._thumbnails = thumbnails
        self._default_k = default_k
        self._max_k = max_k
        self._max_image_pixels = max_image_pixels
        self._draft_size = jpeg_draft_size(encoder)
        self._fusion = fusion or Fusion()
        self._max_text_chars = max_text_chars

    # -- reading --------------------------------------------------------------------------------
    def get(self, media_id: str) -> StoredItem:
        point = self._store.get([media_id]).get(media_id)
        if point is None:
            raise NotFoundError(f"No media with id {media_id!r}.")
        return stored_item(media_id, point.payload)

    def sourced(self, prefix: str = "") -> Iterator[SourcedItem]:
        """Every stored item whose source starts with ``prefix``, lazily, in no order."""
        if len(prefix) > MAX_SOURCE_CHARS:
            raise InvalidArgumentError("source_prefix", "source_prefix is over 4096 characters")
        for point in self._store.iter_payloads([SOURCE, schema.CONTENT_HASH]):
            source = str(point.payload.get(SOURCE, "") or "")
            if source.startswith(prefix):
                sha = str(point.payload.get(schema.CONTENT_HASH, "") or "")
                yield SourcedItem(point.media_id, source, sha)

    def delete(self, media_id: str, *, allow_missing: bool = False) -> bool:
        if not self._store.get([media_id]):
            if self._thumbnails is not None:  # rows a crash may have left without an item
                self._thumbnails.delete([media_id])
            if allow_missing:
                return False
            raise NotFoundError(f"No media with id {media_id!r}.")
        self._store.delete([media_id])
        if self._thumbnails is not None:
            self._thumbnails.delete([media_id])
        return True

    def thumbnail(self, media_id: str, frame_index: int = 0) -> bytes:
        """The JPEG thumbnail of a stored photo, or of a video's ``frame_index``-th frame."""
        if frame_index < 0:
            raise InvalidArgumentError("frame_index", "frame_index must not be negative")
        item = self.get(media_id)  # NOT_FOUND for an unknown id
        jpeg = (
            None if self._thumbnails is None
            else self._thumbnails.get(media_id, frame_index, item.content_sha256)
        )  # fmt: skip
        if jpeg is None:
            if item.media_type is MediaType.TEXT:
                raise NotFoundError(f"{media_id!r} is a caption-only post: it has no picture.")
            if frame_index > 0 and frame_index >= len(item.frame_timestamps_s):
                raise NotFoundError(
                    f"{media_id!r} has {len(item.frame_timestamps_s)} frames; "
                    f"there is no frame {frame_index}."
                )
            raise NotFoundError(
                f"{media_id!r} has no thumbnail: it was stored from vectors, or before "
                "thumbnails were made (indexing its file again makes one)."
            )
        return jpeg

    # -- searching ------------------------------------------------------------------------------
    def resolve_k(self, k: int) -> int:
        if k < 0:
            raise InvalidArgumentError("k", "k must not be negative")
        if k > self._max_k:
            # A k past the maximum is a malformed request, not a resource the server ran out of.
            raise InvalidArgumentError("k", f"k={k} is over the maximum of {self._max_k}")
        return k or self._default_k

    def by_text(
        self, text: str, k: int, filter: SearchFilter, match: TextMatch = TextMatch.HYBRID
    ) -> list[MediaHit]:
        """Items for a text query. Hybrid (the default) fuses the picture and caption rankings,
        so a photo is found by what it shows or by what its caption says; its scores are
        fusion scores, not cosines."""
        if not text.strip():
            raise InvalidArgumentError("text", "the query text is empty")
        if len(text) > self._max_text_chars:
            raise ResourceLimitError(
                "text", f"the query has {len(text)} characters, over the limit of "
                f"{self._max_text_chars}",
            )  # fmt: skip
        query = self._encoder.embed_texts([text])[0]
        if match is TextMatch.PIXELS:
            return self.by_vector(query, k, filter, include_captions=True)
        if match is TextMatch.CAPTIONS:
            return self._hits(self._store.search(schema.CAPTION, query, k, filter))
        hits = self._store.search_fused(
            query,
            (schema.VISUAL, schema.CAPTION),
            k,
            filter,
            fusion=self._fusion,
            match_frames=True,
        )
        return self._hits(hits)

    def by_image(self, data: bytes | Image.Image, k: int, filter: SearchFilter) -> list[MediaHit]:
        """Items like a query image, given as bytes or as :meth:`decode_query` decoded them."""
        image = data if isinstance(data, Image.Image) else self.decode_query(data)
        query = self._encoder.embed_images([image])[0]
        return self.by_vector(query, k, filter)

    def decode_query(self, data: bytes) -> Image.Image:
        """A query image's pixels, decoded as indexing decodes (the same draft size)."""
        try:
            return decode_image(
                data, max_pixels=self._max_image_pixels, draft_size=self._draft_size
            )
        except MediaDecodeError as exc:
            # Same mapping as at indexing: over the pixel cap is over a limit, else bad input.
            raise decode_failure(exc, "image") from exc

    def similar_to(self, media_id: str, k: int, filter: SearchFilter) -> list[MediaHit]:
        """More like a stored item: its visual vector, or its caption vector for text posts."""
        point = self._store.get([media_id], with_vectors=True).get(media_id)
        if point is None:
            raise NotFoundError(f"No media with id {media_id!r}.")
        without_seed = replace(filter, exclude_media_ids=(*filter.exclude_media_ids, media_id))
        if schema.VISUAL in point.vectors:
            return self.by_vector(np.asarray(point.vectors[schema.VISUAL]), k, without_seed)
        caption = np.asarray(point.vectors[schema.CAPTION])
        return self._hits(self._store.search(schema.CAPTION, caption, k, without_seed))

    def by_vector(
        self, query: np.ndarray, k: int, filter: SearchFilter, *, include_captions: bool = False
    ) -> list[MediaHit]:
        """Visual search (frames matched for videos), plus caption-only posts for text queries.

        Caption-only posts have no picture, so a text query reaches them through their caption
        vector; both scores are cosines in the same joint space and are merged as they are.
        """
        hits = self._store.search(schema.VISUAL, query, k, filter, match_frames=True)
        wants_text = not filter.media_types or MediaType.TEXT.value in filter.media_types
        if include_captions and wants_text:
            text_only = replace(filter, media_types=(MediaType.TEXT.value,))
            hits = hits + self._store.search(schema.CAPTION, query, k, text_only)
            hits.sort(key=lambda hit: -hit.score)
        return self._hits(hits[:k])

    @staticmethod
    def _hits(hits: list[SearchHit]) -> list[MediaHit]:
        return [
            MediaHit(
                item=stored_item(hit.media_id, hit.payload),
                score=hit.score,
                matched_frame_timestamp_s=hit.frame.timestamp_s if hit.frame else None,
            )
            for hit in hits
        ]
