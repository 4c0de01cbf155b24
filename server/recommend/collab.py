"""The collaborative core: ALS factors, item-item graphs and popularity over the event log.

``build_collab`` turns interactions (user, item, time, positive or not) into a frozen
:class:`CollabModel`; ``derived state`` builds one from the whole log, and ``train-ranker``
builds one per time cut from the history before it (so a training example's features never
contain its own label). A model proposes candidates for a user's history and computes the
collaborative columns of the learned ranker's features (``ltr_features.py``):

- ALS through ``implicit``, fitted on positives and, separately, on every interaction (a view
  says something too); a user's vector is folded in from their history at request time, so a
  user who is new since the last build is scored like everyone else.
- Item-kNN: cosine of positive co-occurrence, each item's best ``knn_neighbours`` kept, raised to
  ``knn_exponent`` (sharper neighbourhoods); the same over every interaction.
- RP3beta (Paudel et al. 2017): two-step random walk item -> user -> item, divided by the target's
  popularity to the ``rp3_beta``.
- Popularity: positives per item, over all time and in windows ending at the *user's* last event,
  so a user who returns after months, or a history replayed at another time, sees the catalogue
  as it was when they were active, and the item's first positive (its age on the catalogue).

No component fades with the age of an event: the catalogue's items may live for years. Time
enters as features (windows, ages, a user's most recent positives) that the ranker weighs.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, ClassVar

import numpy as np
import scipy.sparse as sp
from threadpoolctl import threadpool_limits

from mediarec.server.recommend.rows import RowValues, rows_of

logger = logging.getLogger(__name__)

DAY_S = 86_400.0
# Rows of an item x item product formed at once: bounds its memory by 1024 full rows at worst.
ITEM_BLOCK_ROWS = 1024
# Positives of item i at time t are keyed i * _TIME_SPAN + t (whole seconds), so that one sorted
# array answers "positives of these items between these times" with two searchsorted calls.
_TIME_SPAN = 1 << 34


@dataclass(frozen=True)
class CollabSettings:
    """The core's knobs (``recommend.collab_*`` in the configuration; chosen on validation)."""

    als_factors: int = 256
    als_regularization: float = 10.0
    als_alpha: float = 1.0
    als_iterations: int = 30
    knn_neighbours: int = 100
    knn_exponent: float = 2.0
    rp3_beta: float = 0.5
    rp3_neighbours: int = 100
    seed: int = 0


@dataclass(frozen=True)
class Interactions:
    """Events as parallel arrays over dense user and item indices."""

    n_users: int
    n_items: int
    users: np.ndarray  # int64
    items: np.ndarray  # int64
    timestamps: np.ndarray  # float64, seconds
    positive: np.ndarray  # bool

    def __post_init__(self) -> None:
        sizes = {a.shape[0] for a in (self.users, self.items, self.timestamps, self.positive)}
        if len(sizes) > 1:
            raise ValueError(f"interaction arrays differ in length: {sorted(sizes)}")

    def subset(self, keep: np.ndarray) -> Interactions:
        return Interactions(
            self.n_users, self.n_items, self.users[keep], self.items[keep],
            self.timestamps[keep], self.positive[keep],
        )  # fmt: skip

    def matrix(self, positives_only: bool) -> sp.csr_matrix:
        """Binary users x items matrix (repeated events collapse to 1)."""
        keep = self.positive if positives_only else np.ones(self.users.size, dtype=bool)
        m = sp.csr_matrix(
            (np.ones(int(keep.sum()), dtype=np.float32), (self.users[keep], self.items[keep])),
            shape=(self.n_users, self.n_items),
        )
        m.data[:] = 1.0
        return m


@dataclass(frozen=True)
class UserHistory:
    """One user's history as item indices of a :class:`CollabModel`."""

    positives: np.ndarray  # newest first, distinct
    interactions: np.ndarray  # every item engaged with in any way (positives included), distinct
    first_ts: float
    last_ts: float

    @property
    def empty(self) -> bool:
        return self.interactions.size == 0


@dataclass(frozen=True)
class UserTaste:
    """What the core's two ALS models make of one user's history: the user's vector in each,
    and the best ALS score of an item outside the history. Two vectors of the factors' width,
    so a server keeps it per user; the dense per-item scores it comes from (and the fold-ins'
    solves) are what costs."""

    als_user: np.ndarray  # float32, the factors' width; empty without a positive
    als_all_user: np.ndarray  # float32; empty without an interaction
    best_unseen_als: float  # 0 without a positive


@dataclass(frozen=True)
class UserScores:
    """One user's scores from each graph component in ``COLUMNS`` (rows: the core's item
    indices), and their taste, by which only the items asked for are scored (``features``).
    Their size grows with the history's neighbours, not the catalogue, so a server keeps them
    per user (``kept``), counted in its user cache's bytes."""

    COLUMNS: ClassVar[tuple[str, ...]] = ("knn", "knn_recent", "knn_recent20", "knn_all", "rp3")

    taste: UserTaste
    knn: RowValues
    knn_recent: RowValues
    knn_recent20: RowValues
    knn_all: RowValues
    rp3: RowValues
    # Every item's ALS score, on scores just computed (the taste's best unseen item needed
    # them): ``candidates`` reuses it rather than scoring every item again. Not kept.
    als: np.ndarray | None = None

    def kept(self) -> UserScores:
        """These scores without the per-item ALS array, to keep."""
        return replace(self, als=None)

    @property
    def nbytes(self) -> int:
        sparse = sum(getattr(self, name).nbytes for name in self.COLUMNS)
        dense = self.als.nbytes if self.als is not None else 0
        return int(sparse + dense + self.taste.als_user.nbytes + self.taste.als_all_user.nbytes)


@dataclass(frozen=True)
class Factors:
    """Item factors of an implicit-feedback ALS model, with what folding a user in needs."""

    items: np.ndarray  # (n_items, f) float32
    gram: np.ndarray  # items^T items, (f, f)
    regularization: float
    alpha: float

    def fold_in(self, history: np.ndarray) -> np.ndarray:
        """The user vector ALS would fit for these (positive) items, the items held fixed.

        Minimises sum_i c_ui (p_ui - x_u . y_i)^2 + reg |x_u|^2 with p = 1 on the history and
        0 elsewhere, confidence 1 + alpha on the history and 1 elsewhere (Hu, Koren and Volinsky
        2008): (Y^T Y + alpha Y_h^T Y_h + reg I) x = (1 + alpha) sum_h y_h.
        """
        f = self.items.shape[1]
        if history.size == 0 or f == 0:
            return np.zeros(f, dtype=np.float64)
        y = self.items[history].astype(np.float64)
        a = self.gram + self.alpha * (y.T @ y) + self.regularization * np.eye(f)
        return np.linalg.solve(a, (1.0 + self.alpha) * y.sum(axis=0))


@dataclass(frozen=True)
class CollabModel:
    """Everything collaborative about the catalogue, immutable once built."""

    item_ids: tuple[str, ...] = ()
    index: Mapping[str, int] = field(default_factory=dict)
    als: Factors | None = None  # fitted on positives
    als_all: Factors | None = None  # fitted on every interaction
    knn: sp.csr_matrix = field(default_factory=lambda: sp.csr_matrix((0, 0)))
    knn_all: sp.csr_matrix = field(default_factory=lambda: sp.csr_matrix((0, 0)))
    rp3: sp.csr_matrix = field(default_factory=lambda: sp.csr_matrix((0, 0)))
    positives: np.ndarray = field(default_factory=lambda: np.zeros(0))  # per item, all time
    first_positive: np.ndarray = field(default_factory=lambda: np.zeros(0))  # inf: none yet
    positive_keys: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    build_seconds: Mapping[str, float] = field(default_factory=dict)  # per component

    @property
    def n_items(self) -> int:
        return len(self.item_ids)

    def indices(self, media_ids: Sequence[str]) -> np.ndarray:
        """Item index of each media id, -1 where the core has never seen it."""
        return rows_of(self.index, media_ids)

    def history(
        self,
        positives: Sequence[tuple[str, float]],
        interactions: Sequence[tuple[str, float]],
        now: float,
    ) -> UserHistory:
        """A history from (media id, time) pairs: positives newest first, and every
        interaction (positives included); ids the core has never seen drop out. A user with
        no events at all is as of ``now``."""
        times = [t for _, t in interactions] + [t for _, t in positives] or [now]
        pos = self.indices([m for m, _ in positives])
        everything = self.indices([m for m, _ in interactions] + [m for m, _ in positives])
        return UserHistory(
            positives=_distinct(pos[pos >= 0]),
            interactions=np.unique(everything[everything >= 0]),
            first_ts=float(min(times)),
            last_ts=float(max(times)),
        )

    def _taste(self, history: UserHistory) -> tuple[UserTaste, np.ndarray]:
        """The taste, and every item's ALS score (float64) that its best unseen item came from."""
        pos, every = history.positives, history.interactions
        empty = np.zeros(0, dtype=np.float32)
        # The user vectors are cast to the item factors' float32: a float64 vector would make
        # numpy upcast the whole (items x factors) matrix.
        als_user = self.als.fold_in(pos).astype(np.float32) if self.als and pos.size else empty
        als_all_user = (
            self.als_all.fold_in(every).astype(np.float32)
            if self.als_all and every.size else empty
        )  # fmt: skip
        als = self._als_scores(als_user)
        unseen = np.delete(als, pos)
        best = float(unseen.max()) if unseen.size and pos.size else 0.0
        return UserTaste(als_user, als_all_user, best), als

    def _als_scores(self, als_user: np.ndarray) -> np.ndarray:
        if self.als is None or als_user.size == 0:
            return np.zeros(self.n_items)
        return np.asarray(self.als.items @ als_user, dtype=np.float64)

    def user_scores(self, history: UserHistory) -> UserScores:
        """This history's scores from each component: computed once per request (or kept per
        user), read by both ``candidates`` and ``features``."""
        n, pos, every = self.n_items, history.positives, history.interactions
        taste, als = self._taste(history)
        return UserScores(
            taste=taste,
            als=als,
            knn=RowValues.of_dense(_graph_scores(self.knn, pos, n)),
            knn_recent=RowValues.of_dense(_graph_scores(self.knn, pos[:5], n)),
            knn_recent20=RowValues.of_dense(_graph_scores(self.knn, pos[:20], n)),
            knn_all=RowValues.of_dense(_graph_scores(self.knn_all, every, n)),
            rp3=RowValues.of_dense(_graph_scores(self.rp3, pos, n)),
        )

    def candidates(
        self, history: UserHistory, per_source: int, scores: UserScores | None = None
    ) -> np.ndarray:
        """The best ``per_source`` items of each collaborative source (ALS, item-kNN, RP3beta,
        popularity) not in the history, as one distinct array of item indices."""
        n = self.n_items
        if n == 0:
            return np.zeros(0, dtype=np.int64)
        scores = scores or self.user_scores(history)
        seen = np.zeros(n, dtype=bool)
        seen[history.interactions] = True
        parts = [_top(self.positives, seen, per_source)]
        if history.positives.size:
            als = scores.als if scores.als is not None else self._als_scores(scores.taste.als_user)
            graph = [s.dense(n) for s in (scores.knn, scores.rp3)]
            parts += [_top(s, seen, per_source) for s in (als, *graph)]
        return np.unique(np.concatenate(parts))

    def features(
        self, history: UserHistory, items: np.ndarray, scores: UserScores | None = None
    ) -> dict[str, np.ndarray]:
        """The collaborative feature columns for ``items`` (indices; -1: unknown to the core,
        which gets 0 for every score and NaN for its age)."""
        n = items.size
        known = items >= 0
        at = np.where(known, items, 0)
        scores = scores or self.user_scores(history)

        def on_known(values: np.ndarray) -> np.ndarray:
            return np.where(known, values[at], 0.0) if values.size else np.zeros(n)

        out = {
            name: np.where(known, getattr(scores, name).at(at), 0.0) for name in UserScores.COLUMNS
        }
        taste = scores.taste
        out["als"] = _factor_scores(self.als, taste.als_user, at, known)
        out["als_all"] = _factor_scores(self.als_all, taste.als_all_user, at, known)
        best = taste.best_unseen_als
        out["als_relative"] = out["als"] / best if best > 0 else np.zeros(n)
        out["popularity"] = on_known(np.log1p(self.positives))
        for days in (90, 365):
            out[f"popularity_{days}d"] = np.log1p(
                self.window_positives(at, history.last_ts, days * DAY_S) * known
            )
        first = np.where(known, self.first_positive[at] if self.n_items else np.inf, np.inf)
        out["item_age_days"] = np.where(
            np.isfinite(first), (history.last_ts - first) / DAY_S, np.nan
        )
        return out

    def window_positives(self, items: np.ndarray, end: float, window_s: float) -> np.ndarray:
        """Positives of each item in (end - window_s, end]."""
        if self.positive_keys.size == 0 or items.size == 0:
            return np.zeros(items.size)
        base = items.astype(np.int64) * _TIME_SPAN
        hi = np.searchsorted(self.positive_keys, base + int(end), side="right")
        lo = np.searchsorted(self.positive_keys, base + int(end - window_s), side="right")
        return (hi - lo).astype(np.float64)


def build_collab(
    data: Interactions, item_ids: Sequence[str], settings: CollabSettings
) -> CollabModel:
    """Fit every component on ``data`` (whose item indices point into ``item_ids``)."""
    if data.n_items != len(item_ids):
        raise ValueError(f"{data.n_items} items in the interactions, {len(item_ids)} ids")
    seconds: dict[str, float] = {}

    def timed(name: str, build: Callable[[], Any]) -> Any:
        started = time.perf_counter()
        out = build()
        seconds[name] = time.perf_counter() - started
        return out

    positives = data.matrix(positives_only=True)
    every = data.matrix(positives_only=False)
    n = data.n_items
    pos_items, pos_ts = data.items[data.positive], data.timestamps[data.positive]
    first = np.full(n, np.inf)
    np.minimum.at(first, pos_items, pos_ts)
    keys = np.sort(pos_items.astype(np.int64) * _TIME_SPAN + pos_ts.astype(np.int64))
    kn, exp = settings.knn_neighbours, settings.knn_exponent
    return CollabModel(
        item_ids=tuple(item_ids),
        index={m: i for i, m in enumerate(item_ids)},
        als=timed("als", lambda: fit_als(positives, settings)),
        als_all=timed("als_all", lambda: fit_als(every, settings)),
        knn=timed("knn", lambda: item_knn(positives, kn, exp)),
        knn_all=timed("knn_all", lambda: item_knn(every, kn, exp)),
        rp3=timed("rp3", lambda: rp3beta(positives, settings.rp3_beta, settings.rp3_neighbours)),
        positives=np.asarray(positives.sum(axis=0), dtype=np.float64).ravel(),
        first_positive=first,
        positive_keys=keys,
        build_seconds=seconds,
    )


def fit_als(user_items: sp.csr_matrix, settings: CollabSettings) -> Factors | None:
    """implicit's ALS on a binary users x items matrix; None when it has no entries."""
    if user_items.nnz == 0 or settings.als_factors <= 0:
        return None
    from implicit.cpu.als import AlternatingLeastSquares  # loads OpenMP; only when fitting

    # implicit's own threads do the work; a multithreaded BLAS underneath only contends.
    with threadpool_limits(1, "blas"):
        model = AlternatingLeastSquares(
            factors=settings.als_factors,
            regularization=settings.als_regularization,
            alpha=settings.als_alpha,
            iterations=settings.als_iterations,
            random_state=settings.seed,
        )
        model.fit(user_items.astype(np.float32), show_progress=False)
    items = np.ascontiguousarray(model.item_factors, dtype=np.float32)
    gram = items.T.astype(np.float64) @ items.astype(np.float64)
    return Factors(items, gram, settings.als_regularization, settings.als_alpha)


def item_knn(user_items: sp.csr_matrix, neighbours: int, exponent: float) -> sp.csr_matrix:
    """Row i: cosine(i, j) ** exponent of i's best ``neighbours`` co-occurring items j."""
    x = user_items.astype(np.float64).tocsr()
    norms = np.sqrt(np.asarray(x.sum(axis=0)).ravel())

    def cosine(block: sp.coo_matrix, first: int) -> np.ndarray:
        return (block.data / (norms[block.row + first] * norms[block.col])) ** exponent

    return item_item(x.T.tocsr(), x, cosine, neighbours)


def rp3beta(user_items: sp.csr_matrix, beta: float, neighbours: int) -> sp.csr_matrix:
    """Row i: P(i -> user -> j) / popularity(j) ** beta, i's best ``neighbours`` kept."""
    x = user_items.astype(np.float64).tocsr()
    user_degree = np.asarray(x.sum(axis=1)).ravel()
    item_degree = np.asarray(x.sum(axis=0)).ravel()
    p_ui = (sp.diags(_inverse(user_degree)) @ x).tocsr()
    p_iu = (sp.diags(_inverse(item_degree)) @ x.T).tocsr()
    damping = _inverse(item_degree**beta)

    def walk(block: sp.coo_matrix, first: int) -> np.ndarray:
        return block.data * damping[block.col]

    return item_item(p_iu, p_ui, walk, neighbours)


def item_item(
    left: sp.csr_matrix,
    right: sp.csr_matrix,
    weight: Callable[[sp.coo_matrix, int], np.ndarray],
    neighbours: int,
) -> sp.csr_matrix:
    """The top ``neighbours`` per row of ``weight(left @ right)``, without the diagonal.

    The product is formed a block of rows at a time and pruned at once: the whole item x item
    co-occurrence matrix of a large catalogue would not fit in memory, its top rows do.
    ``weight(block, first)`` maps a block's entries (``first``: its first row) to the kept
    values."""
    n = left.shape[0]
    parts = []
    for first in range(0, n, ITEM_BLOCK_ROWS):
        block = (left[first : first + ITEM_BLOCK_ROWS] @ right).tocoo()
        off_diagonal = block.row + first != block.col
        block = sp.coo_matrix(
            (block.data[off_diagonal], (block.row[off_diagonal], block.col[off_diagonal])),
            shape=block.shape,
        )
        weighted = sp.csr_matrix((weight(block, first), (block.row, block.col)),
                                 shape=block.shape)  # fmt: skip
        weighted.eliminate_zeros()
        parts.append(top_per_row(weighted, neighbours))
    return sp.vstack(parts, format="csr") if parts else sp.csr_matrix((0, right.shape[1]))


def top_per_row(matrix: sp.csr_matrix, k: int) -> sp.csr_matrix:
    """Each row's ``k`` largest entries. A row with more than ``k`` is partitioned on its own
    (linear in its length): one sort of every entry of a large co-occurrence block costs
    more than the product that made it."""
    matrix = matrix.tocsr()
    matrix.sort_indices()  # ties go to the lowest item index
    lengths = np.diff(matrix.indptr)
    keep = np.ones(matrix.data.size, dtype=bool)
    for row in np.flatnonzero(lengths > k).tolist():
        start, end = matrix.indptr[row], matrix.indptr[row + 1]
        values = matrix.data[start:end]
        kth = -np.partition(-values, k - 1)[k - 1] if k > 0 else np.inf
        above = values > kth
        tied = np.flatnonzero(values == kth)[: k - int(above.sum())]
        row_keep = above
        row_keep[tied] = True
        keep[start:end] = row_keep
    rows = np.repeat(np.arange(matrix.shape[0]), lengths)
    return sp.csr_matrix(
        (matrix.data[keep], (rows[keep], matrix.indices[keep])), shape=matrix.shape
    )


def _factor_scores(
    factors: Factors | None, user: np.ndarray, at: np.ndarray, known: np.ndarray
) -> np.ndarray:
    """The factor model's score of the items at ``at`` (0 where not ``known``, and for a user
    with no vector)."""
    if factors is None or user.size == 0 or factors.items.shape[0] == 0:
        return np.zeros(at.size)
    return np.where(known, (factors.items[at] @ user).astype(np.float64), 0.0)


def _graph_scores(graph: sp.csr_matrix, history: np.ndarray, n: int) -> np.ndarray:
    """score_j = sum over the history's items i of graph[i, j] (``n`` items)."""
    if history.size == 0 or graph.shape[1] == 0:
        return np.zeros(n)
    return np.asarray(graph[history].sum(axis=0)).ravel()


def _top(scores: np.ndarray, excluded: np.ndarray, limit: int) -> np.ndarray:
    masked = np.where(excluded, -np.inf, scores)
    limit = min(limit, int(np.count_nonzero(np.isfinite(masked) & (masked > 0))))
    if limit <= 0:
        return np.zeros(0, dtype=np.int64)
    return np.argpartition(-masked, limit - 1)[:limit].astype(np.int64)


def _distinct(values: np.ndarray) -> np.ndarray:
    """Distinct values in their first order."""
    _, first = np.unique(values, return_index=True)
    return values[np.sort(first)]


def _inverse(values: np.ndarray) -> np.ndarray:
    return np.divide(1.0, values, out=np.zeros_like(values, dtype=np.float64), where=values > 0)
