import datetime

from google.protobuf import timestamp_pb2 as _timestamp_pb2
from mediarec.v1 import common_pb2 as _common_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class IndexOutcome(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    INDEX_OUTCOME_UNSPECIFIED: _ClassVar[IndexOutcome]
    INDEX_OUTCOME_CREATED: _ClassVar[IndexOutcome]
    INDEX_OUTCOME_UPDATED: _ClassVar[IndexOutcome]
    INDEX_OUTCOME_UNCHANGED: _ClassVar[IndexOutcome]

class StoreKind(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    STORE_KIND_UNSPECIFIED: _ClassVar[StoreKind]
    STORE_KIND_EMBEDDED: _ClassVar[StoreKind]
    STORE_KIND_QDRANT_SERVER: _ClassVar[StoreKind]

class TextMatch(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    TEXT_MATCH_UNSPECIFIED: _ClassVar[TextMatch]
    TEXT_MATCH_HYBRID: _ClassVar[TextMatch]
    TEXT_MATCH_PIXELS: _ClassVar[TextMatch]
    TEXT_MATCH_CAPTIONS: _ClassVar[TextMatch]
INDEX_OUTCOME_UNSPECIFIED: IndexOutcome
INDEX_OUTCOME_CREATED: IndexOutcome
INDEX_OUTCOME_UPDATED: IndexOutcome
INDEX_OUTCOME_UNCHANGED: IndexOutcome
STORE_KIND_UNSPECIFIED: StoreKind
STORE_KIND_EMBEDDED: StoreKind
STORE_KIND_QDRANT_SERVER: StoreKind
TEXT_MATCH_UNSPECIFIED: TextMatch
TEXT_MATCH_HYBRID: TextMatch
TEXT_MATCH_PIXELS: TextMatch
TEXT_MATCH_CAPTIONS: TextMatch

class Vector(_message.Message):
    __slots__ = ("values",)
    VALUES_FIELD_NUMBER: _ClassVar[int]
    values: _containers.RepeatedScalarFieldContainer[float]
    def __init__(self, values: _Optional[_Iterable[float]] = ...) -> None: ...

class FrameVector(_message.Message):
    __slots__ = ("timestamp_s", "vector")
    TIMESTAMP_S_FIELD_NUMBER: _ClassVar[int]
    VECTOR_FIELD_NUMBER: _ClassVar[int]
    timestamp_s: float
    vector: Vector
    def __init__(self, timestamp_s: _Optional[float] = ..., vector: _Optional[_Union[Vector, _Mapping]] = ...) -> None: ...

class MediaEmbeddings(_message.Message):
    __slots__ = ("model_id", "visual", "caption", "frames")
    MODEL_ID_FIELD_NUMBER: _ClassVar[int]
    VISUAL_FIELD_NUMBER: _ClassVar[int]
    CAPTION_FIELD_NUMBER: _ClassVar[int]
    FRAMES_FIELD_NUMBER: _ClassVar[int]
    model_id: str
    visual: Vector
    caption: Vector
    frames: _containers.RepeatedCompositeFieldContainer[FrameVector]
    def __init__(self, model_id: _Optional[str] = ..., visual: _Optional[_Union[Vector, _Mapping]] = ..., caption: _Optional[_Union[Vector, _Mapping]] = ..., frames: _Optional[_Iterable[_Union[FrameVector, _Mapping]]] = ...) -> None: ...

class IndexResult(_message.Message):
    __slots__ = ("media_id", "outcome", "media_type", "model_id", "dims", "frame_count", "frame_timestamps_s", "content_sha256", "duplicate", "duplicate_of", "near_duplicate_of", "topics")
    MEDIA_ID_FIELD_NUMBER: _ClassVar[int]
    OUTCOME_FIELD_NUMBER: _ClassVar[int]
    MEDIA_TYPE_FIELD_NUMBER: _ClassVar[int]
    MODEL_ID_FIELD_NUMBER: _ClassVar[int]
    DIMS_FIELD_NUMBER: _ClassVar[int]
    FRAME_COUNT_FIELD_NUMBER: _ClassVar[int]
    FRAME_TIMESTAMPS_S_FIELD_NUMBER: _ClassVar[int]
    CONTENT_SHA256_FIELD_NUMBER: _ClassVar[int]
    DUPLICATE_FIELD_NUMBER: _ClassVar[int]
    DUPLICATE_OF_FIELD_NUMBER: _ClassVar[int]
    NEAR_DUPLICATE_OF_FIELD_NUMBER: _ClassVar[int]
    TOPICS_FIELD_NUMBER: _ClassVar[int]
    media_id: str
    outcome: IndexOutcome
    media_type: _common_pb2.MediaType
    model_id: str
    dims: int
    frame_count: int
    frame_timestamps_s: _containers.RepeatedScalarFieldContainer[float]
    content_sha256: str
    duplicate: bool
    duplicate_of: str
    near_duplicate_of: str
    topics: _containers.RepeatedCompositeFieldContainer[_common_pb2.Topic]
    def __init__(self, media_id: _Optional[str] = ..., outcome: _Optional[_Union[IndexOutcome, str]] = ..., media_type: _Optional[_Union[_common_pb2.MediaType, str]] = ..., model_id: _Optional[str] = ..., dims: _Optional[int] = ..., frame_count: _Optional[int] = ..., frame_timestamps_s: _Optional[_Iterable[float]] = ..., content_sha256: _Optional[str] = ..., duplicate: _Optional[bool] = ..., duplicate_of: _Optional[str] = ..., near_duplicate_of: _Optional[str] = ..., topics: _Optional[_Iterable[_Union[_common_pb2.Topic, _Mapping]]] = ...) -> None: ...

class IndexMediaRequest(_message.Message):
    __slots__ = ("metadata", "data", "embeddings")
    METADATA_FIELD_NUMBER: _ClassVar[int]
    DATA_FIELD_NUMBER: _ClassVar[int]
    EMBEDDINGS_FIELD_NUMBER: _ClassVar[int]
    metadata: _common_pb2.MediaMetadata
    data: bytes
    embeddings: MediaEmbeddings
    def __init__(self, metadata: _Optional[_Union[_common_pb2.MediaMetadata, _Mapping]] = ..., data: _Optional[bytes] = ..., embeddings: _Optional[_Union[MediaEmbeddings, _Mapping]] = ...) -> None: ...

class IndexMediaResponse(_message.Message):
    __slots__ = ("result",)
    RESULT_FIELD_NUMBER: _ClassVar[int]
    result: IndexResult
    def __init__(self, result: _Optional[_Union[IndexResult, _Mapping]] = ...) -> None: ...

class UploadMediaHeader(_message.Message):
    __slots__ = ("metadata", "total_size_bytes", "sha256")
    METADATA_FIELD_NUMBER: _ClassVar[int]
    TOTAL_SIZE_BYTES_FIELD_NUMBER: _ClassVar[int]
    SHA256_FIELD_NUMBER: _ClassVar[int]
    metadata: _common_pb2.MediaMetadata
    total_size_bytes: int
    sha256: str
    def __init__(self, metadata: _Optional[_Union[_common_pb2.MediaMetadata, _Mapping]] = ..., total_size_bytes: _Optional[int] = ..., sha256: _Optional[str] = ...) -> None: ...

class UploadMediaRequest(_message.Message):
    __slots__ = ("header", "chunk")
    HEADER_FIELD_NUMBER: _ClassVar[int]
    CHUNK_FIELD_NUMBER: _ClassVar[int]
    header: UploadMediaHeader
    chunk: bytes
    def __init__(self, header: _Optional[_Union[UploadMediaHeader, _Mapping]] = ..., chunk: _Optional[bytes] = ...) -> None: ...

class UploadMediaResponse(_message.Message):
    __slots__ = ("result",)
    RESULT_FIELD_NUMBER: _ClassVar[int]
    result: IndexResult
    def __init__(self, result: _Optional[_Union[IndexResult, _Mapping]] = ...) -> None: ...

class GetMediaRequest(_message.Message):
    __slots__ = ("media_id",)
    MEDIA_ID_FIELD_NUMBER: _ClassVar[int]
    media_id: str
    def __init__(self, media_id: _Optional[str] = ...) -> None: ...

class GetMediaResponse(_message.Message):
    __slots__ = ("media",)
    MEDIA_FIELD_NUMBER: _ClassVar[int]
    media: _common_pb2.MediaItem
    def __init__(self, media: _Optional[_Union[_common_pb2.MediaItem, _Mapping]] = ...) -> None: ...

class DeleteMediaRequest(_message.Message):
    __slots__ = ("media_id", "allow_missing")
    MEDIA_ID_FIELD_NUMBER: _ClassVar[int]
    ALLOW_MISSING_FIELD_NUMBER: _ClassVar[int]
    media_id: str
    allow_missing: bool
    def __init__(self, media_id: _Optional[str] = ..., allow_missing: _Optional[bool] = ...) -> None: ...

class DeleteMediaResponse(_message.Message):
    __slots__ = ("media_id", "deleted")
    MEDIA_ID_FIELD_NUMBER: _ClassVar[int]
    DELETED_FIELD_NUMBER: _ClassVar[int]
    media_id: str
    deleted: bool
    def __init__(self, media_id: _Optional[str] = ..., deleted: _Optional[bool] = ...) -> None: ...

class ListMediaRequest(_message.Message):
    __slots__ = ("source_prefix",)
    SOURCE_PREFIX_FIELD_NUMBER: _ClassVar[int]
    source_prefix: str
    def __init__(self, source_prefix: _Optional[str] = ...) -> None: ...

class ListedMedia(_message.Message):
    __slots__ = ("media_id", "source", "content_sha256")
    MEDIA_ID_FIELD_NUMBER: _ClassVar[int]
    SOURCE_FIELD_NUMBER: _ClassVar[int]
    CONTENT_SHA256_FIELD_NUMBER: _ClassVar[int]
    media_id: str
    source: str
    content_sha256: str
    def __init__(self, media_id: _Optional[str] = ..., source: _Optional[str] = ..., content_sha256: _Optional[str] = ...) -> None: ...

class ListMediaResponse(_message.Message):
    __slots__ = ("items",)
    ITEMS_FIELD_NUMBER: _ClassVar[int]
    items: _containers.RepeatedCompositeFieldContainer[ListedMedia]
    def __init__(self, items: _Optional[_Iterable[_Union[ListedMedia, _Mapping]]] = ...) -> None: ...

class SearchMediaRequest(_message.Message):
    __slots__ = ("text", "image", "media_id", "filter", "k", "text_match")
    TEXT_FIELD_NUMBER: _ClassVar[int]
    IMAGE_FIELD_NUMBER: _ClassVar[int]
    MEDIA_ID_FIELD_NUMBER: _ClassVar[int]
    FILTER_FIELD_NUMBER: _ClassVar[int]
    K_FIELD_NUMBER: _ClassVar[int]
    TEXT_MATCH_FIELD_NUMBER: _ClassVar[int]
    text: str
    image: bytes
    media_id: str
    filter: _common_pb2.MediaFilter
    k: int
    text_match: TextMatch
    def __init__(self, text: _Optional[str] = ..., image: _Optional[bytes] = ..., media_id: _Optional[str] = ..., filter: _Optional[_Union[_common_pb2.MediaFilter, _Mapping]] = ..., k: _Optional[int] = ..., text_match: _Optional[_Union[TextMatch, str]] = ...) -> None: ...

class SearchResult(_message.Message):
    __slots__ = ("media", "score", "matched_frame_timestamp_s")
    MEDIA_FIELD_NUMBER: _ClassVar[int]
    SCORE_FIELD_NUMBER: _ClassVar[int]
    MATCHED_FRAME_TIMESTAMP_S_FIELD_NUMBER: _ClassVar[int]
    media: _common_pb2.MediaItem
    score: float
    matched_frame_timestamp_s: float
    def __init__(self, media: _Optional[_Union[_common_pb2.MediaItem, _Mapping]] = ..., score: _Optional[float] = ..., matched_frame_timestamp_s: _Optional[float] = ...) -> None: ...

class SearchMediaResponse(_message.Message):
    __slots__ = ("results", "model_id")
    RESULTS_FIELD_NUMBER: _ClassVar[int]
    MODEL_ID_FIELD_NUMBER: _ClassVar[int]
    results: _containers.RepeatedCompositeFieldContainer[SearchResult]
    model_id: str
    def __init__(self, results: _Optional[_Iterable[_Union[SearchResult, _Mapping]]] = ..., model_id: _Optional[str] = ...) -> None: ...

class GetServerInfoRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ServerLimits(_message.Message):
    __slots__ = ("max_message_bytes", "max_upload_bytes", "max_image_pixels", "max_caption_chars", "max_tags", "max_k", "max_events_per_batch", "import_chunk_events")
    MAX_MESSAGE_BYTES_FIELD_NUMBER: _ClassVar[int]
    MAX_UPLOAD_BYTES_FIELD_NUMBER: _ClassVar[int]
    MAX_IMAGE_PIXELS_FIELD_NUMBER: _ClassVar[int]
    MAX_CAPTION_CHARS_FIELD_NUMBER: _ClassVar[int]
    MAX_TAGS_FIELD_NUMBER: _ClassVar[int]
    MAX_K_FIELD_NUMBER: _ClassVar[int]
    MAX_EVENTS_PER_BATCH_FIELD_NUMBER: _ClassVar[int]
    IMPORT_CHUNK_EVENTS_FIELD_NUMBER: _ClassVar[int]
    max_message_bytes: int
    max_upload_bytes: int
    max_image_pixels: int
    max_caption_chars: int
    max_tags: int
    max_k: int
    max_events_per_batch: int
    import_chunk_events: int
    def __init__(self, max_message_bytes: _Optional[int] = ..., max_upload_bytes: _Optional[int] = ..., max_image_pixels: _Optional[int] = ..., max_caption_chars: _Optional[int] = ..., max_tags: _Optional[int] = ..., max_k: _Optional[int] = ..., max_events_per_batch: _Optional[int] = ..., import_chunk_events: _Optional[int] = ...) -> None: ...

class GetServerInfoResponse(_message.Message):
    __slots__ = ("model_id", "dims", "store_kind", "collection", "media_count", "image_count", "video_count", "text_count", "video_frames", "topic_vocabulary", "limits", "server_version", "started_at", "recommend_state", "imports")
    MODEL_ID_FIELD_NUMBER: _ClassVar[int]
    DIMS_FIELD_NUMBER: _ClassVar[int]
    STORE_KIND_FIELD_NUMBER: _ClassVar[int]
    COLLECTION_FIELD_NUMBER: _ClassVar[int]
    MEDIA_COUNT_FIELD_NUMBER: _ClassVar[int]
    IMAGE_COUNT_FIELD_NUMBER: _ClassVar[int]
    VIDEO_COUNT_FIELD_NUMBER: _ClassVar[int]
    TEXT_COUNT_FIELD_NUMBER: _ClassVar[int]
    VIDEO_FRAMES_FIELD_NUMBER: _ClassVar[int]
    TOPIC_VOCABULARY_FIELD_NUMBER: _ClassVar[int]
    LIMITS_FIELD_NUMBER: _ClassVar[int]
    SERVER_VERSION_FIELD_NUMBER: _ClassVar[int]
    STARTED_AT_FIELD_NUMBER: _ClassVar[int]
    RECOMMEND_STATE_FIELD_NUMBER: _ClassVar[int]
    IMPORTS_FIELD_NUMBER: _ClassVar[int]
    model_id: str
    dims: int
    store_kind: StoreKind
    collection: str
    media_count: int
    image_count: int
    video_count: int
    text_count: int
    video_frames: int
    topic_vocabulary: _containers.RepeatedScalarFieldContainer[str]
    limits: ServerLimits
    server_version: str
    started_at: _timestamp_pb2.Timestamp
    recommend_state: _common_pb2.RecommendState
    imports: _containers.RepeatedCompositeFieldContainer[ImportProgress]
    def __init__(self, model_id: _Optional[str] = ..., dims: _Optional[int] = ..., store_kind: _Optional[_Union[StoreKind, str]] = ..., collection: _Optional[str] = ..., media_count: _Optional[int] = ..., image_count: _Optional[int] = ..., video_count: _Optional[int] = ..., text_count: _Optional[int] = ..., video_frames: _Optional[int] = ..., topic_vocabulary: _Optional[_Iterable[str]] = ..., limits: _Optional[_Union[ServerLimits, _Mapping]] = ..., server_version: _Optional[str] = ..., started_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., recommend_state: _Optional[_Union[_common_pb2.RecommendState, _Mapping]] = ..., imports: _Optional[_Iterable[_Union[ImportProgress, _Mapping]]] = ...) -> None: ...

class ImportProgress(_message.Message):
    __slots__ = ("started_at", "rows", "accepted", "duplicates", "rejected")
    STARTED_AT_FIELD_NUMBER: _ClassVar[int]
    ROWS_FIELD_NUMBER: _ClassVar[int]
    ACCEPTED_FIELD_NUMBER: _ClassVar[int]
    DUPLICATES_FIELD_NUMBER: _ClassVar[int]
    REJECTED_FIELD_NUMBER: _ClassVar[int]
    started_at: _timestamp_pb2.Timestamp
    rows: int
    accepted: int
    duplicates: int
    rejected: int
    def __init__(self, started_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., rows: _Optional[int] = ..., accepted: _Optional[int] = ..., duplicates: _Optional[int] = ..., rejected: _Optional[int] = ...) -> None: ...

class GetThumbnailRequest(_message.Message):
    __slots__ = ("media_id", "frame_index")
    MEDIA_ID_FIELD_NUMBER: _ClassVar[int]
    FRAME_INDEX_FIELD_NUMBER: _ClassVar[int]
    media_id: str
    frame_index: int
    def __init__(self, media_id: _Optional[str] = ..., frame_index: _Optional[int] = ...) -> None: ...

class GetThumbnailResponse(_message.Message):
    __slots__ = ("jpeg",)
    JPEG_FIELD_NUMBER: _ClassVar[int]
    jpeg: bytes
    def __init__(self, jpeg: _Optional[bytes] = ...) -> None: ...
