"""What ranking needs to know about a media item, cached in memory.

Fetching points from the vector store costs about 20 us each, and a request looks at a few
hundred candidates, mostly the same popular ones again and again. ``ItemCache`` keeps their
vectors (float16) and the few payload fields ranking reads, bounded in size and age. A stale
entry is harmless for ranking; the page actually returned is checked against the store
(``existing``), so a deleted post never reaches a client.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from mediarec.server.payload import NEAR_DUPLICATE_OF
from mediarec.server.recommend.hits import HitCounter
from mediarec.server.store import SearchFilter, VectorStore, schema

_FETCH_BATCH = 512


@dataclass(frozen=True, slots=True)  # no per-item __dict__: the cache holds 100ks of them
class ItemInfo:
    media_id: str
    creator_id: str
    media_type: str
    tags: tuple[str, ...]
    topics: tuple[str, ...]
    created_at: int | None
    duplicate_root: str  # the item it was indexed as a near-duplicate of, else its own id
    vector16: np.ndarray  # visual vector, else the caption's (float16)
    caption16: np.ndarray | None  # caption vector (float16), None without a caption

    @property
    def vector(self) -> np.ndarray:
        return self.vector16.astype(np.float32)

    @property
    def is_video(self) -> bool:
        return self.media_type == schema.MEDIA_TYPE_VIDEO


def item_info(
    media_id: str, payload: Mapping[str, Any], vectors: Mapping[str, Any]
) -> ItemInfo | None:
    """An ItemInfo from a stored point, or None when it has no vector to rank by."""
    visual = vectors.get(schema.VISUAL)
    caption = vectors.get(schema.CAPTION)
    main = visual if visual is not None else caption
    if main is None:
        return None
    created = payload.get(schema.CREATED_AT)
    return ItemInfo(
        media_id=media_id,
        creator_id=str(payload.get(schema.CREATOR_ID, "") or ""),
        media_type=str(payload.get(schema.MEDIA_TYPE, "") or ""),
        tags=tuple(str(t) for t in payload.get(schema.TAGS, ()) or ()),
        topics=tuple(str(t) for t in payload.get(schema.TOPICS, ()) or ()),
        created_at=None if created is None else int(created),
        duplicate_root=str(payload.get(NEAR_DUPLICATE_OF, "") or media_id),
        vector16=np.ascontiguousarray(main, dtype=np.float16),  # joined as bytes (features)
        caption16=None if caption is None else np.asarray(caption, dtype=np.float16),
    )


def item_filter(f: SearchFilter) -> Callable[[ItemInfo], bool]:
    """Whether an item passes ``f`` (the in-memory twin of the store's filtering), checking
    only the conditions ``f`` sets: a request's filter usually sets just the excluded creators
    (the user's own posts), and this runs for every candidate."""
    checks: list[Callable[[ItemInfo], bool]] = []
    if f.media_types:
        media_types = frozenset(f.media_types)
        checks.append(lambda item: item.media_type in media_types)
    if f.creator_ids:
        creators = frozenset(f.creator_ids)
        checks.append(lambda item: item.creator_id in creators)
    if f.exclude_creator_ids:
        excluded = frozenset(f.exclude_creator_ids)
        checks.append(lambda item: not item.creator_id or item.creator_id not in excluded)
    if f.tags:
        tags = frozenset(f.tags)
        checks.append(lambda item: not tags.isdisjoint(item.tags))
    if f.topics:
        topics = frozenset(f.topics)
        checks.append(lambda item: not topics.isdisjoint(item.topics))
    lo, hi = f.created_at_from, f.created_at_to
    if lo is not None:
        checks.append(lambda item: item.created_at is not None and item.created_at >= lo)
    if hi is not None:
        checks.append(lambda item: item.created_at is not None and item.created_at <= hi)
    if not checks:
        return lambda item: True
    if len(checks) == 1:
        return checks[0]
    return lambda item: all(check(item) for check in checks)


class ItemCache:
    """Bounded, time-limited cache of :class:`ItemInfo` in front of the vector store."""

    def __init__(
        self,
        store: VectorStore,
        max_entries: int,
        ttl_s: float,
        *,
        max_bytes: int = 0,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._store = store
        self._max_entries = max_entries
        self._max_bytes = max_bytes  # 0: no bound in bytes
        self._ttl_s = ttl_s
        self._monotonic = monotonic
        self._lock = threading.Lock()
        self._entries: OrderedDict[str, tuple[float, ItemInfo]] = OrderedDict()
        self._bytes = 0
        self.counts = HitCounter()

    @property
    def size_bytes(self) -> int:
        """The cached entries' approximate size (their arrays, ids and tags)."""
        with self._lock:
            return self._bytes

    def get(self, media_ids: Sequence[str]) -> dict[str, ItemInfo]:
        """Infos of the ids that exist (as of when they were cached); misses are fetched."""
        now = self._monotonic()
        found: dict[str, ItemInfo] = {}
        missed: list[str] = []
        ttl_s = self._ttl_s
        # Bound methods, looked up once: this loop runs for every candidate of a request.
        lookup, touch, miss = self._entries.get, self._entries.move_to_end, missed.append
        with self._lock:
            for media_id in media_ids:
                entry = lookup(media_id)
                if entry is not None and now - entry[0] <= ttl_s:
                    touch(media_id)
                    found[media_id] = entry[1]
                else:
                    miss(media_id)
        missing = [m for m in dict.fromkeys(missed) if m not in found] if missed else []
        self.counts.record(len(found), len(missing))
        for start in range(0, len(missing), _FETCH_BATCH):
            batch = missing[start : start + _FETCH_BATCH]
            points = self._store.get(batch, with_vectors=True)
            fetched = {}
            for media_id, point in points.items():
                info = item_info(media_id, point.payload, point.vectors)
                if info is not None:
                    fetched[media_id] = info
            found |= fetched
            self._put(fetched, now)
        return found

    def existing(self, media_ids: Sequence[str]) -> set[str]:
        """The ids the store holds right now (authoritative; drops stale cache entries)."""
        return set(self.stored_payloads(media_ids))

    def stored_payloads(self, media_ids: Sequence[str]) -> dict[str, Mapping[str, Any]]:
        """The payloads of the ids the store holds right now (authoritative, like
        ``existing``; a response can be built from them without reading the store again)."""
        if not media_ids:
            return {}
        present = {m: p.payload for m, p in self._store.get(media_ids, with_vectors=False).items()}
        gone = [m for m in media_ids if m not in present]
        if gone:
            with self._lock:
                for media_id in gone:
                    self._drop(media_id)
        return present

    def _put(self, infos: Mapping[str, ItemInfo], now: float) -> None:
        if not infos or self._max_entries <= 0:
            return
        with self._lock:
            for media_id, info in infos.items():
                self._drop(media_id)
                self._entries[media_id] = (now, info)
                self._bytes += info_bytes(info)
            while len(self._entries) > self._max_entries or (
                self._max_bytes and self._bytes > self._max_bytes and self._entries
            ):
                _, (_, oldest) = self._entries.popitem(last=False)
                self._bytes -= info_bytes(oldest)

    def _drop(self, media_id: str) -> None:
        """Forget one entry (the caller holds the lock)."""
        entry = self._entries.pop(media_id, None)
        if entry is not None:
            self._bytes -= info_bytes(entry[1])


# Per entry beyond its arrays and strings: the dict slot, the tuple and the ItemInfo object.
_ENTRY_OVERHEAD_BYTES = 400


def info_bytes(info: ItemInfo) -> int:
    """An item's approximate size in the cache."""
    arrays = info.vector16.nbytes + (info.caption16.nbytes if info.caption16 is not None else 0)
    strings = len(info.media_id) + len(info.creator_id) + sum(map(len, info.tags + info.topics))
    return arrays + strings + _ENTRY_OVERHEAD_BYTES
