"""The cold pool: stored items without a single event, and what their content predicts.

Engagement-based sources and features know nothing of an item nobody has engaged with, so
content is all there is to go on, in two ways:

- *match*: how near the item is to a user's tastes (the cold candidate source);
- *appeal*: how much engagement items with content like it get (a famous title, a
  crowd-pleasing picture). A ridge regression from the content vector to
  log(1 + positive engagements), fitted on the liked items at each rebuild, scores every pool
  item; an item's appeal is the engagement its content predicts as a share of the pool's
  best prediction, and any candidate's can be computed the same way. A ratio rather than a
  rank, so that the exploration prior separates the few items predicted far above the rest
  (a rank puts the best hundred within a few hundredths of each other).

Built off the request path with the rest of the derived state; pure apart from reading the
store in :func:`build_cold_pool`.
"""

from __future__ import annotations

import heapq
from collections.abc import Collection
from dataclasses import dataclass, field

import numpy as np

from mediarec.encoders import l2_normalize
from mediarec.server.recommend.profile import item_vector
from mediarec.server.store import VectorStore, schema

_GET_BATCH = 256


@dataclass(frozen=True)
class ColdPool:
    """Pool items newest first, their unit content vectors (same rows), and the appeal model:
    ridge weights and the pool's best prediction, which scales an appeal to [0, 1]."""

    ids: tuple[str, ...] = ()
    vectors: np.ndarray = field(default_factory=lambda: np.zeros((0, 0), np.float32))
    weights: np.ndarray = field(default_factory=lambda: np.zeros(0))
    best_prediction: float = 0.0  # predicted log(1 + engagements) of the pool's best item
    by_appeal: tuple[str, ...] = ()  # the ids, best appeal first

    def appeal(self, vectors: np.ndarray) -> np.ndarray | None:
        """Each row's appeal: its predicted engagements over those of the pool's best item,
        in [0, 1] (all zeros when no pool item is predicted any); None without a model, or
        for vectors of another dimension."""
        if not self.ids or vectors.ndim != 2 or self.weights.shape != (vectors.shape[1] + 1,):
            return None
        best = self.best_prediction
        if best <= 0.0:
            return np.zeros(vectors.shape[0])
        predicted = np.clip(predict_appeal(self.weights, vectors), 0.0, best)
        return np.expm1(predicted) / np.expm1(best)


def build_cold_pool(
    store: VectorStore,
    engaged: Collection[str],
    size: int,
    engaged_vectors: np.ndarray,
    engagements: np.ndarray,
    ridge: float,
) -> ColdPool:
    """The ``size`` newest stored items outside ``engaged`` (undated ones count as oldest),
    with an appeal model fitted on ``engaged_vectors`` (unit rows) and their
    ``engagements``. Items with no vector are left out."""
    ids, vectors = newest_unengaged(store, engaged, size)
    if not ids:
        return ColdPool()
    weights = fit_appeal(engaged_vectors, engagements, ridge)
    predicted = predict_appeal(weights, vectors)
    order = np.argsort(-predicted, kind="stable")
    return ColdPool(
        ids=ids,
        vectors=vectors,
        weights=weights,
        best_prediction=float(predicted.max()),
        by_appeal=tuple(ids[i] for i in order),
    )


def newest_unengaged(
    store: VectorStore, engaged: Collection[str], size: int
) -> tuple[tuple[str, ...], np.ndarray]:
    """The ``size`` newest stored items outside ``engaged`` and their unit content vectors
    (visual, else caption)."""
    if size <= 0:
        return (), np.zeros((0, 0), dtype=np.float32)
    newest = heapq.nlargest(size, (
        (int(p.payload.get(schema.CREATED_AT) or 0), p.media_id)
        for p in store.iter_payloads([schema.CREATED_AT])
        if p.media_id not in engaged
    ))  # fmt: skip
    wanted = [media_id for _, media_id in newest]
    found: dict[str, np.ndarray] = {}
    for start in range(0, len(wanted), _GET_BATCH):
        points = store.get(wanted[start : start + _GET_BATCH], with_vectors=True)
        for media_id, point in points.items():
            vector = item_vector(point)
            if vector is not None:
                found[media_id] = vector
    ids = tuple(m for m in wanted if m in found)
    if not ids:
        return (), np.zeros((0, 0), dtype=np.float32)
    return ids, l2_normalize(np.stack([found[m] for m in ids]).astype(np.float32))


def fit_appeal(vectors: np.ndarray, engagements: np.ndarray, ridge: float) -> np.ndarray:
    """Ridge weights (one per dimension, then the intercept) that predict log(1 + engagements)
    from unit content vectors; zeros when there is nothing to fit."""
    if vectors.ndim != 2 or vectors.shape[0] == 0:
        return np.zeros(0)
    x = np.hstack([vectors.astype(np.float64), np.ones((vectors.shape[0], 1))])
    y = np.log1p(np.maximum(np.asarray(engagements, dtype=np.float64), 0.0))
    return np.linalg.solve(x.T @ x + ridge * np.eye(x.shape[1]), x.T @ y)


def predict_appeal(weights: np.ndarray, vectors: np.ndarray) -> np.ndarray:
    """Predicted log(1 + engagements) of each row; zeros when the weights do not fit them."""
    if weights.shape != (vectors.shape[1] + 1,):
        return np.zeros(vectors.shape[0])
    return vectors.astype(np.float64) @ weights[:-1] + weights[-1]
