"""bench-speed section "batching": cross-request dynamic batching on vs off (issue 5, part 3).

For each model (ViT-B-32 with seeded random weights, the architecture the target is stated for,
and the bundled demo model beside it) two real servers run side by side in this process
(``build_server`` over the embedded store, seeded with random bring-your-own vectors): one with
``batching.enabled``, one without. A load generator in a separate process (it shares the cores,
as a real client on the same machine would) runs 16 client threads, each with its own channel,
each sending its next request as soon as the last one returns (closed loop):

* single-query text SearchMedia calls (one short query each, all different);
* single-image IndexMedia calls (one small JPEG each, no caption, all different ids).

The timed requests are split into rounds that alternate between the two servers (off, on, on,
off, ...), so a change in background load on a shared machine hits both alike. Throughput is
timed requests / wall time, after one untimed warm-up request per client and server; latency is
per request as the client sees it; server CPU is this process's CPU time per request.
``concurrent_embed_speedup`` is the ViT-B-32 text-search requests/s with batching on / off.
"""

from __future__ import annotations

import contextlib
import io
import logging
import multiprocessing
import shutil
import threading
import time
from collections.abc import Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from bench.speed import SectionResult, SpeedConfig

if TYPE_CHECKING:  # the load-generator process imports this module and needs none of the server
    from mediarec.server.runtime import ServiceDeps

logger = logging.getLogger(__name__)

CLIENTS = 16
SEED = 5
SEARCH = "text search"
INDEX = "image index"
IMAGE_SIZE = 256  # small JPEGs: the model's cost, not the decoder's, is what batching shares
# Short search-box queries; a number makes each request's text (and its embedding) distinct.
QUERY_WORDS = (
    "dog", "a cat on a sofa", "pizza", "kitchen", "a red car", "surfing", "birthday cake",
    "a bus", "people at a table", "city street at night", "snow", "beach", "two giraffes",
    "a laptop on a desk", "sunset over the sea", "flowers in a vase",
)  # fmt: skip


@dataclass(frozen=True)
class Plan:
    """How big the run is; ``quick`` is a smoke run, not a result."""

    search_requests: int  # timed SearchMedia calls per server, all clients together
    index_requests: int  # timed IndexMedia calls per server
    rounds: int  # alternations between the two servers
    store_items: int  # seeded into each store before measuring


FULL = Plan(search_requests=320, index_requests=128, rounds=4, store_items=300)
QUICK = Plan(search_requests=64, index_requests=32, rounds=2, store_items=100)


@dataclass
class Phase:
    """One model x workload x batching mode, summed over its rounds."""

    model: str
    workload: str  # SEARCH or INDEX
    batching: bool
    seconds: float = 0.0
    server_cpu_s: float = 0.0
    latencies_s: list[float] = field(default_factory=list)
    items: int = 0  # items through the encoder, warm-up included; batching on only
    passes: int = 0  # forward passes, warm-up included; batching on only

    @property
    def requests(self) -> int:
        return len(self.latencies_s)

    @property
    def rps(self) -> float:
        return self.requests / self.seconds

    def percentile_ms(self, q: float) -> float:
        return float(np.percentile(np.asarray(self.latencies_s) * 1000.0, q))

    def summary(self) -> dict[str, object]:
        return {
            "model": self.model,
            "workload": self.workload,
            "batching": self.batching,
            "requests": self.requests,
            "rps": round(self.rps, 2),
            "p50_ms": round(self.percentile_ms(50), 1),
            "p99_ms": round(self.percentile_ms(99), 1),
            "server_cpu_ms_per_request": round(1000 * self.server_cpu_s / self.requests, 2),
            "items_per_pass": round(self.items / self.passes, 2) if self.passes else None,
        }


# -- the load generator (runs in its own process) --------------------------------------------


def drive(
    target: str, payloads: Sequence[str | bytes], clients: int, id_prefix: str
) -> tuple[list[float], float]:
    """Send ``payloads`` from ``clients`` threads in a closed loop: a text is one SearchMedia
    query, bytes are one IndexMedia image (id ``{id_prefix}-{n}``). Returns (latency of each
    request in s, wall s from the moment every client is connected)."""
    from mediarec.client import MediaMetadata, MediarecClient

    latencies: list[list[float]] = [[] for _ in range(clients)]
    errors: list[BaseException] = []
    ready = threading.Barrier(clients + 1)
    go = threading.Event()

    def worker(slot: int) -> None:
        client = MediarecClient(target, default_timeout_s=300.0)
        try:
            client.health()  # connect before the clock starts
            ready.wait()
            go.wait()
            for index in range(slot, len(payloads), clients):
                payload = payloads[index]
                started = time.perf_counter()
                if isinstance(payload, str):
                    client.search_text(payload, k=10)
                else:
                    metadata = MediaMetadata(media_id=f"{id_prefix}-{index}", creator_id="bench")
                    client.index_media(metadata, payload)
                latencies[slot].append(time.perf_counter() - started)
        except BaseException as error:  # reported to the parent below, never swallowed
            errors.append(error)
            ready.abort()
        finally:
            client.close()

    threads = [threading.Thread(target=worker, args=(slot,)) for slot in range(clients)]
    for thread in threads:
        thread.start()
    # A client that failed to connect breaks the barrier; its error is raised below.
    with contextlib.suppress(threading.BrokenBarrierError):
        ready.wait()
    started = time.perf_counter()
    go.set()
    for thread in threads:
        thread.join()
    wall = time.perf_counter() - started
    if errors:
        raise errors[0]
    return [latency for per_client in latencies for latency in per_client], wall


# -- the servers ------------------------------------------------------------------------------


@dataclass
class Served:
    deps: ServiceDeps
    target: str


@contextlib.contextmanager
def serving(model_id: str, batching: bool, data_dir: Path, store_items: int) -> Iterator[Served]:
    from mediarec.server.app import build_server
    from mediarec.server.config import load_settings
    from mediarec.server.grpc.cpu_gate import default_slots
    from mediarec.server.runtime import ServiceState, open_deps

    shutil.rmtree(data_dir, ignore_errors=True)
    settings = load_settings(
        {
            "model_id": model_id,
            "data_dir": str(data_dir),
            "port": 0,
            # Room for every client to hold or wait for a decode slot: the CPU gate refuses
            # requests beyond workers - slots - 2 waiting, and refusals are not what is measured.
            "workers": CLIENTS + default_slots() + 2,
            "topics_top_k": 0,  # no vocabulary pass at start-up; not what is measured here
            "batching": batching,
        },
        {},
        None,
    )
    deps = open_deps(settings)
    running = build_server(settings, ServiceState(deps))
    try:
        _seed_store(deps, store_items)
        yield Served(deps, f"127.0.0.1:{running.port}")
    finally:
        running.stop(0)


def _seed_store(deps: ServiceDeps, items: int) -> None:
    """Random unit vectors as bring-your-own items: search has something to rank."""
    from mediarec.server.media import ItemMetadata

    rng = np.random.default_rng(SEED)
    vectors = rng.standard_normal((items, deps.encoder.dim)).astype(np.float32)
    prepared = [
        deps.indexer.prepare_vectors(
            ItemMetadata(media_id=f"seed-{i}", creator_id="seed"),
            model_id=deps.encoder.model_id,
            visual=vector.tolist(),
            caption=None,
            frames=[],
        )
        for i, vector in enumerate(vectors / np.linalg.norm(vectors, axis=1, keepdims=True))
    ]
    deps.indexer.commit(prepared)


def _jpegs(count: int) -> list[bytes]:
    from mediarec.encoders.synthetic.world import WorldGenerator

    out = []
    for post in WorldGenerator(SEED, image_size=IMAGE_SIZE).posts(count):
        buffer = io.BytesIO()
        post.image.convert("RGB").save(buffer, "JPEG", quality=90)
        out.append(buffer.getvalue())
    return out


def _queries(count: int) -> list[str]:
    return [f"{QUERY_WORDS[i % len(QUERY_WORDS)]} {i}" for i in range(count)]


# -- measuring --------------------------------------------------------------------------------


def measure_workload(
    label: str,
    workload: str,
    payloads: Sequence[str | bytes],
    servers: dict[bool, Served],
    rounds: int,
    pool: ProcessPoolExecutor,
) -> list[Phase]:
    """The first CLIENTS payloads warm each server up; the rest are split into ``rounds``
    that alternate between the servers (ABBA order)."""
    warmup, timed = payloads[:CLIENTS], payloads[CLIENTS:]
    phases = {mode: Phase(label, workload, mode) for mode in servers}
    before = {mode: _stats(served) for mode, served in servers.items()}
    for mode, served in servers.items():
        pool.submit(drive, served.target, warmup, CLIENTS, f"warm-{mode}").result()
    size = -(-len(timed) // rounds)
    for number in range(rounds):
        chunk = timed[number * size : (number + 1) * size]
        order = (False, True) if number % 2 == 0 else (True, False)
        for mode in order:
            cpu = time.process_time()
            prefix = f"{'on' if mode else 'off'}-{number}"
            latencies, wall = pool.submit(
                drive, servers[mode].target, chunk, CLIENTS, prefix
            ).result()
            phases[mode].server_cpu_s += time.process_time() - cpu
            phases[mode].seconds += wall
            phases[mode].latencies_s += latencies
    for mode, served in servers.items():
        items, passes = _stats(served)
        phases[mode].items = items - before[mode][0]
        phases[mode].passes = passes - before[mode][1]
        logger.info("%s", phases[mode].summary())
    return [phases[False], phases[True]]


def _stats(served: Served) -> tuple[int, int]:
    batcher = served.deps.batcher
    if batcher is None:
        return 0, 0
    stats = batcher.stats()
    return stats.items, stats.forward_passes


def measure_model(
    label: str, model_id: str, plan: Plan, work_dir: Path, pool: ProcessPoolExecutor
) -> list[Phase]:
    workloads = (
        (SEARCH, _queries(CLIENTS + plan.search_requests)),
        (INDEX, _jpegs(CLIENTS + plan.index_requests)),
    )
    slug = label.split()[0]
    with (
        serving(model_id, False, work_dir / f"{slug}-off", plan.store_items) as off,
        serving(model_id, True, work_dir / f"{slug}-on", plan.store_items) as on,
    ):
        servers = {False: off, True: on}
        return [
            phase
            for workload, payloads in workloads
            for phase in measure_workload(label, workload, payloads, servers, plan.rounds, pool)
        ]


# -- the section ------------------------------------------------------------------------------


def ratio(phases: Sequence[Phase], model: str, workload: str) -> float:
    by_mode = {p.batching: p for p in phases if p.model == model and p.workload == workload}
    return by_mode[True].rps / by_mode[False].rps


def run(config: SpeedConfig) -> SectionResult:
    from bench.speed_index import random_vit_checkpoint

    plan = QUICK if config.quick else FULL
    vit_dir = random_vit_checkpoint(config.work_dir).resolve()
    models = (
        ("ViT-B-32 (random weights)", f"openclip-dir:{vit_dir}"),
        ("mediarec-demo", "mediarec-demo"),
    )
    started = time.monotonic()
    load_before = Path("/proc/loadavg").read_text().split()[:3]
    spawn = multiprocessing.get_context("spawn")  # no forked copy of the servers' threads
    with ProcessPoolExecutor(max_workers=1, mp_context=spawn) as pool:
        phases = [
            phase
            for label, model_id in models
            for phase in measure_model(label, model_id, plan, config.work_dir / "batching", pool)
        ]
    load_after = Path("/proc/loadavg").read_text().split()[:3]
    speedups = {
        f"{label} {workload}": round(ratio(phases, label, workload), 3)
        for label, _ in models
        for workload in (SEARCH, INDEX)
    }
    vit = models[0][0]
    return SectionResult(
        metrics={"concurrent_embed_speedup": round(ratio(phases, vit, SEARCH), 2)},
        report=markdown(plan, phases, speedups, time.monotonic() - started, load_before),
        extra={
            "phases": [p.summary() for p in phases],
            "speedups": speedups,
            "loadavg_before": load_before,
            "loadavg_after": load_after,
            "plan": asdict(plan),
        },
    )


def markdown(
    plan: Plan,
    phases: Sequence[Phase],
    speedups: dict[str, float],
    seconds: float,
    load: Sequence[str],
) -> str:
    lines = [
        "### Cross-request dynamic batching",
        "",
        f"Two real servers side by side (`build_server`, embedded store seeded with "
        f"{plan.store_items} random bring-your-own vectors, {CLIENTS} RPC workers, fp32), "
        "batching on (`batching.max_items` 32, `max_wait_ms` 3) and off. Load: "
        f"{CLIENTS} client threads in a separate process sharing the cores, closed loop, one "
        f"warm-up request each; timed requests in {plan.rounds} rounds alternating between the "
        f"servers. Text search: {plan.search_requests} single-query `SearchMedia` calls per "
        f"server, all different short queries. Image index: {plan.index_requests} single-image "
        f"`IndexMedia` calls per server ({IMAGE_SIZE}x{IMAGE_SIZE} JPEG, no caption). Server CPU: "
        "the servers' process CPU time per request (both cores count). Items/pass: mean texts "
        "or images per forward pass (warm-up included). Load average at the start: "
        f"{' '.join(load)}. Section runtime {seconds:.0f} s.",
        "",
        "| model | workload | batching | req/s | p50 ms | p99 ms | server CPU ms/req "
        "| items/pass | on/off |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for p in phases:
        s = p.summary()
        per_pass = f"{s['items_per_pass']:.1f}" if s["items_per_pass"] is not None else "1"
        speedup = f"{speedups[f'{p.model} {p.workload}']:.2f}x" if p.batching else ""
        lines.append(
            f"| {p.model} | {p.workload} | {'on' if p.batching else 'off'} | {p.rps:.1f} "
            f"| {s['p50_ms']:.0f} | {s['p99_ms']:.0f} | {s['server_cpu_ms_per_request']:.1f} "
            f"| {per_pass} | {speedup} |"
        )
    return "\n".join([*lines, ""])
