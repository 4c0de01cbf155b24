"""Time split, evaluation segments, validation tuning of the baselines, and per-segment metrics.

A *phase* trains on every event before ``split`` and evaluates on the positive events of
``[split, end)``: the validation phase ends where the test phase begins, and knobs chosen on it
are then used, unchanged, on the test phase (refitted on all data before the test split).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from bench import baselines as bl
from bench.engagement_sim import SEEN_CODES, EngagementLog
from bench.metrics import Interval, bootstrap_ci, coverage, ndcg_at_k, recall_at_k
from bench.world_sim import NOT_NEW, World
from mediarec.server.recommend.profile import summarize_events
from mediarec.server.recommend.settings import RecommendSettings
from mediarec.server.recommend.types import Event

logger = logging.getLogger(__name__)

K = 20
# Validation grids: each baseline gets its best knobs (an edge of a grid means: widen it).
POPULARITY_HALF_LIVES: tuple[float | None, ...] = (0.5, 1.0, 3.0, 7.0, None)
CONTENT_AGES: tuple[float | None, ...] = (1.5, 3.0, 7.0, None)
CONTENT_TAUS = (0.05, 0.2, 1.0)
CONTENT_NEIGHBOURS = 100
COENG_SHRINKAGES = (1.0, 5.0, 20.0)
EASE_LAMBDAS = (5.0, 20.0, 80.0, 300.0, 1000.0)
METHODS = ("popularity", "content", "coengagement", "ease", "blend", "blend_trained")
SINGLE_SOURCES = ("popularity", "content", "coengagement")


@dataclass
class Phase:
    name: str
    split: float
    end: float
    view: bl.TrainView
    users: np.ndarray  # evaluated users (at least one positive in the window), ascending
    relevant: list[set[int]]  # their positive posts in the window
    bucket: np.ndarray  # per evaluated user: NOT_NEW or the new-user bucket
    warm: np.ndarray  # (P,) bool: posts with a positive train event
    cold: np.ndarray  # (P,) bool: posts created inside the window (no train events possible)
    train: EngagementLog
    train_events: list[Event]


def make_phase(
    name: str,
    world: World,
    log: EngagementLog,
    split: float,
    end: float,
    events: list[Event],
    settings: RecommendSettings,
) -> Phase:
    """``events`` are the store events of ``log`` (same order); the train part is cut here."""
    train_rows = np.flatnonzero(log.ts < split)
    train = log.select(train_rows)
    train_events = [events[i] for i in train_rows]
    window = log.between(split, end)
    pos = train.positive & (train.post >= 0)
    # "Seen" as mediarec defines it (viewed or engaged); a bare impression does not count.
    seen_rows = (train.post >= 0) & np.isin(train.kind, SEEN_CODES)
    seen: dict[int, set[int]] = {}
    for u, p in zip(train.user[seen_rows].tolist(), train.post[seen_rows].tolist(), strict=True):
        seen.setdefault(u, set()).add(p)
    by_user: dict[int, list[Event]] = {}
    for e in train_events:
        by_user.setdefault(int(e.user_id.removeprefix("user-")), []).append(e)
    positives = {
        u: {int(m.removeprefix("post-")): w
            for m, w in summarize_events(evs, settings, split).positives.items()}
        for u, evs in by_user.items()
    }
    recent: dict[int, dict[int, float]] = {}  # user -> post -> its newest positive's time
    order = np.argsort(-train.ts[pos], kind="stable")
    for u, p, t in zip(train.user[pos][order].tolist(), train.post[pos][order].tolist(),
                       train.ts[pos][order].tolist(), strict=True):
        recent.setdefault(u, {}).setdefault(p, t)
    view = bl.TrainView(
        n_posts=world.n_posts,
        split=split,
        post_time=world.post_time,
        catalog=world.post_time < end,
        pos_user=train.user[pos],
        pos_post=train.post[pos],
        pos_ts=train.ts[pos],
        seen={u: np.fromiter(s, dtype=np.int64) for u, s in seen.items()},
        positives=positives,
        recent=recent,
    )
    truth: dict[int, set[int]] = {}
    wpos = window.positive & (window.post >= 0)
    for u, p in zip(window.user[wpos].tolist(), window.post[wpos].tolist(), strict=True):
        if p not in seen.get(u, ()):
            truth.setdefault(u, set()).add(p)
    users = np.array(sorted(truth), dtype=np.int64)
    warm = np.zeros(world.n_posts, dtype=bool)
    warm[train.post[pos]] = True
    cold = (world.post_time >= split) & (world.post_time < end)
    return Phase(
        name=name, split=split, end=end, view=view, users=users,
        relevant=[truth[int(u)] for u in users], bucket=world.user_bucket[users],
        warm=warm, cold=cold, train=train, train_events=train_events,
    )


# ---------------------------------------------------------------------------------------------
# Segments


@dataclass(frozen=True)
class Segment:
    name: str
    users: np.ndarray  # bool over the phase's evaluated users
    relevant: list[set[int]]  # restricted relevant sets (empty for users outside)
    pool: np.ndarray  # post indices whose coverage is reported


def segments(
    relevant: Sequence[set[int]],
    bucket: np.ndarray,
    warm: np.ndarray,
    cold: np.ndarray,
    catalog: np.ndarray,
    new_buckets: Sequence[int],
) -> list[Segment]:
    """overall, established users, warm items, cold items, and one per new-user bucket."""
    everyone = np.ones(len(relevant), dtype=bool)
    pool = np.flatnonzero(catalog)
    warm_rel = [{p for p in rel if warm[p]} for rel in relevant]
    cold_rel = [{p for p in rel if cold[p]} for rel in relevant]
    out = [
        Segment("overall", everyone, list(relevant), pool),
        Segment("established users", bucket == NOT_NEW, list(relevant), pool),
        Segment("warm items", np.array([bool(r) for r in warm_rel]), warm_rel,
                np.flatnonzero(warm & catalog)),
        Segment("cold items", np.array([bool(r) for r in cold_rel]), cold_rel,
                np.flatnonzero(cold)),
    ]
    for b in new_buckets:
        out.append(Segment(f"new users, {b} events", bucket == b, list(relevant), pool))
    return out


@dataclass(frozen=True)
class SegmentScores:
    """Per-user values of one method on one segment (NaN outside the segment)."""

    recall: np.ndarray
    ndcg: np.ndarray
    coverage: float


def score_segments(ranked: np.ndarray, segs: Sequence[Segment]) -> dict[str, SegmentScores]:
    out = {}
    for seg in segs:
        rel = [r if inside else set() for r, inside in zip(seg.relevant, seg.users, strict=True)]
        out[seg.name] = SegmentScores(
            recall=recall_at_k(ranked, rel, K),
            ndcg=ndcg_at_k(ranked, rel, K),
            coverage=coverage(ranked[seg.users], seg.pool, K),
        )
    return out


def intervals(
    scores: Mapping[str, SegmentScores], rng: np.random.Generator
) -> dict[str, dict[str, Interval]]:
    return {
        seg: {"recall": bootstrap_ci(s.recall, rng), "ndcg": bootstrap_ci(s.ndcg, rng)}
        for seg, s in scores.items()
    }


# ---------------------------------------------------------------------------------------------
# Baselines: tuned on validation, applied on test


@dataclass
class Tuned:
    popularity_half_life: float | None = None
    content_age: float | None = None
    content_tau: float = 0.05
    coeng_shrinkage: float = 5.0
    ease_lambda: float = 300.0
    validation: dict[str, dict[str, float]] = field(default_factory=dict)  # knob -> NDCG


def _overall_ndcg(ranked: np.ndarray, phase: Phase) -> float:
    return float(np.nanmean(ndcg_at_k(ranked, phase.relevant, K)))


def _best(
    name: str, grid: Sequence, run: Callable[[object], np.ndarray], phase: Phase, tuned: Tuned
) -> object:
    results = {}
    for knob in grid:
        results[str(knob)] = _overall_ndcg(run(knob), phase)
    tuned.validation[name] = results
    best = max(grid, key=lambda knob: results[str(knob)])
    logger.info("validation %s: %s -> best %s", name,
                ", ".join(f"{k}={v:.4f}" for k, v in results.items()), best)
    return best


def tune_baselines(phase: Phase, world: World, settings: RecommendSettings) -> Tuned:
    started = time.monotonic()
    tuned = Tuned()
    view, users = phase.view, phase.users

    def popularity(h: object) -> np.ndarray:
        scores = bl.popularity_scores(view, h)  # type: ignore[arg-type]
        return bl.rank_top_k(users, view, lambda b: np.broadcast_to(scores, (b.size, scores.size)),
                             bl.popularity_rank(scores), K)

    tuned.popularity_half_life = _best(  # type: ignore[assignment]
        "popularity half-life (days)", POPULARITY_HALF_LIVES, popularity, phase, tuned)
    tie = bl.popularity_rank(bl.popularity_scores(view, tuned.popularity_half_life))
    sources = np.unique(view.pos_post)
    best_content: tuple[float, float | None, float] = (-1.0, None, CONTENT_TAUS[0])
    content_results = {}
    for age in CONTENT_AGES:
        knn = bl.ContentKnn(world.visual, view, sources, age, CONTENT_NEIGHBOURS)
        for tau in CONTENT_TAUS:
            ranked = bl.rank_top_k(users, view, _content_scorer(knn, tau), tie, K)
            ndcg = _overall_ndcg(ranked, phase)
            content_results[f"age={age},tau={tau}"] = ndcg
            if ndcg > best_content[0]:
                best_content = (ndcg, age, tau)
    tuned.validation["content (max age days, temperature)"] = content_results
    _, tuned.content_age, tuned.content_tau = best_content
    logger.info("validation content: best age=%s tau=%s", tuned.content_age, tuned.content_tau)

    def coeng(shrinkage: object) -> np.ndarray:
        model = bl.CoEngagementOnly(view, settings, float(shrinkage))  # type: ignore[arg-type]
        return bl.rank_top_k(users, view, model.scores, tie, K)

    tuned.coeng_shrinkage = _best(  # type: ignore[assignment]
        "co-engagement shrinkage", COENG_SHRINKAGES, coeng, phase, tuned)
    ease = bl.Ease(view)
    tuned.ease_lambda = _best(  # type: ignore[assignment]
        "EASE lambda", EASE_LAMBDAS,
        lambda lam: bl.rank_top_k(users, view, ease.scorer(float(lam)), tie, K),  # type: ignore[arg-type]
        phase, tuned)
    logger.info("baselines tuned on validation in %.1fs", time.monotonic() - started)
    return tuned


def _content_scorer(knn: bl.ContentKnn, tau: float) -> Callable[[np.ndarray], np.ndarray]:
    return lambda users: knn.scores(users, tau)


def run_baselines(
    phase: Phase, world: World, settings: RecommendSettings, tuned: Tuned
) -> dict[str, np.ndarray]:
    """Top-K lists of every baseline for the phase's users, with the tuned knobs."""
    started = time.monotonic()
    view, users = phase.view, phase.users
    pop = bl.popularity_scores(view, tuned.popularity_half_life)
    tie = bl.popularity_rank(pop)
    out = {
        "popularity": bl.rank_top_k(
            users, view, lambda b: np.broadcast_to(pop, (b.size, pop.size)), tie, K),
    }
    knn = bl.ContentKnn(world.visual, view, np.unique(view.pos_post), tuned.content_age,
                        CONTENT_NEIGHBOURS)
    out["content"] = bl.rank_top_k(users, view, lambda b: knn.scores(b, tuned.content_tau), tie,
                                   K)
    co = bl.CoEngagementOnly(view, settings, tuned.coeng_shrinkage)
    out["coengagement"] = bl.rank_top_k(users, view, co.scores, tie, K)
    ease = bl.Ease(view)
    out["ease"] = bl.rank_top_k(users, view, ease.scorer(tuned.ease_lambda), tie, K)
    logger.info("baselines on %s in %.1fs", phase.name, time.monotonic() - started)
    return out
