import datetime

from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class MediaType(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    MEDIA_TYPE_UNSPECIFIED: _ClassVar[MediaType]
    MEDIA_TYPE_IMAGE: _ClassVar[MediaType]
    MEDIA_TYPE_VIDEO: _ClassVar[MediaType]
    MEDIA_TYPE_TEXT: _ClassVar[MediaType]
MEDIA_TYPE_UNSPECIFIED: MediaType
MEDIA_TYPE_IMAGE: MediaType
MEDIA_TYPE_VIDEO: MediaType
MEDIA_TYPE_TEXT: MediaType

class Location(_message.Message):
    __slots__ = ("region", "latitude", "longitude")
    REGION_FIELD_NUMBER: _ClassVar[int]
    LATITUDE_FIELD_NUMBER: _ClassVar[int]
    LONGITUDE_FIELD_NUMBER: _ClassVar[int]
    region: str
    latitude: float
    longitude: float
    def __init__(self, region: _Optional[str] = ..., latitude: _Optional[float] = ..., longitude: _Optional[float] = ...) -> None: ...

class TimeRange(_message.Message):
    __slots__ = ("start", "end")
    START_FIELD_NUMBER: _ClassVar[int]
    END_FIELD_NUMBER: _ClassVar[int]
    start: _timestamp_pb2.Timestamp
    end: _timestamp_pb2.Timestamp
    def __init__(self, start: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., end: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class Topic(_message.Message):
    __slots__ = ("label", "score")
    LABEL_FIELD_NUMBER: _ClassVar[int]
    SCORE_FIELD_NUMBER: _ClassVar[int]
    label: str
    score: float
    def __init__(self, label: _Optional[str] = ..., score: _Optional[float] = ...) -> None: ...

class MediaMetadata(_message.Message):
    __slots__ = ("media_id", "creator_id", "caption", "tags", "created_at", "location", "media_type", "source")
    MEDIA_ID_FIELD_NUMBER: _ClassVar[int]
    CREATOR_ID_FIELD_NUMBER: _ClassVar[int]
    CAPTION_FIELD_NUMBER: _ClassVar[int]
    TAGS_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    LOCATION_FIELD_NUMBER: _ClassVar[int]
    MEDIA_TYPE_FIELD_NUMBER: _ClassVar[int]
    SOURCE_FIELD_NUMBER: _ClassVar[int]
    media_id: str
    creator_id: str
    caption: str
    tags: _containers.RepeatedScalarFieldContainer[str]
    created_at: _timestamp_pb2.Timestamp
    location: Location
    media_type: MediaType
    source: str
    def __init__(self, media_id: _Optional[str] = ..., creator_id: _Optional[str] = ..., caption: _Optional[str] = ..., tags: _Optional[_Iterable[str]] = ..., created_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., location: _Optional[_Union[Location, _Mapping]] = ..., media_type: _Optional[_Union[MediaType, str]] = ..., source: _Optional[str] = ...) -> None: ...

class MediaItem(_message.Message):
    __slots__ = ("metadata", "topics", "content_sha256", "frame_timestamps_s", "duration_s", "near_duplicate_of", "indexed_at", "model_id")
    METADATA_FIELD_NUMBER: _ClassVar[int]
    TOPICS_FIELD_NUMBER: _ClassVar[int]
    CONTENT_SHA256_FIELD_NUMBER: _ClassVar[int]
    FRAME_TIMESTAMPS_S_FIELD_NUMBER: _ClassVar[int]
    DURATION_S_FIELD_NUMBER: _ClassVar[int]
    NEAR_DUPLICATE_OF_FIELD_NUMBER: _ClassVar[int]
    INDEXED_AT_FIELD_NUMBER: _ClassVar[int]
    MODEL_ID_FIELD_NUMBER: _ClassVar[int]
    metadata: MediaMetadata
    topics: _containers.RepeatedCompositeFieldContainer[Topic]
    content_sha256: str
    frame_timestamps_s: _containers.RepeatedScalarFieldContainer[float]
    duration_s: float
    near_duplicate_of: str
    indexed_at: _timestamp_pb2.Timestamp
    model_id: str
    def __init__(self, metadata: _Optional[_Union[MediaMetadata, _Mapping]] = ..., topics: _Optional[_Iterable[_Union[Topic, _Mapping]]] = ..., content_sha256: _Optional[str] = ..., frame_timestamps_s: _Optional[_Iterable[float]] = ..., duration_s: _Optional[float] = ..., near_duplicate_of: _Optional[str] = ..., indexed_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., model_id: _Optional[str] = ...) -> None: ...

class MediaFilter(_message.Message):
    __slots__ = ("media_types", "creator_ids", "tags", "topics", "created_at")
    MEDIA_TYPES_FIELD_NUMBER: _ClassVar[int]
    CREATOR_IDS_FIELD_NUMBER: _ClassVar[int]
    TAGS_FIELD_NUMBER: _ClassVar[int]
    TOPICS_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    media_types: _containers.RepeatedScalarFieldContainer[MediaType]
    creator_ids: _containers.RepeatedScalarFieldContainer[str]
    tags: _containers.RepeatedScalarFieldContainer[str]
    topics: _containers.RepeatedScalarFieldContainer[str]
    created_at: TimeRange
    def __init__(self, media_types: _Optional[_Iterable[_Union[MediaType, str]]] = ..., creator_ids: _Optional[_Iterable[str]] = ..., tags: _Optional[_Iterable[str]] = ..., topics: _Optional[_Iterable[str]] = ..., created_at: _Optional[_Union[TimeRange, _Mapping]] = ...) -> None: ...

class RecommendState(_message.Message):
    __slots__ = ("version", "events_included", "events_pending", "built_at", "age_s", "rebuilding")
    VERSION_FIELD_NUMBER: _ClassVar[int]
    EVENTS_INCLUDED_FIELD_NUMBER: _ClassVar[int]
    EVENTS_PENDING_FIELD_NUMBER: _ClassVar[int]
    BUILT_AT_FIELD_NUMBER: _ClassVar[int]
    AGE_S_FIELD_NUMBER: _ClassVar[int]
    REBUILDING_FIELD_NUMBER: _ClassVar[int]
    version: int
    events_included: int
    events_pending: int
    built_at: _timestamp_pb2.Timestamp
    age_s: float
    rebuilding: bool
    def __init__(self, version: _Optional[int] = ..., events_included: _Optional[int] = ..., events_pending: _Optional[int] = ..., built_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., age_s: _Optional[float] = ..., rebuilding: _Optional[bool] = ...) -> None: ...
