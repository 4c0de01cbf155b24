"""Top-k metrics per user, catalogue coverage, and percentile-bootstrap confidence intervals.

Conventions (as in Steck 2019 and Liang et al. 2018): binary relevance;
``Recall@k = hits / min(k, |relevant|)``; ``NDCG@k`` divides DCG by the ideal DCG of
``min(k, |relevant|)`` hits. Ranked lists are rows of post indices padded with -1.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np


def _discounts(k: int) -> np.ndarray:
    return 1.0 / np.log2(np.arange(2, k + 2))


def hits_matrix(ranked: np.ndarray, relevant: Sequence[set[int]]) -> np.ndarray:
    """(users, k) 0/1: whether each ranked item is relevant to its user."""
    hits = np.zeros(ranked.shape, dtype=np.float64)
    for row, rel in enumerate(relevant):
        if rel:
            hits[row] = [1.0 if int(i) in rel else 0.0 for i in ranked[row]]
    return hits


def recall_at_k(ranked: np.ndarray, relevant: Sequence[set[int]], k: int) -> np.ndarray:
    """Per user: hits in the top k over min(k, |relevant|); NaN for users with none relevant."""
    hits = hits_matrix(ranked[:, :k], relevant).sum(axis=1)
    sizes = np.array([min(k, len(rel)) for rel in relevant], dtype=np.float64)
    return np.divide(hits, sizes, out=np.full(len(relevant), np.nan), where=sizes > 0)


def ndcg_at_k(ranked: np.ndarray, relevant: Sequence[set[int]], k: int) -> np.ndarray:
    """Per user: DCG@k over the ideal DCG@k; NaN for users with nothing relevant."""
    d = _discounts(k)
    dcg = hits_matrix(ranked[:, :k], relevant) @ d[: ranked[:, :k].shape[1]]
    ideal_cum = np.concatenate([[0.0], np.cumsum(d)])
    ideal = np.array([ideal_cum[min(k, len(rel))] for rel in relevant])
    return np.divide(dcg, ideal, out=np.full(len(relevant), np.nan), where=ideal > 0)


def coverage(ranked: np.ndarray, pool: np.ndarray, k: int) -> float:
    """Share of the ``pool`` items (indices) that appear in at least one user's top k."""
    if pool.size == 0:
        return float("nan")
    shown = np.unique(ranked[:, :k])
    shown = shown[shown >= 0]
    return float(np.isin(pool, shown).mean())


@dataclass(frozen=True)
class Interval:
    mean: float
    low: float
    high: float
    n: int

    def above(self, other: Interval) -> bool:
        """"Beats": this interval lies entirely above the other (they don't overlap)."""
        return self.low > other.high


def bootstrap_ci(
    values: np.ndarray, rng: np.random.Generator, resamples: int = 1000, level: float = 0.95
) -> Interval:
    """Mean and percentile-bootstrap interval of per-user values (NaNs dropped)."""
    v = np.asarray(values, dtype=np.float64)
    v = v[~np.isnan(v)]
    if v.size == 0:
        return Interval(float("nan"), float("nan"), float("nan"), 0)
    idx = rng.integers(0, v.size, size=(resamples, v.size))
    means = v[idx].mean(axis=1)
    tail = (1.0 - level) / 2.0
    low, high = np.quantile(means, [tail, 1.0 - tail])
    return Interval(float(v.mean()), float(low), float(high), int(v.size))
