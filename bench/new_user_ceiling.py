"""How far can simple signals go for users with k likes? (validation window only; a developer tool)

``python -m bench.new_user_ceiling --seed 1 --k 3`` takes the users ``bench.tune_blend``
picks as pseudo-new (established validation users), cuts each to their k most recent positive
engagements (a long view counts, where tune_blend keeps likes, comments, shares and saves),
keeps everything they saw before the split excluded, as the benchmark's baselines do, and
ranks the whole catalogue for them by combinations of:

- popularity (the benchmark's baseline, half-life 3 days, and 1 day),
- content: the mean cosine of a post to the k liked posts (demo CLIP vectors),
- co-engagement: mediarec's faded item-kNN over every *other* user's history,
- and, as an upper bound no recommender can observe, the world's latent communities:
  decayed popularity among users of the user's own communities.

The best weights are picked on the same users they are scored on, so the numbers are an
optimistic ceiling for these signals, not a method. ``docs/bench/limits.md`` uses it to explain the
new-user target.
"""

from __future__ import annotations

import argparse
import itertools
import logging
import sys
from collections.abc import Sequence

import numpy as np

from bench import baselines as bl
from bench import evaluation as ev
from bench.blend_runner import recommend_settings, to_events
from bench.metrics import ndcg_at_k
from bench.quality import DEFAULT_CACHE, simulated_world
from bench.tune_blend import pseudo_new_users
from bench.world_sim import WorldConfig

DAY_S = 86_400.0
CONTENT_WEIGHTS = (0.0, 2.0, 5.0, 10.0, 20.0)
COENG_WEIGHTS = (0.0, 0.5, 1.0, 2.0)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.new_user_ceiling",
                                     description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--k", type=int, default=3, choices=(1, 3, 10))
    parser.add_argument("--users", type=int, default=200, help="pseudo-new users scored")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    from mediarec.encoders import EncoderOptions, load_encoder

    encoder = load_encoder("mediarec-demo", EncoderOptions(batch_size=256))
    config = WorldConfig(seed=args.seed)
    world, log = simulated_world(config, encoder, DEFAULT_CACHE)
    settings = recommend_settings(encoder.model_id)
    events = to_events(world, log.before(config.test_split), f"s{args.seed}")
    val = ev.make_phase("validation", world, log, config.val_split, config.test_split, events,
                        settings)
    view = val.view
    users = pseudo_new_users(val, np.random.default_rng([args.seed, 11]), args.users)[args.k]
    row = {int(u): i for i, u in enumerate(val.users)}
    relevant = [val.relevant[row[int(u)]] for u in users]
    liked = {int(u): list(view.recent[int(u)])[: args.k] for u in users}
    others = [u for u in view.recent if u not in liked]
    coengagement = bl.CoEngagementOnly(view, settings, settings.coeng_shrinkage, users=others)
    graph, post_of = coengagement.graph, coengagement.post_of
    content = np.zeros((users.size, view.n_posts))
    coeng = np.zeros_like(content)
    for i, u in enumerate(users):
        items = liked[int(u)]
        content[i] = (world.visual[items] @ world.visual.T).mean(axis=0)
        scores = graph.scores({f"{p}": 1.0 for p in items})
        if scores.items.size:
            coeng[i, post_of[scores.items]] = scores.totals

    def ndcg(scores: np.ndarray) -> float:
        s = np.array(scores, dtype=np.float64)
        s[:, ~view.catalog] = -np.inf
        for i, u in enumerate(users):
            s[i, liked[int(u)]] = -np.inf
            seen = view.seen.get(int(u))
            if seen is not None:
                s[i, seen] = -np.inf
        top = np.argsort(-s, axis=1)[:, : ev.K]
        return float(np.nanmean(ndcg_at_k(top, relevant, ev.K)))

    popularity = {h: bl.popularity_scores(view, h) for h in (3.0, 1.0)}
    tie = 1e-9 * bl.popularity_rank(popularity[3.0])
    log_pop = np.log1p(popularity[3.0])[None, :]
    log_co = np.log1p(100.0 * coeng / max(float(coeng.max()), 1e-12))
    print(f"validation NDCG@20, seed {args.seed}, {users.size} pseudo-new users with "
          f"{args.k} likes")
    base = ndcg(np.broadcast_to(popularity[3.0] + tie, content.shape))
    print(f"  popularity (half-life 3 d, the baseline):   {base:.4f}")
    print(f"  popularity (half-life 1 d):                 "
          f"{ndcg(np.broadcast_to(popularity[1.0] + tie, content.shape)):.4f}")
    combos = sorted(
        ((ndcg(log_pop + a * content + c * log_co + tie), a, c)
         for a, c in itertools.product(CONTENT_WEIGHTS, COENG_WEIGHTS)),
        reverse=True,
    )
    best, a, c = combos[0]
    print(f"  best of log popularity + a content + c log co-engagement: {best:.4f} "
          f"(a={a:g}, c={c:g}; {best / base:.2f}x the baseline)")

    communities = world.user_communities.astype(np.float64)
    weights = 0.5 ** ((view.split - view.pos_ts) / (1.0 * DAY_S))
    by_community = np.zeros((communities.shape[1], view.n_posts))
    np.add.at(by_community.T, view.pos_post, communities[view.pos_user] * weights[:, None])
    oracle = communities[users] @ by_community
    best_oracle = max(ndcg(log_pop + b * np.log1p(oracle) + a * content + tie)
                      for b, a in itertools.product((0.5, 1.0, 2.0), (0.0, 2.0, 5.0)))
    print(f"  with the latent communities (oracle):        {best_oracle:.4f} "
          f"({best_oracle / base:.2f}x the baseline)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
