"""bench-speed section "latency": Recommend and SearchMedia latency vs catalogue size (issue 5, 4).

For each catalogue size a synthetic world (:mod:`bench.speed_latency_world`: posts with
realistic payloads and clustered bring-your-own vectors, 1k users with histories in the SQLite
engagement store) is copied into a fresh data dir, the real server is started on it in a
process of its own (:mod:`bench.speed_latency_server`, the demo model, default settings), and
a load generator in another process (:mod:`bench.speed_latency_load`, counted: it shares the
cores) calls it over gRPC with the client:

* every size: concurrency 1 for Recommend (users with history, new users), SearchMedia by
  ``media_id`` and text SearchMedia (which includes a text-encoder pass);
* the largest size also: an open loop at 50 req/s (latency from each call's scheduled send
  time), closed loops at a few concurrencies for the peak req/s, the server's RSS, and a
  per-stage time breakdown of Recommend (in the server process) with a cProfile summary.

``recommend_*`` summary keys are users with history; ``search_*`` are by ``media_id``. Users are
taken in rotation; the server warms their profiles and feed candidates in the background once
it starts (``recommend.precompute_users``), so these calls find them cached. The workload "just
after an event" logs a search first, which drops the user's cached work: that call builds it.
The curve goes to ``docs/latency_vs_size.png`` and ``.csv``.
"""

from __future__ import annotations

import logging
import multiprocessing
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from bench.speed import SectionResult, SpeedConfig
from bench.speed_latency_load import (
    REC_AFTER_EVENT,
    REC_NEW,
    REC_WARM,
    SEARCH_ID,
    SEARCH_TEXT,
    Call,
    Sample,
    closed_loop,
    open_loop,
)
from bench.speed_latency_report import markdown, peak_point, write_curve
from bench.speed_latency_server import IN_PROCESS_STAGE, MODEL_ID, serve
from bench.speed_latency_world import WorldInfo, WorldSpec, ensure_world
from mediarec.server.recommend.learned import LEARNED_RANKER_FILE
from mediarec.server.store.sparse_copy import copy_tree_sparse

logger = logging.getLogger(__name__)

WORKLOADS = (REC_WARM, REC_NEW, REC_AFTER_EVENT, SEARCH_ID, SEARCH_TEXT)
PEAK_WORKLOADS = (REC_WARM, REC_NEW, SEARCH_ID)
# The open loop has no untimed step before a call, so "just after an event" runs at c1 only.
OPEN_LOOP_WORKLOADS = tuple(w for w in WORKLOADS if w != REC_AFTER_EVENT)
DEFAULT_SERVER = "default"


@dataclass(frozen=True)
class Variant:
    """Another server at the largest size, on a fresh copy of the data, beside the default."""

    name: str
    overrides: dict[str, Any]
    c1_workloads: tuple[str, ...]
    open_workloads: tuple[str, ...]  # at the open-loop rate (no peak runs)
    learned: bool = False  # serves a learned ranker trained on the world's history


# numpy's OpenBLAS left at its own pool (the server's default limits it to one thread): its
# small matrix products spin two threads on two shared cores.
BLAS_POOL = Variant("blas_threads=0", {"blas_threads": 0}, WORKLOADS, (REC_WARM, SEARCH_ID))
# A learned ranker trained on the world's history (``mediarec train-ranker``, once per cached
# world), which serve loads from the data dir.
LEARNED = Variant("learned ranker", {}, (REC_WARM, REC_NEW), (REC_WARM,), learned=True)
VARIANTS = (BLAS_POOL, LEARNED)
DOCS_DIR = Path("docs")
CURVE_NAME = "latency_vs_size"


@dataclass(frozen=True)
class Plan:
    """How big the run is; ``quick`` is a smoke run, not a result."""

    sizes: tuple[int, ...]  # catalogue sizes; the last one gets the full treatment
    requests: int  # timed calls per workload at concurrency 1, largest size
    curve_requests: int  # ... at the smaller sizes
    warmup: int  # untimed calls per workload before the first timed ones
    rate: float  # open-loop offered load, req/s
    open_loop_s: float
    peak_concurrency: tuple[int, ...]
    peak_s: float  # seconds per closed-loop peak measurement
    profile_users: int  # users reserved for the breakdown (half timed, half cProfiled)
    variant: bool  # also measure the largest size with OpenBLAS's own thread pool


FULL = Plan((1_000, 10_000, 100_000), 300, 150, 20, 50.0, 20.0, (4, 8), 8.0, 60, True)
QUICK = Plan((1_000, 3_000), 60, 40, 5, 50.0, 4.0, (4,), 3.0, 10, True)


@dataclass
class Point:
    """One measurement: a workload at one size under one load."""

    size: int
    workload: str
    mode: str  # "c1", "open 50/s", "closed c4"
    requests: int
    errors: int
    p50_ms: float
    p99_ms: float
    mean_ms: float
    rps: float  # completed calls per second
    aborted: bool = False
    first_error: str = ""
    server: str = DEFAULT_SERVER  # which server variant answered


@dataclass
class SizeResult:
    size: int
    world: WorldInfo
    loadavg: tuple[str, str] = ("", "")  # /proc/loadavg (1-min) before and after
    startup_s: float = 0.0
    ready_memory: dict[str, float] = field(default_factory=dict)  # MiB, see memory_mb
    memory: dict[str, float] = field(default_factory=dict)  # MiB, after the load
    points: list[Point] = field(default_factory=list)
    breakdowns: dict[str, dict[str, Any]] = field(default_factory=dict)  # server -> stages

    @property
    def rss_mb(self) -> float:
        return self.memory.get("rss", 0.0)

    def point(self, workload: str, mode: str, server: str = "default") -> Point | None:
        return next(
            (p for p in self.points
             if p.workload == workload and p.mode == mode and p.server == server),
            None,
        )  # fmt: skip


def to_point(size: int, workload: str, mode: str, sample: Sample) -> Point:
    ms = np.asarray(sample.latencies_s) * 1000.0
    if ms.size == 0:
        raise RuntimeError(f"{workload} at {size} ({mode}): no call completed")
    return Point(
        size=size, workload=workload, mode=mode, requests=int(ms.size), errors=sample.errors,
        p50_ms=float(np.percentile(ms, 50)), p99_ms=float(np.percentile(ms, 99)),
        mean_ms=float(ms.mean()), rps=ms.size / sample.wall_s, aborted=sample.aborted,
        first_error=sample.first_error,
    )  # fmt: skip


class CallSource:
    """Calls of each workload, in rotation, so consecutive phases don't reuse a user at once."""

    def __init__(self, world: WorldInfo, size: int, reserved_users: int, seed: int = 7) -> None:
        rng = np.random.default_rng(seed)
        users = list(world.warm_users)
        self.profile_users = users[len(users) - reserved_users :]
        self._pools = {
            REC_WARM: [users[i] for i in rng.permutation(len(users) - reserved_users)],
            REC_AFTER_EVENT: [
                f"{users[i]}\t{world.queries[i % len(world.queries)]}"
                for i in rng.permutation(len(users) - reserved_users)
            ],
            SEARCH_ID: [world.media_ids[i] for i in rng.permutation(len(world.media_ids))],
            SEARCH_TEXT: [world.queries[i] for i in rng.permutation(len(world.queries))],
        }
        self._next = dict.fromkeys(WORKLOADS, 0)
        self._size = size

    def take(self, workload: str, n: int) -> list[Call]:
        start = self._next[workload]
        self._next[workload] += n
        if workload == REC_NEW:  # a new user each call: nobody has a history or a cache entry
            return [Call(workload, f"new-{self._size}-{i}") for i in range(start, start + n)]
        pool = self._pools[workload]
        return [Call(workload, pool[i % len(pool)]) for i in range(start, start + n)]


def memory_mb(pid: int) -> dict[str, float]:
    """A process's resident memory in MiB: total (VmRSS), peak (VmHWM), anonymous (heap,
    caches) and file-backed (shared libraries such as torch's, and the store's mmaps)."""
    fields = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        fields[key] = value.split()
    names = {"rss": "VmRSS", "peak": "VmHWM", "anon": "RssAnon", "file": "RssFile"}
    return {name: int(fields[key][0]) / 1024 for name, key in names.items() if key in fields}


def load1() -> str:
    return Path("/proc/loadavg").read_text().split()[0]


@dataclass
class ServerHandle:
    """The server process and its command pipe."""

    process: Any
    pipe: Any
    hello: dict[str, Any] = field(default_factory=dict)

    @property
    def target(self) -> str:
        return f"127.0.0.1:{self.hello['port']}"

    def receive(self, timeout_s: float) -> dict[str, Any]:
        deadline = time.monotonic() + timeout_s
        while not self.pipe.poll(1.0):
            if not self.process.is_alive():
                raise RuntimeError(f"the server process died (exit code {self.process.exitcode})")
            if time.monotonic() > deadline:
                raise TimeoutError(f"the server did not answer within {timeout_s:.0f} s")
        answer: dict[str, Any] = self.pipe.recv()
        if "error" in answer:
            raise RuntimeError(answer["error"])
        return answer

    def ask(self, command: str, argument: Any, timeout_s: float = 300.0) -> dict[str, Any]:
        self.pipe.send((command, argument))
        return self.receive(timeout_s)


@contextmanager
def running_server(data_dir: Path, overrides: dict[str, Any]) -> Iterator[ServerHandle]:
    """The server in its own process on ``data_dir``, up and ready (store built, state built)."""
    context = multiprocessing.get_context("spawn")  # no forked copy of this process's threads
    parent, child = context.Pipe()
    process = context.Process(target=serve, args=(str(data_dir), child, overrides), name="mediarec")
    process.start()
    server = ServerHandle(process, parent)
    try:
        server.hello = server.receive(600.0)
        server.hello["memory"] = memory_mb(server.hello["pid"])
        yield server
        parent.send(("stop", None))
    finally:
        process.join(30)
        if process.is_alive():  # our own child, stuck: end it
            process.terminate()
            process.join(10)
    if process.exitcode != 0:
        raise RuntimeError(f"the server process exited with {process.exitcode}")


@contextmanager
def server_on_copy(
    data: Path, work_dir: Path, overrides: dict[str, Any], model: Path | None = None
) -> Iterator[ServerHandle]:
    """A server on a fresh copy of ``data``: a run writes (served log, rankings), the cache
    must stay as generated. ``model``: a learned ranker file, put where serve loads it."""
    run_dir = work_dir / "latency" / "run"
    shutil.rmtree(run_dir, ignore_errors=True)
    copy_tree_sparse(data, run_dir)
    if model is not None:
        shutil.copyfile(model, run_dir / LEARNED_RANKER_FILE)
    try:
        with running_server(run_dir, overrides) as server:
            yield server
    finally:
        shutil.rmtree(run_dir, ignore_errors=True)


def measure_size(
    size: int, plan: Plan, config: SpeedConfig, load: ProcessPoolExecutor, headline: bool
) -> SizeResult:
    data, world = ensure_world(config.work_dir, WorldSpec(posts=size), MODEL_ID)
    result = SizeResult(size, world, loadavg=(load1(), ""))
    with server_on_copy(data, config.work_dir, {}) as server:
        result.startup_s = server.hello["startup_s"]
        result.ready_memory = server.hello["memory"]
        calls = CallSource(world, size, plan.profile_users if headline else 0)
        n = plan.requests if headline else plan.curve_requests
        result.points += c1_points(server, size, plan, calls, load, n)
        if headline:
            result.points += loaded_points(server, size, plan, calls, load)
            server.ask("settle", None)
            result.breakdowns[DEFAULT_SERVER] = server.ask("profile", calls.profile_users)
        result.memory = memory_mb(server.hello["pid"])
    if headline and plan.variant:
        for variant in VARIANTS:
            points, result.breakdowns[variant.name] = measure_variant(
                variant, data, world, size, plan, config, load
            )
            result.points += points
    result.loadavg = (result.loadavg[0], load1())
    for p in result.points:
        logger.info("%d %s %s %s: p50 %.1f ms, p99 %.1f ms, %.1f req/s, %d errors%s", size,
                    p.workload, p.mode, p.server, p.p50_ms, p.p99_ms, p.rps, p.errors,
                    " (aborted: overloaded)" if p.aborted else "")  # fmt: skip
    return result


def measure_variant(
    variant: Variant,
    data: Path,
    world: WorldInfo,
    size: int,
    plan: Plan,
    config: SpeedConfig,
    load: ProcessPoolExecutor,
) -> tuple[list[Point], dict[str, Any]]:
    """The variant's points (concurrency 1, then the open loop) and its stage breakdown."""
    model = ensure_learned_model(config.work_dir, data) if variant.learned else None
    with server_on_copy(data, config.work_dir, variant.overrides, model) as server:
        calls = CallSource(world, size, plan.profile_users)
        points = c1_points(server, size, plan, calls, load, plan.requests, variant.c1_workloads)
        points += loaded_points(server, size, plan, calls, load, variant.open_workloads, peak=False)
        server.ask("settle", None)
        breakdown = server.ask("profile", calls.profile_users)
    for p in points:
        p.server = variant.name
    return points, breakdown


def ensure_learned_model(work_dir: Path, data: Path) -> Path:
    """The learned ranker trained on the cached world at ``data`` (trained on a copy, kept
    beside the world: the world's history never changes)."""
    model = data.parent / LEARNED_RANKER_FILE
    if model.exists():
        return model
    train_dir = work_dir / "latency" / "train"
    shutil.rmtree(train_dir, ignore_errors=True)
    copy_tree_sparse(data, train_dir)
    started = time.monotonic()
    subprocess.run(
        [sys.executable, "-m", "mediarec.server.cli", "train-ranker", "--data-dir",
         str(train_dir), "--model-id", MODEL_ID],
        check=True, stdout=subprocess.DEVNULL,
    )  # fmt: skip
    logger.info("trained the learned ranker in %.0f s", time.monotonic() - started)
    tmp = model.with_suffix(".tmp")
    shutil.copyfile(train_dir / LEARNED_RANKER_FILE, tmp)
    tmp.rename(model)
    shutil.rmtree(train_dir, ignore_errors=True)
    return model


def c1_points(
    server: ServerHandle,
    size: int,
    plan: Plan,
    calls: CallSource,
    load: ProcessPoolExecutor,
    n: int,
    workloads: tuple[str, ...] = WORKLOADS,
) -> list[Point]:
    target = server.target
    points = []
    for workload in workloads:
        server.ask("settle", None)
        batch = calls.take(workload, plan.warmup + n)
        sample = load.submit(closed_loop, target, batch, 1, warmup=plan.warmup).result()
        points.append(_checked(to_point(size, workload, "c1", sample), sample))
    return points


def loaded_points(
    server: ServerHandle,
    size: int,
    plan: Plan,
    calls: CallSource,
    load: ProcessPoolExecutor,
    workloads: tuple[str, ...] = OPEN_LOOP_WORKLOADS,
    *,
    peak: bool = True,
) -> list[Point]:
    target = server.target
    points = []
    count = int(plan.rate * plan.open_loop_s)
    for workload in workloads:
        server.ask("settle", None)
        sample = load.submit(open_loop, target, calls.take(workload, count), plan.rate).result()
        points.append(to_point(size, workload, f"open {plan.rate:g}/s", sample))
    for workload in PEAK_WORKLOADS if peak else ():
        for concurrency in plan.peak_concurrency:
            server.ask("settle", None)
            batch = calls.take(workload, int(200 * plan.peak_s))  # more than any run completes
            sample = load.submit(
                closed_loop, target, batch, concurrency, max_seconds=plan.peak_s
            ).result()
            points.append(to_point(size, workload, f"closed c{concurrency}", sample))
    return points


def _checked(point: Point, sample: Sample) -> Point:
    if sample.errors:  # unloaded calls must not fail: that is a broken setup, not a number
        raise RuntimeError(f"{point.workload} at {point.size}: {sample.errors} errors, "
                           f"e.g. {sample.first_error}")  # fmt: skip
    return point


# -- the section ------------------------------------------------------------------------------


def summary(result: SizeResult, rate: float) -> dict[str, float | None]:
    def value(workload: str, mode: str, attr: str, server: str = DEFAULT_SERVER) -> float | None:
        p = result.point(workload, mode, server)
        return None if p is None else round(getattr(p, attr), 2)

    def in_process(server: str) -> float | None:
        """A warm Recommend's in-process ms in the stage probe."""
        stage = result.breakdowns.get(server, {}).get("cached", {}).get(IN_PROCESS_STAGE)
        return None if stage is None else round(stage["ms"], 2)

    open_mode = f"open {rate:g}/s"
    best = peak_point(result, REC_WARM)
    return {
        "recommend_p99_ms_100k_c1": value(REC_WARM, "c1", "p99_ms"),
        "recommend_p99_ms_100k_50rps": value(REC_WARM, open_mode, "p99_ms"),
        "recommend_peak_rps_100k": None if best is None else round(best.rps, 1),
        "recommend_warm_in_process_ms_100k": in_process(DEFAULT_SERVER),
        "recommend_p99_ms_100k_c1_learned": value(REC_WARM, "c1", "p99_ms", LEARNED.name),
        "recommend_p99_ms_100k_50rps_learned": value(REC_WARM, open_mode, "p99_ms", LEARNED.name),
        "recommend_warm_in_process_ms_100k_learned": in_process(LEARNED.name),
        "search_p99_ms_100k_c1": value(SEARCH_ID, "c1", "p99_ms"),
        "search_p99_ms_100k_50rps": value(SEARCH_ID, open_mode, "p99_ms"),
        "rss_mb_100k": round(result.rss_mb, 1),
    }


def run(config: SpeedConfig) -> SectionResult:
    plan = QUICK if config.quick else FULL
    started = time.monotonic()
    results: list[SizeResult] = []
    spawn = multiprocessing.get_context("spawn")  # no forked copy of this process's threads
    with ProcessPoolExecutor(max_workers=1, mp_context=spawn) as load:  # the load generator
        for size in plan.sizes:
            results.append(measure_size(size, plan, config, load, size == plan.sizes[-1]))
    out_dir = DOCS_DIR if not config.quick else config.work_dir / "latency"
    csv_path, png_path = write_curve(results, out_dir / f"{CURVE_NAME}.csv",
                                     out_dir / f"{CURVE_NAME}.png")  # fmt: skip
    seconds = time.monotonic() - started
    return SectionResult(
        metrics=summary(results[-1], plan.rate),
        report=markdown(plan, results, csv_path, png_path, seconds, config.quick),
        extra={
            "plan": asdict(plan),
            "points": [asdict(p) for r in results for p in r.points],
            "breakdowns": {r.size: r.breakdowns for r in results if r.breakdowns},
            "sizes": [
                {k: v for k, v in asdict(r).items() if k not in ("points", "world", "breakdowns")}
                | {"build_s": r.world.build_s, "indexed_vectors": r.world.indexed_vectors}
                for r in results
            ],
        },
    )
