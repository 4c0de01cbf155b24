"""`make bench-speed`: embedding throughput, dynamic batching and serving latency (issue 5).

Each section is a module with ``run(config: SpeedConfig) -> SectionResult``:

* :mod:`bench.speed_embed` - raw forward passes (fp32 / bf16 / int8), bf16 fidelity, text
  trimming;
* :mod:`bench.speed_index` - end-to-end folder indexing against its ideal, and video;
* :mod:`bench.speed_batching` - cross-request dynamic batching on vs off;
* :mod:`bench.speed_latency` - Recommend and SearchMedia latency at 100k items.

Sections run one after the other (never two CPU-heavy jobs at once on a small machine). The
Markdown of every section goes to ``docs/bench/speed.md`` (assembled into ``docs/benchmarks.md``)
with the command, machine, versions and date; the last line printed is one JSON object with the keys
below (``null`` for a section that was skipped or failed).
"""

from __future__ import annotations

import argparse
import importlib
import json
import logging
import os
import sys
import time
import traceback
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from bench.docs import assemble_beside
from bench.report import code_version, machine, versions

logger = logging.getLogger(__name__)

SUMMARY_KEYS: tuple[str, ...] = (
    "raw_forward_img_s_fp32",
    "raw_forward_img_s_bf16",
    "bf16_min_cosine",
    "index_e2e_img_s",
    "index_e2e_over_ideal",
    "text_trim_speedup",
    "text_trim_min_cosine",
    "int8_img_s",
    "concurrent_embed_speedup",
    "recommend_p99_ms_100k_c1",
    "recommend_p99_ms_100k_50rps",
    "recommend_peak_rps_100k",
    "recommend_warm_in_process_ms_100k",
    "recommend_p99_ms_100k_c1_learned",
    "recommend_p99_ms_100k_50rps_learned",
    "recommend_warm_in_process_ms_100k_learned",
    "search_p99_ms_100k_c1",
    "search_p99_ms_100k_50rps",
    "rss_mb_100k",
)
SECTIONS: tuple[str, ...] = ("embed", "index", "batching", "latency")
DEFAULT_WORK_DIR = Path(".cache") / "bench-speed"


@dataclass(frozen=True)
class SpeedConfig:
    media_dir: Path | None  # $MEDIAREC_TEST_MEDIA: real photos, captions and videos
    work_dir: Path  # git-ignored scratch (generated folders, stores, checkpoints)
    quick: bool = False  # smaller sizes and fewer repeats: a smoke run, not a result
    cores: int = field(default_factory=lambda: len(os.sched_getaffinity(0)))


@dataclass
class SectionResult:
    metrics: dict[str, float | None]  # only keys of SUMMARY_KEYS
    report: str  # Markdown: tables with their own one-line method notes
    extra: dict[str, object] = field(default_factory=dict)  # anything else worth keeping


def run_section(name: str, config: SpeedConfig) -> SectionResult:
    module = importlib.import_module(f"bench.speed_{name}")
    started = time.monotonic()
    result: SectionResult = module.run(config)
    unknown = set(result.metrics) - set(SUMMARY_KEYS)
    if unknown:
        raise ValueError(f"section {name} reported unknown summary keys {sorted(unknown)}")
    logger.info("section %s done in %.0f s: %s", name, time.monotonic() - started, result.metrics)
    return result


SPEED_PACKAGES = ("torch", "numpy", "open_clip_torch", "onnxruntime", "qdrant-edge-py", "grpcio")


def machine_line() -> str:
    return f"{machine()}; {versions(SPEED_PACKAGES)}"


def write_docs(
    path: Path,
    sections: dict[str, SectionResult],
    summary: dict,
    seconds: float,
    argv: Sequence[str],
) -> None:
    """Write this benchmark's fragment to ``path``, then assemble docs/benchmarks.md again."""
    date = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    command = "make bench-speed" if not argv else "python -m bench.speed " + " ".join(argv)
    body = [
        "## Speed",
        "",
        f"Command: `{command}`. Code: {code_version()}. Machine: {machine_line()}. Date: {date}. "
        f"Runtime: {seconds / 60:.1f} min.",
        "",
    ]
    for section in sections.values():
        body += [section.report.strip(), ""]
    body += [
        "Summary (the last line `make bench-speed` prints):",
        "",
        "```",
        json.dumps(summary),
        "```",
    ]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(body) + "\n")
    assemble_beside(path.parent)


def main(argv: Sequence[str] | None = None) -> int:
    code_version()  # names the code as loaded, whatever the tree holds when the run ends
    parser = argparse.ArgumentParser(
        prog="python -m bench.speed", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--only", nargs="+", choices=SECTIONS, default=list(SECTIONS))
    parser.add_argument("--quick", action="store_true", help="small sizes: a smoke run only")
    parser.add_argument("--work-dir", type=Path, default=DEFAULT_WORK_DIR)
    parser.add_argument(
        "--docs",
        type=Path,
        default=Path("docs") / "bench" / "speed.md",
        help="where the section goes ('-' to skip)",
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    media = os.environ.get("MEDIAREC_TEST_MEDIA")
    config = SpeedConfig(
        media_dir=Path(media) if media else None, work_dir=args.work_dir, quick=args.quick
    )
    config.work_dir.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    sections: dict[str, SectionResult] = {}
    summary: dict[str, float | None] = dict.fromkeys(SUMMARY_KEYS)
    failed = []
    for name in args.only:
        try:
            sections[name] = run_section(name, config)
        except Exception:  # one broken section must not hide the others' numbers
            logger.error("section %s failed:\n%s", name, traceback.format_exc())
            failed.append(name)
            continue
        summary.update(sections[name].metrics)
    seconds = time.monotonic() - started
    for section in sections.values():
        print(section.report.strip() + "\n")
    print(f"total runtime: {seconds / 60:.1f} min")
    if str(args.docs) != "-" and not args.quick:
        write_docs(args.docs, sections, summary, seconds, list(argv or sys.argv[1:]))
    print(json.dumps(summary))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
