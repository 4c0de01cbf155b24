"""``make bench-search``: text search of real photos by picture, by caption, and both fused.

Every photo of ``images.json`` (CC-licensed, each with five human captions) is indexed through a
real server with its first caption; each of its other captions is then a query whose one
relevant item is that photo. Recall@1, Recall@10 and MRR are reported for the three ways a text
query can match (``TextMatch``): the picture vector alone, the caption vector alone, and their
reciprocal-rank fusion (the default), each with a percentile-bootstrap 95 % interval over
queries. The fusion's settings are the server's defaults; nothing is tuned on these queries.

Writes ``docs/bench/search.json`` and ``search.md`` and assembles ``docs/benchmarks.md``
again; the last line printed is the JSON.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from bench.docs import assemble_beside
from bench.inprocess import Server
from bench.metrics import Interval, bootstrap_ci
from bench.report import code_version, machine
from mediarec.client import MediaMetadata, TextMatch

logger = logging.getLogger(__name__)

ROOT = Path(__file__).resolve().parent.parent
OUT_DIR = ROOT / "docs" / "bench"
DEFAULT_MEDIA = ROOT.parent / "shared" / "media"
MATCHES = (TextMatch.PIXELS, TextMatch.CAPTIONS, TextMatch.HYBRID)
LABELS = {
    TextMatch.PIXELS: "picture vector",
    TextMatch.CAPTIONS: "caption vector",
    TextMatch.HYBRID: "fusion (default)",
}
# Deep enough that every query ranks every photo: the rank of a miss is then known.
SEARCH_K = 100


@dataclass(frozen=True)
class Photo:
    path: Path
    media_id: str
    captions: tuple[str, ...]


def load_photos(media_dir: Path) -> list[Photo]:
    entries = json.loads((media_dir / "images.json").read_text(encoding="utf-8"))
    return [
        Photo(media_dir / e["file"], f"photo-{i:03d}", tuple(e["captions"]))
        for i, e in enumerate(entries)
    ]


def reciprocal_ranks(ranked_ids: Sequence[Sequence[str]], targets: Sequence[str]) -> np.ndarray:
    """1 / (1-based rank of each query's target), 0 where it is not among the results."""
    pairs = zip(ranked_ids, targets, strict=True)
    return np.array([1.0 / (list(ids).index(t) + 1) if t in ids else 0.0 for ids, t in pairs])


def scores(rr: np.ndarray, rng: np.random.Generator) -> dict[str, Interval]:
    """R@1, R@10 and MRR from per-query reciprocal ranks, with bootstrap intervals."""
    return {
        "r@1": bootstrap_ci((rr >= 1.0).astype(float), rng),
        "r@10": bootstrap_ci((rr >= 0.1).astype(float), rng),
        "mrr": bootstrap_ci(rr, rng),
    }


def run(media_dir: Path, model_id: str, seed: int) -> dict[str, object]:
    photos = load_photos(media_dir)
    queries = [(p.media_id, c) for p in photos for c in p.captions[1:5]]
    rng = np.random.default_rng(seed)
    results: dict[str, dict[str, Interval]] = {}
    with tempfile.TemporaryDirectory(prefix="mediarec-bench-search-") as tmp:
        server = Server(Path(tmp) / "data", model_id, topics_top_k=0)
        try:
            for photo in photos:
                metadata = MediaMetadata(media_id=photo.media_id, caption=photo.captions[0])
                server.client.index_file(photo.path, metadata)
            k = min(SEARCH_K, len(photos))
            for match in MATCHES:
                ranked = [
                    [h.item.media_id for h in server.client.search_text(text, k=k, match=match)]
                    for _, text in queries
                ]
                rr = reciprocal_ranks(ranked, [target for target, _ in queries])
                results[match.name.lower()] = scores(rr, rng)
        finally:
            server.close()
    fusion = results["hybrid"]["r@10"].mean
    best_single = max(results["pixels"]["r@10"].mean, results["captions"]["r@10"].mean)
    return {
        "model_id": model_id,
        "photos": len(photos),
        "queries": len(queries),
        "chance_r10": min(10, len(photos)) / len(photos),
        "results": {
            match: {metric: vars(interval) for metric, interval in metrics.items()}
            for match, metrics in results.items()
        },
        "fusion_r10_at_least_best_single": bool(fusion >= best_single),
    }


def render(result: dict[str, object], wall_s: float) -> str:
    results = result["results"]
    assert isinstance(results, dict)

    def cell(interval: dict[str, float]) -> str:
        return f"{interval['mean']:.3f} [{interval['low']:.3f}, {interval['high']:.3f}]"

    rows = [
        f"| {LABELS[match]} | {cell(results[match.name.lower()]['r@1'])} | "
        f"{cell(results[match.name.lower()]['r@10'])} | "
        f"{cell(results[match.name.lower()]['mrr'])} |"
        for match in MATCHES
    ]
    verdict = "holds" if result["fusion_r10_at_least_best_single"] else "does not hold"
    pixels_r10 = results["pixels"]["r@10"]
    blind = pixels_r10["low"] <= float(result["chance_r10"])  # type: ignore[arg-type]
    limit = (
        " The picture vector's R@10 interval contains chance: this model does not see these "
        "photos (the demo model knows only its synthetic world), so fusing it adds noise to "
        "the caption ranking. A real CLIP checkpoint (`MODEL=...`) measures the fusion as "
        "intended."
        if blind
        else ""
    )
    return "\n".join(
        [
            "## Text search of real photos: picture, caption and fusion",
            "",
            f"Command: `make bench-search`. Machine: {machine()}. "
            f"Date: {datetime.now(UTC):%Y-%m-%d}. Code: {code_version()}. "
            f"Model: `{result['model_id']}`.",
            "",
            f"{result['photos']} CC photos of `images.json`, each indexed through a real server "
            f"with its first human caption; {result['queries']} queries, the other four captions "
            "of each photo, each with that photo as its one relevant item. Means with "
            "percentile-bootstrap 95 % intervals over queries.",
            "",
            "| text query matches | R@1 | R@10 | MRR |",
            "|---|---|---|---|",
            *rows,
            "",
            f"Chance: R@10 = {result['chance_r10']:.3f}. "
            f"Target: the fusion's R@10 is at least the better single vector's: {verdict}. "
            f"Runtime: {wall_s:.0f} s.{limit}",
            "",
        ]
    )


def main(argv: Sequence[str] | None = None) -> int:
    code_version()  # names the code as loaded, whatever the tree holds when the run ends
    parser = argparse.ArgumentParser(prog="python -m bench.search_captions", description=__doc__)
    default_media = Path(os.environ.get("MEDIAREC_TEST_MEDIA", DEFAULT_MEDIA))
    parser.add_argument("--media", type=Path, default=default_media,
                        help="folder holding images.json and its photos")  # fmt: skip
    parser.add_argument("--model-id", default="mediarec-demo")
    parser.add_argument("--seed", type=int, default=1, help="bootstrap seed")
    parser.add_argument("--out", type=Path, default=OUT_DIR)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    if not (args.media / "images.json").is_file():
        parser.error(f"{args.media / 'images.json'} does not exist; set --media")
    started = time.monotonic()
    result = run(args.media, args.model_id, args.seed)
    wall_s = time.monotonic() - started
    result["wall_s"] = round(wall_s, 1)
    text = render(result, wall_s)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "search.json").write_text(json.dumps(result, indent=2) + "\n")
    (args.out / "search.md").write_text(text)
    assemble_beside(args.out)
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
