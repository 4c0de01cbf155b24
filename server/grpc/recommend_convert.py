"""Protobuf <-> domain conversions of RecommendationService. Protobuf types stop here."""

from __future__ import annotations

import math

from mediarec.server.engagement.validation import MAX_ID_CHARS
from mediarec.server.grpc.convert import filter_media_types, set_unix_time, stored_item_to_proto
from mediarec.server.media import StoredItem
from mediarec.server.recommend.importer import ImportResult
from mediarec.server.recommend.types import (
    Context,
    Event,
    EventKind,
    EventResult,
    ForgetReport,
    RecFilter,
    RecItem,
    RecRequest,
    StateInfo,
    Surface,
)
from mediarec.server.service_errors import InvalidArgumentError, ResourceLimitError
from mediarec.v1 import common_pb2, recommend_pb2

_KIND_FROM_PROTO = {
    recommend_pb2.EVENT_KIND_IMPRESSION: EventKind.IMPRESSION,
    recommend_pb2.EVENT_KIND_VIEW: EventKind.VIEW,
    recommend_pb2.EVENT_KIND_LIKE: EventKind.LIKE,
    recommend_pb2.EVENT_KIND_COMMENT: EventKind.COMMENT,
    recommend_pb2.EVENT_KIND_SHARE: EventKind.SHARE,
    recommend_pb2.EVENT_KIND_SAVE: EventKind.SAVE,
    recommend_pb2.EVENT_KIND_SKIP: EventKind.SKIP,
    recommend_pb2.EVENT_KIND_HIDE: EventKind.HIDE,
    recommend_pb2.EVENT_KIND_FOLLOW: EventKind.FOLLOW,
    recommend_pb2.EVENT_KIND_UNFOLLOW: EventKind.UNFOLLOW,
    recommend_pb2.EVENT_KIND_SEARCH: EventKind.SEARCH,
    recommend_pb2.EVENT_KIND_PROFILE_VISIT: EventKind.PROFILE_VISIT,
}
_SURFACE_FROM_PROTO = {
    recommend_pb2.SURFACE_UNSPECIFIED: Surface.FEED,
    recommend_pb2.SURFACE_FEED: Surface.FEED,
    recommend_pb2.SURFACE_EXPLORE: Surface.EXPLORE,
    recommend_pb2.SURFACE_REELS: Surface.REELS,
}


def context_from_proto(message: recommend_pb2.ClientContext) -> Context:
    return Context(
        device=message.device.strip().lower(),
        local_hour=message.local_hour if message.HasField("local_hour") else None,
        location=message.location.region.strip() if message.HasField("location") else "",
    )


def event_from_proto(message: recommend_pb2.Event) -> Event | EventResult:
    """The domain event, or a rejection when the kind is not one this server knows.

    Everything else (ids, timestamps, ranges) is checked by the engagement store, so every
    store implementation applies the same rules.
    """
    kind = _KIND_FROM_PROTO.get(message.kind)
    if kind is None:
        what = "missing" if message.kind == recommend_pb2.EVENT_KIND_UNSPECIFIED else "unknown"
        return EventResult(
            message.event_id, accepted=False, error=f"kind is {what} ({message.kind})."
        )
    timestamp = 0.0  # unset: the store rejects it as missing
    if message.HasField("timestamp"):
        timestamp = message.timestamp.seconds + message.timestamp.nanos / 1e9
    return Event(
        event_id=message.event_id,
        user_id=message.user_id,
        kind=kind,
        timestamp=timestamp,
        media_id=message.media_id,
        creator_id=message.creator_id,
        dwell_ms=message.dwell_ms,
        watch_fraction=message.watch_fraction,
        query=message.query,
        hashtag=message.hashtag.strip().lstrip("#"),
        context=context_from_proto(message.context),
        request_id=message.request_id,
    )


def event_result_to_proto(result: EventResult) -> recommend_pb2.EventResult:
    if result.accepted:
        status = recommend_pb2.EVENT_STATUS_ACCEPTED
    elif result.duplicate:
        status = recommend_pb2.EVENT_STATUS_DUPLICATE
    else:
        status = recommend_pb2.EVENT_STATUS_REJECTED
    return recommend_pb2.EventResult(event_id=result.event_id, status=status, error=result.error)


def log_events_response(results: list[EventResult]) -> recommend_pb2.LogEventsResponse:
    accepted = sum(r.accepted for r in results)
    duplicates = sum(r.duplicate for r in results)
    return recommend_pb2.LogEventsResponse(
        results=[event_result_to_proto(r) for r in results],
        accepted_count=accepted,
        duplicate_count=duplicates,
        rejected_count=len(results) - accepted - duplicates,
    )


def filter_from_proto(message: recommend_pb2.RecommendFilter) -> RecFilter:
    media_types = filter_media_types(message.media_types)
    max_age_s = None
    if message.HasField("max_age"):
        max_age_s = message.max_age.seconds + message.max_age.nanos / 1e9
        if not max_age_s > 0:
            raise InvalidArgumentError("filter.max_age", "max_age must be positive when set")
    return RecFilter(
        media_types=media_types,
        creator_ids=tuple(c for c in message.creator_ids if c),
        tags=tuple(t.strip().lstrip("#") for t in message.tags if t.strip()),
        max_age_s=max_age_s,
    )


def resolve_k(k: int, *, default_k: int, max_k: int) -> int:
    if k < 0:
        raise InvalidArgumentError("k", "k must not be negative")
    if k > max_k:
        # A k past the maximum is a malformed request, not a resource the server ran out of.
        raise InvalidArgumentError("k", f"k={k} is over the maximum of {max_k}")
    return k or default_k


def optional_id(value: str, field: str) -> str:
    """An id that may be empty, capped like every stored id (each served row stores it)."""
    if len(value) > MAX_ID_CHARS:
        raise InvalidArgumentError(field, f"{field} is longer than {MAX_ID_CHARS} characters")
    return value


def require_id(value: str, field: str) -> str:
    if not value.strip():
        raise InvalidArgumentError(field, f"{field} is required")
    return optional_id(value, field)


def rec_request_from_proto(
    message: recommend_pb2.RecommendRequest, *, default_k: int, max_k: int, max_text_chars: int
) -> RecRequest:
    surface = _SURFACE_FROM_PROTO.get(message.surface)
    if surface is None:
        raise InvalidArgumentError("surface", f"unknown surface {message.surface}")
    context = context_from_proto(message.context)
    if context.local_hour is not None and not 0 <= context.local_hour <= 23:
        raise InvalidArgumentError("context.local_hour", "local_hour must be between 0 and 23")
    if len(message.steering_text) > max_text_chars:
        raise ResourceLimitError(
            "steering_text", f"steering_text is longer than {max_text_chars} characters"
        )
    return RecRequest(
        user_id=require_id(message.user_id, "user_id"),
        k=resolve_k(message.k, default_k=default_k, max_k=max_k),
        surface=surface,
        context=context,
        seed_media_id=optional_id(message.seed_media_id, "seed_media_id"),
        steering_text=message.steering_text.strip(),
        filter=filter_from_proto(message.filter),
        exclude_seen=message.exclude_seen if message.HasField("exclude_seen") else True,
        cursor=message.page_cursor,
        dry_run=message.dry_run,
    )


def rec_item_to_proto(item: RecItem, stored: StoredItem) -> recommend_pb2.Recommendation:
    components = sorted(item.breakdown.items(), key=lambda kv: (-abs(kv[1]), kv[0]))
    message = recommend_pb2.Recommendation(
        media=stored_item_to_proto(stored),
        score=_finite(item.score),
        score_breakdown=[
            recommend_pb2.ScoreComponent(signal=name, value=_finite(value))
            for name, value in components
        ],
        sources=list(item.sources),
        reasons=list(item.reasons),
        collapsed_media_ids=list(item.collapsed),
        explored=item.explored,
        propensity=_finite(item.propensity),
    )
    if item.matched_frame_timestamp_s is not None:
        message.matched_frame_timestamp_s = item.matched_frame_timestamp_s
    return message


def forget_report_to_proto(report: ForgetReport) -> recommend_pb2.ForgetUserResponse:
    return recommend_pb2.ForgetUserResponse(
        events_deleted=report.events,
        impressions_deleted=report.impressions,
        follows_deleted=report.follows,
        interests_deleted=report.interests,
        other_deleted=report.other,
    )


def _finite(value: float) -> float:
    # A NaN would sort unpredictably on the client; the logic should never produce one.
    return float(value) if math.isfinite(value) else 0.0


__all__ = [
    "context_from_proto",
    "event_from_proto",
    "event_result_to_proto",
    "filter_from_proto",
    "forget_report_to_proto",
    "import_response",
    "log_events_response",
    "optional_id",
    "rec_item_to_proto",
    "rec_request_from_proto",
    "require_id",
    "resolve_k",
    "state_to_proto",
]


def state_to_proto(state: StateInfo) -> common_pb2.RecommendState:
    message = common_pb2.RecommendState(
        version=state.version,
        events_included=state.events_included,
        events_pending=state.events_pending,
        age_s=state.age_s,
        rebuilding=state.rebuilding,
    )
    if state.built_at is not None:
        set_unix_time(message.built_at, state.built_at)
    return message


def import_response(result: ImportResult) -> recommend_pb2.ImportEventsResponse:
    summary = result.summary
    return recommend_pb2.ImportEventsResponse(
        accepted_count=summary.accepted,
        duplicate_count=summary.duplicates,
        rejected_count=summary.rejected,
        errors=[
            recommend_pb2.ImportRowError(row=e.row, event_id=e.event_id, error=e.error)
            for e in summary.errors
        ],
        errors_truncated=summary.errors_truncated,
        state=state_to_proto(result.state),
    )


_KIND_TO_PROTO = {kind: number for number, kind in _KIND_FROM_PROTO.items()}


def event_to_proto(event: Event) -> recommend_pb2.Event:
    """A stored event as GetUser returns it."""
    message = recommend_pb2.Event(
        event_id=event.event_id,
        user_id=event.user_id,
        kind=_KIND_TO_PROTO[event.kind],
        media_id=event.media_id,
        creator_id=event.creator_id,
        dwell_ms=event.dwell_ms,
        watch_fraction=event.watch_fraction,
        query=event.query,
        hashtag=event.hashtag,
        request_id=event.request_id,
    )
    set_unix_time(message.timestamp, event.timestamp)
    context = event.context
    if context.device or context.local_hour is not None or context.location:
        message.context.device = context.device
        if context.local_hour is not None:
            message.context.local_hour = context.local_hour
        if context.location:
            message.context.location.region = context.location
    return message


def user_response(
    events: list[Event], event_count: int, interests: list[tuple[str, float]]
) -> recommend_pb2.GetUserResponse:
    response = recommend_pb2.GetUserResponse(
        recent_events=[event_to_proto(event) for event in events], event_count=event_count
    )
    for text, declared_at in interests:
        declaration = response.interests.add(text=text)
        set_unix_time(declaration.declared_at, declared_at)
    return response
