"""The blend features of every candidate, whatever source proposed it (numpy, no I/O).

Each feature is in [0, 1]. Similarities are cosines against the user's query vectors, scaled
within the request; counts are scaled by the best candidate; popularity is log-scaled so the
long tail still differs. ``FeatureTable`` also keeps what the reasons need (which cluster or
interest matched, how many liked posts back a co-engagement score, which context key).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import cached_property
from typing import Any

import numpy as np

from mediarec.server.recommend import blend as b
from mediarec.server.recommend.items import ItemInfo
from mediarec.server.recommend.profile import UserProfile
from mediarec.server.recommend.rows import values_at
from mediarec.server.recommend.settings import RecommendSettings
from mediarec.server.recommend.sources import QueryVector
from mediarec.server.recommend.state import CoScores, DerivedState, context_keys
from mediarec.server.recommend.types import Context

# How much each kind of context counts in "popularity in context".
POPULARITY_KEY_WEIGHTS: Mapping[str, float] = {
    "global": 0.3,
    "hour": 0.15,
    "location": 0.2,
    "location_hour": 0.2,
    "device": 0.15,
}
_POP_SCALE = 99.0


def pop_scale(level: np.ndarray | float) -> np.ndarray:
    """Log-scale a relative popularity level in [0, 1] (1 = the most popular item) to [0, 1]."""
    x = np.clip(np.asarray(level, dtype=np.float64), 0.0, 1.0)
    return np.log1p(_POP_SCALE * x) / math.log1p(_POP_SCALE)


@dataclass(frozen=True)
class Candidates:
    """The candidates that survived filtering, with what ranking needs about each."""

    items: list[ItemInfo]
    ids: list[str]
    visual: np.ndarray  # (n, d) unit rows: the item's visual vector, else its caption's
    has_caption: np.ndarray  # (n,) bool
    sources: list[Mapping[str, float]]  # the proposing sources' scores (read only)

    @classmethod
    def build(
        cls, items: Sequence[ItemInfo], sources: Sequence[Mapping[str, float]], dim: int
    ) -> Candidates:
        n = len(items)
        # The float16 rows joined as bytes, then one cast: cheaper than stacking the arrays.
        # ``item_info`` makes every row a contiguous float16 array of the store's dimension.
        # (An ndarray is a buffer; numpy's type stubs do not say so.)
        rows: list[Any] = [item.vector16 for item in items]
        visual = (
            np.frombuffer(b"".join(rows), dtype=np.float16)
            .reshape(n, items[0].vector16.size).astype(np.float32)
            if n else np.zeros((0, dim), dtype=np.float32)
        )  # fmt: skip
        has_caption = np.fromiter((i.caption16 is not None for i in items), dtype=bool, count=n)
        ids = [item.media_id for item in items]
        return cls(list(items), ids, visual, has_caption, list(sources))

    @cached_property
    def caption_rows(self) -> np.ndarray:
        """(items with a caption, d) their caption vectors, in candidate order; built when a
        request has a text query (an interest, a search or steering text)."""
        rows = [item.caption16 for item in self.items if item.caption16 is not None]
        dim = self.visual.shape[1]
        return np.array(rows, dtype=np.float16).astype(np.float32).reshape(len(rows), dim)

    def __len__(self) -> int:
        return len(self.items)

    @cached_property
    def creators(self) -> list[str]:
        """Each candidate's creator id ("" when unknown); features and selection both read it."""
        return [item.creator_id for item in self.items]


@dataclass(frozen=True)
class FeatureTable:
    x: np.ndarray  # (n, len(FEATURES))
    item_conf: np.ndarray  # (n,)
    engagements: np.ndarray  # (n,) positive events per item
    impressions: np.ndarray  # (n,) global exposure per item
    best_cluster: np.ndarray  # (n,) index into profile.clusters, -1 when none
    best_query: np.ndarray  # (n,) index into the text queries, -1 when none
    coeng_counts: np.ndarray  # (n,) how many liked posts neighbour the item
    popular_in: list[str]  # (n,) the context kind where the item is most popular, or ""
    user_impressions: np.ndarray  # (n,) times this user was shown the item
    rows: np.ndarray  # (n,) the items' rows in the derived-state snapshot (-1: none)


def compute_features(
    cands: Candidates,
    profile: UserProfile,
    queries: Sequence[QueryVector],
    seed_vector: np.ndarray | None,
    coscores: CoScores,
    state: DerivedState,
    rows: np.ndarray,
    engagements: np.ndarray,
    impressions: np.ndarray,
    user_impressions: np.ndarray,
    social_counts: Mapping[str, float],
    context: Context,
    settings: RecommendSettings,
    now: float,
) -> FeatureTable:
    n = len(cands)
    x = np.zeros((n, len(b.FEATURES)))
    col = b.FEATURE_INDEX
    best_cluster = np.full(n, -1, dtype=np.int64)
    best_query = np.full(n, -1, dtype=np.int64)
    if n == 0:
        return FeatureTable(x, np.zeros(0), np.zeros(0), np.zeros(0), best_cluster, best_query,
                            np.zeros(0, dtype=np.int64), [], np.zeros(0),
                            np.zeros(0, dtype=np.int64))  # fmt: skip
    v = cands.visual

    clusters = profile.clusters
    if clusters:
        cvec = np.stack([c.vector for c in clusters])
        imp = np.array([c.importance for c in clusters])
        sims = (v @ cvec.T) * (0.75 + 0.25 * imp / imp.max())[None, :]
        best_cluster = np.argmax(sims, axis=1)
        content = sims.max(axis=1)
        centroid = profile.centroid
        if centroid is not None:
            # Mostly the best cluster, partly what the likes share: the best cluster alone
            # ranks look-alikes of one like first (on the demo world, 5 red likes of
            # different shapes: 64 % red in the top 20 by the best cluster, 81 % with this
            # blend), while a post just like one of the likes still scores highest.
            content = 0.7 * content + 0.3 * (v @ centroid)
        x[:, col[b.CONTENT]] = b.scale_unit(content)

    texts = [q for q in queries if q.kind not in ("cluster", "seed")]
    if texts:
        tvec = np.stack([q.vector for q in texts])
        w = np.array([q.weight for q in texts])
        visual_sim = v @ tvec.T
        caption_sim = visual_sim.copy()  # an item without a caption: its visual vector's
        if cands.has_caption.any():
            caption_sim[cands.has_caption] = cands.caption_rows @ tvec.T
        sims = 0.5 * (visual_sim + caption_sim) * w[None, :]
        best_query = np.argmax(sims, axis=1)
        x[:, col[b.INTEREST]] = b.scale_unit(sims.max(axis=1))

    if seed_vector is not None:
        x[:, col[b.SEED]] = b.scale_unit(v @ seed_vector)

    # ``rows`` are the candidates' rows in ``state`` (``state.rows_of(cands.ids)``), and
    # ``coscores`` are over this snapshot's graph (kept ones are reused only while it serves),
    # whose rows are the snapshot's first rows.
    co, co_counts = coscores.lookup_rows(rows)
    x[:, col[b.COENGAGEMENT]] = b.scale_max(co)

    keys = {
        "global": "global", **context_keys(context.device, context.local_hour, context.location)
    }
    levels = {kind: state.trending_levels(key).at(rows) for kind, key in keys.items()}
    total_w = sum(POPULARITY_KEY_WEIGHTS[k] for k in keys)
    pop = sum(POPULARITY_KEY_WEIGHTS[k] * pop_scale(levels[k]) for k in keys) / total_w
    x[:, col[b.POPULARITY]] = pop
    popular_in = _popular_in(levels, n)

    cohort = state.cohorts.assign(profile.taste)
    if cohort is not None:
        x[:, col[b.COHORT]] = pop_scale(state.cohort_levels(cohort).at(rows))

    creators = cands.creators
    recency = _recency(cands.items, now, settings.freshness_half_life_s)
    # Most users follow nobody and have engaged with few creators: those columns stay 0.
    follows = profile.follows
    if follows:
        followed = np.fromiter(map(follows.__contains__, creators), dtype=bool, count=n)
        x[:, col[b.FOLLOWING]] = np.where(followed, 0.5 + 0.5 * recency, 0.0)
    affinities = profile.summary.creator_affinity
    if affinities:
        affinity = values_at(affinities, creators)
        x[:, col[b.CREATOR_AFFINITY]] = affinity / (affinity + 1.0)
    x[:, col[b.SOCIAL]] = b.scale_max(values_at(social_counts, cands.ids))
    x[:, col[b.FRESHNESS]] = recency

    if profile.negative_vectors.shape[0]:
        neg = (v @ profile.negative_vectors.T) * profile.negative_weights[None, :]
        x[:, col[b.NEGATIVE]] = np.clip(
            b.scale_unit(neg.max(axis=1)) * min(1.0, float(profile.negative_weights.max())), 0, 1
        )
    x[:, col[b.FATIGUE]] = np.clip(user_impressions / settings.max_impressions, 0.0, 1.0)

    return FeatureTable(
        x=x,
        item_conf=b.item_confidence(engagements, settings.item_prior),
        engagements=engagements,
        impressions=impressions,
        best_cluster=best_cluster,
        best_query=best_query,
        coeng_counts=co_counts,
        popular_in=popular_in,
        user_impressions=user_impressions,
        rows=rows,
    )


def _popular_in(levels: Mapping[str, np.ndarray], n: int) -> list[str]:
    """Per item, the most specific context kind where it is among the popular (level >= 0.2)."""
    order = ("location_hour", "location", "hour", "device", "global")
    kinds = np.full(n, "", dtype=object)
    for kind in reversed(order):  # the most specific kind is written last and wins
        if kind in levels:
            kinds[np.asarray(levels[kind]) >= 0.2] = kind
    return kinds.tolist()


def _recency(items: Sequence[ItemInfo], now: float, half_life_s: float) -> np.ndarray:
    created = np.array(
        [float(i.created_at) if i.created_at is not None else -np.inf for i in items]
    )
    age = np.maximum(now - created, 0.0)
    return np.where(np.isfinite(created), np.power(0.5, age / half_life_s), 0.0)
