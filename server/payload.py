"""Stored payload <-> domain items. The one place that knows how an item sits in Qdrant."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from mediarec.server.media import (
    IndexedItem,
    ItemMetadata,
    Location,
    MediaType,
    Outcome,
    StoredItem,
)
from mediarec.server.store import schema
from mediarec.server.topics import Topic

# Payload keys the service adds beyond the filterable ones spelled in mediarec.server.store.schema.
FINGERPRINT = "fingerprint"  # sha256 of content hash + metadata: "unchanged" detection
FRAME_TIMESTAMPS_S = "frame_timestamps_s"
DURATION_S = "duration_s"
NEAR_DUPLICATE_OF = "near_duplicate_of"
INDEXED_AT = "indexed_at"
MODEL_ID = "model_id"
LATITUDE = "latitude"
LONGITUDE = "longitude"
SOURCE = "source"


def build_payload(
    item: IndexedItem,
    metadata: ItemMetadata,
    *,
    fingerprint: str,
    duration_s: float,
    indexed_at: int,
) -> dict[str, Any]:
    payload: dict[str, Any] = {
        schema.MEDIA_TYPE: item.media_type.value,
        schema.CREATOR_ID: metadata.creator_id,
        schema.TAGS: list(metadata.tags),
        schema.TOPICS: [t.label for t in item.topics],
        schema.TOPIC_SCORES: [t.score for t in item.topics],
        schema.CAPTION_TEXT: metadata.caption,
        schema.CONTENT_HASH: item.content_sha256,
        schema.LOCATION: metadata.location.region,
        schema.FRAME_COUNT: len(item.frame_timestamps_s),
        FRAME_TIMESTAMPS_S: list(item.frame_timestamps_s),
        DURATION_S: duration_s,
        NEAR_DUPLICATE_OF: item.near_duplicate_of,
        INDEXED_AT: indexed_at,
        MODEL_ID: item.model_id,
        FINGERPRINT: fingerprint,
    }
    if metadata.created_at is not None:
        payload[schema.CREATED_AT] = metadata.created_at
    if metadata.location.latitude is not None:
        payload[LATITUDE] = metadata.location.latitude
    if metadata.location.longitude is not None:
        payload[LONGITUDE] = metadata.location.longitude
    if metadata.source:
        payload[SOURCE] = metadata.source
    return payload


def stored_item(media_id: str, payload: Mapping[str, Any]) -> StoredItem:
    media_type = MediaType(payload.get(schema.MEDIA_TYPE, MediaType.IMAGE.value))
    metadata = ItemMetadata(
        media_id=media_id,
        creator_id=str(payload.get(schema.CREATOR_ID, "")),
        caption=str(payload.get(schema.CAPTION_TEXT, "")),
        tags=tuple(payload.get(schema.TAGS, ()) or ()),
        created_at=_optional_int(payload.get(schema.CREATED_AT)),
        location=Location(
            region=str(payload.get(schema.LOCATION, "") or ""),
            latitude=payload.get(LATITUDE),
            longitude=payload.get(LONGITUDE),
        ),
        media_type=media_type,
        source=str(payload.get(SOURCE, "") or ""),
    )
    labels = payload.get(schema.TOPICS, ()) or ()
    scores = payload.get(schema.TOPIC_SCORES, ()) or ()
    return StoredItem(
        metadata=metadata,
        media_type=media_type,
        topics=tuple(Topic(str(a), float(b)) for a, b in zip(labels, scores, strict=False)),
        content_sha256=str(payload.get(schema.CONTENT_HASH, "")),
        frame_timestamps_s=tuple(float(t) for t in payload.get(FRAME_TIMESTAMPS_S, ()) or ()),
        duration_s=float(payload.get(DURATION_S, 0.0) or 0.0),
        near_duplicate_of=str(payload.get(NEAR_DUPLICATE_OF, "")),
        indexed_at=int(payload.get(INDEXED_AT, 0) or 0),
        model_id=str(payload.get(MODEL_ID, "")),
    )


def unchanged_result(stored: StoredItem, dims: int, duplicate_of: str) -> IndexedItem:
    """The response for a re-sent item whose content and metadata are already stored."""
    return IndexedItem(
        media_id=stored.metadata.media_id,
        outcome=Outcome.UNCHANGED,
        media_type=stored.media_type,
        model_id=stored.model_id,
        dims=dims,
        frame_timestamps_s=stored.frame_timestamps_s,
        content_sha256=stored.content_sha256,
        duplicate=bool(duplicate_of),
        duplicate_of=duplicate_of,
        near_duplicate_of=stored.near_duplicate_of,
        topics=stored.topics,
    )


def _optional_int(value: object) -> int | None:
    return None if value is None else int(value)  # type: ignore[call-overload]
