"""``make bench-real``: mediarec against tuned baselines on MovieLens, through the real server.

Per seed: one split (bench/real/data.py), then every model is fitted on the training part and
ranks the same candidates (all items minus the user's training items) for the same users.
Knobs are chosen once, on the first seed's validation split (fit part -> validation part),
with the same number of trials for every model that has knobs, and then every model is refit
on train (fit + validation) for the test split. See docs/bench/real.md for the protocol.
"""

from __future__ import annotations

import argparse
import itertools
import json
import logging
import random
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse as sp

from bench.metrics import bootstrap_ci, ndcg_at_k, recall_at_k
from bench.real import models, server_run
from bench.real.content import TextEncoder, item_texts
from bench.real.data import (
    NEW_USER_KS,
    POSITIVE_RATING,
    Dataset,
    DatasetMissingError,
    Split,
    load_movielens,
    split,
)
from bench.real.models import Interactions, Scorer
from bench.real.report import write_fragment
from bench.report import code_version
from mediarec.server.recommend.settings import RecommendSettings

logger = logging.getLogger(__name__)

REPO = Path(__file__).resolve().parent.parent.parent
DEFAULT_DATA = REPO.parent / "shared" / "datasets" / "ml-latest-small"
SHIFT_S = 120 * 86_400.0
CANDIDATE_K = 200
K_NDCG, K_RECALL = 10, 20
BASELINES = ("popularity", "item_knn", "ease", "library", "content", "hybrid")
# "mediarec" is serve's default configuration (what the targets are about); "mediarec_tuned"
# is the best point of its search space on validation, as every baseline gets.
MODELS = ("mediarec", "mediarec_tuned", *BASELINES)

# Search spaces: each model with knobs gets TRIALS draws (seeded) from its grid.
SPACES: dict[str, dict[str, Sequence[Any]]] = {
    "popularity": {"window_days": [30, 90, 180, 365, 730, 1460, 2920, 20000]},
    "item_knn": {
        "k": [20, 50, 100, 200, 500, 2000],
        "shrinkage": [0, 5, 20, 100],
        "exponent": [0.5, 1.0, 2.0],
    },
    "ease": {"lambda": [10, 30, 100, 300, 500, 1000, 3000, 10000]},
    "library": {
        "factors": [32, 64, 128, 256],
        "regularization": [0.01, 0.1, 1.0, 10.0],
        "alpha": [1.0, 5.0, 20.0, 40.0],
        "iterations": [15, 30],
    },
    "hybrid": {"weight": [0.02, 0.05, 0.1, 0.2, 0.3, 0.5, 1.0, 2.0]},
    # serve's defaults are one point of this grid (100 candidates per collaborative source,
    # no MMR): the knobs of the learned ranker's serving path.
    "mediarec": {
        "collab_candidates": [50, 100, 200],
        "learned_mmr_lambda": [0.9, 1.0],
    },
}
TRIALS = 8


@dataclass(frozen=True)
class Task:
    """Who is ranked, from which interactions, against which positives."""

    train: Interactions
    users: np.ndarray
    targets: list[set[int]]
    exclude: sp.csr_matrix


@dataclass
class SeedResult:
    seed: int
    split_sha: str
    content_off_ndcg: np.ndarray | None = None
    content_off_recall: np.ndarray | None = None
    candidate_recall: np.ndarray | None = None  # validation, first seed only
    ndcg: dict[str, np.ndarray] = field(default_factory=dict)  # per test user
    recall: dict[str, np.ndarray] = field(default_factory=dict)
    recall_cold: dict[str, np.ndarray] = field(default_factory=dict)
    new_user_ndcg: dict[int, dict[str, np.ndarray]] = field(default_factory=dict)
    shifted_ndcg: np.ndarray | None = None
    n: dict[str, int] = field(default_factory=dict)


def interactions(data: Dataset, rows: np.ndarray) -> Interactions:
    return Interactions(
        data.n_users,
        data.n_items,
        data.users[rows],
        data.items[rows],
        data.ratings[rows] >= POSITIVE_RATING,
        data.timestamps[rows],
    )


def positives_by_user(data: Dataset, rows: np.ndarray) -> dict[int, set[int]]:
    out: dict[int, set[int]] = {}
    for row in rows[data.ratings[rows] >= POSITIVE_RATING]:
        out.setdefault(int(data.users[row]), set()).add(int(data.items[row]))
    return out


def task(data: Dataset, train_rows: np.ndarray, target_rows: np.ndarray) -> Task:
    train = interactions(data, train_rows)
    wanted = positives_by_user(data, target_rows)
    users = np.array(sorted(wanted), dtype=np.int64)
    return Task(train, users, [wanted[int(u)] for u in users], train.seen())


def popularity_tie(train: Interactions) -> np.ndarray:
    counts = np.bincount(train.items[train.positive], minlength=train.n_items).astype(float)
    return counts / max(counts.max(), 1.0)


def build(
    name: str,
    train: Interactions,
    params: Mapping[str, Any],
    vectors: np.ndarray,
    chosen: Mapping[str, Mapping[str, Any]],
) -> Scorer:
    if name == "popularity":
        return models.popularity(train, params)
    if name == "item_knn":
        return models.item_knn(train, params)
    if name == "ease":
        return models.ease(train, params)
    if name == "library":
        return models.als(train, params)
    if name == "content":
        return models.content_knn(train, vectors)
    if name == "hybrid":
        return models.hybrid(
            models.ease(train, chosen["ease"]),
            models.content_knn(train, vectors),
            float(params["weight"]),
        )
    raise ValueError(name)


def evaluate(scorer: Scorer, t: Task, k: int = K_RECALL) -> np.ndarray:
    return models.rank(scorer, t.users, t.exclude, popularity_tie(t.train), k)


def trials(name: str, seed: int) -> list[dict[str, Any]]:
    """TRIALS draws from the model's grid (all of it when smaller); mediarec's always include
    serve's defaults, so tuning can only keep or improve on them."""
    space = SPACES[name]
    grid = [dict(zip(space, values, strict=True)) for values in itertools.product(*space.values())]
    if len(grid) <= TRIALS:
        return grid
    if name == "mediarec":
        defaults = {k: getattr(RecommendSettings(), k) for k in space}
        rest = [g for g in grid if g != defaults]
        return [defaults, *random.Random(f"{seed}:{name}").sample(rest, TRIALS - 1)]
    return random.Random(f"{seed}:{name}").sample(grid, TRIALS)


MediarecRun = Callable[[np.ndarray, np.ndarray, Mapping[str, Any]], np.ndarray]


def tune(
    data: Dataset, s: Split, vectors_fit: np.ndarray, mediarec_run: MediarecRun
) -> dict[str, dict[str, Any]]:
    """Each model's knobs with the best validation NDCG@10 (the first seed's split)."""
    t = task(data, s.fit, s.valid)
    chosen: dict[str, dict[str, Any]] = {"content": {}}
    for name in ("popularity", "item_knn", "ease", "library", "hybrid", "mediarec"):
        best, best_score = None, -1.0
        for params in trials(name, s.seed):
            started = time.monotonic()
            if name == "mediarec":
                ranked = mediarec_run(s.fit, t.users, params)
            else:
                ranked = evaluate(build(name, t.train, params, vectors_fit, chosen), t)
            score = float(np.nanmean(ndcg_at_k(ranked, t.targets, K_NDCG)))
            logger.info(
                "validation %s %s: NDCG@10 %.4f (%.1fs)",
                name,
                params,
                score,
                time.monotonic() - started,
            )
            if score > best_score:
                best, best_score = params, score
        assert best is not None
        chosen[name] = {**best, "validation_ndcg10": round(best_score, 4)}
    return chosen


def knobs(params: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in params.items() if k != "validation_ndcg10"}


class Vectors:
    """Text vectors per item text, embedded once per distinct text across the whole run."""

    def __init__(self) -> None:
        self._encoder = TextEncoder()
        self._cache: dict[str, np.ndarray] = {}

    def of(self, texts: Sequence[str]) -> np.ndarray:
        missing = sorted({t for t in texts if t not in self._cache})
        if missing:
            for text, vector in zip(missing, self._encoder.embed(missing), strict=True):
                self._cache[text] = vector
        return np.stack([self._cache[t] for t in texts])


def run_seed(
    data: Dataset,
    seed: int,
    vectors: Vectors,
    chosen: dict[str, dict[str, Any]] | None,
    evaluate_on: str,
) -> tuple[SeedResult, dict[str, dict[str, Any]]]:
    """One seed: tune first when nothing is chosen yet, then score ``evaluate_on`` ("test":
    refit on train, score the test part; "valid": fit part against the validation part;
    "valid-cold": the same without the validation-cold items' fit events, whose validation
    events are then the cold items')."""
    s = split(data, seed)
    result = SeedResult(seed, s.sha())
    fit_vectors = vectors.of(item_texts(data, s, "valid"))
    if chosen is None:

        def mediarec_run(
            rows: np.ndarray, users: np.ndarray, params: Mapping[str, Any]
        ) -> np.ndarray:
            with server_run.mediarec(data, fit_vectors, mediarec_overrides(params)) as running:
                server_run.import_history(running, server_run.events_of(data, rows))
                return server_run.top_items(running.client, users, K_RECALL)

        chosen = tune(data, s, fit_vectors, mediarec_run)
        result.candidate_recall = candidate_recall(data, s, fit_vectors, chosen)
    train_rows, target_rows = s.rows_for(evaluate_on)
    train_vectors = vectors.of(item_texts(data, s, evaluate_on))
    t = task(data, train_rows, target_rows)
    cold = set(s.cold_for(evaluate_on).tolist())
    cold_targets = [{i for i in wanted if i in cold} for wanted in t.targets]
    result.n = {
        "test_users": int(t.users.size),
        "cold_item_users": sum(1 for c in cold_targets if c),
        "new_users": len(s.new_user_cohort),
    }
    ranked: dict[str, np.ndarray] = {}
    for name in BASELINES:
        ranked[name] = evaluate(build(name, t.train, knobs(chosen[name]), train_vectors, chosen), t)
    overrides: dict[str, Any] = {}  # serve's defaults from here on
    with server_run.mediarec(data, train_vectors, overrides=overrides) as running:
        server_run.import_history(running, server_run.events_of(data, train_rows))
        ranked["mediarec"] = server_run.top_items(running.client, t.users, K_RECALL)
        new_users(data, s, train_rows, result, running.client, train_vectors, chosen)
    tuned = mediarec_overrides(knobs(chosen["mediarec"]))
    if tuned == {k: getattr(RecommendSettings(), k) for k in tuned}:
        ranked["mediarec_tuned"] = ranked["mediarec"]
    else:
        with server_run.mediarec(data, train_vectors, overrides=tuned) as running:
            server_run.import_history(running, server_run.events_of(data, train_rows))
            ranked["mediarec_tuned"] = server_run.top_items(running.client, t.users, K_RECALL)
    for name, top in ranked.items():
        result.ndcg[name] = ndcg_at_k(top, t.targets, K_NDCG)
        result.recall[name] = recall_at_k(top, t.targets, K_RECALL)
        result.recall_cold[name] = recall_at_k(top, cold_targets, K_RECALL)
    off = {**overrides, "content_signals": False}
    with server_run.mediarec(data, train_vectors, overrides=off) as running:
        server_run.import_history(running, server_run.events_of(data, train_rows))
        top = server_run.top_items(running.client, t.users, K_RECALL)
        result.content_off_ndcg = ndcg_at_k(top, t.targets, K_NDCG)
        result.content_off_recall = recall_at_k(top, t.targets, K_RECALL)
    with server_run.mediarec(data, train_vectors, overrides=overrides) as running:
        shifted = server_run.events_of(data, train_rows, shift_s=SHIFT_S)
        server_run.import_history(running, shifted)
        result.shifted_ndcg = ndcg_at_k(
            server_run.top_items(running.client, t.users, K_RECALL), t.targets, K_NDCG
        )
    return result, chosen


def new_users(
    data: Dataset,
    s: Split,
    train_rows: np.ndarray,
    result: SeedResult,
    client: Any,
    vectors: np.ndarray,
    chosen: Mapping[str, Mapping[str, Any]],
) -> None:
    """Held-out users: for each k, their first k positives are logged, then everyone ranks."""
    cohort = np.array(s.new_user_cohort, dtype=np.int64)
    positives = {
        u: s.new_user_rows[u][data.ratings[s.new_user_rows[u]] >= POSITIVE_RATING]
        for u in cohort.tolist()
    }
    logged = 0
    base = interactions(data, train_rows)
    for k in NEW_USER_KS:
        rows = (
            np.concatenate([positives[u][:k] for u in cohort.tolist()])
            if k
            else np.zeros(0, dtype=np.int64)
        )
        fresh = np.concatenate([positives[u][logged:k] for u in cohort.tolist()]) if k else rows
        if fresh.size:
            events = list(server_run.events_of(data, fresh))
            for start in range(0, len(events), 1000):
                client.log_events(events[start : start + 1000])
            client.refresh()
        logged = k
        train = base.with_rows(
            data.users[rows],
            data.items[rows],
            np.ones(rows.size, dtype=bool),
            data.timestamps[rows],
        )
        targets = [{int(data.items[r]) for r in positives[u][k:]} for u in cohort.tolist()]
        t = Task(train, cohort, targets, train.seen())
        scores: dict[str, np.ndarray] = {}
        for name in BASELINES:
            top = evaluate(build(name, train, knobs(chosen[name]), vectors, chosen), t)
            scores[name] = ndcg_at_k(top, targets, K_NDCG)
        top = server_run.top_items(client, cohort.tolist(), K_RECALL)
        scores["mediarec"] = ndcg_at_k(top, targets, K_NDCG)
        result.new_user_ndcg[k] = scores


def mediarec_overrides(params: Mapping[str, Any]) -> dict[str, Any]:
    return dict(params)


def candidate_recall(
    data: Dataset, s: Split, vectors: np.ndarray, chosen: Mapping[str, Mapping[str, Any]]
) -> np.ndarray:
    """Recall@200 of mediarec's candidate union on validation (serve's defaults): re-ranking
    cannot find what retrieval missed."""
    t = task(data, s.fit, s.valid)
    with server_run.mediarec(data, vectors) as running:  # serve's defaults
        server_run.import_history(running, server_run.events_of(data, s.fit))
        unions = server_run.candidate_unions(running.recommender, t.users, CANDIDATE_K)
    return recall_at_k(unions, t.targets, CANDIDATE_K)


def mean_ci(
    values: Sequence[np.ndarray], rng: np.random.Generator, resamples: int = 2000
) -> list[float]:
    """95 % percentile-bootstrap CI of the mean over (seed, user) pairs."""
    interval = bootstrap_ci(np.concatenate(values), rng, resamples=resamples)
    if interval.n == 0:
        return []
    return [round(interval.low, 4), round(interval.high, 4)]


def paired_ratio_ci(
    a: Sequence[np.ndarray],
    b: Sequence[np.ndarray],
    rng: np.random.Generator,
    resamples: int = 2000,
) -> tuple[float, float]:
    """95 % CI of mean(a) / mean(b), resampling (seed, user) pairs together."""
    x, y = np.concatenate(a), np.concatenate(b)
    keep = ~(np.isnan(x) | np.isnan(y))
    x, y = x[keep], y[keep]
    idx = rng.integers(0, x.size, size=(resamples, x.size))
    ratios = x[idx].mean(axis=1) / np.maximum(y[idx].mean(axis=1), 1e-12)
    low, high = np.quantile(ratios, [0.025, 0.975])
    return float(low), float(high)


def summarize(
    results: Sequence[SeedResult], chosen: Mapping[str, Any], wall_s: float
) -> dict[str, Any]:
    def mean(values: Sequence[np.ndarray]) -> float | None:
        """Mean over seeds of the per-user mean; None when no user had anything to find."""
        per_seed = [float(np.nanmean(v)) for v in values if np.any(~np.isnan(v))]
        return round(float(np.mean(per_seed)), 4) if per_seed else None

    rng = np.random.default_rng(0)
    out: dict[str, Any] = {
        "seeds": [r.seed for r in results],
        "split_sha": ",".join(r.split_sha for r in results),
        "wall_s": round(wall_s, 1),
        "ndcg10": {m: mean([r.ndcg[m] for r in results]) for m in MODELS},
        "ndcg10_ci95": {m: mean_ci([r.ndcg[m] for r in results], rng) for m in MODELS},
        "ndcg10_ratio_vs_ease_ci95": [
            round(v, 3)
            for v in paired_ratio_ci(
                [r.ndcg["mediarec"] for r in results], [r.ndcg["ease"] for r in results], rng
            )
        ],
        "recall20": {m: mean([r.recall[m] for r in results]) for m in MODELS},
        "recall20_cold": {m: mean([r.recall_cold[m] for r in results]) for m in MODELS},
        "new_user_ndcg10": {
            str(k): {
                m: mean([r.new_user_ndcg[k][m] for r in results])
                for m in MODELS
                if m in results[0].new_user_ndcg[k]
            }
            for k in NEW_USER_KS
        },
        "content_off": {
            "ndcg10": mean([r.content_off_ndcg for r in results if r.content_off_ndcg is not None]),
            "recall20": mean(
                [r.content_off_recall for r in results if r.content_off_recall is not None]
            ),
        },
        "shifted_120d_ndcg10": {
            "mediarec": mean([r.shifted_ndcg for r in results if r.shifted_ndcg is not None]),
            "unshifted": mean([r.ndcg["mediarec"] for r in results]),
        },
        "candidate_recall200": mean(
            [r.candidate_recall for r in results if r.candidate_recall is not None]
        ),
        "n": {key: [r.n[key] for r in results] for key in results[0].n},
        "params": {
            "mediarec": {"defaults": True},
            "mediarec_tuned": dict(chosen["mediarec"]),
            **{m: dict(chosen[m]) for m in BASELINES},
        },
    }
    return out


def calibration(data: Dataset, seed: int = 42) -> dict[str, float]:
    """EASE and item-kNN under the published protocol of Microsoft Recommenders' MovieLens
    notebooks (every rating an implicit positive, a random 75/25 split within each user,
    NDCG@10), so their numbers can be set beside the published ML-100K figures."""
    rng = np.random.default_rng(seed)
    train_rows, test_rows = [], []
    for user in range(data.n_users):
        rows = np.flatnonzero(data.users == user)
        rng.shuffle(rows)
        cut = int(round(0.75 * rows.size))
        train_rows.append(rows[:cut])
        test_rows.append(rows[cut:])
    train_idx, test_idx = np.concatenate(train_rows), np.concatenate(test_rows)
    train = Interactions(
        data.n_users, data.n_items, data.users[train_idx], data.items[train_idx],
        np.ones(train_idx.size, dtype=bool), data.timestamps[train_idx],
    )  # fmt: skip
    wanted: dict[int, set[int]] = {}
    for row in test_idx:
        wanted.setdefault(int(data.users[row]), set()).add(int(data.items[row]))
    users = np.array(sorted(wanted), dtype=np.int64)
    t = Task(train, users, [wanted[int(u)] for u in users], train.seen())
    out = {}
    for name, scorer in (
        ("ease_lambda500", models.ease(train, {"lambda": 500})),
        ("item_knn_cosine", models.item_knn(train, {"k": 10_000, "shrinkage": 0, "exponent": 1})),
    ):
        out[name] = round(float(np.nanmean(ndcg_at_k(evaluate(scorer, t), t.targets, K_NDCG))), 4)
    return out


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.real", description=__doc__)
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3])
    parser.add_argument(
        "--split",
        choices=("valid", "valid-cold", "test"),
        default="valid",
        help="what is scored: the validation part (default, for development; valid-cold also "
        "holds the validation-cold items out of the fit part, for cold-start knobs) or the test "
        "part (reported runs only: make bench-real)",
    )
    parser.add_argument("--out", type=Path, default=REPO / "docs" / "bench")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    for noisy in ("mediarec", "grpc", "sentence_transformers", "httpx", "implicit"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    started = time.monotonic()
    measured = code_version()  # the code as it was loaded, even if the tree changes meanwhile
    try:
        data = load_movielens(args.data)
    except DatasetMissingError as exc:
        print(f"bench-real: {exc}", file=sys.stderr)
        return 2
    vectors = Vectors()
    results: list[SeedResult] = []
    chosen: dict[str, dict[str, Any]] | None = None
    for seed in args.seeds:
        result, chosen = run_seed(data, seed, vectors, chosen, args.split)
        results.append(result)
    assert chosen is not None
    summary = summarize(results, chosen, time.monotonic() - started)
    summary["split"] = args.split
    summary["code"] = measured
    summary["calibration_ndcg10"] = calibration(data)
    summary["wall_s"] = round(time.monotonic() - started, 1)
    if args.split == "test":
        write_fragment(args.out, summary)
    print(f"bench-real: {summary['wall_s'] / 60:.1f} min wall time", file=sys.stderr)
    print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())
