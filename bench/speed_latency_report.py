"""The latency section's outputs: the Markdown tables, the curve's CSV and its PNG plot."""

from __future__ import annotations

import csv
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bench.speed_latency_load import REC_AFTER_EVENT, REC_NEW, REC_WARM, SEARCH_ID, SEARCH_TEXT

if TYPE_CHECKING:
    from bench.speed_latency import Plan, Point, SizeResult

logger = logging.getLogger(__name__)

# Issue 5's targets (ms) at 100k items: workload -> (concurrency 1, 50 req/s).
TARGETS_MS = {REC_WARM: (30.0, 50.0), SEARCH_ID: (10.0, 20.0)}
CURVE_WORKLOADS = (REC_WARM, REC_NEW, SEARCH_ID, SEARCH_TEXT)
HEADLINE_WORKLOADS = (REC_WARM, REC_AFTER_EVENT, REC_NEW, SEARCH_ID, SEARCH_TEXT)
MILLION_NOTE = (
    "1M items: not measured. The HNSW build alone did not finish in 28 minutes at 1M on this "
    "machine (issue 5: 9.4 GiB RSS), beyond the 20-minute budget of `make bench-speed`."
)


def peak_point(result: SizeResult, workload: str) -> Point | None:
    closed = [
        p for p in result.points
        if p.workload == workload and p.mode.startswith("closed") and p.server == "default"
    ]  # fmt: skip
    return max(closed, key=lambda p: p.rps) if closed else None


# -- data and plot ----------------------------------------------------------------------------


def write_curve(
    results: Sequence[SizeResult], csv_path: Path, png_path: Path
) -> tuple[Path, Path | None]:
    """The curve's data (always) and its plot (None when matplotlib is not installed)."""
    csv_path.parent.mkdir(parents=True, exist_ok=True)
    with open(csv_path, "w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow([
            "catalogue_size", "server", "workload", "load", "requests", "errors", "p50_ms",
            "p99_ms", "mean_ms", "completed_rps", "hnsw_build_s", "indexed_vectors",
            "server_rss_mb",
        ])  # fmt: skip
        for r in results:
            for p in r.points:
                writer.writerow([
                    r.size, p.server, p.workload, p.mode, p.requests, p.errors, f"{p.p50_ms:.2f}",
                    f"{p.p99_ms:.2f}", f"{p.mean_ms:.2f}", f"{p.rps:.1f}",
                    f"{r.world.build_s:.1f}", r.world.indexed_vectors, f"{r.rss_mb:.0f}",
                ])  # fmt: skip
    try:
        import matplotlib
    except ImportError:
        logger.warning("matplotlib is not installed (pip install -e '.[dev]'): no %s", png_path)
        return csv_path, None
    matplotlib.use("Agg")
    plot_curve(results, png_path)
    return csv_path, png_path


def plot_curve(results: Sequence[SizeResult], path: Path) -> None:
    import matplotlib.pyplot as plt

    sizes = [r.size for r in results]
    fig, (left, right) = plt.subplots(1, 2, figsize=(12, 6.4))
    for i, workload in enumerate(CURVE_WORKLOADS):
        points = [r.point(workload, "c1") for r in results]
        color = f"C{i}"
        left.plot(sizes, [p.p99_ms if p else None for p in points], "o-", color=color,
                  label=f"{workload} p99")  # fmt: skip
        left.plot(sizes, [p.p50_ms if p else None for p in points], "o--", color=color,
                  alpha=0.6, label=f"{workload} p50")  # fmt: skip
    head = results[-1]
    variant = [p for p in head.points if p.server != "default" and p.mode == "c1"]
    for p in variant:
        if p.workload == CURVE_WORKLOADS[0]:
            left.plot([head.size] * 2, [p.p99_ms, p.p50_ms], "*", color="C0", markersize=11,
                      label=f"{p.workload} p99, p50 with {p.server}")  # fmt: skip
    for (workload, (c1, _)), style in zip(TARGETS_MS.items(), (":", "-."), strict=True):
        left.axhline(c1, color="grey", linestyle=style, linewidth=1,
                     label=f"target p99, {workload.split(' (')[0]}: {c1:g} ms")  # fmt: skip
    left.set(xscale="log", yscale="log", xlabel="catalogue size (items)",
             ylabel="latency at concurrency 1 (ms)", title="Latency vs catalogue size")  # fmt: skip
    left.grid(True, which="both", alpha=0.3)
    left.legend(fontsize=7, ncol=2, loc="upper center", bbox_to_anchor=(0.5, -0.13))
    right.plot(sizes, [r.world.build_s for r in results], "s-", color="C4",
               label="index build (s)")  # fmt: skip
    right.set(xscale="log", xlabel="catalogue size (items)", ylabel="index build time (s)",
              title="Index build time and server RSS")  # fmt: skip
    right.grid(True, which="both", alpha=0.3)
    twin = right.twinx()
    twin.plot(sizes, [r.rss_mb for r in results], "^--", color="C5", label="server RSS (MiB)")
    twin.set_ylabel("server RSS after load (MiB)")
    handles = right.get_legend_handles_labels()[0] + twin.get_legend_handles_labels()[0]
    right.legend(handles=handles, fontsize=8, loc="upper left")
    loads = [float(x) for r in results for x in r.loadavg if x]
    fig.suptitle(
        "mediarec over gRPC on loopback, 2 cores shared with the load generator"
        + (f"; machine load (1-min) {min(loads):.1f}-{max(loads):.1f}" if loads else ""),
        fontsize=10,
    )
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


# -- Markdown ---------------------------------------------------------------------------------


def _ms(p: Point | None, attr: str) -> str:
    if p is None:
        return "-"
    text = f"{getattr(p, attr):.1f}"
    return text + (" (overloaded)" if p.aborted else "")


def _size(n: int) -> str:
    return f"{n // 1000}k" if n % 1000 == 0 and n < 1_000_000 else f"{n:,}"


def headline_table(r: SizeResult, plan: Plan) -> list[str]:
    open_mode = f"open {plan.rate:g}/s"
    lines = [
        f"| {_size(r.size)} items | c1 p50 ms | c1 p99 ms | {plan.rate:g}/s p50 ms "
        f"| {plan.rate:g}/s p99 ms | {plan.rate:g}/s errors | peak req/s (clients, p99 ms) "
        "| target p99 c1 / 50/s |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for workload in HEADLINE_WORKLOADS:
        c1, loaded, best = (
            r.point(workload, "c1"),
            r.point(workload, open_mode),
            peak_point(r, workload),
        )
        peak_text = (
            "-"
            if best is None
            else (f"{best.rps:.1f} ({best.mode.removeprefix('closed c')}, {best.p99_ms:.0f})")
        )
        target = TARGETS_MS.get(workload)
        target_text = "-" if target is None else f"{target[0]:g} / {target[1]:g}"
        errors = "-" if loaded is None else f"{loaded.errors}/{loaded.requests}"
        lines.append(
            f"| {workload} | {_ms(c1, 'p50_ms')} | {_ms(c1, 'p99_ms')} | {_ms(loaded, 'p50_ms')} "
            f"| {_ms(loaded, 'p99_ms')} | {errors} | {peak_text} | {target_text} |"
        )
    return lines


def curve_table(results: Sequence[SizeResult]) -> list[str]:
    lines = [
        "| items | index build s | HNSW vectors "
        "| server RSS MiB after load (anon + file; at ready) | startup s "
        + "".join(f"| {w} p50 / p99 ms " for w in CURVE_WORKLOADS)
        + "| load 1-min |",
        "|---|---|---|---|---" + "|---" * len(CURVE_WORKLOADS) + "|---|",
    ]
    for r in results:
        cells = "".join(
            f"| {p.p50_ms:.1f} / {p.p99_ms:.1f} " if (p := r.point(w, "c1")) else "| - "
            for w in CURVE_WORKLOADS
        )
        lines.append(
            f"| {_size(r.size)} | {r.world.build_s:.1f} | {r.world.indexed_vectors:,} "
            f"| {_memory(r)} | {r.startup_s:.1f} {cells}"
            f"| {r.loadavg[0]} -> {r.loadavg[1]} |"
        )
    return lines


def _memory(r: SizeResult) -> str:
    m = r.memory
    if not m:
        return "-"
    ready = r.ready_memory.get("rss", 0.0)
    return f"{m['rss']:.0f} ({m.get('anon', 0):.0f} + {m.get('file', 0):.0f}; {ready:.0f})"


def variant_table(r: SizeResult) -> list[str]:
    """The variants' points beside the default server's, one column per variant."""
    variants = list(dict.fromkeys(p.server for p in r.points if p.server != "default"))
    if not variants:
        return []
    head = "".join(f" {name} p50 / p99 ms |" for name in variants)
    lines = [
        f"| {_size(r.size)} items | load | default p50 / p99 ms |{head}",
        "|---|---|---|" + "---|" * len(variants),
    ]
    rows = dict.fromkeys((p.workload, p.mode) for p in r.points if p.server != "default")
    for workload, mode in rows:
        cells = [r.point(workload, mode, server) for server in ("default", *variants)]
        values = "".join(
            " - |" if p is None else f" {_ms(p, 'p50_ms')} / {_ms(p, 'p99_ms')} |" for p in cells
        )
        lines.append(f"| {workload} | {mode} |{values}")
    return lines


def breakdown_table(breakdowns: dict[str, dict[str, Any]]) -> list[str]:
    """One row per stage; per server, ms/request with nothing cached, then cached."""
    columns = [
        (server, case) for server in breakdowns for case in ("nothing_cached", "cached")
    ]
    labels = sorted({label for server, case in columns for label in breakdowns[server][case]})
    head = "".join(f"| {server}: {case.replace('_', ' ')} " for server, case in columns)
    lines = [
        f"| stage (ms/request; inclusive, nested stages overlap) {head}| calls/request |",
        "|---" * (len(columns) + 2) + "|",
    ]
    for label in labels:
        cells = [breakdowns[server][case].get(label) for server, case in columns]
        calls = next((c["calls"] for c in cells if c), 0.0)
        values = "".join(f"| {c['ms'] if c else 0:.2f} " for c in cells)
        lines.append(f"| {label} {values}| {calls:.1f} |")
    return lines


def cprofile_table(rows: Sequence[dict[str, Any]]) -> list[str]:
    lines = ["| function | calls/request | own ms/request | cumulative ms/request |",
             "|---|---|---|---|"]  # fmt: skip
    for row in rows:
        lines.append(f"| `{row['function']}` | {row['calls']:.1f} | {row['own_ms']:.2f} "
                     f"| {row['cumulative_ms']:.2f} |")  # fmt: skip
    return lines


def markdown(
    plan: Plan,
    results: Sequence[SizeResult],
    csv_path: Path,
    png_path: Path | None,
    seconds: float,
    quick: bool,
) -> str:
    head = results[-1]
    plot = f"![latency vs catalogue size]({png_path.name}) " if png_path else ""
    lines = [
        "### Recommend and search latency" + (" (quick smoke run, not a result)" if quick else ""),
        "",
        "The real server (`build_server`, demo model, default settings, embedded Qdrant Edge and "
        "SQLite) in a process of its own over a synthetic world: posts with the payload indexing "
        "writes (creator, caption, tags, topics, created_at, location; 5 % videos with 8 frames, "
        "2 % caption-only), 128-d bring-your-own vectors clustered around up to 300 centres, and "
        f"{head.world.users} users with {head.world.events:,} events in the SQLite engagement "
        "store (views, likes, skips, saves, follows, searches, hides; all in the past). A load "
        "generator in a separate process (sharing the cores) calls it over gRPC with the client: "
        f"concurrency 1 ({plan.requests} timed calls per workload at the largest size, "
        f"{plan.curve_requests} at the others, after {plan.warmup} untimed), an open loop at "
        f"{plan.rate:g} req/s for {plan.open_loop_s:g} s (latency from each call's scheduled "
        "send time; 'overloaded' marks a run stopped once 64 calls were in flight), and closed "
        f"loops of {', '.join(map(str, plan.peak_concurrency))} clients for {plan.peak_s:g} s "
        "each (peak req/s). Recommend asks k = 20 with a context. Users with history are taken "
        "in rotation; the server warmed their profiles and feed candidates in the background "
        "after its first derived-state rebuild (`recommend.precompute_users`), so these calls "
        "find them cached. 'Just after an event' logs a search for the user first (untimed), "
        "which drops that user's cached work, so the call builds their profile (text tower "
        "included) and candidates itself. New users are a new id per call. Search by id asks "
        "k = 10 'more like this'; "
        "text search includes a text-encoder pass. RSS is the server process's VmRSS after the "
        f"load. Section runtime {seconds / 60:.1f} min.",
        "",
        *headline_table(head, plan),
        "",
        f"Latency vs catalogue size at concurrency 1 ({plot}data: `{csv_path}`). Index build: "
        "the embedded store's background HNSW build of the whole catalogue (a child process), "
        "from request to swap-in; below Edge's indexing threshold (about 20k vectors of 128-d) "
        "no HNSW is built and search scans.",
        "",
        *curve_table(results),
        "",
        MILLION_NOTE,
        "",
    ]
    variant = variant_table(head)
    if variant:
        lines += [
            "The same at the largest size on two more servers, each on a fresh copy of the "
            "data. `blas_threads=0` leaves numpy's BLAS its own thread pool (the default caps "
            "it at one thread): the recommender's small matrix products then spread over two "
            "threads that fight for the two cores with the gRPC threads and the load "
            "generator. `learned ranker` serves a LightGBM ranker trained on the world's "
            "history (`mediarec train-ranker`, default settings): the core's candidates and "
            "features (steps L1-L3; a user's fold-in and candidates are kept per snapshot), "
            "the model's scores (L4) and the path attributions that explain each page (L5) are "
            "added to a call.",
            "",
            *variant,
            "",
        ]
    if head.breakdowns:
        first = next(iter(head.breakdowns.values()))
        users = first["users"]
        lines += [
            f"Where a Recommend call spends its time at {_size(head.size)} items (in the "
            f"server process after the load, no gRPC; mean over {users[0]} users with history "
            "not asked before, each asked twice: first with nothing cached, then cached):",
            "",
            *breakdown_table(head.breakdowns),
            "",
        ]
        for server, breakdown in head.breakdowns.items():
            lines += [
                f"cProfile of {users[1]} more calls (nothing cached), {server} server, "
                "by own time:",
                "",
                *cprofile_table(breakdown["cprofile"]),
                "",
            ]
        if first.get("missing"):
            lines += [f"Stages not found (renamed?): {', '.join(first['missing'])}.", ""]
    return "\n".join(lines)
