"""Train the learned ranker from the event history by time-split self-supervision.

For each of ``cuts`` nested cuts, every user's events are split in time: the older part is their
history, and their positives in the next ``label_fraction`` of their events are the labels. A
:class:`~mediarec.server.recommend.collab.CollabModel` is built from every user's history at that
cut, so no collaborative feature of an example contains a label event (a feature that saw its own
label would be trusted for the wrong reason). Each (user, cut) is one LightGBM lambdarank group over
the candidates of every source: the collaborative ones and the content nearest neighbours of the
user's likes, which is how a never-engaged item (cold) can be ranked at all. Items the service
served the user in the label window join the list too: what was shown and ignored is the most
informative negative there is.

A user who has just arrived looks nothing like those examples: a few likes, and a core that has
never seen them. So at the first cut a share of users are also newcomers, ranked by a core of
their own that has none of their events: each of them gives one group per entry of
``newcomer_likes``, whose history is their events up to their k-th positive and whose labels are
every positive after it.

A share of users is held out of training; the model card reports NDCG@10 on their first cut for
the model and for each single collaborative score, over the same candidates. The saved model is
then refitted on every user.
"""

from __future__ import annotations

import logging
import time
import zlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import lightgbm as lgb
import numpy as np

from mediarec.encoders import l2_normalize
from mediarec.server.recommend.collab import (
    CollabModel,
    CollabSettings,
    Interactions,
    UserHistory,
    build_collab,
)
from mediarec.server.recommend.learned import LearnedRanker
from mediarec.server.recommend.ltr_features import FEATURES, feature_matrix
from mediarec.server.recommend.settings import RecommendSettings
from mediarec.server.recommend.state import interaction_log
from mediarec.server.recommend.types import EngagementStore, ServedItem
from mediarec.server.store import VectorStore

logger = logging.getLogger(__name__)

NDCG_K = 10
# Single-score rankings reported beside the model on the held-out users.
BASELINE_COLUMNS = ("als", "knn", "rp3", "popularity")
NEWCOMER_SALT = 7919  # newcomers are drawn apart from the held-out users


@dataclass(frozen=True)
class LtrConfig:
    """Knobs of training (chosen on bench-real's validation split; docs/recommend.md)."""

    cuts: int = 3
    label_fraction: float = 0.2
    min_user_events: int = 5
    candidates_per_source: int = 100
    content_candidates: int = 50
    rounds: int = 150
    learning_rate: float = 0.02
    num_leaves: int = 31
    min_data_in_leaf: int = 50
    truncation_level: int = 20
    held_out_users: float = 0.1
    min_groups: int = 20
    newcomer_share: float = 0.2
    newcomer_likes: tuple[int, ...] = (1, 2, 3, 5)
    seed: int = 0


class NotEnoughHistoryError(ValueError):
    """Too little history to train a ranker from."""


@dataclass
class Groups:
    """Stacked examples: rows of features, labels, and each group's size."""

    x: list[np.ndarray] = field(default_factory=list)
    y: list[np.ndarray] = field(default_factory=list)
    sizes: list[int] = field(default_factory=list)
    wanted: list[int] = field(default_factory=list)  # label count of each group (for NDCG)
    newcomer: list[bool] = field(default_factory=list)  # whether a group is a newcomer's

    def add(self, x: np.ndarray, y: np.ndarray, wanted: int, newcomer: bool = False) -> None:
        self.x.append(x)
        self.y.append(y)
        self.sizes.append(int(y.size))
        self.wanted.append(wanted)
        self.newcomer.append(newcomer)

    def extend(self, other: Groups) -> None:
        self.x += other.x
        self.y += other.y
        self.sizes += other.sizes
        self.wanted += other.wanted
        self.newcomer += other.newcomer

    def subset(self, wanted: Sequence[bool]) -> Groups:
        """The groups where ``wanted`` is true, in order."""
        out = Groups()
        for x, y, n, w, keep in zip(self.x, self.y, self.wanted, self.newcomer, wanted,
                                    strict=True):  # fmt: skip
            if keep:
                out.add(x, y, n, w)
        return out

    def stacked(self) -> tuple[np.ndarray, np.ndarray]:
        return np.concatenate(self.x), np.concatenate(self.y)


@dataclass(frozen=True)
class Shown:
    """Served impressions as index arrays, sorted by user and then time."""

    users: np.ndarray
    items: np.ndarray
    timestamps: np.ndarray

    @classmethod
    def of(
        cls,
        served: Iterable[ServedItem],
        user_ids: Sequence[str],
        item_ids: Sequence[str],
    ) -> Shown:
        """The impressions of known users and items (the rest cannot be features' rows)."""
        user_index = {u: i for i, u in enumerate(user_ids)}
        item_index = {m: i for i, m in enumerate(item_ids)}
        rows = [
            (user_index[s.user_id], item_index[s.media_id], s.timestamp) for s in served
            if s.user_id in user_index and s.media_id in item_index
        ]  # fmt: skip
        users, items, ts = (np.array(c) for c in zip(*rows, strict=True)) if rows else (
            np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64), np.zeros(0)
        )  # fmt: skip
        order = np.lexsort((ts, users))
        return cls(users[order].astype(np.int64), items[order].astype(np.int64),
                   ts[order].astype(np.float64))  # fmt: skip

    def between(self, user: int, start: float, end: float) -> np.ndarray:
        """The distinct items shown to ``user`` in (start, end]."""
        lo, hi = np.searchsorted(self.users, [user, user + 1])
        times = self.timestamps[lo:hi]
        first, last = np.searchsorted(times, [start, end], side="right")
        return np.unique(self.items[lo + first : lo + last])


NOTHING_SHOWN = Shown(np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64), np.zeros(0))


def history_at(
    item_rows: np.ndarray, ts_rows: np.ndarray, pos_rows: np.ndarray
) -> UserHistory:
    """A history from one user's rows in time order (indices of the core's items)."""
    newest_first = item_rows[::-1][pos_rows[::-1]]
    _, first = np.unique(newest_first, return_index=True)
    return UserHistory(
        positives=newest_first[np.sort(first)],
        interactions=np.unique(item_rows),
        first_ts=float(ts_rows[0]) if ts_rows.size else 0.0,
        last_ts=float(ts_rows[-1]) if ts_rows.size else 0.0,
    )


def content_candidates(
    vectors: np.ndarray, liked: np.ndarray, excluded: np.ndarray, limit: int
) -> np.ndarray:
    """Items whose vectors are nearest the mean of the liked ones (not ``excluded``)."""
    if liked.size == 0 or limit <= 0:
        return np.zeros(0, dtype=np.int64)
    scores = vectors @ l2_normalize(vectors[liked].mean(axis=0, keepdims=True))[0]
    scores[excluded] = -np.inf
    limit = min(limit, int(np.isfinite(scores).sum()))
    return np.argpartition(-scores, limit - 1)[:limit].astype(np.int64) if limit else scores[:0]


def user_rows(data: Interactions) -> list[np.ndarray]:
    """Each user's row indices in time order (ties by row order)."""
    order = np.lexsort((np.arange(data.users.size), data.timestamps, data.users))
    bounds = np.searchsorted(data.users[order], np.arange(data.n_users + 1))
    return [order[bounds[u] : bounds[u + 1]] for u in range(data.n_users)]


def cut_groups(
    data: Interactions,
    item_ids: Sequence[str],
    vectors: np.ndarray,
    cut: int,
    users: np.ndarray,
    rows_of: Sequence[np.ndarray],
    collab_settings: CollabSettings,
    config: LtrConfig,
    shown: Shown = NOTHING_SHOWN,
) -> tuple[Groups, Groups]:
    """Examples at one cut: (groups of ``users``, groups of everyone else)."""
    keep = np.ones(data.users.size, dtype=bool)
    windows: dict[int, tuple[np.ndarray, np.ndarray]] = {}
    for user, rows in enumerate(rows_of):
        n = rows.size
        if n < config.min_user_events:
            continue
        end = int(np.floor(n * (1.0 - config.label_fraction * (cut - 1))))
        start = int(np.floor(n * (1.0 - config.label_fraction * cut)))
        if start < 1 or end <= start:
            continue
        keep[rows[start:]] = False  # labels and everything after them leave the matrices
        windows[user] = (rows[:start], rows[start:end])
    core = build_collab(data.subset(keep), item_ids, collab_settings)
    chosen, others = Groups(), Groups()
    wanted_users = set(users.tolist())
    for user, (past, future) in windows.items():
        labels = np.unique(data.items[future][data.positive[future]])
        if labels.size == 0:
            continue
        history = history_at(data.items[past], data.timestamps[past], data.positive[past])
        served = shown.between(user, data.timestamps[past[-1]], data.timestamps[future[-1]])
        x, cands = examples(core, history, vectors, config, served)
        y = np.isin(cands, labels).astype(np.float32)
        if y.sum() == 0:
            continue
        (chosen if user in wanted_users else others).add(x, y, int(labels.size))
    if cut == 1:
        newcomer_groups(data, item_ids, vectors, keep, wanted_users, rows_of, collab_settings,
                        config, chosen, others)  # fmt: skip
    return chosen, others


def newcomer_groups(
    data: Interactions,
    item_ids: Sequence[str],
    vectors: np.ndarray,
    keep: np.ndarray,
    wanted_users: set[int],
    rows_of: Sequence[np.ndarray],
    collab_settings: CollabSettings,
    config: LtrConfig,
    chosen: Groups,
    others: Groups,
) -> None:
    """Newcomers' groups, added to ``chosen`` (``wanted_users``) or ``others``: a core of its
    own without any of their events, so that the core of every other example stays whole."""
    newcomers = {
        user: rows for user, rows in enumerate(rows_of)
        if rows.size >= config.min_user_events
        and _hash_fraction(user, config.seed + NEWCOMER_SALT) < config.newcomer_share
    }  # fmt: skip
    if not newcomers:
        return
    without = keep.copy()
    without[np.concatenate(list(newcomers.values()))] = False
    core = build_collab(data.subset(without), item_ids, collab_settings)
    for user, rows in newcomers.items():
        for history, labels in newcomer_windows(data, rows, config.newcomer_likes):
            x, cands = examples(core, history, vectors, config)
            y = np.isin(cands, labels).astype(np.float32)
            if y.sum() > 0:
                group = chosen if user in wanted_users else others
                group.add(x, y, int(labels.size), newcomer=True)


def newcomer_windows(
    data: Interactions, rows: np.ndarray, likes: Sequence[int]
) -> list[tuple[UserHistory, np.ndarray]]:
    """(history up to the k-th positive, every later positive's item) for each k in ``likes``
    that leaves at least one positive after it."""
    at = np.flatnonzero(data.positive[rows])
    out = []
    for k in likes:
        if k < 1 or at.size <= k:
            continue
        past, future = rows[: at[k - 1] + 1], rows[at[k - 1] + 1 :]
        history = history_at(data.items[past], data.timestamps[past], data.positive[past])
        out.append((history, np.unique(data.items[future][data.positive[future]])))
    return out


def examples(
    core: CollabModel,
    history: UserHistory,
    vectors: np.ndarray,
    config: LtrConfig,
    shown: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Candidates of one history and their features; ``shown`` (items served to the user in
    the label window) join the candidates, so what was shown and ignored is a negative."""
    scores = core.user_scores(history)
    collab = core.candidates(history, config.candidates_per_source, scores)
    near = content_candidates(vectors, history.positives, history.interactions,
                              config.content_candidates)  # fmt: skip
    cands = np.union1d(collab, near)
    if shown is not None and shown.size:
        cands = np.union1d(cands, np.setdiff1d(shown, history.interactions))
    x = feature_matrix(core, history, cands, vectors[cands], vectors[history.positives], scores)
    return x, cands


def train_learned_ranker(
    data: Interactions,
    item_ids: Sequence[str],
    vectors: np.ndarray,
    collab_settings: CollabSettings,
    config: LtrConfig = LtrConfig(),
    shown: Shown = NOTHING_SHOWN,
) -> LearnedRanker:
    """Fit the model (see the module docstring); ``vectors`` are unit rows per item (zeros:
    none); ``shown``: served impressions, which join the candidates of the lists whose label
    window they fall in. Raises NotEnoughHistoryError when there are too few groups to learn
    from."""
    started = time.monotonic()
    rows_of = user_rows(data)
    held_out = np.array(
        [u for u in range(data.n_users) if _hash_fraction(u, config.seed) < config.held_out_users],
        dtype=np.int64,
    )
    train, valid = Groups(), Groups()
    for cut in range(1, config.cuts + 1):
        chosen, others = cut_groups(
            data, item_ids, vectors, cut, held_out, rows_of, collab_settings, config, shown
        )
        train.extend(others)
        if cut == 1:
            valid.extend(chosen)
        else:
            train.extend(chosen)  # only the first cut is held out; later cuts are older
    lists = train.newcomer.count(False)  # a newcomer's lists repeat one user
    if lists < config.min_groups:
        raise NotEnoughHistoryError(
            f"only {lists} users have a positive after their history among their "
            f"candidates; at least {config.min_groups} are needed to train a ranker"
        )
    # Validation: fit without the held-out users' first cut, then measure on it.
    metrics: dict[str, Any] = {}
    if valid.sizes:
        model = _fit(train, config)
        x, y = valid.stacked()
        predicted = np.asarray(model.predict(x, num_threads=1))
        # The headline compares with earlier cards: the first-cut lists, newcomers apart.
        newcomer = np.repeat(np.array(valid.newcomer, dtype=bool), valid.sizes)
        regular = valid.subset([not n for n in valid.newcomer])
        metrics["model"] = mean_ndcg(predicted[~newcomer], y[~newcomer], regular)
        for name in BASELINE_COLUMNS:
            metrics[name] = mean_ndcg(x[~newcomer, FEATURES.index(name)], y[~newcomer], regular)
        if newcomer.any():
            only = valid.subset(valid.newcomer)
            metrics["newcomers_model"] = mean_ndcg(predicted[newcomer], y[newcomer], only)
            metrics["newcomers_popularity"] = mean_ndcg(
                x[newcomer, FEATURES.index("popularity")], y[newcomer], only
            )
        train.extend(valid)
    booster = _fit(train, config)
    info = {
        "trained_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "events": int(data.users.size),
        "users": int(data.n_users),
        "items": int(data.n_items),
        "groups": len(train.sizes),
        "served_impressions": int(shown.users.size),
        "held_out_groups": valid.newcomer.count(False),
        "held_out_newcomer_groups": valid.newcomer.count(True),
        "validation_ndcg10": {k: round(float(v), 4) for k, v in metrics.items()},
        "config": {k: getattr(config, k) for k in config.__dataclass_fields__},
        "train_s": round(time.monotonic() - started, 1),
    }
    logger.info("learned ranker trained in %.1fs: %s", time.monotonic() - started, info)
    return LearnedRanker(booster, FEATURES, info)


def train_from_store(
    engagement: EngagementStore,
    store: VectorStore,
    settings: RecommendSettings,
    config: LtrConfig = LtrConfig(),
) -> LearnedRanker:
    """Train on the whole event log of a running (or stopped) service."""
    log = interaction_log(engagement, store, settings)
    shown = Shown.of(engagement.iter_served(), log.user_ids, log.item_ids)
    return train_learned_ranker(log.data, log.item_ids, log.vectors, settings.collab(), config,
                                shown)  # fmt: skip


def _fit(groups: Groups, config: LtrConfig) -> lgb.Booster:
    x, y = groups.stacked()
    dataset = lgb.Dataset(x, y, group=groups.sizes, feature_name=list(FEATURES),
                          free_raw_data=True)  # fmt: skip
    params = {
        "objective": "lambdarank",
        "learning_rate": config.learning_rate,
        "num_leaves": config.num_leaves,
        "min_data_in_leaf": config.min_data_in_leaf,
        "lambdarank_truncation_level": config.truncation_level,
        "eval_at": [NDCG_K],
        "seed": config.seed,
        "deterministic": True,
        "force_row_wise": True,
        "num_threads": 2,
        "verbose": -1,
    }
    return lgb.train(params, dataset, num_boost_round=config.rounds)


def mean_ndcg(scores: np.ndarray, labels: np.ndarray, groups: Groups, k: int = NDCG_K) -> float:
    """Mean NDCG@k over groups; the ideal counts every label, found among the candidates or not."""
    out, start = [], 0
    discounts = 1.0 / np.log2(np.arange(2, k + 2))
    for size, wanted in zip(groups.sizes, groups.wanted, strict=True):
        s, y = scores[start : start + size], labels[start : start + size]
        start += size
        top = np.argsort(-s, kind="stable")[:k]
        dcg = float((y[top] * discounts[: top.size]).sum())
        ideal = float(discounts[: min(k, wanted)].sum())
        out.append(dcg / ideal if ideal > 0 else 0.0)
    return float(np.mean(out)) if out else 0.0


def _hash_fraction(user: int, seed: int) -> float:
    return zlib.crc32(f"{seed}:{user}".encode()) / 2**32
