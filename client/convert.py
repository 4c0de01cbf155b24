"""Conversions between ``mediarec.client.types`` values and ``mediarec.v1`` protobuf messages.

This is the only client module that builds or reads protobuf messages field by field.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from typing import TypeVar, cast

from google.protobuf import duration_pb2, timestamp_pb2

from mediarec.client.types import (
    ClientContext,
    Embeddings,
    Event,
    EventKind,
    EventResult,
    EventStatus,
    ForgetReport,
    ImportEventsResult,
    ImportProgress,
    ImportRowError,
    IndexOutcome,
    IndexResult,
    InterestDeclaration,
    Location,
    LogEventsResult,
    MediaFilter,
    MediaItem,
    MediaMetadata,
    MediaType,
    Recommendation,
    RecommendFilter,
    RecommendPage,
    RecommendState,
    SearchHit,
    ServerInfo,
    ServerLimits,
    StoreKind,
    Topic,
    UserInfo,
)
from mediarec.v1 import common_pb2, media_pb2, recommend_pb2

_Enum = TypeVar("_Enum", bound=enum.IntEnum)


def enum_from_proto(enum_type: type[_Enum], value: int) -> _Enum:
    """The member for ``value``; a value newer than this client reads as UNSPECIFIED.

    proto3 enums are open, so a newer server may send members this client predates.
    """
    try:
        return enum_type(value)
    except ValueError:
        return enum_type(0)


def timestamp_to_proto(value: datetime) -> timestamp_pb2.Timestamp:
    """A datetime as a Timestamp; naive datetimes are taken as UTC."""
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    stamp = timestamp_pb2.Timestamp()
    stamp.FromDatetime(value)
    return stamp


def timestamp_from_proto(message: object, field_name: str) -> datetime | None:
    """The timezone-aware UTC datetime of a Timestamp field, or None when it is unset."""
    if not message.HasField(field_name):  # type: ignore[attr-defined]
        return None
    stamp: timestamp_pb2.Timestamp = getattr(message, field_name)
    return stamp.ToDatetime(tzinfo=UTC)


def _floats(values: Iterable[float]) -> list[float]:
    # Works for lists, tuples and numpy arrays alike without importing numpy.
    tolist = getattr(values, "tolist", None)
    return [float(v) for v in (tolist() if callable(tolist) else values)]


def metadata_to_proto(metadata: MediaMetadata) -> common_pb2.MediaMetadata:
    message = common_pb2.MediaMetadata(
        media_id=metadata.media_id,
        creator_id=metadata.creator_id,
        caption=metadata.caption,
        tags=list(metadata.tags),
        media_type=cast(common_pb2.MediaType, int(metadata.media_type)),
        source=metadata.source,
    )
    if metadata.created_at is not None:
        message.created_at.CopyFrom(timestamp_to_proto(metadata.created_at))
    if metadata.location is not None:
        message.location.CopyFrom(location_to_proto(metadata.location))
    return message


def metadata_from_proto(message: common_pb2.MediaMetadata) -> MediaMetadata:
    return MediaMetadata(
        media_id=message.media_id,
        creator_id=message.creator_id,
        caption=message.caption,
        tags=tuple(message.tags),
        created_at=timestamp_from_proto(message, "created_at"),
        location=location_from_proto(message.location) if message.HasField("location") else None,
        media_type=enum_from_proto(MediaType, message.media_type),
        source=message.source,
    )


def location_to_proto(location: Location) -> common_pb2.Location:
    message = common_pb2.Location(region=location.region)
    if location.latitude is not None:
        message.latitude = location.latitude
    if location.longitude is not None:
        message.longitude = location.longitude
    return message


def location_from_proto(message: common_pb2.Location) -> Location:
    return Location(
        region=message.region,
        latitude=message.latitude if message.HasField("latitude") else None,
        longitude=message.longitude if message.HasField("longitude") else None,
    )


def topics_from_proto(messages: Iterable[common_pb2.Topic]) -> tuple[Topic, ...]:
    return tuple(Topic(label=t.label, score=t.score) for t in messages)


def embeddings_to_proto(embeddings: Embeddings) -> media_pb2.MediaEmbeddings:
    message = media_pb2.MediaEmbeddings(model_id=embeddings.model_id)
    if embeddings.visual is not None:
        message.visual.values.extend(_floats(embeddings.visual))
    if embeddings.caption is not None:
        message.caption.values.extend(_floats(embeddings.caption))
    for frame in embeddings.frames:
        message.frames.add(
            timestamp_s=frame.timestamp_s,
            vector=media_pb2.Vector(values=_floats(frame.vector)),
        )
    return message


def index_result_from_proto(message: media_pb2.IndexResult) -> IndexResult:
    return IndexResult(
        media_id=message.media_id,
        outcome=enum_from_proto(IndexOutcome, message.outcome),
        media_type=enum_from_proto(MediaType, message.media_type),
        model_id=message.model_id,
        dims=message.dims,
        frame_count=message.frame_count,
        frame_timestamps_s=tuple(message.frame_timestamps_s),
        content_sha256=message.content_sha256,
        duplicate=message.duplicate,
        duplicate_of=message.duplicate_of,
        near_duplicate_of=message.near_duplicate_of,
        topics=topics_from_proto(message.topics),
    )


def media_item_from_proto(message: common_pb2.MediaItem) -> MediaItem:
    return MediaItem(
        metadata=metadata_from_proto(message.metadata),
        topics=topics_from_proto(message.topics),
        content_sha256=message.content_sha256,
        frame_timestamps_s=tuple(message.frame_timestamps_s),
        duration_s=message.duration_s,
        near_duplicate_of=message.near_duplicate_of,
        indexed_at=timestamp_from_proto(message, "indexed_at"),
        model_id=message.model_id,
    )


def filter_to_proto(media_filter: MediaFilter) -> common_pb2.MediaFilter:
    message = common_pb2.MediaFilter(
        media_types=[cast(common_pb2.MediaType, int(t)) for t in media_filter.media_types],
        creator_ids=list(media_filter.creator_ids),
        tags=list(media_filter.tags),
        topics=list(media_filter.topics),
    )
    if media_filter.created_after is not None:
        message.created_at.start.CopyFrom(timestamp_to_proto(media_filter.created_after))
    if media_filter.created_before is not None:
        message.created_at.end.CopyFrom(timestamp_to_proto(media_filter.created_before))
    return message


def search_hits_from_proto(results: Sequence[media_pb2.SearchResult]) -> list[SearchHit]:
    return [
        SearchHit(
            item=media_item_from_proto(r.media),
            score=r.score,
            matched_frame_timestamp_s=(
                r.matched_frame_timestamp_s if r.HasField("matched_frame_timestamp_s") else None
            ),
        )
        for r in results
    ]


def server_info_from_proto(message: media_pb2.GetServerInfoResponse) -> ServerInfo:
    limits = message.limits
    return ServerInfo(
        model_id=message.model_id,
        dims=message.dims,
        store_kind=enum_from_proto(StoreKind, message.store_kind),
        collection=message.collection,
        media_count=message.media_count,
        image_count=message.image_count,
        video_count=message.video_count,
        text_count=message.text_count,
        video_frames=message.video_frames,
        topic_vocabulary=tuple(message.topic_vocabulary),
        limits=ServerLimits(
            max_message_bytes=limits.max_message_bytes,
            max_upload_bytes=limits.max_upload_bytes,
            max_image_pixels=limits.max_image_pixels,
            max_caption_chars=limits.max_caption_chars,
            max_tags=limits.max_tags,
            max_k=limits.max_k,
            max_events_per_batch=limits.max_events_per_batch,
            import_chunk_events=limits.import_chunk_events,
        ),
        server_version=message.server_version,
        started_at=timestamp_from_proto(message, "started_at"),
        recommend_state=(
            recommend_state_from_proto(message.recommend_state)
            if message.HasField("recommend_state")
            else None
        ),
        imports=tuple(
            ImportProgress(
                started_at=timestamp_from_proto(progress, "started_at"),
                rows=progress.rows,
                accepted=progress.accepted,
                duplicates=progress.duplicates,
                rejected=progress.rejected,
            )
            for progress in message.imports
        ),
    )


def recommend_state_from_proto(message: common_pb2.RecommendState) -> RecommendState:
    return RecommendState(
        version=message.version,
        events_included=message.events_included,
        events_pending=message.events_pending,
        built_at=timestamp_from_proto(message, "built_at"),
        age_s=message.age_s,
        rebuilding=message.rebuilding,
    )


def import_result_from_proto(message: recommend_pb2.ImportEventsResponse) -> ImportEventsResult:
    return ImportEventsResult(
        accepted_count=message.accepted_count,
        duplicate_count=message.duplicate_count,
        rejected_count=message.rejected_count,
        errors=tuple(ImportRowError(e.row, e.event_id, e.error) for e in message.errors),
        errors_truncated=message.errors_truncated,
        state=recommend_state_from_proto(message.state),
    )


# -- recommendations ---------------------------------------------------------------------------


def context_to_proto(context: ClientContext) -> recommend_pb2.ClientContext:
    message = recommend_pb2.ClientContext(device=context.device)
    if context.local_hour is not None:
        message.local_hour = context.local_hour
    if context.location is not None:
        message.location.CopyFrom(location_to_proto(context.location))
    return message


def event_to_proto(event: Event) -> recommend_pb2.Event:
    """An event as sent; a None timestamp becomes the client's current time."""
    message = recommend_pb2.Event(
        event_id=event.event_id,
        user_id=event.user_id,
        kind=cast(recommend_pb2.EventKind, int(event.kind)),
        media_id=event.media_id,
        creator_id=event.creator_id,
        dwell_ms=event.dwell_ms,
        watch_fraction=event.watch_fraction,
        query=event.query,
        hashtag=event.hashtag,
        request_id=event.request_id,
    )
    if event.timestamp is None:
        message.timestamp.GetCurrentTime()
    elif isinstance(event.timestamp, datetime):
        message.timestamp.CopyFrom(timestamp_to_proto(event.timestamp))
    else:
        seconds = float(event.timestamp)
        whole = int(seconds // 1)
        message.timestamp.seconds = whole
        message.timestamp.nanos = min(int(round((seconds - whole) * 1e9)), 999_999_999)
    if event.context is not None:
        message.context.CopyFrom(context_to_proto(event.context))
    return message


def log_events_result_from_proto(message: recommend_pb2.LogEventsResponse) -> LogEventsResult:
    return LogEventsResult(
        results=tuple(
            EventResult(
                event_id=r.event_id,
                status=enum_from_proto(EventStatus, r.status),
                error=r.error,
            )
            for r in message.results
        ),
        accepted_count=message.accepted_count,
        duplicate_count=message.duplicate_count,
        rejected_count=message.rejected_count,
    )


def recommend_filter_to_proto(media_filter: RecommendFilter) -> recommend_pb2.RecommendFilter:
    message = recommend_pb2.RecommendFilter(
        media_types=[cast(common_pb2.MediaType, int(t)) for t in media_filter.media_types],
        creator_ids=list(media_filter.creator_ids),
        tags=list(media_filter.tags),
    )
    if media_filter.max_age is not None:
        duration = duration_pb2.Duration()
        duration.FromTimedelta(media_filter.max_age)
        message.max_age.CopyFrom(duration)
    return message


def recommendation_from_proto(message: recommend_pb2.Recommendation) -> Recommendation:
    return Recommendation(
        item=media_item_from_proto(message.media),
        score=message.score,
        score_breakdown=tuple((c.signal, c.value) for c in message.score_breakdown),
        sources=tuple(message.sources),
        reasons=tuple(message.reasons),
        matched_frame_timestamp_s=(
            message.matched_frame_timestamp_s
            if message.HasField("matched_frame_timestamp_s")
            else None
        ),
        collapsed_media_ids=tuple(message.collapsed_media_ids),
        explored=message.explored,
        propensity=message.propensity,
    )


def recommend_page_from_proto(message: recommend_pb2.RecommendResponse) -> RecommendPage:
    return RecommendPage(
        items=tuple(recommendation_from_proto(r) for r in message.items),
        request_id=message.request_id,
        next_page_cursor=message.next_page_cursor,
    )


def forget_report_from_proto(message: recommend_pb2.ForgetUserResponse) -> ForgetReport:
    return ForgetReport(
        events_deleted=message.events_deleted,
        impressions_deleted=message.impressions_deleted,
        follows_deleted=message.follows_deleted,
        interests_deleted=message.interests_deleted,
        other_deleted=message.other_deleted,
    )


def context_from_proto(message: recommend_pb2.ClientContext) -> ClientContext:
    return ClientContext(
        device=message.device,
        local_hour=message.local_hour if message.HasField("local_hour") else None,
        location=location_from_proto(message.location) if message.HasField("location") else None,
    )


def event_from_proto(message: recommend_pb2.Event) -> Event:
    """A stored event as GetUser returns it; its timestamp is a UTC datetime."""
    return Event(
        event_id=message.event_id,
        user_id=message.user_id,
        kind=enum_from_proto(EventKind, message.kind),
        timestamp=timestamp_from_proto(message, "timestamp"),
        media_id=message.media_id,
        creator_id=message.creator_id,
        dwell_ms=message.dwell_ms,
        watch_fraction=message.watch_fraction,
        query=message.query,
        hashtag=message.hashtag,
        context=context_from_proto(message.context) if message.HasField("context") else None,
        request_id=message.request_id,
    )


def user_info_from_proto(user_id: str, message: recommend_pb2.GetUserResponse) -> UserInfo:
    return UserInfo(
        user_id=user_id,
        recent_events=tuple(event_from_proto(event) for event in message.recent_events),
        event_count=message.event_count,
        interests=tuple(
            InterestDeclaration(item.text, timestamp_from_proto(item, "declared_at"))
            for item in message.interests
        ),
    )
