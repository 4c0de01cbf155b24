"""The one blended score: per-signal features, gated by what is known, weighted and summed.

Pure functions only. A candidate's features are each in [0, 1] (scaled within the request).
Each feature's *gate* depends on how much is known about the user (``user_confidence``) and the
item (``item_confidence``); that is the cold-start awareness:

- content dominates for new items (its gate shrinks as the item becomes known, and for an
  unknown item it also stands in for the co-engagement signal the item cannot have yet, as
  far as the user is known),
- co-engagement takes over for well-known items (its gate grows with item knowledge),
- popularity in context (as far as engagement backs it) and cohort favourites carry users
  with little or no history.

``score = bias + sum_f weight_f * gate_f * feature_f`` and each term is reported in the
breakdown, so the breakdown adds up to the score. The trained ranker (``ranker.py``) learns the
weights and bias over the same gated features.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from mediarec.server.recommend.types import Surface

CONTENT = "content"
COENGAGEMENT = "coengagement"
POPULARITY = "popularity"
COHORT = "cohort"
INTEREST = "interest"
SEED = "seed"
FOLLOWING = "following"
CREATOR_AFFINITY = "creator_affinity"
SOCIAL = "social"
FRESHNESS = "freshness"
NEGATIVE = "negative"
FATIGUE = "fatigue"

FEATURES: tuple[str, ...] = (
    CONTENT,
    COENGAGEMENT,
    POPULARITY,
    COHORT,
    INTEREST,
    SEED,
    FOLLOWING,
    CREATOR_AFFINITY,
    SOCIAL,
    FRESHNESS,
    NEGATIVE,
    FATIGUE,
)
FEATURE_INDEX: Mapping[str, int] = {name: i for i, name in enumerate(FEATURES)}
BIAS = "bias"

# Default weights (chosen on the quality benchmark's validation window, bench/tune_blend.py,
# except the seed's: the benchmark makes no seeded request, so its weight is set by what a
# seeded request should do, tests/test_recommender.py): the ranker's starting point and the
# fallback without a trained model.
DEFAULT_WEIGHTS: Mapping[str, float] = {
    CONTENT: 1.0,
    COENGAGEMENT: 1.4,
    POPULARITY: 0.8,
    COHORT: 0.5,
    INTEREST: 0.9,
    SEED: 3.0,
    FOLLOWING: 0.5,
    CREATOR_AFFINITY: 0.3,
    SOCIAL: 0.3,
    FRESHNESS: 0.15,
    NEGATIVE: -0.8,
    FATIGUE: -0.4,
}

FEED_FOLLOWING_BOOST = 1.5  # FEED favours followed creators


@dataclass(frozen=True)
class Blended:
    score: float
    breakdown: Mapping[str, float]  # per-signal contributions; they add up to ``score``


def user_confidence(positives: float, prior: float) -> float:
    """How much is known about a user, in [0, 1): positives / (positives + prior)."""
    positives = max(0.0, positives)
    return positives / (positives + prior)


def item_confidence(engagements: np.ndarray | float, prior: float) -> np.ndarray:
    """How much is known about each item, in [0, 1): engagements / (engagements + prior)."""
    e = np.maximum(np.asarray(engagements, dtype=np.float64), 0.0)
    return e / (e + prior)


def gates(
    user_conf: float,
    item_conf: np.ndarray,
    surface: Surface = Surface.FEED,
    *,
    personal_floor: float = 0.5,
    popularity_known: float = 0.3,
    popularity_new: float = 1.5,
    popularity_evidence: float = 1.0,
    cold_content_by_user: bool = True,
) -> np.ndarray:
    """Per-candidate, per-feature gates, shape ``(n, len(FEATURES))``; in [0, 1.8] by default.

    ``personal_floor`` is how much the user's own similarity signals (content, co-engagement)
    count for a user with no history, growing linearly to 1 as ``user_conf`` does: a few likes
    say little yet, so popularity leads until the profile has evidence. Popularity's gate falls
    from ``popularity_new`` (no history) to ``popularity_known`` (a well-known user), times
    ``item_conf ** popularity_evidence``; ``cold_content_by_user`` lets content stand in for an
    unknown item's co-engagement only as far as the user is known. The defaults were chosen on
    the quality benchmark's validation window (``python -m bench.tune_blend``), never on its
    test window; the keywords are there to compare variants with.
    """
    if popularity_evidence < 0:
        raise ValueError(f"popularity_evidence must be >= 0, got {popularity_evidence}")
    v = np.clip(np.asarray(item_conf, dtype=np.float64).reshape(-1), 0.0, 1.0)
    u = float(np.clip(user_conf, 0.0, 1.0))
    g = np.ones((v.shape[0], len(FEATURES)), dtype=np.float64)
    personal = personal_floor + (1.0 - personal_floor) * u
    # Content stands in for the co-engagement an unknown item cannot have yet, so a new post
    # that matches as well as a known one can score as high (1.8 when unknown, 0.4 when
    # known), but only as far as the user is known: how alike a post is to one or two likes
    # is weak evidence next to what the crowd engages with.
    stand_in = 1.4 * (u if cold_content_by_user else 1.0)
    g[:, FEATURE_INDEX[CONTENT]] = (0.4 + stand_in * (1.0 - v)) * personal
    g[:, FEATURE_INDEX[COENGAGEMENT]] = v * personal
    # Popularity is relative to the most popular item, so in a small or quiet catalogue a post
    # with two likes looks as popular as any; it counts as far as engagement backs it.
    evidence = v**popularity_evidence
    g[:, FEATURE_INDEX[POPULARITY]] = (
        popularity_known + (popularity_new - popularity_known) * (1.0 - u)
    ) * evidence
    g[:, FEATURE_INDEX[COHORT]] = 1.0 - u
    g[:, FEATURE_INDEX[INTEREST]] = 1.0 - 0.5 * u
    g[:, FEATURE_INDEX[FRESHNESS]] = 1.0 - v
    if surface is Surface.FEED:
        g[:, FEATURE_INDEX[FOLLOWING]] = FEED_FOLLOWING_BOOST
    return g


def weight_vector(weights: Mapping[str, float]) -> np.ndarray:
    """Weights in FEATURES order; a feature the mapping leaves out weighs 0."""
    unknown = set(weights) - set(FEATURES)
    if unknown:
        raise ValueError(f"unknown blend features {sorted(unknown)}; features: {FEATURES}")
    return np.array([float(weights.get(name, 0.0)) for name in FEATURES], dtype=np.float64)


def blend_matrix(
    features: np.ndarray,
    user_conf: float,
    item_conf: np.ndarray,
    weights: np.ndarray,
    bias: float = 0.0,
    surface: Surface = Surface.FEED,
) -> tuple[np.ndarray, np.ndarray]:
    """Scores ``(n,)`` and contributions ``(n, F)`` for ``n`` candidates' features ``(n, F)``.

    Contributions exclude the bias; ``scores = contributions.sum(1) + bias``.
    """
    x = np.asarray(features, dtype=np.float64)
    if x.ndim != 2 or x.shape[1] != len(FEATURES):
        raise ValueError(f"features must have shape (n, {len(FEATURES)}), got {x.shape}")
    contributions = gates(user_conf, item_conf, surface) * x * weights[None, :]
    return contributions.sum(axis=1) + bias, contributions


def blend(
    features: Mapping[str, float],
    user_conf: float,
    item_conf: float,
    weights: Mapping[str, float] = DEFAULT_WEIGHTS,
    bias: float = 0.0,
    surface: Surface = Surface.FEED,
) -> Blended:
    """One candidate's blended score and its breakdown (non-zero terms, plus the bias if any)."""
    row = np.zeros((1, len(FEATURES)))
    for name, value in features.items():
        if name not in FEATURE_INDEX:
            raise ValueError(f"unknown blend feature {name!r}; features: {FEATURES}")
        row[0, FEATURE_INDEX[name]] = value
    scores, contributions = blend_matrix(
        row, user_conf, np.array([item_conf]), weight_vector(weights), bias, surface
    )
    return Blended(float(scores[0]), breakdown_of(contributions[0], bias))


def breakdown_of(contributions: np.ndarray, bias: float = 0.0) -> dict[str, float]:
    """The non-zero contributions by feature name (plus ``bias`` when non-zero)."""
    out = {name: float(c) for name, c in zip(FEATURES, contributions, strict=True) if c != 0.0}
    if bias != 0.0:
        out[BIAS] = float(bias)
    return out


def scale_unit(values: np.ndarray) -> np.ndarray:
    """Min-max scale to [0, 1] within a request; constant input maps to 1 where positive."""
    x = np.asarray(values, dtype=np.float64)
    if x.size == 0:
        return x
    lo, hi = float(x.min()), float(x.max())
    if hi - lo < 1e-12:
        return (x > 0).astype(np.float64)
    return (x - lo) / (hi - lo)


def scale_max(values: np.ndarray) -> np.ndarray:
    """Scale non-negative values by their maximum (0 stays 0, the best becomes 1)."""
    x = np.maximum(np.asarray(values, dtype=np.float64), 0.0)
    hi = float(x.max()) if x.size else 0.0
    return x / hi if hi > 0 else x
