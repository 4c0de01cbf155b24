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

from server.recommend.hits import HitCounter
from server.recommend.types import RecItem
from server.service_errors import InvalidArgumentError, PreconditionError

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
    def __init__(
        self, ttl_s: float, max_entries: int, *, monotonic: Callable[[], float] = time.monotonic
    ) -> None:
        self._ttl_s = ttl_s
        self._max_entries = max_entries
        self._monotonic = monotonic
        self._lock = threading.Lock()
        self._rankings: OrderedDict[str, Ranking] = OrderedDict()
        self.counts = HitCounter()

    def put(self, ranking: Ranking) -> None:
        ranking.created = self._monotonic()
        with self._lock:
            self._rankings[ranking.request_id] = ranking
            self._rankings.move_to_end(ranking.request_id)
            while len(self._rankings) > self._max_entries:
                self._rankings.popitem(last=False)

    def get(self, cursor: str, user_id: str) -> tuple[Ranking, int]:
        """The ranking a cursor points into and the offset; a clear error when it is gone."""
        request_id, offset = parse_cursor(cursor)
        with self._lock:
            ranking = self._rankings.get(request_id)
            if ranking is not None and self._monotonic() - ranking.created > self._ttl_s:
                del self._rankings[request_id]
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
                del self._rankings[rid]
        return len(gone)
