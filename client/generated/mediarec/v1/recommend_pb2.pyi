import datetime

from google.protobuf import duration_pb2 as _duration_pb2
from google.protobuf import timestamp_pb2 as _timestamp_pb2
from mediarec.v1 import common_pb2 as _common_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class EventKind(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    EVENT_KIND_UNSPECIFIED: _ClassVar[EventKind]
    EVENT_KIND_IMPRESSION: _ClassVar[EventKind]
    EVENT_KIND_VIEW: _ClassVar[EventKind]
    EVENT_KIND_LIKE: _ClassVar[EventKind]
    EVENT_KIND_COMMENT: _ClassVar[EventKind]
    EVENT_KIND_SHARE: _ClassVar[EventKind]
    EVENT_KIND_SAVE: _ClassVar[EventKind]
    EVENT_KIND_SKIP: _ClassVar[EventKind]
    EVENT_KIND_HIDE: _ClassVar[EventKind]
    EVENT_KIND_FOLLOW: _ClassVar[EventKind]
    EVENT_KIND_UNFOLLOW: _ClassVar[EventKind]
    EVENT_KIND_SEARCH: _ClassVar[EventKind]
    EVENT_KIND_PROFILE_VISIT: _ClassVar[EventKind]

class Surface(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    SURFACE_UNSPECIFIED: _ClassVar[Surface]
    SURFACE_FEED: _ClassVar[Surface]
    SURFACE_EXPLORE: _ClassVar[Surface]
    SURFACE_REELS: _ClassVar[Surface]

class EventStatus(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    EVENT_STATUS_UNSPECIFIED: _ClassVar[EventStatus]
    EVENT_STATUS_ACCEPTED: _ClassVar[EventStatus]
    EVENT_STATUS_DUPLICATE: _ClassVar[EventStatus]
    EVENT_STATUS_REJECTED: _ClassVar[EventStatus]
EVENT_KIND_UNSPECIFIED: EventKind
EVENT_KIND_IMPRESSION: EventKind
EVENT_KIND_VIEW: EventKind
EVENT_KIND_LIKE: EventKind
EVENT_KIND_COMMENT: EventKind
EVENT_KIND_SHARE: EventKind
EVENT_KIND_SAVE: EventKind
EVENT_KIND_SKIP: EventKind
EVENT_KIND_HIDE: EventKind
EVENT_KIND_FOLLOW: EventKind
EVENT_KIND_UNFOLLOW: EventKind
EVENT_KIND_SEARCH: EventKind
EVENT_KIND_PROFILE_VISIT: EventKind
SURFACE_UNSPECIFIED: Surface
SURFACE_FEED: Surface
SURFACE_EXPLORE: Surface
SURFACE_REELS: Surface
EVENT_STATUS_UNSPECIFIED: EventStatus
EVENT_STATUS_ACCEPTED: EventStatus
EVENT_STATUS_DUPLICATE: EventStatus
EVENT_STATUS_REJECTED: EventStatus

class ClientContext(_message.Message):
    __slots__ = ("device", "local_hour", "location")
    DEVICE_FIELD_NUMBER: _ClassVar[int]
    LOCAL_HOUR_FIELD_NUMBER: _ClassVar[int]
    LOCATION_FIELD_NUMBER: _ClassVar[int]
    device: str
    local_hour: int
    location: _common_pb2.Location
    def __init__(self, device: _Optional[str] = ..., local_hour: _Optional[int] = ..., location: _Optional[_Union[_common_pb2.Location, _Mapping]] = ...) -> None: ...

class Event(_message.Message):
    __slots__ = ("event_id", "user_id", "kind", "timestamp", "media_id", "creator_id", "dwell_ms", "watch_fraction", "query", "hashtag", "context", "request_id")
    EVENT_ID_FIELD_NUMBER: _ClassVar[int]
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    TIMESTAMP_FIELD_NUMBER: _ClassVar[int]
    MEDIA_ID_FIELD_NUMBER: _ClassVar[int]
    CREATOR_ID_FIELD_NUMBER: _ClassVar[int]
    DWELL_MS_FIELD_NUMBER: _ClassVar[int]
    WATCH_FRACTION_FIELD_NUMBER: _ClassVar[int]
    QUERY_FIELD_NUMBER: _ClassVar[int]
    HASHTAG_FIELD_NUMBER: _ClassVar[int]
    CONTEXT_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    event_id: str
    user_id: str
    kind: EventKind
    timestamp: _timestamp_pb2.Timestamp
    media_id: str
    creator_id: str
    dwell_ms: int
    watch_fraction: float
    query: str
    hashtag: str
    context: ClientContext
    request_id: str
    def __init__(self, event_id: _Optional[str] = ..., user_id: _Optional[str] = ..., kind: _Optional[_Union[EventKind, str]] = ..., timestamp: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., media_id: _Optional[str] = ..., creator_id: _Optional[str] = ..., dwell_ms: _Optional[int] = ..., watch_fraction: _Optional[float] = ..., query: _Optional[str] = ..., hashtag: _Optional[str] = ..., context: _Optional[_Union[ClientContext, _Mapping]] = ..., request_id: _Optional[str] = ...) -> None: ...

class EventResult(_message.Message):
    __slots__ = ("event_id", "status", "error")
    EVENT_ID_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    event_id: str
    status: EventStatus
    error: str
    def __init__(self, event_id: _Optional[str] = ..., status: _Optional[_Union[EventStatus, str]] = ..., error: _Optional[str] = ...) -> None: ...

class LogEventsRequest(_message.Message):
    __slots__ = ("events",)
    EVENTS_FIELD_NUMBER: _ClassVar[int]
    events: _containers.RepeatedCompositeFieldContainer[Event]
    def __init__(self, events: _Optional[_Iterable[_Union[Event, _Mapping]]] = ...) -> None: ...

class LogEventsResponse(_message.Message):
    __slots__ = ("results", "accepted_count", "duplicate_count", "rejected_count")
    RESULTS_FIELD_NUMBER: _ClassVar[int]
    ACCEPTED_COUNT_FIELD_NUMBER: _ClassVar[int]
    DUPLICATE_COUNT_FIELD_NUMBER: _ClassVar[int]
    REJECTED_COUNT_FIELD_NUMBER: _ClassVar[int]
    results: _containers.RepeatedCompositeFieldContainer[EventResult]
    accepted_count: int
    duplicate_count: int
    rejected_count: int
    def __init__(self, results: _Optional[_Iterable[_Union[EventResult, _Mapping]]] = ..., accepted_count: _Optional[int] = ..., duplicate_count: _Optional[int] = ..., rejected_count: _Optional[int] = ...) -> None: ...

class ImportEventsRequest(_message.Message):
    __slots__ = ("events",)
    EVENTS_FIELD_NUMBER: _ClassVar[int]
    events: _containers.RepeatedCompositeFieldContainer[Event]
    def __init__(self, events: _Optional[_Iterable[_Union[Event, _Mapping]]] = ...) -> None: ...

class ImportRowError(_message.Message):
    __slots__ = ("row", "event_id", "error")
    ROW_FIELD_NUMBER: _ClassVar[int]
    EVENT_ID_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    row: int
    event_id: str
    error: str
    def __init__(self, row: _Optional[int] = ..., event_id: _Optional[str] = ..., error: _Optional[str] = ...) -> None: ...

class ImportEventsResponse(_message.Message):
    __slots__ = ("accepted_count", "duplicate_count", "rejected_count", "errors", "errors_truncated", "state")
    ACCEPTED_COUNT_FIELD_NUMBER: _ClassVar[int]
    DUPLICATE_COUNT_FIELD_NUMBER: _ClassVar[int]
    REJECTED_COUNT_FIELD_NUMBER: _ClassVar[int]
    ERRORS_FIELD_NUMBER: _ClassVar[int]
    ERRORS_TRUNCATED_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    accepted_count: int
    duplicate_count: int
    rejected_count: int
    errors: _containers.RepeatedCompositeFieldContainer[ImportRowError]
    errors_truncated: bool
    state: _common_pb2.RecommendState
    def __init__(self, accepted_count: _Optional[int] = ..., duplicate_count: _Optional[int] = ..., rejected_count: _Optional[int] = ..., errors: _Optional[_Iterable[_Union[ImportRowError, _Mapping]]] = ..., errors_truncated: _Optional[bool] = ..., state: _Optional[_Union[_common_pb2.RecommendState, _Mapping]] = ...) -> None: ...

class RecommendFilter(_message.Message):
    __slots__ = ("media_types", "creator_ids", "tags", "max_age")
    MEDIA_TYPES_FIELD_NUMBER: _ClassVar[int]
    CREATOR_IDS_FIELD_NUMBER: _ClassVar[int]
    TAGS_FIELD_NUMBER: _ClassVar[int]
    MAX_AGE_FIELD_NUMBER: _ClassVar[int]
    media_types: _containers.RepeatedScalarFieldContainer[_common_pb2.MediaType]
    creator_ids: _containers.RepeatedScalarFieldContainer[str]
    tags: _containers.RepeatedScalarFieldContainer[str]
    max_age: _duration_pb2.Duration
    def __init__(self, media_types: _Optional[_Iterable[_Union[_common_pb2.MediaType, str]]] = ..., creator_ids: _Optional[_Iterable[str]] = ..., tags: _Optional[_Iterable[str]] = ..., max_age: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ...) -> None: ...

class RecommendRequest(_message.Message):
    __slots__ = ("user_id", "k", "surface", "context", "seed_media_id", "steering_text", "filter", "exclude_seen", "page_cursor", "dry_run")
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    K_FIELD_NUMBER: _ClassVar[int]
    SURFACE_FIELD_NUMBER: _ClassVar[int]
    CONTEXT_FIELD_NUMBER: _ClassVar[int]
    SEED_MEDIA_ID_FIELD_NUMBER: _ClassVar[int]
    STEERING_TEXT_FIELD_NUMBER: _ClassVar[int]
    FILTER_FIELD_NUMBER: _ClassVar[int]
    EXCLUDE_SEEN_FIELD_NUMBER: _ClassVar[int]
    PAGE_CURSOR_FIELD_NUMBER: _ClassVar[int]
    DRY_RUN_FIELD_NUMBER: _ClassVar[int]
    user_id: str
    k: int
    surface: Surface
    context: ClientContext
    seed_media_id: str
    steering_text: str
    filter: RecommendFilter
    exclude_seen: bool
    page_cursor: str
    dry_run: bool
    def __init__(self, user_id: _Optional[str] = ..., k: _Optional[int] = ..., surface: _Optional[_Union[Surface, str]] = ..., context: _Optional[_Union[ClientContext, _Mapping]] = ..., seed_media_id: _Optional[str] = ..., steering_text: _Optional[str] = ..., filter: _Optional[_Union[RecommendFilter, _Mapping]] = ..., exclude_seen: _Optional[bool] = ..., page_cursor: _Optional[str] = ..., dry_run: _Optional[bool] = ...) -> None: ...

class ScoreComponent(_message.Message):
    __slots__ = ("signal", "value")
    SIGNAL_FIELD_NUMBER: _ClassVar[int]
    VALUE_FIELD_NUMBER: _ClassVar[int]
    signal: str
    value: float
    def __init__(self, signal: _Optional[str] = ..., value: _Optional[float] = ...) -> None: ...

class Recommendation(_message.Message):
    __slots__ = ("media", "score", "score_breakdown", "sources", "reasons", "matched_frame_timestamp_s", "collapsed_media_ids", "explored", "propensity")
    MEDIA_FIELD_NUMBER: _ClassVar[int]
    SCORE_FIELD_NUMBER: _ClassVar[int]
    SCORE_BREAKDOWN_FIELD_NUMBER: _ClassVar[int]
    SOURCES_FIELD_NUMBER: _ClassVar[int]
    REASONS_FIELD_NUMBER: _ClassVar[int]
    MATCHED_FRAME_TIMESTAMP_S_FIELD_NUMBER: _ClassVar[int]
    COLLAPSED_MEDIA_IDS_FIELD_NUMBER: _ClassVar[int]
    EXPLORED_FIELD_NUMBER: _ClassVar[int]
    PROPENSITY_FIELD_NUMBER: _ClassVar[int]
    media: _common_pb2.MediaItem
    score: float
    score_breakdown: _containers.RepeatedCompositeFieldContainer[ScoreComponent]
    sources: _containers.RepeatedScalarFieldContainer[str]
    reasons: _containers.RepeatedScalarFieldContainer[str]
    matched_frame_timestamp_s: float
    collapsed_media_ids: _containers.RepeatedScalarFieldContainer[str]
    explored: bool
    propensity: float
    def __init__(self, media: _Optional[_Union[_common_pb2.MediaItem, _Mapping]] = ..., score: _Optional[float] = ..., score_breakdown: _Optional[_Iterable[_Union[ScoreComponent, _Mapping]]] = ..., sources: _Optional[_Iterable[str]] = ..., reasons: _Optional[_Iterable[str]] = ..., matched_frame_timestamp_s: _Optional[float] = ..., collapsed_media_ids: _Optional[_Iterable[str]] = ..., explored: _Optional[bool] = ..., propensity: _Optional[float] = ...) -> None: ...

class RecommendResponse(_message.Message):
    __slots__ = ("items", "request_id", "next_page_cursor")
    ITEMS_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_CURSOR_FIELD_NUMBER: _ClassVar[int]
    items: _containers.RepeatedCompositeFieldContainer[Recommendation]
    request_id: str
    next_page_cursor: str
    def __init__(self, items: _Optional[_Iterable[_Union[Recommendation, _Mapping]]] = ..., request_id: _Optional[str] = ..., next_page_cursor: _Optional[str] = ...) -> None: ...

class SimilarMediaRequest(_message.Message):
    __slots__ = ("media_id", "user_id", "k", "filter", "dry_run")
    MEDIA_ID_FIELD_NUMBER: _ClassVar[int]
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    K_FIELD_NUMBER: _ClassVar[int]
    FILTER_FIELD_NUMBER: _ClassVar[int]
    DRY_RUN_FIELD_NUMBER: _ClassVar[int]
    media_id: str
    user_id: str
    k: int
    filter: RecommendFilter
    dry_run: bool
    def __init__(self, media_id: _Optional[str] = ..., user_id: _Optional[str] = ..., k: _Optional[int] = ..., filter: _Optional[_Union[RecommendFilter, _Mapping]] = ..., dry_run: _Optional[bool] = ...) -> None: ...

class SimilarMediaResponse(_message.Message):
    __slots__ = ("items",)
    ITEMS_FIELD_NUMBER: _ClassVar[int]
    items: _containers.RepeatedCompositeFieldContainer[Recommendation]
    def __init__(self, items: _Optional[_Iterable[_Union[Recommendation, _Mapping]]] = ...) -> None: ...

class SetInterestsRequest(_message.Message):
    __slots__ = ("user_id", "text")
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    TEXT_FIELD_NUMBER: _ClassVar[int]
    user_id: str
    text: str
    def __init__(self, user_id: _Optional[str] = ..., text: _Optional[str] = ...) -> None: ...

class SetInterestsResponse(_message.Message):
    __slots__ = ("interests",)
    INTERESTS_FIELD_NUMBER: _ClassVar[int]
    interests: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, interests: _Optional[_Iterable[str]] = ...) -> None: ...

class ForgetUserRequest(_message.Message):
    __slots__ = ("user_id",)
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    user_id: str
    def __init__(self, user_id: _Optional[str] = ...) -> None: ...

class ForgetUserResponse(_message.Message):
    __slots__ = ("events_deleted", "impressions_deleted", "follows_deleted", "interests_deleted", "other_deleted")
    EVENTS_DELETED_FIELD_NUMBER: _ClassVar[int]
    IMPRESSIONS_DELETED_FIELD_NUMBER: _ClassVar[int]
    FOLLOWS_DELETED_FIELD_NUMBER: _ClassVar[int]
    INTERESTS_DELETED_FIELD_NUMBER: _ClassVar[int]
    OTHER_DELETED_FIELD_NUMBER: _ClassVar[int]
    events_deleted: int
    impressions_deleted: int
    follows_deleted: int
    interests_deleted: int
    other_deleted: int
    def __init__(self, events_deleted: _Optional[int] = ..., impressions_deleted: _Optional[int] = ..., follows_deleted: _Optional[int] = ..., interests_deleted: _Optional[int] = ..., other_deleted: _Optional[int] = ...) -> None: ...

class GetUserRequest(_message.Message):
    __slots__ = ("user_id", "recent_events")
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    RECENT_EVENTS_FIELD_NUMBER: _ClassVar[int]
    user_id: str
    recent_events: int
    def __init__(self, user_id: _Optional[str] = ..., recent_events: _Optional[int] = ...) -> None: ...

class InterestDeclaration(_message.Message):
    __slots__ = ("text", "declared_at")
    TEXT_FIELD_NUMBER: _ClassVar[int]
    DECLARED_AT_FIELD_NUMBER: _ClassVar[int]
    text: str
    declared_at: _timestamp_pb2.Timestamp
    def __init__(self, text: _Optional[str] = ..., declared_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class GetUserResponse(_message.Message):
    __slots__ = ("recent_events", "event_count", "interests")
    RECENT_EVENTS_FIELD_NUMBER: _ClassVar[int]
    EVENT_COUNT_FIELD_NUMBER: _ClassVar[int]
    INTERESTS_FIELD_NUMBER: _ClassVar[int]
    recent_events: _containers.RepeatedCompositeFieldContainer[Event]
    event_count: int
    interests: _containers.RepeatedCompositeFieldContainer[InterestDeclaration]
    def __init__(self, recent_events: _Optional[_Iterable[_Union[Event, _Mapping]]] = ..., event_count: _Optional[int] = ..., interests: _Optional[_Iterable[_Union[InterestDeclaration, _Mapping]]] = ...) -> None: ...
