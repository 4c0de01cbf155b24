"""Media domain types: what the service accepts and returns, free of protobuf and engines."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum

from mediarec.server.topics import Topic


class MediaType(StrEnum):
    IMAGE = "image"
    VIDEO = "video"
    TEXT = "text"  # caption-only post


class Outcome(StrEnum):
    CREATED = "created"
    UPDATED = "updated"
    UNCHANGED = "unchanged"


@dataclass(frozen=True)
class Location:
    region: str = ""
    latitude: float | None = None
    longitude: float | None = None


@dataclass(frozen=True)
class ItemMetadata:
    """What the client says about an item; ``media_type`` is a hint that must match the bytes."""

    media_id: str
    creator_id: str = ""
    caption: str = ""
    tags: tuple[str, ...] = ()
    created_at: int | None = None  # unix seconds
    location: Location = field(default_factory=Location)
    media_type: MediaType | None = None
    source: str = ""  # where the item came from (a file path), as the client names it


@dataclass(frozen=True)
class IndexedItem:
    """What was stored for one item (the IndexMedia response)."""

    media_id: str
    outcome: Outcome
    media_type: MediaType
    model_id: str
    dims: int
    frame_timestamps_s: tuple[float, ...]
    content_sha256: str
    duplicate: bool
    duplicate_of: str
    near_duplicate_of: str
    topics: tuple[Topic, ...]


@dataclass(frozen=True)
class StoredItem:
    """One stored item as GetMedia and SearchMedia return it."""

    metadata: ItemMetadata
    media_type: MediaType
    topics: tuple[Topic, ...]
    content_sha256: str
    frame_timestamps_s: tuple[float, ...]
    duration_s: float
    near_duplicate_of: str
    indexed_at: int
    model_id: str


@dataclass(frozen=True)
class SourcedItem:
    """A stored item's id, where it came from and its content hash (what sync tools compare)."""

    media_id: str
    source: str
    content_sha256: str


@dataclass(frozen=True)
class MediaHit:
    item: StoredItem
    score: float
    matched_frame_timestamp_s: float | None = None
