"""A ranking kept compactly (arrays per position); entries are built only for pages served.

Building an item's breakdown, reasons and training features is per-item Python; a ranking is
``rank_depth`` deep but most clients read one page, so only the pages asked for pay for it.
A ranking is kept for paging after the request, so it holds only what those entries read: no
item vectors and no profile (``SlateItem``, ``ReasonProfile``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import NamedTuple

import numpy as np

from mediarec.server.recommend import blend as b
from mediarec.server.recommend.items import ItemInfo
from mediarec.server.recommend.paging import RankedEntry
from mediarec.server.recommend.profile import UserProfile
from mediarec.server.recommend.reasons import ReasonInfo, reasons_for
from mediarec.server.recommend.sources import SOURCES
from mediarec.server.recommend.types import RecItem, RecRequest, Surface

_SOURCE_ORDER = {name: i for i, name in enumerate(SOURCES)}


class SlateItem(NamedTuple):
    """What a position's entry reads of its item (a tuple: a request makes ``rank_depth``)."""

    media_id: str
    creator_id: str
    topics: tuple[str, ...]
    created_at: int | None
    is_video: bool

    @classmethod
    def of(cls, item: ItemInfo) -> SlateItem:
        return cls(item.media_id, item.creator_id, item.topics, item.created_at, item.is_video)


@dataclass(frozen=True)
class ReasonProfile:
    """What a position's reasons and logged features read of the user's profile: its sets and
    maps, shared with the profile, but none of its vectors."""

    follows: frozenset[str]
    engaged_creators: frozenset[str]
    creator_affinity: Mapping[str, float]
    cluster_sizes: tuple[int, ...]
    liked_topics: Mapping[str, float]
    declared_topics: frozenset[str]
    confidence: float

    @classmethod
    def of(cls, profile: UserProfile) -> ReasonProfile:
        return cls(
            follows=profile.follows,
            engaged_creators=profile.engaged_creators,
            creator_affinity=profile.summary.creator_affinity,
            cluster_sizes=tuple(len(c.media_ids) for c in profile.clusters),
            liked_topics=profile.liked_topics,
            declared_topics=frozenset(t.text for t in profile.interests),
            confidence=float(profile.confidence),
        )


@dataclass
class Slate(Sequence[RankedEntry]):
    """Positions 0..n-1 of one ranking; ``slate[i]`` builds (and keeps) entry i."""

    items: list[SlateItem]
    sources: list[Mapping[str, float]]
    x: np.ndarray  # (n, F) features
    contributions: np.ndarray  # (n, F)
    scores: np.ndarray  # (n,)
    item_conf: np.ndarray  # (n,)
    best_cluster: np.ndarray  # (n,)
    best_query: np.ndarray  # (n,)
    coeng_counts: np.ndarray  # (n,)
    popular_in: list[str]
    propensity: np.ndarray  # (n,) 1 for exploited items
    explored: np.ndarray  # (n,) bool
    folded: list[tuple[str, ...]]
    profile: ReasonProfile
    request: RecRequest
    now: float
    bias: float
    fresh_window_s: float
    texts: Sequence[tuple[str, str]]  # (kind, text) of the text queries, by query index
    # A learned ranker's explanation of positions -> (contributions (n, F), base values (n,)),
    # computed for the positions a page builds, all of them in one call (one LightGBM call
    # for their leaves): most clients read one page. ``contributions`` is filled in as it goes.
    explain: Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]] | None = None
    _built: dict[int, RankedEntry] = field(default_factory=dict)
    _explained: set[int] = field(default_factory=set)

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index):  # type: ignore[no-untyped-def, override]
        if isinstance(index, slice):
            positions = range(*index.indices(len(self)))
            self._explain(positions)
            return [self[i] for i in positions]
        if index < 0:
            index += len(self)
        if not 0 <= index < len(self):
            raise IndexError(index)
        entry = self._built.get(index)
        if entry is None:
            self._explain([index])
            entry = self._build(index)
            self._built[index] = entry
        return entry

    def __iter__(self) -> Iterator[RankedEntry]:
        return iter(self[0 : len(self)])

    def _explain(self, positions: Sequence[int]) -> None:
        """Explain the positions not explained yet, in one call."""
        if self.explain is None:
            return
        wanted = [n for n in positions if n not in self._explained]
        if not wanted:
            return
        rows = np.asarray(wanted, dtype=np.int64)
        contributions, base = self.explain(rows)
        self.contributions[rows] = contributions
        if base.size:
            self.bias = float(base[0])  # a tree ensemble's base value is one constant
        self._explained.update(wanted)

    def _build(self, n: int) -> RankedEntry:
        item = self.items[n]
        profile = self.profile
        breakdown = b.breakdown_of(self.contributions[n], self.bias)
        q, c = int(self.best_query[n]), int(self.best_cluster[n])
        creator = item.creator_id
        explored = bool(self.explored[n])
        info = ReasonInfo(
            explored=explored,
            new_creator=bool(creator)
            and creator not in profile.follows
            and creator not in profile.engaged_creators
            and profile.creator_affinity.get(creator, 0.0) == 0.0,
            cluster_size=profile.cluster_sizes[c] if c >= 0 else 0,
            query_kind=self.texts[q][0] if 0 <= q < len(self.texts) else "",
            query_text=self.texts[q][1] if 0 <= q < len(self.texts) else "",
            coeng_count=int(self.coeng_counts[n]),
            popular_in=self.popular_in[n],
            local_hour=self.request.context.local_hour,
            device=self.request.context.device,
            recent=item.created_at is not None
            and self.now - float(item.created_at) <= self.fresh_window_s,
            topic=liked_topic(item.topics, profile),
        )
        features = {name: float(v) for name, v in zip(b.FEATURES, self.x[n], strict=True)}
        features |= {
            "user_confidence": float(profile.confidence),
            "item_confidence": float(self.item_conf[n]),
            "feed": 1.0 if self.request.surface is Surface.FEED else 0.0,
            "explored": 1.0 if explored else 0.0,
        }
        content = breakdown.get(b.CONTENT, 0.0)
        interest = breakdown.get(b.INTEREST, 0.0)
        if breakdown.get(b.SEED, 0.0) > max(content, interest):
            match_key = "seed"
        elif q >= 0 and interest >= content:
            match_key = f"t{q}"
        else:
            match_key = f"c{c}" if c >= 0 else ""
        rec = RecItem(
            media_id=item.media_id,
            score=float(self.scores[n]),
            breakdown=breakdown,
            sources=ordered_sources(self.sources[n]),
            reasons=reasons_for(breakdown, info),
            propensity=float(self.propensity[n]),
            explored=explored,
            collapsed=self.folded[n],
        )
        return RankedEntry(rec, features, match_key, item.is_video)


def ordered_sources(scores: Mapping[str, float]) -> tuple[str, ...]:
    return tuple(sorted(scores, key=lambda name: _SOURCE_ORDER.get(name, len(_SOURCE_ORDER))))


def liked_topic(topics: Sequence[str], profile: ReasonProfile) -> str:
    """The item's topic the user likes most (from liked posts, else declared interests)."""
    liked = [t for t in topics if t in profile.liked_topics]
    if not liked:
        liked = [t for t in topics if t in profile.declared_topics]
    return max(liked, key=lambda t: profile.liked_topics.get(t, 0.0)) if liked else ""
