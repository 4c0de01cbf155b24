"""Compare blend variants on the *validation* window only (a developer tool, not a benchmark).

``python -m bench.tune_blend --seed 1`` builds the quality benchmark's world (cached), serves the
real ``Recommender`` at the validation split and scores the validation window, per segment:
established users, warm items, cold items, and *pseudo-new users*. The world's new users join
just before the test split, so validation has none; instead, disjoint samples of established
validation users keep only their k most recent positive events (k = 0, 1, 3, 10; the rest of
their history, follows included, is dropped from the store), which is what mediarec would know
about a new user with k likes. The test window is never read, so defaults chosen here do not
leak test data into ``make bench-quality``.

Variants are named in :data:`VARIANTS`: blend weights (through the ranker, as a trained model
would set them) and keyword arguments of :func:`mediarec.server.recommend.blend.gates`.
"""

from __future__ import annotations

import argparse
import logging
import shutil
import sys
import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np

from bench import baselines as bl
from bench import evaluation as ev
from bench.blend_runner import (
    BlendRunner,
    index_posts,
    log_events,
    open_vectors,
    recommend_settings,
    to_events,
)
from bench.metrics import ndcg_at_k
from bench.quality import DEFAULT_CACHE, simulated_world
from bench.world_sim import NOT_NEW, WorldConfig

logger = logging.getLogger(__name__)

PSEUDO_BUCKETS = (0, 1, 3, 10)
# (blend weight overrides, gates() keyword overrides, RecommendSettings overrides)
Variant = tuple[Mapping[str, float], Mapping[str, Any], Mapping[str, Any]]
# The gates before the evidence-backed popularity (docs/recommend.md): popularity 1.0 -> 0.5 with
# no regard to the engagement behind it, and content standing in for co-engagement whatever
# the user's history. Variants compared under those gates keep their meaning on top of them.
PREVIOUS_GATES: Mapping[str, Any] = {
    "popularity_new": 1.0, "popularity_known": 0.5, "popularity_evidence": 0.0,
    "cold_content_by_user": False,
}
# Variants of earlier tuning rounds, measured under the previous gates.
EARLIER_ROUNDS: dict[str, Variant] = {
    "coeng_no_fading": ({}, {}, {"coeng_half_life_s": 0.0}),
    "cohort2d": ({}, {}, {"cohort_half_life_s": 2 * 86_400.0}),
    "cohort2d_w1.5": ({"cohort": 1.5}, {}, {"cohort_half_life_s": 2 * 86_400.0}),
    "cohort2d_w1.5_pop2": ({"cohort": 1.5, "popularity": 2.0}, {},
                           {"cohort_half_life_s": 2 * 86_400.0}),
    "trend3d": ({}, {}, {"trending_half_life_s": 3 * 86_400.0}),
    "A_pop2_known0.2_cohort1.5": ({"popularity": 2.0, "cohort": 1.5}, {"popularity_known": 0.2},
                                  {"cohort_half_life_s": 2 * 86_400.0}),
    "B_pop2.5_known0.1_cohort1.5": ({"popularity": 2.5, "cohort": 1.5},
                                    {"popularity_known": 0.1},
                                    {"cohort_half_life_s": 2 * 86_400.0}),
    "C_A_floor0.2": ({"popularity": 2.0, "cohort": 1.5},
                     {"popularity_known": 0.2, "personal_floor": 0.2},
                     {"cohort_half_life_s": 2 * 86_400.0}),
    "D_pop2_known0.2": ({"popularity": 2.0}, {"popularity_known": 0.2}, {}),
    "E_D_coeng2": ({"popularity": 2.0, "coengagement": 2.0}, {"popularity_known": 0.2}, {}),
    "G_D_cohort2d": ({"popularity": 2.0}, {"popularity_known": 0.2},
                     {"cohort_half_life_s": 2 * 86_400.0}),
    "H_pop3_known0.15": ({"popularity": 3.0}, {"popularity_known": 0.15}, {}),
    "pop1.2_known0.3": ({"popularity": 1.2}, {"popularity_known": 0.3}, {}),
    "pop1.2_known0.3_cohort2d": ({"popularity": 1.2}, {"popularity_known": 0.3},
                                 {"cohort_half_life_s": 2 * 86_400.0}),
    "coeng2.5": ({"coengagement": 2.5}, {}, {}),
    "coeng4": ({"coengagement": 4.0}, {}, {}),
    "item_prior3": ({}, {}, {"item_prior": 3.0}),
    "coeng2.5_item_prior3": ({"coengagement": 2.5}, {}, {"item_prior": 3.0}),
    "first_defaults": (
        {"popularity": 0.6}, {"personal_floor": 1.0, "popularity_known": 0.25},
        {"mmr_lambda_cold": 0.7},
    ),
    "personal0.2": ({}, {"personal_floor": 0.2}, {}),
    "personal0.2_pop1.2": ({"popularity": 1.2}, {"personal_floor": 0.2}, {}),
    "personal0.2_pop1.2_known0.5": (
        {"popularity": 1.2}, {"personal_floor": 0.2, "popularity_known": 0.5}, {}
    ),
    "pop1.2": ({"popularity": 1.2}, {}, {}),
    "p0_pop2_known0.5": ({"popularity": 2.0}, {"personal_floor": 0.0, "popularity_known": 0.5}, {}),
    "p0.2_pop2_known1": ({"popularity": 2.0}, {"personal_floor": 0.2, "popularity_known": 1.0}, {}),
    "p0_pop2_known0.5_nocohort": (
        {"popularity": 2.0, "cohort": 0.0}, {"personal_floor": 0.0, "popularity_known": 0.5}, {}
    ),
    "p0_pop2_known0.5_mmr": (
        {"popularity": 2.0}, {"personal_floor": 0.0, "popularity_known": 0.5},
        {"mmr_lambda_cold": 0.9},
    ),
    "p0_pop3_known0.5": ({"popularity": 3.0}, {"personal_floor": 0.0, "popularity_known": 0.5}, {}),
    "p0_pop2_known0.7": ({"popularity": 2.0}, {"personal_floor": 0.0, "popularity_known": 0.7}, {}),
    "p0.2_pop1.2_known0.5_mmr": (
        {"popularity": 1.2}, {"personal_floor": 0.2, "popularity_known": 0.5},
        {"mmr_lambda_cold": 0.9},
    ),
    "p0.2_pop1.2_known0.5_noexp": (
        {"popularity": 1.2}, {"personal_floor": 0.2, "popularity_known": 0.5},
        {"explore_fraction": 0.0},
    ),
}
VARIANTS: dict[str, Variant] = {
    "default": ({}, {}, {}),
    "previous_gates": ({}, PREVIOUS_GATES, {}),
    # Alternatives to the current gates. pop3_known0.5 and no_cold_by_user keep every behaviour
    # the end-to-end tests pin down; without the evidence factor a brand-new post matching a
    # user's likes misses their slate, and a cap of 3 breaks the tests that assert 2.
    "pop3_known0.5": ({}, {"popularity_new": 3.0, "popularity_known": 0.5,
                           "cold_content_by_user": False}, {}),
    "no_evidence": ({}, {"popularity_evidence": 0.0}, {}),
    "no_cold_by_user": ({}, {"cold_content_by_user": False}, {}),
    "creator_cap3": ({}, {}, {"creator_cap": 3}),
    **{name: (w, {**PREVIOUS_GATES, **g}, o) for name, (w, g, o) in EARLIER_ROUNDS.items()},
    # The gate settings of the grid in docs/recommend.md that keep every tested behaviour:
    # popularity gate for no history / for a known user, content standing in as far as the
    # user is known (u) or always (all), and the evidence exponent on item confidence.
    **{f"grid_p{new}_k{known}_{'u' if by_user else 'all'}_e{evidence}": (
        {}, {"popularity_new": new, "popularity_known": known,
             "cold_content_by_user": by_user, "popularity_evidence": evidence}, {})
       for new, known, by_user, evidence in (
           (1.5, 0.3, False, 0.5), (1.5, 0.3, False, 1.0), (1.5, 0.3, True, 1.0),
           (1.5, 0.5, False, 0.5), (1.5, 0.5, False, 1.0), (2.0, 0.3, False, 0.5),
           (2.0, 0.3, False, 1.0), (2.0, 0.5, False, 0.5), (2.0, 0.5, False, 1.0),
           (2.5, 0.3, False, 1.0), (2.5, 0.5, False, 1.0), (3.0, 0.5, False, 1.0),
       )},
}


def pseudo_new_users(
    val: ev.Phase, rng: np.random.Generator, per_bucket: int
) -> dict[int, np.ndarray]:
    """Disjoint samples of established validation users per bucket k (with >= k positives)."""
    counts = {int(u): len(p) for u, p in val.view.positives.items()}
    pool = [int(u) for u in val.users[val.bucket == NOT_NEW] if counts.get(int(u), 0) >= 10]
    chosen = rng.permutation(np.array(pool, dtype=np.int64))
    return {
        k: np.sort(chosen[i * per_bucket : (i + 1) * per_bucket])
        for i, k in enumerate(PSEUDO_BUCKETS)
    }


def truncated_events(val: ev.Phase, pseudo: Mapping[int, np.ndarray]) -> list:
    """The validation store's events with each pseudo-new user cut to its k latest positives."""
    keep_k = {f"user-{int(u):05d}": k for k, users in pseudo.items() for u in users}
    by_user: dict[str, list] = {}
    out = []
    for e in val.train_events:
        if e.user_id in keep_k:
            by_user.setdefault(e.user_id, []).append(e)
        else:
            out.append(e)
    positive = {"like", "comment", "share", "save"}
    for user, events in by_user.items():
        likes = [e for e in events if str(e.kind) in positive and e.media_id]
        likes.sort(key=lambda e: e.timestamp)
        k = keep_k[user]
        out.extend(likes[len(likes) - k :] if k else [])
    out.sort(key=lambda e: e.timestamp)
    return out


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.tune_blend", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS))
    parser.add_argument("--established", type=int, default=400, help="established users scored")
    parser.add_argument("--per-bucket", type=int, default=200, help="pseudo-new users per k")
    parser.add_argument("--cache-dir", type=Path, default=DEFAULT_CACHE)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(name)s %(message)s")
    from mediarec.encoders import EncoderOptions, load_encoder
    from mediarec.server.engagement import open_engagement_store
    from mediarec.server.recommend import blend as b
    from mediarec.server.recommend.ranker import RankerModel
    from mediarec.server.recommend.settings import RecommendSettings

    encoder = load_encoder("mediarec-demo", EncoderOptions(batch_size=256))
    config = WorldConfig(seed=args.seed)
    world, log = simulated_world(config, encoder, args.cache_dir)
    settings = recommend_settings(encoder.model_id)
    events = to_events(world, log.before(config.test_split), f"s{args.seed}")
    val = ev.make_phase("validation", world, log, config.val_split, config.test_split, events,
                        settings)
    rng = np.random.default_rng([args.seed, 11])
    pseudo = pseudo_new_users(val, rng, args.per_bucket)
    pseudo_all = np.concatenate(list(pseudo.values()))
    established = np.setdiff1d(val.users[val.bucket == NOT_NEW], pseudo_all)
    established = np.sort(rng.choice(established, size=min(args.established, established.size),
                                     replace=False))
    users = np.sort(np.concatenate([established, pseudo_all]))
    row = {int(u): i for i, u in enumerate(val.users)}
    relevant = [val.relevant[row[int(u)]] for u in users]
    kept = truncated_events(val, pseudo)

    segments: dict[str, tuple[np.ndarray, list[set[int]]]] = {
        "established": (np.isin(users, established), relevant),
        "warm items": (np.isin(users, established),
                       [{p for p in r if val.warm[p]} for r in relevant]),
        "cold items": (np.isin(users, established),
                       [{p for p in r if val.cold[p]} for r in relevant]),
    }
    for k, members in pseudo.items():
        segments[f"new {k}"] = (np.isin(users, members), relevant)

    def score(ranked: np.ndarray) -> dict[str, float]:
        out = {}
        for name, (mask, rel) in segments.items():
            values = ndcg_at_k(ranked[mask], [r for r, m in zip(rel, mask, strict=True) if m],
                               ev.K)
            out[name] = float(np.nanmean(values))
        return out

    # Popularity (the benchmark's baseline, half-life 3 d) over what each user has seen in the
    # store: pseudo-new users saw only their kept events.
    seen: dict[int, set[int]] = {}
    for e in kept:
        if e.media_id:
            seen.setdefault(int(e.user_id.removeprefix("user-")), set()).add(
                int(e.media_id.removeprefix("post-")))
    pop = bl.popularity_scores(val.view, 3.0)
    order = np.argsort(-pop, kind="stable")
    ranked_pop = np.array([[p for p in order[:200] if p not in seen.get(int(u), ())][: ev.K]
                           for u in users])
    results = {"popularity": score(ranked_pop)}

    root = Path(tempfile.mkdtemp(prefix="tune-blend-"))
    original_gates = b.gates
    try:
        vectors = open_vectors(root / "vectors", encoder)
        index_posts(vectors, world, np.flatnonzero(world.post_time < config.test_split),
                    encoder.model_id)
        base = root / "engagement"
        store = open_engagement_store(base)
        log_events(store, kept)
        store.close()
        for name in args.variants:
            weights, gate_kwargs, overrides = VARIANTS[name]
            started = time.monotonic()
            work = root / f"engagement-{name}"
            shutil.copytree(base, work)
            store = open_engagement_store(work)
            b.gates = (lambda *a, _kw=gate_kwargs, **kw: original_gates(*a, **kw, **_kw))
            variant_settings = RecommendSettings(**{**asdict(settings), **overrides})
            runner = BlendRunner(world, encoder, vectors, store, variant_settings, val.split,
                                 seed=args.seed)
            runner.recommender._ranker = RankerModel(weights={**b.DEFAULT_WEIGHTS, **weights})
            try:
                slates = runner.slates(users, ev.K)
            finally:
                runner.close()
                store.close()
                b.gates = original_gates
            results[name] = score(slates.items)
            print(f"{name}: {time.monotonic() - started:.0f}s", file=sys.stderr, flush=True)
        vectors.close()
    finally:
        shutil.rmtree(root, ignore_errors=True)
    names = list(segments)
    print(f"validation NDCG@20, seed {args.seed}: {len(established)} established users, "
          f"{args.per_bucket} pseudo-new users per k")
    print(f"{'variant':24s} " + " ".join(f"{n:>12s}" for n in names))
    for variant, values in results.items():
        print(f"{variant:24s} " + " ".join(f"{values[n]:12.4f}" for n in names))
    return 0


if __name__ == "__main__":
    sys.exit(main())
