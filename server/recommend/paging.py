"""One ranking per request, paged by cursor: kept in memory with a TTL and an LRU bound.

A cursor is ``<request_id>.<offset>``. Page 2 slices the very list page 1 came from, so pages
never repeat an item; a cursor outlives its ranking only by becoming invalid (the client starts
over with a first page).
"""

from __future__ import annotations

import re
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from mediarec.server.recommend.hits import HitCounter
from mediarec.server.recommend.types import RecItem
from mediarec.server.service_errors import InvalidArgumentError, PreconditionError

_CURSOR = re.compile(r"^([0-9a-f]{32})\.(\d{1,9})$")


@dataclass(frozen=True)
class RankedEntry:
    item: RecItem
    features: Mapping[str, float]  # logged with the impression (training features)
    match_key: str = ""  # the query vector the item matched best, for video frame matching
    video: bool = False


@dataclass
class Ranking:
    request_id: str
    user_id: str
    entries: Sequence[RankedEntry]
    match_vectors: Mapping[str, np.ndarray] = field(default_factory=dict)
    created: float = 0.0  # monotonic seconds


def make_cursor(request_id: str, offset: int) -> str:
    return f"{request_id}.{offset}"


def parse_cursor(cursor: str) -> tuple[str, int]:
    match = _CURSOR.match(cursor)
    if match is None:
        raise InvalidArgumentError("cursor", "not a cursor this server returned")
    return match.group(1), int(match.group(2))


class RankingCache:
    """Rankings kept for paging: least recently stored first out, bounded by count and by an
    estimate of their memory."""

    def __init__(
        self,
        ttl_s: float,
        max_entries: int,
        *,
        max_bytes: int = 0,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._ttl_s = ttl_s
        self._max_entries = max_entries
        self._max_bytes = max_bytes  # 0: no bound in bytes
        self._monotonic = monotonic
        self._lock = threading.Lock()
        self._rankings: OrderedDict[str, Ranking] = OrderedDict()
        self._sizes: dict[str, int] = {}
        self._bytes = 0
        self.counts = HitCounter()

    @property
    def size_bytes(self) -> int:
        with self._lock:
            return self._bytes

    def put(self, ranking: Ranking) -> None:
        ranking.created = self._monotonic()
        size = ranking_bytes(ranking)
        with self._lock:
            self._drop(ranking.request_id)
            self._rankings[ranking.request_id] = ranking
            self._sizes[ranking.request_id] = size
            self._bytes += size
            while self._rankings and (
                len(self._rankings) > self._max_entries
                or (self._max_bytes and self._bytes > self._max_bytes)
            ):
                self._drop(next(iter(self._rankings)))
            # Expired ones go too, oldest first (the order they were stored in), not only when
            # their own cursor comes back: each holds what scored it, a learned model included.
            while self._rankings:
                oldest = next(iter(self._rankings.values()))
                if ranking.created - oldest.created <= self._ttl_s:
                    break
                self._drop(oldest.request_id)

    def _drop(self, request_id: str) -> None:
        """Forget one ranking (the lock is held)."""
        if self._rankings.pop(request_id, None) is not None:
            self._bytes -= self._sizes.pop(request_id)

    def get(self, cursor: str, user_id: str) -> tuple[Ranking, int]:
        """The ranking a cursor points into and the offset; a clear error when it is gone."""
        request_id, offset = parse_cursor(cursor)
        with self._lock:
            ranking = self._rankings.get(request_id)
            if ranking is not None and self._monotonic() - ranking.created > self._ttl_s:
                self._drop(request_id)
                ranking = None
        found = ranking is not None and ranking.user_id == user_id
        self.counts.record(int(found), int(not found))
        # Another user's cursor looks exactly like an expired one: nothing leaks.
        if ranking is None or ranking.user_id != user_id:
            raise PreconditionError(
                "cursor: the ranking it pages through has expired; request the first page again"
            )
        return ranking, offset

    def forget_user(self, user_id: str) -> int:
        with self._lock:
            gone = [rid for rid, r in self._rankings.items() if r.user_id == user_id]
            for rid in gone:
                self._drop(rid)
        return len(gone)


# Estimated costs in CPython: an entry (its RecItem, breakdown, reasons and sources) and each
# of its logged features. Estimates from the first entry keep put() O(1) on the request path.
_ENTRY_BYTES = 1200
_FEATURE_BYTES = 100


def ranking_bytes(ranking: Ranking) -> int:
    """About how much memory a ranking holds."""
    entries = len(ranking.entries)
    per_entry = _ENTRY_BYTES + (
        _FEATURE_BYTES * len(ranking.entries[0].features) if entries else 0
    )
    vectors = sum(int(v.nbytes) for v in ranking.match_vectors.values())
    return entries * per_entry + vectors + len(ranking.user_id) + 200
