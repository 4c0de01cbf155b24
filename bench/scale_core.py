"""`make bench-scale`: what the collaborative core costs as the catalogue and the log grow.

For each size, a child process generates a log (``bench.interactions_gen``), builds the core
with serve's default settings (``build_collab``: two ALS fits, two item-kNN graphs and RP3beta),
and then serves ``PROBE_USERS`` users the request-side work of the learned path: the user's
scores from every component, the candidates, and their collaborative features. Each size runs
in its own process so that its peak RSS is its own.

Writes docs/bench/scale.{json,md} and assembles docs/benchmarks.md again.
"""

from __future__ import annotations

import argparse
import json
import logging
import resource
import subprocess
import sys
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse as sp

from bench.docs import assemble_beside
from bench.interactions_gen import LogShape, generate
from bench.report import code_version, machine
from mediarec.server.recommend.collab import CollabModel, CollabSettings, Factors, build_collab
from mediarec.server.recommend.ltr_train import history_at, user_rows

logger = logging.getLogger(__name__)

# (users, items, events): MovieLens-small's order of size, then the 100k x 10M.
SIZES = ((10_000, 20_000, 1_000_000), (100_000, 100_000, 10_000_000))
PROBE_USERS = 200
CANDIDATES_PER_SOURCE = 100
DOCS = Path("docs")


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # Linux: KiB


def model_mb(core: CollabModel) -> float:
    """The core's arrays (what a serving process holds), in MiB."""
    total = core.positives.nbytes + core.first_positive.nbytes + core.positive_keys.nbytes
    for graph in (core.knn, core.knn_all, core.rp3):
        total += _sparse_bytes(graph)
    for factors in (core.als, core.als_all):
        total += _factor_bytes(factors)
    return total / 2**20


def _sparse_bytes(m: sp.csr_matrix) -> int:
    return int(m.data.nbytes + m.indices.nbytes + m.indptr.nbytes)


def _factor_bytes(f: Factors | None) -> int:
    return int(f.items.nbytes + f.gram.nbytes) if f is not None else 0


def measure(users: int, items: int, events: int) -> dict[str, Any]:
    """One size, in this process."""
    started = time.perf_counter()
    log = generate(LogShape(users=users, items=items, events=events))
    generate_s = time.perf_counter() - started
    rss_log = peak_rss_mb()
    started = time.perf_counter()
    core = build_collab(log, [f"m{i}" for i in range(items)], CollabSettings())
    build_s = time.perf_counter() - started
    rows_of = user_rows(log)
    probe = np.random.default_rng(0).choice(users, size=min(PROBE_USERS, users), replace=False)
    request_ms = []
    for user in probe.tolist():
        rows = rows_of[user]
        history = history_at(log.items[rows], log.timestamps[rows], log.positive[rows])
        begin = time.perf_counter()
        scores = core.user_scores(history)
        cands = core.candidates(history, CANDIDATES_PER_SOURCE, scores)
        core.features(history, cands, scores)
        request_ms.append((time.perf_counter() - begin) * 1000.0)
    return {
        "users": users,
        "items": items,
        "events": events,
        "generate_s": round(generate_s, 1),
        "build_s": round(build_s, 1),
        "build_seconds": {k: round(v, 1) for k, v in core.build_seconds.items()},
        "peak_rss_mb": round(peak_rss_mb()),
        "rss_after_log_mb": round(rss_log),
        "model_mb": round(model_mb(core)),
        "request_ms_p50": round(float(np.percentile(request_ms, 50)), 2),
        "request_ms_p90": round(float(np.percentile(request_ms, 90)), 2),
    }


def render(summary: dict[str, Any]) -> str:
    lines = [
        "## The collaborative core at scale",
        "",
        f"Command: `make bench-scale` (`python -m bench.scale_core`). "
        f"Machine: {summary['machine']}. Date: {summary['date']}. Code: {summary['code']}. "
        f"Runtime: {summary['runtime_min']} min.",
        "",
        "Generated logs (`bench/interactions_gen.py`: long-tailed item popularity and user "
        "activity, 200 taste groups, half of the events positive). The core is built with "
        "serve's default settings; the request column is one user's scores from every "
        f"component, their candidates ({CANDIDATES_PER_SOURCE} per source) and collaborative "
        f"features, over {PROBE_USERS} users (in-process, no gRPC).",
        "",
        "| users | items | events | build (s) | ALS + ALS-all (s) | kNN + kNN-all (s) "
        "| RP3beta (s) | peak RSS (MiB) | core (MiB) | request p50 / p90 (ms) |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in summary["sizes"]:
        b = r["build_seconds"]
        lines.append(
            f"| {r['users']:,} | {r['items']:,} | {r['events']:,} | {r['build_s']} "
            f"| {b.get('als', 0) + b.get('als_all', 0):.1f} "
            f"| {b.get('knn', 0) + b.get('knn_all', 0):.1f} | {b.get('rp3', 0):.1f} "
            f"| {r['peak_rss_mb']:,} | {r['model_mb']:,} "
            f"| {r['request_ms_p50']} / {r['request_ms_p90']} |"
        )
    lines += [
        "",
        "The item graphs are built a block of rows at a time and pruned at once, so their "
        "memory is bounded by the pruned graph, not the full item x item product. ALS (two "
        "fits of 256 factors, 30 iterations) is most of a build. The server builds the core "
        "at every rebuild of its derived state while a learned ranker serves, and training "
        "builds it four times (three cuts and the newcomers' core). The request column is "
        "dense: every component scores every item before the candidates are cut.",
        "",
    ]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.scale_core", description=__doc__)
    parser.add_argument("--one", type=int, nargs=3, metavar=("USERS", "ITEMS", "EVENTS"),
                        help="measure one size in this process and print it as JSON")  # fmt: skip
    parser.add_argument("--out", type=Path, default=DOCS / "bench")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    if args.one:
        print(json.dumps(measure(*args.one)))
        return 0
    started = time.perf_counter()
    code = code_version()
    sizes = []
    for users, items, events in SIZES:
        logger.info("size: %d users, %d items, %d events", users, items, events)
        out = subprocess.run(
            [sys.executable, "-m", "bench.scale_core", "--one", str(users), str(items),
             str(events)],
            capture_output=True, text=True, check=True,
        )  # fmt: skip
        sizes.append(json.loads(out.stdout.strip().splitlines()[-1]))
        logger.info("%s", sizes[-1])
    summary = {
        "machine": machine(),
        "date": datetime.now(UTC).strftime("%Y-%m-%d"),
        "code": code,
        "runtime_min": round((time.perf_counter() - started) / 60.0, 1),
        "sizes": sizes,
    }
    args.out.mkdir(parents=True, exist_ok=True)
    text = render(summary)
    (args.out / "scale.json").write_text(json.dumps(summary, indent=2) + "\n")
    (args.out / "scale.md").write_text(text)
    assemble_beside(args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
