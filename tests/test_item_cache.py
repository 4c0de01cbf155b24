"""The item cache's bounds: entries, bytes and age (pure logic over a stand-in store)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pytest

from mediarec.server.recommend.items import ItemCache, info_bytes
from mediarec.server.store import MediaPoint, schema

DIM = 256


class _Store:
    """Just ``get``: every id exists, with one caption vector; counts the reads."""

    def __init__(self) -> None:
        self.reads: list[str] = []

    def get(self, media_ids: Sequence[str], *, with_vectors: bool = False) -> dict[str, Any]:
        self.reads += list(media_ids)
        return {
            m: MediaPoint(m, {schema.CAPTION: np.ones(DIM, np.float32)}, {schema.CREATOR_ID: "c"})
            for m in media_ids
        }


def cache(store: _Store, *, entries: int = 1000, max_bytes: int = 0, ttl_s: float = 60.0,
          clock: list[float] | None = None) -> ItemCache:  # fmt: skip
    now = clock if clock is not None else [0.0]
    return ItemCache(store, entries, ttl_s, max_bytes=max_bytes,  # type: ignore[arg-type]
                     monotonic=lambda: now[0])  # fmt: skip


def test_a_byte_bound_keeps_the_most_recently_used_items_within_it() -> None:
    store = _Store()
    one = info_bytes(cache(store).get(["probe"])["probe"])
    bounded = cache(store, max_bytes=3 * one + one // 2)  # room for three
    bounded.get(["a", "b", "c"])
    bounded.get(["a"])  # a is now the most recent
    bounded.get(["d"])  # evicts b, the least recently used
    assert bounded.size_bytes <= 3 * one + one // 2
    store.reads.clear()
    bounded.get(["a", "c", "d"])
    assert store.reads == []  # all three still cached
    bounded.get(["b"])
    assert store.reads == ["b"]


@pytest.mark.parametrize(("entries", "max_bytes", "kept"), [(2, 0, 2), (10, 0, 5), (0, 0, 0)])
def test_the_entry_bound_alone(entries: int, max_bytes: int, kept: int) -> None:
    store = _Store()
    c = cache(store, entries=entries, max_bytes=max_bytes)
    c.get([f"m{i}" for i in range(5)])
    store.reads.clear()
    c.get([f"m{i}" for i in range(5)])
    assert len(store.reads) == 5 - kept


def test_entries_older_than_the_ttl_are_read_again_and_sizes_stay_exact() -> None:
    store, clock = _Store(), [0.0]
    c = cache(store, ttl_s=10.0, clock=clock)
    c.get(["a", "b"])
    size = c.size_bytes
    clock[0] = 11.0
    store.reads.clear()
    c.get(["a", "b"])  # expired: read and replaced, not counted twice
    assert store.reads == ["a", "b"]
    assert c.size_bytes == size
