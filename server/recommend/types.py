"""Recommendation domain types shared by the engagement store, the logic and the servicer.

Plain dataclasses only: no protobuf, no SQLite, no Qdrant types cross this module.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Protocol

from mediarec.server.observability.buckets import BucketCounts


class EventKind(StrEnum):
    IMPRESSION = "impression"  # shown; adds fatigue, never makes an item "seen"
    VIEW = "view"  # dwell_ms; for videos watch_fraction (> 1 means rewatched)
    LIKE = "like"
    COMMENT = "comment"
    SHARE = "share"
    SAVE = "save"
    SKIP = "skip"
    HIDE = "hide"  # "see less like this" on media_id; with creator_id only: hide the creator
    FOLLOW = "follow"  # creator_id
    UNFOLLOW = "unfollow"  # creator_id
    SEARCH = "search"  # query text and/or hashtag
    PROFILE_VISIT = "profile_visit"  # creator_id; raises creator affinity


# Kinds that make an item "seen" (excluded by default). IMPRESSION is deliberately absent.
SEEN_KINDS = frozenset(
    {EventKind.VIEW, EventKind.LIKE, EventKind.COMMENT, EventKind.SHARE, EventKind.SAVE,
     EventKind.SKIP, EventKind.HIDE}
)
POSITIVE_KINDS = frozenset(
    {EventKind.LIKE, EventKind.COMMENT, EventKind.SHARE, EventKind.SAVE}
)


class Surface(StrEnum):
    FEED = "feed"  # favours followed creators
    EXPLORE = "explore"  # excludes followed creators; discovery
    REELS = "reels"  # videos only


@dataclass(frozen=True)
class Context:
    device: str = ""  # e.g. "ios", "android", "web"
    local_hour: int | None = None  # 0-23 in the user's time zone
    location: str = ""  # coarse region, e.g. "FR-75"


@dataclass(frozen=True)
class Event:
    event_id: str
    user_id: str
    kind: EventKind
    timestamp: float  # unix seconds
    media_id: str = ""
    creator_id: str = ""
    dwell_ms: int = 0
    watch_fraction: float = 0.0
    query: str = ""
    hashtag: str = ""
    context: Context = field(default_factory=Context)
    request_id: str = ""  # the Recommend response that showed the item, if any


@dataclass(frozen=True)
class EventResult:
    event_id: str
    accepted: bool  # False: rejected (error says why) or a duplicate event_id
    duplicate: bool = False
    error: str = ""


@dataclass(frozen=True)
class ServedItem:
    """One logged impression of a Recommend response: the training label's anchor."""

    request_id: str
    user_id: str
    media_id: str
    position: int
    score: float
    propensity: float  # probability the policy would show this item here (exploration)
    sources: tuple[str, ...]
    features: Mapping[str, float]
    timestamp: float


@dataclass(frozen=True)
class ForgetReport:
    events: int
    impressions: int
    follows: int
    interests: int
    other: int = 0


class EngagementStore(Protocol):
    """Durable engagement history. SQLite (WAL) is the embedded default; PostgreSQL can follow."""

    def log_events(self, events: Sequence[Event]) -> list[EventResult]: ...

    def user_events(
        self, user_id: str, *, since: float | None = None, kinds: Sequence[EventKind] = ()
    ) -> list[Event]: ...

    def iter_events(self, *, since: float | None = None) -> Iterator[Event]: ...

    def recent_events(self, user_id: str, limit: int) -> tuple[list[Event], int]:
        """The user's ``limit`` newest events, newest first, and how many they have."""
        ...

    def follows(self, user_id: str) -> set[str]: ...

    def set_interests(self, user_id: str, text: str, timestamp: float) -> None: ...

    def interests(self, user_id: str) -> list[tuple[str, float]]: ...

    def log_served(self, items: Sequence[ServedItem]) -> None: ...

    def iter_served(
        self, *, since: float | None = None, until: float | None = None
    ) -> Iterator[ServedItem]:
        """Logged impressions with ``since <= ts <= until`` (either open when None)."""
        ...

    def trim_served(self, before: float) -> int:
        """Delete served impressions older than ``before``; returns how many."""
        ...

    def forget_user(self, user_id: str) -> ForgetReport: ...

    def close(self) -> None: ...


@dataclass(frozen=True)
class StateInfo:
    """How current the recommender's derived state is (GetServerInfo, Refresh, imports)."""

    version: int  # grows with every finished rebuild; 0 until the first one finishes
    events_included: int  # events the current state was built from
    events_pending: int  # events stored since the current state's rebuild started
    built_at: float | None  # unix seconds; None until the first rebuild finishes
    age_s: float
    rebuilding: bool
    rebuild_seconds: BucketCounts | None = None  # how long finished rebuilds took


@dataclass(frozen=True)
class RecFilter:
    media_types: tuple[str, ...] = ()  # "image", "video", "text"
    creator_ids: tuple[str, ...] = ()
    tags: tuple[str, ...] = ()
    max_age_s: float | None = None


@dataclass(frozen=True)
class RecRequest:
    user_id: str
    k: int = 20
    surface: Surface = Surface.FEED
    context: Context = field(default_factory=Context)
    seed_media_id: str = ""
    steering_text: str = ""
    filter: RecFilter = field(default_factory=RecFilter)
    exclude_seen: bool = True
    cursor: str = ""
    now: float | None = None  # unix seconds; None = wall clock (benchmarks replay time)
    # A preview: rank and return, but log no impressions, keep no user cache entry or cursor,
    # and draw exploration from a stream of its own (see Recommender.recommend).
    dry_run: bool = False


@dataclass(frozen=True)
class RecItem:
    media_id: str
    score: float
    breakdown: Mapping[str, float]  # per-signal contributions that add up to ``score``
    sources: tuple[str, ...]  # candidate sources that proposed the item
    reasons: tuple[str, ...]  # short human-readable reasons
    propensity: float = 1.0
    explored: bool = False
    matched_frame_timestamp_s: float | None = None
    collapsed: tuple[str, ...] = ()  # near-duplicates folded into this item


@dataclass(frozen=True)
class RecResponse:
    request_id: str
    items: tuple[RecItem, ...]
    next_cursor: str  # empty on the last page
    # The items' stored payloads, as read when the page was checked against the store.
    payloads: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
