"""Protobuf <-> domain conversions on the server side. Protobuf types stop here."""

from __future__ import annotations

from collections.abc import Iterable
from typing import cast

from google.protobuf.timestamp_pb2 import Timestamp

from mediarec.server.media import (
    IndexedItem,
    ItemMetadata,
    Location,
    MediaHit,
    MediaType,
    Outcome,
    StoredItem,
)
from mediarec.server.search import TextMatch
from mediarec.server.service_errors import InvalidArgumentError
from mediarec.server.store import SearchFilter
from mediarec.v1 import common_pb2, media_pb2

_MEDIA_TYPE_FROM_PROTO: dict[int, MediaType] = {
    common_pb2.MEDIA_TYPE_IMAGE: MediaType.IMAGE,
    common_pb2.MEDIA_TYPE_VIDEO: MediaType.VIDEO,
    common_pb2.MEDIA_TYPE_TEXT: MediaType.TEXT,
}
# The stubs type enum fields as the enum's class, which the plain ints above are at run time.
_MEDIA_TYPE_TO_PROTO = {v: cast(common_pb2.MediaType, k) for k, v in _MEDIA_TYPE_FROM_PROTO.items()}
_OUTCOME_TO_PROTO = {
    Outcome.CREATED: media_pb2.INDEX_OUTCOME_CREATED,
    Outcome.UPDATED: media_pb2.INDEX_OUTCOME_UPDATED,
    Outcome.UNCHANGED: media_pb2.INDEX_OUTCOME_UNCHANGED,
}


def media_type_from_proto(value: int, field: str) -> MediaType | None:
    if value == common_pb2.MEDIA_TYPE_UNSPECIFIED:
        return None
    if value not in _MEDIA_TYPE_FROM_PROTO:
        raise InvalidArgumentError(field, f"unknown media type {value}")
    return _MEDIA_TYPE_FROM_PROTO[value]


def _seconds(ts: Timestamp) -> int:
    return int(ts.seconds)


def set_unix_time(field: Timestamp, unix_s: float) -> None:
    """Write unix seconds into a message's Timestamp field."""
    field.FromNanoseconds(int(round(unix_s * 1e9)))


def metadata_from_proto(message: common_pb2.MediaMetadata) -> ItemMetadata:
    location = Location()
    if message.HasField("location"):
        loc = message.location
        location = Location(
            region=loc.region,
            latitude=loc.latitude if loc.HasField("latitude") else None,
            longitude=loc.longitude if loc.HasField("longitude") else None,
        )
    return ItemMetadata(
        media_id=message.media_id,
        creator_id=message.creator_id,
        caption=message.caption,
        tags=tuple(message.tags),
        created_at=_seconds(message.created_at) if message.HasField("created_at") else None,
        location=location,
        media_type=media_type_from_proto(message.media_type, "metadata.media_type"),
        source=message.source,
    )


def metadata_to_proto(metadata: ItemMetadata, media_type: MediaType) -> common_pb2.MediaMetadata:
    message = common_pb2.MediaMetadata(
        media_id=metadata.media_id,
        creator_id=metadata.creator_id,
        caption=metadata.caption,
        tags=list(metadata.tags),
        media_type=_MEDIA_TYPE_TO_PROTO[media_type],
        source=metadata.source,
    )
    if metadata.created_at is not None:
        message.created_at.FromSeconds(metadata.created_at)
    loc = metadata.location
    if loc.region or loc.latitude is not None or loc.longitude is not None:
        message.location.region = loc.region
        if loc.latitude is not None:
            message.location.latitude = loc.latitude
        if loc.longitude is not None:
            message.location.longitude = loc.longitude
    return message


def _topics(topics: tuple) -> list[common_pb2.Topic]:  # type: ignore[type-arg]
    return [common_pb2.Topic(label=t.label, score=t.score) for t in topics]


def index_result_to_proto(item: IndexedItem) -> media_pb2.IndexResult:
    return media_pb2.IndexResult(
        media_id=item.media_id,
        outcome=_OUTCOME_TO_PROTO[item.outcome],
        media_type=_MEDIA_TYPE_TO_PROTO[item.media_type],
        model_id=item.model_id,
        dims=item.dims,
        frame_count=len(item.frame_timestamps_s),
        frame_timestamps_s=list(item.frame_timestamps_s),
        content_sha256=item.content_sha256,
        duplicate=item.duplicate,
        duplicate_of=item.duplicate_of,
        near_duplicate_of=item.near_duplicate_of,
        topics=_topics(item.topics),
    )


def stored_item_to_proto(item: StoredItem) -> common_pb2.MediaItem:
    message = common_pb2.MediaItem(
        metadata=metadata_to_proto(item.metadata, item.media_type),
        topics=_topics(item.topics),
        content_sha256=item.content_sha256,
        frame_timestamps_s=list(item.frame_timestamps_s),
        duration_s=item.duration_s,
        near_duplicate_of=item.near_duplicate_of,
        model_id=item.model_id,
    )
    if item.indexed_at:
        message.indexed_at.FromSeconds(item.indexed_at)
    return message


def hit_to_proto(hit: MediaHit) -> media_pb2.SearchResult:
    result = media_pb2.SearchResult(media=stored_item_to_proto(hit.item), score=hit.score)
    if hit.matched_frame_timestamp_s is not None:
        result.matched_frame_timestamp_s = hit.matched_frame_timestamp_s
    return result


_TEXT_MATCHES: dict[int, TextMatch] = {
    media_pb2.TEXT_MATCH_UNSPECIFIED: TextMatch.HYBRID,
    media_pb2.TEXT_MATCH_HYBRID: TextMatch.HYBRID,
    media_pb2.TEXT_MATCH_PIXELS: TextMatch.PIXELS,
    media_pb2.TEXT_MATCH_CAPTIONS: TextMatch.CAPTIONS,
}


def text_match_from_proto(value: int) -> TextMatch:
    match = _TEXT_MATCHES.get(value)
    if match is None:
        raise InvalidArgumentError("text_match", f"unknown text_match {value}")
    return match


def filter_media_types(values: Iterable[int]) -> tuple[str, ...]:
    """A filter's media types as the domain spells them; an unknown one names its position."""
    found = (media_type_from_proto(v, f"filter.media_types[{i}]") for i, v in enumerate(values))
    return tuple(media_type.value for media_type in found if media_type is not None)


def filter_from_proto(message: common_pb2.MediaFilter) -> SearchFilter:
    media_types = filter_media_types(message.media_types)
    start = end = None
    if message.HasField("created_at"):
        window = message.created_at
        if window.HasField("start"):
            start = _seconds(window.start)
        if window.HasField("end"):
            # The proto's end is exclusive; the store's bound is inclusive whole seconds.
            end = _seconds(window.end) - (0 if window.end.nanos else 1)
        if start is not None and end is not None and start > end:
            raise InvalidArgumentError("filter.created_at", "the time range ends before it starts")
    return SearchFilter(
        media_types=media_types,
        creator_ids=tuple(message.creator_ids),
        tags=tuple(message.tags),
        topics=tuple(message.topics),
        created_at_from=start,
        created_at_to=end,
    )
