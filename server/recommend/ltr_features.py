"""The learned ranker's features: one registry, one pure extractor, shared by training and serving.

Each feature has a name (the model file records the list and is refused on any other), the
reason phrase that explains it, and the blend feature under which its share of a score is
reported, so a learned score's breakdown reads like the blend's (``blend.FEATURES``) and still
adds up to the score.

Training (``ltr_train.py``) and serving (``recommender.py``) both call :func:`feature_matrix`
with a :class:`~mediarec.server.recommend.collab.CollabModel` built from the history before the
moment ranked, so what a model learned on is what it is served.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from mediarec.encoders import l2_normalize
from mediarec.server.recommend import blend as b
from mediarec.server.recommend.collab import DAY_S, CollabModel, UserHistory, UserScores

RECENT_POSITIVES = 5  # "what you liked lately": the newest positives the recent columns use


@dataclass(frozen=True)
class LearnedFeature:
    name: str
    reported_as: str  # the blend feature its contribution is added to in a breakdown
    description: str


REGISTRY: tuple[LearnedFeature, ...] = (
    LearnedFeature("als", b.COENGAGEMENT, "ALS score over positives (user folded in)"),
    LearnedFeature("als_relative", b.COENGAGEMENT, "ALS score / the user's best unseen score"),
    LearnedFeature("als_all", b.COENGAGEMENT, "ALS score over every interaction"),
    LearnedFeature("knn", b.COENGAGEMENT, "item-kNN score over all positives"),
    LearnedFeature("knn_recent", b.COENGAGEMENT, "item-kNN over the 5 newest positives"),
    LearnedFeature("knn_recent20", b.COENGAGEMENT, "item-kNN over the 20 newest positives"),
    LearnedFeature("knn_all", b.COENGAGEMENT, "item-kNN over every interaction"),
    LearnedFeature("rp3", b.COENGAGEMENT, "RP3beta random-walk score"),
    LearnedFeature("popularity", b.POPULARITY, "log(1 + positives), all time"),
    LearnedFeature("popularity_90d", b.POPULARITY, "log(1 + positives) in the 90 days to the "
                   "user's last event"),
    LearnedFeature("popularity_365d", b.POPULARITY, "the same over 365 days"),
    LearnedFeature("item_age_days", b.FRESHNESS, "days from the item's first positive to the "
                   "user's last event (missing: none yet)"),
    LearnedFeature("user_positives", b.COENGAGEMENT, "log(1 + the user's positives)"),
    LearnedFeature("user_span_days", b.COENGAGEMENT, "days between the user's first and last "
                   "event"),
    LearnedFeature("content", b.CONTENT, "cosine to the mean of the user's liked items"),
    LearnedFeature("content_recent", b.CONTENT, "cosine to the mean of the 5 newest likes"),
)
FEATURES: tuple[str, ...] = tuple(f.name for f in REGISTRY)
# Column of blend.FEATURES that each learned feature's contribution is reported under.
REPORTED_COLUMN = np.array([b.FEATURE_INDEX[f.reported_as] for f in REGISTRY], dtype=np.int64)


def feature_matrix(
    collab: CollabModel,
    history: UserHistory,
    items: np.ndarray,
    item_vectors: np.ndarray,
    liked_vectors: np.ndarray,
    scores: UserScores | None = None,
) -> np.ndarray:
    """``(len(items), len(FEATURES))`` float32 for one user.

    ``items`` are collab indices (-1: an item the core has never seen, a cold item);
    ``item_vectors`` their unit content vectors (zero rows: none); ``liked_vectors`` the unit
    vectors of the user's positives, newest first; ``scores`` the history's scores when the
    caller has them already (``CollabModel.user_scores``).
    """
    columns = collab.features(history, items, scores)
    columns["user_positives"] = np.full(items.size, np.log1p(history.positives.size))
    columns["user_span_days"] = np.full(
        items.size, max(0.0, history.last_ts - history.first_ts) / DAY_S
    )
    columns["content"] = _cosine_to_mean(item_vectors, liked_vectors)
    columns["content_recent"] = _cosine_to_mean(item_vectors, liked_vectors[:RECENT_POSITIVES])
    return np.stack([columns[name] for name in FEATURES], axis=1).astype(np.float32)


def reported_contributions(learned: np.ndarray) -> np.ndarray:
    """Per-learned-feature contributions ``(n, len(FEATURES))`` summed into blend columns."""
    out = np.zeros((learned.shape[0], len(b.FEATURES)))
    np.add.at(out.T, REPORTED_COLUMN, learned.T)
    return out


def _cosine_to_mean(vectors: np.ndarray, liked: np.ndarray) -> np.ndarray:
    if liked.size == 0 or vectors.size == 0:
        return np.zeros(vectors.shape[0])
    mean = l2_normalize(liked.mean(axis=0, keepdims=True))[0]
    return np.asarray(vectors @ mean, dtype=np.float64)


def describe() -> Sequence[tuple[str, str, str]]:
    """(name, reported as, description) rows, for the model card and docs."""
    return [(f.name, f.reported_as, f.description) for f in REGISTRY]
