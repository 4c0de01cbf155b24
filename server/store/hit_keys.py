"""Point id -> the payload every search hit needs (media id, media type), held in memory.

Why: Qdrant Edge reads a hit's payload from its payload storage at 10-20 µs per hit, which is
more than the HNSW search itself. Measured at 100k posts: 6 queries x 70 hits took 4.5 ms
without payload and 12 ms with just ``media_id`` and ``media_type`` (docs/benchmarks.md). Point
ids are one-way hashes of media ids (``schema.media_point_id``), so the store keeps the way back.

The embedded store is one process's alone (its directory lock), so this map is complete once it
is loaded and every write of that process updates it, under the shard's write lock right after
the write is applied (so writes update it in the order they were applied). A hit whose id is
missing anyway (a search between a write and its update) is looked up in the store and
:meth:`HitKeys.learn`-ed, which never overrides what a write put there.
"""

from __future__ import annotations

import sys
import uuid
from collections.abc import Iterable, Mapping
from typing import Any

from mediarec.server.store import schema

PointId = int | uuid.UUID | str  # as qdrant_edge types it; mediarec's own ids are UUIDs


def point_key(point_id: PointId) -> int:
    """The map's key: 16 bytes as one int, smaller than a UUID object or its string."""
    if isinstance(point_id, int):
        return point_id
    return point_id.int if isinstance(point_id, uuid.UUID) else uuid.UUID(point_id).int


class HitKeys:
    """Thread-safe without a lock of its own: each call is single dict operations (atomic under
    the GIL), and writes are ordered by the shard's write lock."""

    def __init__(self) -> None:
        self._keys: dict[int, tuple[str, str | None]] = {}

    def __len__(self) -> int:
        return len(self._keys)

    def replace_all(self, points: Iterable[tuple[PointId, Mapping[str, Any]]]) -> None:
        """Load every (point id, payload) at once, when a store opens (before any write)."""
        self._keys = {point_key(point_id): _entry(payload) for point_id, payload in points}

    def put(self, points: Iterable[tuple[PointId, Mapping[str, Any]]]) -> None:
        """After a write: these points now exist with these payloads."""
        for point_id, payload in points:
            self._keys[point_key(point_id)] = _entry(payload)

    def learn(self, points: Iterable[tuple[PointId, Mapping[str, Any]]]) -> None:
        """What a search read from the store: kept unless a write has put a newer value."""
        for point_id, payload in points:
            self._keys.setdefault(point_key(point_id), _entry(payload))

    def remove(self, point_ids: Iterable[PointId]) -> None:
        """After a delete: these points are gone."""
        for point_id in point_ids:
            self._keys.pop(point_key(point_id), None)

    def payload(self, point_id: PointId) -> dict[str, str] | None:
        """The hit payload ``{media_id, media_type}`` of a point, or None when not known."""
        entry = self._keys.get(point_key(point_id))
        if entry is None:
            return None
        media_id, media_type = entry
        if media_type is None:  # as the store would return it: no key rather than ""
            return {schema.MEDIA_ID: media_id}
        return {schema.MEDIA_ID: media_id, schema.MEDIA_TYPE: media_type}


def _entry(payload: Mapping[str, Any]) -> tuple[str, str | None]:
    media_type = payload.get(schema.MEDIA_TYPE)
    # A handful of distinct types: interned, every entry shares one string object each.
    return str(payload[schema.MEDIA_ID]), None if media_type is None else sys.intern(
        str(media_type)
    )
