"""The baselines of bench-real, each a function from training interactions to item scores.

Every model sees the same :class:`Interactions` (positives weigh 1, the rest 0 but count as
seen) and returns a dense ``(users, items)`` score matrix for the users asked about; ranking
(seen items removed, ties broken by popularity) is shared by all of them in ``rank``.

| model | knobs searched on validation |
|---|---|
| popularity | time window (days before the end of training) |
| item-kNN | neighbours k, shrinkage, similarity exponent |
| EASE (Steck 2019) | L2 strength lambda |
| ALS (``implicit``) | factors, regularisation, alpha, iterations |
| content kNN | none: the user's liked items' text vectors, summed, against every item's |
| hybrid | EASE (its tuned lambda) + w x content, each min-max scaled per user; w |
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import scipy.sparse as sp
from threadpoolctl import threadpool_limits

logger = logging.getLogger(__name__)

DAY_S = 86_400.0
Params = Mapping[str, Any]


@dataclass(frozen=True)
class Interactions:
    """Training interactions over ``n_users x n_items`` (dense indices of the whole dataset)."""

    n_users: int
    n_items: int
    users: np.ndarray
    items: np.ndarray
    positive: np.ndarray  # bool per interaction
    timestamps: np.ndarray

    def positives(self) -> sp.csr_matrix:
        """Binary user x item matrix of positives (duplicates collapse)."""
        u, i = self.users[self.positive], self.items[self.positive]
        matrix = sp.csr_matrix(
            (np.ones(u.size, dtype=np.float32), (u, i)), shape=(self.n_users, self.n_items)
        )
        matrix.data[:] = 1.0
        return matrix

    def seen(self) -> sp.csr_matrix:
        matrix = sp.csr_matrix(
            (np.ones(self.users.size, dtype=np.float32), (self.users, self.items)),
            shape=(self.n_users, self.n_items),
        )
        matrix.data[:] = 1.0
        return matrix

    def with_rows(
        self, users: np.ndarray, items: np.ndarray, positive: np.ndarray, timestamps: np.ndarray
    ) -> Interactions:
        return Interactions(
            self.n_users,
            self.n_items,
            np.concatenate([self.users, users]),
            np.concatenate([self.items, items]),
            np.concatenate([self.positive, positive]),
            np.concatenate([self.timestamps, timestamps]),
        )


Scorer = Callable[[np.ndarray], np.ndarray]  # users -> (len(users), n_items) scores


def popularity(data: Interactions, params: Params) -> Scorer:
    window = float(params["window_days"]) * DAY_S
    end = float(data.timestamps.max()) if data.timestamps.size else 0.0
    keep = data.positive & (data.timestamps >= end - window)
    counts = np.bincount(data.items[keep], minlength=data.n_items).astype(np.float64)
    return lambda users: np.broadcast_to(counts, (len(users), data.n_items)).copy()


def item_knn(data: Interactions, params: Params) -> Scorer:
    x = data.positives().astype(np.float64)
    co = (x.T @ x).tocsr()
    co.setdiag(0.0)
    co.eliminate_zeros()
    norms = np.sqrt(np.asarray(x.sum(axis=0)).ravel())
    co = co.tocoo()
    sims = co.data / (norms[co.row] * norms[co.col] + float(params["shrinkage"]))
    sims = sims ** float(params["exponent"])
    sim = _top_k_per_row(sp.csr_matrix((sims, (co.row, co.col)), shape=co.shape), int(params["k"]))
    return lambda users: np.asarray((x[users] @ sim).todense())


def ease(data: Interactions, params: Params) -> Scorer:
    """EASE through the Woodbury identity in user space (fewer users than items)."""
    x = data.positives().astype(np.float64)
    lam = float(params["lambda"])
    active = np.flatnonzero(np.asarray(x.sum(axis=1)).ravel() > 0)
    xa = x[active]
    # P = (X^T X + lam I)^-1 = (I - X^T (X X^T + lam I)^-1 X) / lam
    inner = np.linalg.inv((xa @ xa.T).toarray() + lam * np.eye(active.size))
    xd = xa.toarray()
    diag_p = (1.0 - np.einsum("ij,ij->j", xd, inner @ xd)) / lam

    def scores(users: np.ndarray) -> np.ndarray:
        xu = x[users].toarray()
        p_rows = (xu - (xu @ xd.T) @ inner @ xd) / lam  # X_u P
        # B = I - P diag(1/diag P), zero diagonal: scores = X_u B = X_u - (X_u P) / diag P
        return xu - p_rows / diag_p

    return scores


def als(data: Interactions, params: Params) -> Scorer:
    from implicit.als import AlternatingLeastSquares

    x = data.positives()
    model = AlternatingLeastSquares(
        factors=int(params["factors"]),
        regularization=float(params["regularization"]),
        alpha=float(params["alpha"]),
        iterations=int(params["iterations"]),
        random_state=int(params.get("seed", 0)),
        use_gpu=False,
    )
    # implicit's own threads do the work; a multithreaded BLAS underneath only contends.
    with threadpool_limits(1, "blas"):
        model.fit(x.astype(np.float32), show_progress=False)
    user_factors = np.asarray(model.user_factors)
    item_factors = np.asarray(model.item_factors)
    return lambda users: user_factors[users] @ item_factors.T


def content_knn(data: Interactions, vectors: np.ndarray) -> Scorer:
    x = data.positives()

    def scores(users: np.ndarray) -> np.ndarray:
        profile = np.asarray(x[users] @ vectors)
        return profile @ vectors.T

    return scores


def hybrid(collaborative: Scorer, content: Scorer, weight: float) -> Scorer:
    def scores(users: np.ndarray) -> np.ndarray:
        return _minmax(collaborative(users)) + weight * _minmax(content(users))

    return scores


def rank(
    scorer: Scorer,
    users: np.ndarray,
    exclude: sp.csr_matrix,
    tie: np.ndarray,
    k: int,
    batch: int = 256,
) -> np.ndarray:
    """Top ``k`` item indices per user, excluding ``exclude``'s items; ties by ``tie``."""
    out = np.full((len(users), k), -1, dtype=np.int64)
    for start in range(0, len(users), batch):
        chunk = users[start : start + batch]
        scores = np.asarray(scorer(chunk), dtype=np.float64) + 1e-9 * tie
        rows, cols = exclude[chunk].nonzero()
        scores[rows, cols] = -np.inf
        top = np.argpartition(-scores, k, axis=1)[:, :k]
        order = np.argsort(-np.take_along_axis(scores, top, axis=1), axis=1, kind="stable")
        out[start : start + len(chunk)] = np.take_along_axis(top, order, axis=1)
    return out


def _top_k_per_row(matrix: sp.csr_matrix, k: int) -> sp.csr_matrix:
    matrix = matrix.tocsr()
    rows, cols, vals = [], [], []
    for r in range(matrix.shape[0]):
        lo, hi = matrix.indptr[r], matrix.indptr[r + 1]
        if hi == lo:
            continue
        data, idx = matrix.data[lo:hi], matrix.indices[lo:hi]
        if hi - lo > k:
            keep = np.argpartition(-data, k)[:k]
            data, idx = data[keep], idx[keep]
        rows.append(np.full(idx.size, r))
        cols.append(idx)
        vals.append(data)
    if not rows:
        return sp.csr_matrix(matrix.shape)
    return sp.csr_matrix(
        (np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))), shape=matrix.shape
    )


def _minmax(scores: np.ndarray) -> np.ndarray:
    low = scores.min(axis=1, keepdims=True)
    span = scores.max(axis=1, keepdims=True) - low
    return np.divide(scores - low, span, out=np.zeros_like(scores), where=span > 0)
