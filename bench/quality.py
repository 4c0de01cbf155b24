"""`make bench-quality`: recommendation quality on a synthetic world, two world seeds.

Per seed: build the world (posts rendered by the demo generator and embedded by the demo CLIP,
cached on disk), simulate organic engagement, split by time (train | validation | test), tune
the baselines' knobs on validation, generate served logs with the real blend on validation
users and label them with the simulator to train the ranker, then evaluate every method on the
test window: popularity, content-only, co-engagement-only, EASE, the blend at its default
exploration budget, and the blend with the trained ranker. The blend is the real
``Recommender`` over a real Qdrant Edge store and the real SQLite engagement store.

The last line printed is one JSON object (issue 4, section 5).
"""

from __future__ import annotations

import argparse
import concurrent.futures
import json
import logging
import multiprocessing
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from bench import evaluation as ev
from bench.blend_runner import (
    BlendRunner,
    PropensityCheck,
    copy_engagement,
    index_posts,
    log_events,
    open_vectors,
    propensity_check,
    recommend_settings,
    to_events,
)
from bench.engagement_sim import EngagementLog, SimConfig, simulate_cached
from bench.report import code_version, summarize, write_docs
from bench.world_sim import (
    NOT_NEW,
    World,
    WorldConfig,
    build_world,
    source_digest,
)

logger = logging.getLogger(__name__)

DEFAULT_SEEDS = (1, 2)
DEFAULT_CACHE = Path(".cache") / "bench-quality"


@dataclass(frozen=True)
class Options:
    model_id: str = "mediarec-demo"
    cache_dir: Path | None = DEFAULT_CACHE
    val_users: int = 600  # validation users whose served slates train the ranker
    max_established: int | None = None  # None: every established test user is evaluated
    propensity_users: int = 4
    propensity_repeats: int = 40
    world: dict = field(default_factory=dict)  # WorldConfig overrides (tests: a tiny world)
    torch_threads: int | None = None
    workdir: Path | None = None  # parent of the per-seed temp dirs (None: the system's)
    keep_stores: bool = False  # keep the per-seed stores (to reproduce a finding)


@dataclass
class SeedResult:
    seed: int
    world: dict
    users: np.ndarray
    bucket: np.ndarray
    relevant: list[set[int]]
    ranked: dict[str, np.ndarray]
    warm: np.ndarray
    cold: np.ndarray
    catalog: np.ndarray
    tuned: ev.Tuned
    ranker_report: str
    ranker_trained: bool
    propensity: PropensityCheck | None
    blend_ms_per_call: float
    seconds: dict[str, float]


def simulated_world(
    config: WorldConfig, encoder, cache_dir: Path | None
) -> tuple[World, EngagementLog]:
    """The world of ``config`` and its organic engagement log, both cached under
    ``cache_dir`` (the log keyed by the simulator's source and every knob)."""
    world = build_world(config, encoder, cache_dir)
    sim_config = SimConfig()
    key = source_digest("bench.world_sim", "bench.engagement_sim")[:12] + "-" + _digest(
        asdict(config), asdict(sim_config), asdict(world.weights))
    return world, simulate_cached(world, sim_config, cache_dir, key)


def run_seed(seed: int, options: Options) -> SeedResult:
    """Everything for one world seed (runs in a worker process when seeds run in parallel)."""
    from mediarec.encoders import EncoderOptions, load_encoder
    from mediarec.server.recommend.train import TrainConfig, format_report, train_ranker

    clock = _Stopwatch()
    encoder = load_encoder(options.model_id,
                           EncoderOptions(batch_size=256, torch_threads=options.torch_threads))
    config = WorldConfig(seed=seed, **options.world)
    world, log = simulated_world(config, encoder, options.cache_dir)
    clock.lap("world and simulation")

    settings = recommend_settings(options.model_id)
    prefix = log.before(config.test_split)
    events = to_events(world, prefix, f"s{seed}")
    val = ev.make_phase("validation", world, log, config.val_split, config.test_split, events,
                        settings)
    test = ev.make_phase("test", world, log, config.test_split, config.end, events, settings)
    test_users = _evaluated_users(test, options.max_established, seed)
    clock.lap("split")
    tuned = ev.tune_baselines(val, world, settings)
    clock.lap("baselines: validation tuning")

    root = Path(tempfile.mkdtemp(prefix=f"bench-quality-{seed}-", dir=options.workdir))
    try:
        vectors = open_vectors(root / "vectors", encoder)
        index_posts(vectors, world, np.flatnonzero(world.post_time < config.test_split),
                    encoder.model_id)
        from mediarec.server.engagement import open_engagement_store

        store = open_engagement_store(root / "validation")
        log_events(store, val.train_events)
        store.close()
        copy_engagement(root / "validation", root / "test")
        clock.lap("stores: index and log (validation)")

        ranker_path = root / "ranker.json"
        window_events = test.train_events[len(val.train_events):]
        report = _train_ranker_on_validation(
            world, encoder, vectors, root / "validation", val, window_events, options, seed,
            ranker_path, settings, train_ranker, TrainConfig, format_report,
        )
        clock.lap("ranker: served logs on validation, labels, train-ranker")

        index_posts(vectors, world, np.flatnonzero(world.post_time >= config.test_split),
                    encoder.model_id)
        store = open_engagement_store(root / "test")
        log_events(store, window_events)
        store.close()
        copy_engagement(root / "test", root / "test-trained")
        clock.lap("stores: index cold posts, log (test)")

        ranked = ev.run_baselines(test, world, settings, tuned)
        clock.lap("baselines: test")
        blend, ms = _blend_slates(world, encoder, vectors, root / "test", settings, test,
                                  test_users, seed)
        ranked["blend"] = blend
        clock.lap("blend: test")
        trained_settings = recommend_settings(options.model_id, ranker_path=str(ranker_path))
        ranked["blend_trained"], _ = _blend_slates(
            world, encoder, vectors, root / "test-trained", trained_settings, test, test_users,
            seed)
        clock.lap("blend with trained ranker: test")

        check = None
        if options.propensity_users > 0:
            candidates = test.users[test.bucket == NOT_NEW]
            rng = np.random.default_rng([seed, 7])
            chosen = rng.choice(candidates, size=min(options.propensity_users, candidates.size),
                                replace=False)
            check = propensity_check(world, encoder, vectors, test.train, chosen.tolist(),
                                     config.test_split, root / "propensity",
                                     options.propensity_repeats)
            clock.lap("propensity check")
        vectors.close()
    finally:
        if options.keep_stores:
            logger.info("stores of seed %d kept under %s", seed, root)
        else:
            shutil.rmtree(root, ignore_errors=True)

    keep = np.isin(test.users, test_users)
    return SeedResult(
        seed=seed,
        world=_world_summary(world, log, val, test, test_users),
        users=test.users[keep],
        bucket=test.bucket[keep],
        relevant=[r for r, k in zip(test.relevant, keep, strict=True) if k],
        ranked={m: r[keep] for m, r in ranked.items()},
        warm=test.warm,
        cold=test.cold,
        catalog=test.view.catalog,
        tuned=tuned,
        ranker_report=report[0],
        ranker_trained=report[1],
        propensity=check,
        blend_ms_per_call=ms,
        seconds=clock.laps,
    )


def _evaluated_users(phase: ev.Phase, max_established: int | None, seed: int) -> np.ndarray:
    """Every new user; established users too, or a seeded sample of them when capped."""
    established = phase.users[phase.bucket == NOT_NEW]
    if max_established is not None and established.size > max_established:
        rng = np.random.default_rng([seed, 5])
        established = np.sort(rng.choice(established, size=max_established, replace=False))
    return np.sort(np.concatenate([established, phase.users[phase.bucket != NOT_NEW]]))


def _blend_slates(
    world: World, encoder, vectors, engagement_dir: Path, settings, phase: ev.Phase,
    users: np.ndarray, seed: int,
) -> tuple[np.ndarray, float]:
    """The blend's slates for ``users``, rows aligned with ``phase.users`` (-1 elsewhere)."""
    from mediarec.server.engagement import open_engagement_store

    store = open_engagement_store(engagement_dir)
    runner = BlendRunner(world, encoder, vectors, store, settings, phase.split, seed=seed)
    try:
        slates = runner.slates(users, ev.K)
    finally:
        runner.close()
        store.close()
    out = np.full((phase.users.size, ev.K), -1, dtype=np.int64)
    out[np.searchsorted(phase.users, users)] = slates.items
    return out, 1000.0 * slates.seconds / max(1, users.size)


def _train_ranker_on_validation(
    world, encoder, vectors, engagement_dir: Path, val: ev.Phase, window_events, options: Options,
    seed: int, ranker_path: Path, settings, train_ranker, train_config, format_report,
) -> tuple[str, bool]:
    """Serve the default blend to validation users at the validation split, then log what the
    simulated users did during the validation window; train-ranker labels each served item by
    whether its user engaged with it in that window (the same notion of relevance as the
    test), and fits the ranker."""
    from mediarec.server.engagement import open_engagement_store

    rng = np.random.default_rng([seed, 6])
    users = val.users
    if users.size > options.val_users:
        users = np.sort(rng.choice(users, size=options.val_users, replace=False))
    store = open_engagement_store(engagement_dir)
    runner = BlendRunner(world, encoder, vectors, store, settings, val.split, seed=seed + 100)
    try:
        runner.slates(users, ev.K)
    finally:
        runner.close()
    log_events(store, window_events)
    config = train_config(label_window_s=val.end - val.split)
    result = train_ranker(store, settings, config, out_path=ranker_path, now=val.end)
    store.close()
    text = format_report(result)
    logger.info("train-ranker on validation served logs (seed %d):\n%s", seed, text)
    return text, result.trained


def _world_summary(world: World, log, val: ev.Phase, test: ev.Phase, users: np.ndarray) -> dict:
    c = world.config
    train = test.train
    buckets = {str(b): int(np.sum(world.user_bucket[users] == b)) for b in c.new_user_buckets}
    return {
        "seed": c.seed,
        "posts": world.n_posts,
        "creators": c.creators,
        "users": world.n_users,
        "established_users": c.established_users,
        "new_users_per_bucket": c.users_per_bucket,
        "days": c.days,
        "validation_days": c.val_days,
        "test_days": c.test_days,
        "train_events": len(train),
        "train_positive_events": int(train.positive.sum()),
        "test_positive_pairs": int(sum(len(r) for r in test.relevant)),
        "evaluated_users": int(users.size),
        "evaluated_established_users": int(np.sum(world.user_bucket[users] == NOT_NEW)),
        "evaluated_new_users": buckets,
        "cold_posts": int(test.cold.sum()),
        "warm_posts": int(test.warm.sum()),
        "validation_users": int(val.users.size),
    }


class _Stopwatch:
    def __init__(self) -> None:
        self.laps: dict[str, float] = {}
        self._t = time.monotonic()

    def lap(self, name: str) -> None:
        now = time.monotonic()
        self.laps[name] = now - self._t
        logger.info("%s: %.1fs", name, now - self._t)
        self._t = now


def _digest(*parts: object) -> str:
    import hashlib

    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:12]


def run_all(seeds: Sequence[int], options: Options, jobs: int) -> list[SeedResult]:
    if jobs <= 1 or len(seeds) == 1:
        return [run_seed(s, options) for s in seeds]
    # One process per seed, one BLAS/torch thread each: the seeds share the cores.
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    options = Options(**{**options.__dict__, "torch_threads": 1})
    context = multiprocessing.get_context("spawn")
    with concurrent.futures.ProcessPoolExecutor(min(jobs, len(seeds)), mp_context=context,
                                                initializer=_init_worker) as pool:
        return list(pool.map(run_seed, seeds, [options] * len(seeds)))


_LOG_FORMAT = "%(asctime)s [%(process)d] %(name)s: %(message)s"


def _init_worker() -> None:
    logging.basicConfig(level=logging.INFO, format=_LOG_FORMAT)
    for handler in logging.getLogger().handlers:  # open_clip logs chatter on the root logger
        handler.addFilter(lambda record: record.name != "root" or record.levelno >= logging.WARNING)


def main(argv: Sequence[str] | None = None) -> int:
    code_version()  # names the code as loaded, whatever the tree holds when the run ends
    parser = argparse.ArgumentParser(prog="python -m bench.quality",
                                     description="Recommendation quality benchmark.")
    parser.add_argument("--seeds", type=int, nargs="+", default=list(DEFAULT_SEEDS))
    parser.add_argument("--model", default="mediarec-demo", help="encoder model id")
    parser.add_argument("--cache-dir", type=Path, default=DEFAULT_CACHE,
                        help="rendered+embedded worlds and simulated logs (git-ignored)")
    parser.add_argument("--no-cache", action="store_true")
    parser.add_argument("--jobs", type=int, default=2, help="seeds run in parallel processes")
    parser.add_argument("--val-users", type=int, default=Options.val_users)
    parser.add_argument("--max-established", type=int, default=None,
                        help="evaluate a sample of established users (default: all)")
    parser.add_argument("--propensity-users", type=int, default=Options.propensity_users)
    parser.add_argument("--propensity-repeats", type=int, default=Options.propensity_repeats)
    parser.add_argument("--keep-stores", action="store_true",
                        help="keep each seed's Qdrant, SQLite and ranker files (their path is "
                        "logged) to reproduce a finding")
    parser.add_argument("--docs", type=Path, default=Path("docs") / "bench" / "quality.md",
                        help="where the section goes ('-' to skip)")
    args = parser.parse_args(argv)
    _init_worker()
    options = Options(
        model_id=args.model,
        cache_dir=None if args.no_cache else args.cache_dir,
        val_users=args.val_users,
        max_established=args.max_established,
        propensity_users=args.propensity_users,
        propensity_repeats=args.propensity_repeats,
        keep_stores=args.keep_stores,
    )
    started = time.monotonic()
    results = run_all(args.seeds, options, args.jobs)
    seconds = time.monotonic() - started
    summary = summarize(results, np.random.default_rng(0))
    print(summary.text)
    print(f"total runtime: {seconds / 60:.1f} min")
    if str(args.docs) != "-":
        write_docs(args.docs, summary, results, seconds, args)
        print(f"table written to {args.docs}")
    print(json.dumps(summary.json))
    return 0


if __name__ == "__main__":
    sys.exit(main())
