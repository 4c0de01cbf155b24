"""Plain Python values the client takes and returns; protobuf stays inside
``mediarec.client.convert``."""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta


class MediaType(enum.IntEnum):
    """Kind of content; the values equal ``mediarec.v1.MediaType``."""

    UNSPECIFIED = 0
    IMAGE = 1
    VIDEO = 2
    TEXT = 3


class IndexOutcome(enum.IntEnum):
    """What an indexing call did; the values equal ``mediarec.v1.IndexOutcome``."""

    UNSPECIFIED = 0
    CREATED = 1
    UPDATED = 2
    UNCHANGED = 3


class TextMatch(enum.IntEnum):
    """Which stored vectors a text search matches; the values equal ``mediarec.v1.TextMatch``."""

    UNSPECIFIED = 0  # the server's default: hybrid
    HYBRID = 1  # pictures and captions, fused by rank
    PIXELS = 2  # pictures only; posts without one by their caption
    CAPTIONS = 3  # captions only


class StoreKind(enum.IntEnum):
    """Which engine stores the vectors; the values equal ``mediarec.v1.StoreKind``."""

    UNSPECIFIED = 0
    EMBEDDED = 1
    QDRANT_SERVER = 2


class ServingStatus(enum.IntEnum):
    """``grpc.health.v1.HealthCheckResponse.ServingStatus``."""

    UNKNOWN = 0
    SERVING = 1
    NOT_SERVING = 2
    SERVICE_UNKNOWN = 3


@dataclass(frozen=True)
class Location:
    """A coarse location: a region label and/or city-precision coordinates."""

    region: str = ""
    latitude: float | None = None
    longitude: float | None = None


@dataclass(frozen=True)
class Topic:
    """A zero-shot topic label and its score (higher is stronger)."""

    label: str
    score: float


@dataclass(frozen=True)
class MediaMetadata:
    """What a client says about an item; ``created_at`` should be timezone-aware (naive = UTC)."""

    media_id: str
    creator_id: str = ""
    caption: str = ""
    tags: tuple[str, ...] = ()
    created_at: datetime | None = None
    location: Location | None = None
    media_type: MediaType = MediaType.UNSPECIFIED
    source: str = ""  # where the item came from, e.g. a file path; stored, never interpreted


@dataclass(frozen=True)
class ListedMedia:
    """A stored item as ``list_media`` names it: what a sync tool compares with its files."""

    media_id: str
    source: str  # MediaMetadata.source; empty when the indexing client gave none
    content_sha256: str  # empty for caption-only posts and precomputed vectors


@dataclass(frozen=True)
class FrameVector:
    """One precomputed video frame vector at ``timestamp_s`` seconds from the start."""

    timestamp_s: float
    vector: Sequence[float]


@dataclass(frozen=True)
class Embeddings:
    """Precomputed vectors for the server's model ("bring your own vectors")."""

    model_id: str
    visual: Sequence[float] | None = None
    caption: Sequence[float] | None = None
    frames: Sequence[FrameVector] = ()


@dataclass(frozen=True)
class IndexResult:
    """What the server stored for one indexed item."""

    media_id: str
    outcome: IndexOutcome
    media_type: MediaType
    model_id: str
    dims: int
    frame_count: int
    frame_timestamps_s: tuple[float, ...]
    content_sha256: str
    duplicate: bool
    duplicate_of: str
    near_duplicate_of: str
    topics: tuple[Topic, ...]


@dataclass(frozen=True)
class MediaItem:
    """A stored item: its metadata (with the detected type) and what the server derived."""

    metadata: MediaMetadata
    topics: tuple[Topic, ...]
    content_sha256: str
    frame_timestamps_s: tuple[float, ...]
    duration_s: float
    near_duplicate_of: str
    indexed_at: datetime | None
    model_id: str

    @property
    def media_id(self) -> str:
        return self.metadata.media_id


@dataclass(frozen=True)
class MediaFilter:
    """Search restrictions: set conditions AND together, values within one list OR together.

    ``created_after`` is inclusive and ``created_before`` exclusive.
    """

    media_types: tuple[MediaType, ...] = ()
    creator_ids: tuple[str, ...] = ()
    tags: tuple[str, ...] = ()
    topics: tuple[str, ...] = ()
    created_after: datetime | None = None
    created_before: datetime | None = None


@dataclass(frozen=True)
class SearchHit:
    """One search result; ``matched_frame_timestamp_s`` is set for videos only."""

    item: MediaItem
    score: float
    matched_frame_timestamp_s: float | None


@dataclass(frozen=True)
class ServerLimits:
    """Limits the server enforces on requests."""

    max_message_bytes: int
    max_upload_bytes: int
    max_image_pixels: int
    max_caption_chars: int
    max_tags: int
    max_k: int
    max_events_per_batch: int = 0  # 0: a server that does not say
    import_chunk_events: int = 0


@dataclass(frozen=True)
class ServerInfo:
    """The serving model, the store, the item counts and the limits."""

    model_id: str
    dims: int
    store_kind: StoreKind
    collection: str
    media_count: int
    image_count: int
    video_count: int
    text_count: int
    video_frames: int
    topic_vocabulary: tuple[str, ...]
    limits: ServerLimits
    server_version: str
    started_at: datetime | None
    recommend_state: RecommendState | None = None
    imports: tuple[ImportProgress, ...] = ()


@dataclass(frozen=True)
class ImportProgress:
    """How far one running ImportEvents call has got."""

    started_at: datetime | None
    rows: int
    accepted: int
    duplicates: int
    rejected: int


# -- recommendations ---------------------------------------------------------------------------


class EventKind(enum.IntEnum):
    """What a user did; the values equal ``mediarec.v1.EventKind``."""

    UNSPECIFIED = 0
    IMPRESSION = 1  # shown (adds fatigue, never makes an item "seen"); needs media_id
    VIEW = 2  # dwell_ms, and watch_fraction for videos (> 1 = rewatched); needs media_id
    LIKE = 3
    COMMENT = 4
    SHARE = 5
    SAVE = 6
    SKIP = 7
    HIDE = 8  # "see less" on media_id; with only creator_id, hides that creator
    FOLLOW = 9  # needs creator_id
    UNFOLLOW = 10  # needs creator_id
    SEARCH = 11  # needs query and/or hashtag
    PROFILE_VISIT = 12  # needs creator_id


class Surface(enum.IntEnum):
    """Where recommendations are shown; the values equal ``mediarec.v1.Surface``."""

    UNSPECIFIED = 0  # the server treats it as FEED
    FEED = 1  # favours followed creators
    EXPLORE = 2  # never returns followed creators
    REELS = 3  # videos only


class EventStatus(enum.IntEnum):
    """What happened to one logged event; the values equal ``mediarec.v1.EventStatus``."""

    UNSPECIFIED = 0
    ACCEPTED = 1
    DUPLICATE = 2
    REJECTED = 3


@dataclass(frozen=True)
class ClientContext:
    """Where and how the user is: device type, local hour (0-23) and coarse location."""

    device: str = ""
    local_hour: int | None = None
    location: Location | None = None


@dataclass(frozen=True)
class Event:
    """One engagement event; ``timestamp`` is a datetime or unix seconds, None means now.

    Which optional fields are required depends on ``kind`` (see :class:`EventKind`).
    """

    event_id: str
    user_id: str
    kind: EventKind
    timestamp: datetime | float | None = None
    media_id: str = ""
    creator_id: str = ""
    dwell_ms: int = 0
    watch_fraction: float = 0.0
    query: str = ""
    hashtag: str = ""
    context: ClientContext | None = None
    request_id: str = ""  # request_id of the Recommend response that showed the item


@dataclass(frozen=True)
class EventResult:
    """The outcome of one event; ``error`` is one sentence for a rejected event."""

    event_id: str
    status: EventStatus
    error: str = ""

    @property
    def accepted(self) -> bool:
        return self.status is EventStatus.ACCEPTED


@dataclass(frozen=True)
class LogEventsResult:
    """Per-event results, in request order, and their counts."""

    results: tuple[EventResult, ...]
    accepted_count: int
    duplicate_count: int
    rejected_count: int


@dataclass(frozen=True)
class RecommendState:
    """How current the recommender's derived state (co-engagement, trending, cohorts) is."""

    version: int  # grows with every finished rebuild; 0 until the first one finishes
    events_included: int
    events_pending: int  # stored since the current state's rebuild started
    built_at: datetime | None
    age_s: float
    rebuilding: bool


@dataclass(frozen=True)
class ImportRowError:
    """A row of an import that was not stored: its position from 0, its id and why."""

    row: int
    event_id: str
    error: str


@dataclass(frozen=True)
class ImportEventsResult:
    """Counts of an import, its first rejected rows, and the derived state it ended with."""

    accepted_count: int
    duplicate_count: int
    rejected_count: int
    errors: tuple[ImportRowError, ...]
    errors_truncated: bool
    state: RecommendState


@dataclass(frozen=True)
class RecommendFilter:
    """Recommendation restrictions: set conditions AND together, list values OR together."""

    media_types: tuple[MediaType, ...] = ()
    creator_ids: tuple[str, ...] = ()
    tags: tuple[str, ...] = ()
    max_age: timedelta | None = None


@dataclass(frozen=True)
class Recommendation:
    """One recommended item, its score, the per-signal breakdown and the reasons."""

    item: MediaItem
    score: float
    score_breakdown: tuple[tuple[str, float], ...]  # (signal, contribution), largest first
    sources: tuple[str, ...]
    reasons: tuple[str, ...]
    matched_frame_timestamp_s: float | None
    collapsed_media_ids: tuple[str, ...]
    explored: bool
    propensity: float

    @property
    def media_id(self) -> str:
        return self.item.media_id


@dataclass(frozen=True)
class RecommendPage:
    """One page of recommendations; pass ``next_page_cursor`` to get the next page."""

    items: tuple[Recommendation, ...]
    request_id: str
    next_page_cursor: str  # empty on the last page


@dataclass(frozen=True)
class ForgetReport:
    """How much of each kind of a user's data ForgetUser deleted."""

    events_deleted: int
    impressions_deleted: int
    follows_deleted: int
    interests_deleted: int
    other_deleted: int


@dataclass(frozen=True)
class InterestDeclaration:
    """One SetInterests call: the text as sent and when."""

    text: str
    declared_at: datetime | None


@dataclass(frozen=True)
class UserInfo:
    """What the server holds about a user (GetUser): newest events first."""

    user_id: str
    recent_events: tuple[Event, ...]
    event_count: int
    interests: tuple[InterestDeclaration, ...]
