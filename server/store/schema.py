"""The storage layout shared by every adapter: names, payload keys, indexes and point ids.

Everything an adapter writes to Qdrant is spelled here once, so the embedded engine and a
Qdrant server hold byte-for-byte the same collections.
"""

from __future__ import annotations

import functools
import hashlib
import re
import uuid
from enum import Enum

# Named vectors of a media point. Frame points carry only VISUAL.
VISUAL = "visual"
CAPTION = "caption"
VECTOR_NAMES = (VISUAL, CAPTION)

# Payload keys. MEDIA_ID is written by the store itself; the rest come from the service.
MEDIA_ID = "media_id"
MEDIA_TYPE = "media_type"
CREATOR_ID = "creator_id"
TAGS = "tags"
TOPICS = "topics"
TOPIC_SCORES = "topic_scores"
CREATED_AT = "created_at"
CAPTION_TEXT = "caption"
CONTENT_HASH = "content_hash"
LOCATION = "location"
FRAME_COUNT = "frame_count"
# Keys of frame points (in the frames collection).
FRAME_INDEX = "frame_index"
FRAME_TIMESTAMP_S = "timestamp_s"

# Values of MEDIA_TYPE. Only VIDEO has frame points.
MEDIA_TYPE_IMAGE = "image"
MEDIA_TYPE_VIDEO = "video"
MEDIA_TYPE_TEXT = "text"


class IndexKind(Enum):
    """The payload index type of a filterable field (each adapter maps it to its engine's type)."""

    KEYWORD = "keyword"
    INTEGER = "integer"


# Payload indexes, created together with the collection: one for every filter field.
MEDIA_INDEXES: dict[str, IndexKind] = {
    MEDIA_ID: IndexKind.KEYWORD,
    MEDIA_TYPE: IndexKind.KEYWORD,
    CREATOR_ID: IndexKind.KEYWORD,
    TAGS: IndexKind.KEYWORD,
    TOPICS: IndexKind.KEYWORD,
    CREATED_AT: IndexKind.INTEGER,
    CONTENT_HASH: IndexKind.KEYWORD,
}
FRAME_INDEXES: dict[str, IndexKind] = {
    MEDIA_ID: IndexKind.KEYWORD,
    FRAME_INDEX: IndexKind.INTEGER,
}

FRAMES_SUFFIX = "__frames"
_COLLECTION_PREFIX = "media_"
_MAX_SLUG = 48

# Fixed forever: changing it would orphan every stored point.
_POINT_NAMESPACE = uuid.UUID("6f1e2d0c-5b7a-5c44-9a3e-2b8f0d6c1a47")


def collection_name(model_id: str) -> str:
    """A safe collection name for ``model_id``: readable slug plus a hash that keeps it unique.

    Two model ids that slug alike (``ViT-B-32/openai`` and ``vit_b_32_openai``) still get
    different collections, because vectors of different models must never mix.
    """
    if not model_id.strip():
        raise ValueError("model_id must be a non-empty string")
    slug = re.sub(r"[^a-z0-9]+", "_", model_id.lower()).strip("_")[:_MAX_SLUG] or "model"
    digest = hashlib.sha256(model_id.encode("utf-8")).hexdigest()[:8]
    return f"{_COLLECTION_PREFIX}{slug}_{digest}"


def frames_collection_name(collection: str) -> str:
    """The companion collection that holds the per-frame points of ``collection``'s videos."""
    return collection + FRAMES_SUFFIX


@functools.lru_cache(maxsize=1 << 16)
def media_point_id(media_id: str) -> str:
    """Deterministic point id of a media item, so re-sending a media_id overwrites it.

    Cached: a Recommend call excludes up to a few hundred seen ids by point id, and a uuid5 (a
    SHA-1) for each of them on every request adds up."""
    return str(uuid.uuid5(_POINT_NAMESPACE, media_id))


def frame_point_id(media_id: str, frame_index: int) -> str:
    """Deterministic point id of one sampled frame of a video."""
    return str(uuid.uuid5(_POINT_NAMESPACE, f"{media_id}\x1fframe\x1f{frame_index}"))
