"""Single-source baselines and the collaborative reference, scored over the whole catalogue.

- popularity: time-decayed count of positive events (half-life tuned on validation);
- content-only: item-kNN on the demo CLIP vectors: the nearest items to each item a user
  engaged with, summed over the user's engaged items (temperature, neighbours and the age of
  eligible items tuned on validation);
- co-engagement-only: mediarec's own item-to-item co-engagement (``build_coengagement`` with
  the recommender's fading of old co-engagements, and ``CoEngagement.scores``: the
  recommender's ``coengagement`` source), used alone;
- EASE (Steck 2019): ``B = I - P diagMat(1 / diag(P))`` with ``P = (X^T X + lambda I)^-1``,
  computed exactly through the Woodbury identity in user space (fewer users than items), so no
  item-by-item matrix is ever formed; lambda tuned on validation.

Every method excludes the user's seen items and items outside the catalogue; ties (and users
without history, whose scores are all equal) are broken by the popularity baseline's order.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from mediarec.server.recommend.profile import decay
from mediarec.server.recommend.settings import RecommendSettings
from mediarec.server.recommend.state import build_coengagement

logger = logging.getLogger(__name__)

DAY_S = 86_400.0
_BATCH = 256
_TIE = 1e-7  # popularity rank added to scores: breaks exact ties only


@dataclass(frozen=True)
class TrainView:
    """What every baseline may learn from: the train log up to ``split``, nothing after."""

    n_posts: int
    split: float
    post_time: np.ndarray  # (P,)
    catalog: np.ndarray  # (P,) bool: posts that exist during the evaluation window
    pos_user: np.ndarray  # positive events (one row per event)
    pos_post: np.ndarray
    pos_ts: np.ndarray
    seen: Mapping[int, np.ndarray]  # user -> posts with any train event (excluded)
    positives: Mapping[int, Mapping[int, float]]  # user -> post -> decayed weight (mediarec's)
    # user -> positive post -> the time of its newest positive, newest first
    recent: Mapping[int, Mapping[int, float]]


def rank_top_k(
    users: np.ndarray,
    view: TrainView,
    scores_of: Callable[[np.ndarray], np.ndarray],
    tie: np.ndarray,
    k: int,
) -> np.ndarray:
    """(len(users), k) best unseen catalogue posts per user; -1 pads when fewer exist."""
    out = np.full((users.size, k), -1, dtype=np.int64)
    for start in range(0, users.size, _BATCH):
        batch = users[start : start + _BATCH]
        scores = scores_of(batch).astype(np.float64) + _TIE * tie[None, :]
        scores[:, ~view.catalog] = -np.inf
        for row, u in enumerate(batch):
            seen = view.seen.get(int(u))
            if seen is not None and seen.size:
                scores[row, seen] = -np.inf
        top = np.argpartition(-scores, k - 1, axis=1)[:, :k]
        order = np.argsort(-np.take_along_axis(scores, top, axis=1), axis=1, kind="stable")
        top = np.take_along_axis(top, order, axis=1)
        valid = np.isfinite(np.take_along_axis(scores, top, axis=1))
        out[start : start + batch.size] = np.where(valid, top, -1)
    return out


def popularity_rank(scores: np.ndarray) -> np.ndarray:
    """Popularity as a tie-breaker in [0, 1): 1 - rank / n, the most popular highest."""
    order = np.argsort(-scores, kind="stable")
    rank = np.empty(scores.size)
    rank[order] = np.arange(scores.size)
    return 1.0 - rank / max(1, scores.size)


# ---------------------------------------------------------------------------------------------
# Popularity


def popularity_scores(view: TrainView, half_life_days: float | None) -> np.ndarray:
    """Decayed count of positive events per post (``None``: plain count)."""
    if half_life_days is None:
        weights = np.ones(view.pos_ts.size)
    else:
        weights = 0.5 ** ((view.split - view.pos_ts) / (half_life_days * DAY_S))
    return np.bincount(view.pos_post, weights=weights, minlength=view.n_posts)


# ---------------------------------------------------------------------------------------------
# Content-only: item-kNN over content vectors


class ContentKnn:
    """score(u, j) = sum over u's positive items i of w_ui * exp((cos(i, j) - 1) / tau),
    over the ``neighbours`` nearest eligible posts of each i."""

    def __init__(
        self,
        vectors: np.ndarray,
        view: TrainView,
        sources: np.ndarray,
        max_age_days: float | None,
        neighbours: int,
    ) -> None:
        eligible = view.catalog.copy()
        if max_age_days is not None:
            eligible &= view.post_time >= view.split - max_age_days * DAY_S
        self.n_posts = view.n_posts
        self.view = view
        candidates = np.flatnonzero(eligible)
        m = min(neighbours, candidates.size)
        self.row_of = {int(i): r for r, i in enumerate(sources)}
        self.neighbours = np.zeros((sources.size, m), dtype=np.int64)
        self.sims = np.zeros((sources.size, m), dtype=np.float32)
        cand_vectors = vectors[candidates]
        for start in range(0, sources.size, 2048):
            block = vectors[sources[start : start + 2048]] @ cand_vectors.T
            top = np.argpartition(-block, m - 1, axis=1)[:, :m]
            self.neighbours[start : start + block.shape[0]] = candidates[top]
            self.sims[start : start + block.shape[0]] = np.take_along_axis(block, top, axis=1)

    def scores(self, users: np.ndarray, tau: float) -> np.ndarray:
        out = np.zeros((users.size, self.n_posts))
        kernel = np.exp((self.sims.astype(np.float64) - 1.0) / tau)
        for row, u in enumerate(users):
            positives = self.view.positives.get(int(u), {})
            rows = [self.row_of[p] for p in positives if p in self.row_of]
            if not rows:
                continue
            w = np.array([positives[p] for p in positives if p in self.row_of])
            contrib = kernel[rows] * w[:, None]
            out[row] = np.bincount(self.neighbours[rows].ravel(), weights=contrib.ravel(),
                                   minlength=self.n_posts)
        return out


# ---------------------------------------------------------------------------------------------
# Co-engagement-only: mediarec's item-kNN source alone


class CoEngagementOnly:
    def __init__(
        self,
        view: TrainView,
        settings: RecommendSettings,
        shrinkage: float,
        users: Sequence[int] | None = None,
    ) -> None:
        """The graph over the histories of ``users`` (default: everyone in ``view``)."""
        self.view = view
        users = list(view.recent) if users is None else users
        self.graph = build_coengagement(
            ([f"{p}" for p in view.recent[u]] for u in users),
            settings.coeng_neighbours,
            shrinkage,
            settings.coeng_max_user_items,
            settings.coeng_alpha,
            recency=(
                [decay(view.split - t, settings.coeng_half_life_s) for t in view.recent[u].values()]
                for u in users
            ),
        )
        self.post_of = np.array([int(m) for m in self.graph.ids], dtype=np.int64)

    def scores(self, users: np.ndarray) -> np.ndarray:
        out = np.zeros((users.size, self.view.n_posts))
        for row, u in enumerate(users):
            positives = {f"{p}": w for p, w in self.view.positives.get(int(u), {}).items()}
            co = self.graph.scores(positives)
            if co.items.size:
                out[row, self.post_of[co.items]] = co.totals
        return out


# ---------------------------------------------------------------------------------------------
# EASE


class Ease:
    """EASE over the binary user x item matrix of positive train events.

    With K = X X^T = Q diag(e) Q^T and C = Q^T X, the Woodbury identity gives
    ``X P = (X - Q diag(e / (e + lambda)) C) / lambda`` and
    ``diag(P) = (1 - sum_k C_kj^2 / (e_k + lambda)) / lambda``; a user's scores are
    ``x_u - (x_u P) / diag(P)``. Items without train positives have all-zero columns, so
    dropping them changes nothing: their EASE score is exactly 0.
    """

    def __init__(self, view: TrainView) -> None:
        self.n_posts = view.n_posts
        users = np.unique(view.pos_user)
        items = np.unique(view.pos_post)
        self.user_row = {int(u): r for r, u in enumerate(users)}
        self.items = items
        x = np.zeros((users.size, items.size), dtype=np.float64)
        x[np.searchsorted(users, view.pos_user), np.searchsorted(items, view.pos_post)] = 1.0
        self.x = x
        gram = x @ x.T
        self.eigenvalues, self.q = np.linalg.eigh(gram)
        self.eigenvalues = np.maximum(self.eigenvalues, 0.0)
        self.c = self.q.T @ x

    @staticmethod
    def from_matrix(x: np.ndarray) -> Ease:
        """An EASE over a given dense 0/1 matrix (users x items), for tests."""
        model = Ease.__new__(Ease)
        model.n_posts = x.shape[1]
        model.user_row = {u: u for u in range(x.shape[0])}
        model.items = np.arange(x.shape[1])
        model.x = np.asarray(x, dtype=np.float64)
        model.eigenvalues, model.q = np.linalg.eigh(model.x @ model.x.T)
        model.eigenvalues = np.maximum(model.eigenvalues, 0.0)
        model.c = model.q.T @ model.x
        return model

    def scorer(self, lam: float) -> Callable[[np.ndarray], np.ndarray]:
        """Scores of users at regularisation ``lam`` (users without train positives: zeros)."""
        diag_p = (1.0 - (self.c**2).T @ (1.0 / (self.eigenvalues + lam))) / lam
        shrink = self.eigenvalues / (self.eigenvalues + lam)

        def scores(users: np.ndarray) -> np.ndarray:
            out = np.zeros((users.size, self.n_posts))
            rows = np.array([self.user_row.get(int(u), -1) for u in users])
            known = rows >= 0
            if known.any():
                xr = self.x[rows[known]]
                xp = (xr - (self.q[rows[known]] * shrink[None, :]) @ self.c) / lam
                out[np.ix_(known, self.items)] = xr - xp / diag_p[None, :]
            return out

        return scores


def ease_direct(x: np.ndarray, lam: float) -> np.ndarray:
    """The textbook closed form in item space (for tests): B with a zero diagonal."""
    g = x.T @ x + lam * np.eye(x.shape[1])
    p = np.linalg.inv(g)
    return np.eye(x.shape[1]) - p / np.diag(p)[None, :]
