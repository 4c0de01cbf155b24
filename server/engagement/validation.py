"""Checks one engagement event before it is stored: a pure function, one sentence per problem."""

from __future__ import annotations

import math
from dataclasses import dataclass

from mediarec.server.recommend.types import Event, EventKind

# Kinds that act on one item and therefore need its media_id.
MEDIA_KINDS = frozenset(
    {
        EventKind.IMPRESSION,
        EventKind.VIEW,
        EventKind.LIKE,
        EventKind.COMMENT,
        EventKind.SHARE,
        EventKind.SAVE,
        EventKind.SKIP,
    }
)
# Kinds that act on a creator and therefore need its creator_id.
CREATOR_KINDS = frozenset({EventKind.FOLLOW, EventKind.UNFOLLOW, EventKind.PROFILE_VISIT})

# Timestamps are unix seconds from 1970 on: real archives (ratings, logs) reach back decades.
# A millisecond timestamp by mistake lies far in the future and is refused by the skew rule.
EARLIEST_TIMESTAMP = 0.0
MAX_ID_CHARS = 256
MAX_TEXT_CHARS = 1000


@dataclass(frozen=True)
class EventLimits:
    """How far an event's timestamp may lie in the future of the store's clock (clock skew)."""

    max_future_skew_s: float = 86_400.0


def event_error(event: Event, now: float, limits: EventLimits | None = None) -> str:
    """Why ``event`` cannot be stored, as one sentence; "" when it is valid."""
    limits = limits or EventLimits()
    for check in (_ids_error, _kind_error, _timestamp_error, _values_error, _context_error):
        error = check(event, now, limits)
        if error:
            return error
    return ""


def _ids_error(event: Event, now: float, limits: EventLimits) -> str:
    for name in ("event_id", "user_id"):
        value = getattr(event, name)
        if not isinstance(value, str) or not value.strip():
            return f"{name} is required."
    for name in ("event_id", "user_id", "media_id", "creator_id", "request_id"):
        if len(getattr(event, name)) > MAX_ID_CHARS:
            return f"{name} is longer than {MAX_ID_CHARS} characters."
    return ""


def _kind_error(event: Event, now: float, limits: EventLimits) -> str:
    try:
        kind = EventKind(event.kind)
    except ValueError:
        names = ", ".join(k.value for k in EventKind)
        return f"kind {event.kind!r} is unknown; use one of {names}."
    if kind in MEDIA_KINDS and not event.media_id:
        return f"a {kind.value} event needs a media_id."
    if kind in CREATOR_KINDS and not event.creator_id:
        return f"a {kind.value} event needs a creator_id."
    if kind is EventKind.HIDE and not (event.media_id or event.creator_id):
        return "a hide event needs a media_id (see less like this) or a creator_id (hide creator)."
    if kind is EventKind.SEARCH and not (event.query.strip() or event.hashtag.strip()):
        return "a search event needs a query or a hashtag."
    return ""


def _timestamp_error(event: Event, now: float, limits: EventLimits) -> str:
    ts = event.timestamp
    if not isinstance(ts, int | float) or isinstance(ts, bool) or ts == 0:
        return "timestamp is required."
    if not math.isfinite(ts) or ts < EARLIEST_TIMESTAMP:
        return f"timestamp {ts!r} is not a unix time in seconds from 1970 on."
    if ts > now + limits.max_future_skew_s:
        return f"timestamp {ts:.0f} is more than {limits.max_future_skew_s:g} s in the future."
    return ""


def _values_error(event: Event, now: float, limits: EventLimits) -> str:
    if event.dwell_ms < 0:
        return f"dwell_ms must not be negative, got {event.dwell_ms}."
    fraction = event.watch_fraction
    if not math.isfinite(fraction) or fraction < 0:
        return f"watch_fraction must be a finite non-negative number, got {fraction!r}."
    if len(event.query) > MAX_TEXT_CHARS or len(event.hashtag) > MAX_TEXT_CHARS:
        return f"query and hashtag must be at most {MAX_TEXT_CHARS} characters."
    return ""


def _context_error(event: Event, now: float, limits: EventLimits) -> str:
    hour = event.context.local_hour
    if hour is not None and not 0 <= hour <= 23:
        return f"context.local_hour must be between 0 and 23, got {hour}."
    if len(event.context.device) > MAX_ID_CHARS or len(event.context.location) > MAX_ID_CHARS:
        return f"context.device and context.location must be at most {MAX_ID_CHARS} characters."
    return ""
