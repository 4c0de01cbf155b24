"""bench-real's fragment of docs/benchmarks.md: ``docs/bench/real.json`` and ``real.md``."""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench.docs import assemble_beside
from bench.report import machine

LABELS = {
    "mediarec": "mediarec",
    "mediarec_tuned": "mediarec, tuned knobs",
    "popularity": "popularity",
    "item_knn": "item-kNN",
    "ease": "EASE",
    "library": "ALS (implicit)",
    "content": "content kNN",
    "hybrid": "EASE + content",
}


def _cell(value: Any) -> str:
    return "–" if value is None else f"{value:.4f}"


def _interval(bounds: Any) -> str:
    return f"[{bounds[0]:.4f}, {bounds[1]:.4f}]" if bounds else "–"


def render(summary: Mapping[str, Any]) -> str:
    models = list(LABELS)
    head = "| | " + " | ".join(LABELS[m] for m in models) + " |"
    rule = "|---" * (len(models) + 1) + "|"

    def row(label: str, values: Mapping[str, Any]) -> str:
        return f"| {label} | " + " | ".join(_cell(values.get(m)) for m in models) + " |"

    n = summary["n"]
    lo, hi = summary["ndcg10_ratio_vs_ease_ci95"]
    lines = [
        "## Real engagement data: MovieLens (ml-latest-small)",
        "",
        f"Command: `make bench-real` (`python -m bench.real --split test`). Machine: "
        f"{machine()}. Date: {datetime.now(UTC):%Y-%m-%d}. Code: {summary['code']}. "
        f"Runtime: {summary['wall_s'] / 60:.1f} min. Seeds: {summary['seeds']} "
        f"(split digests {summary['split_sha']}).",
        "",
        "Protocol (bench/real/): per-user temporal split (last 20 % of each user's ratings are "
        "test, the last 10 % of the rest validation, ties within a second broken by a seeded "
        "hash); ratings >= 4 are likes, the rest views; 15 % of items keep no training events "
        "(cold items, still in test); 20 % of users are held out of training (new users). Every "
        "model ranks all items minus the user's training items. Knobs were chosen on the first "
        "seed's validation split, with the same number of trials for each model that has "
        "knobs, then every model was refit on train + validation. mediarec runs as a real "
        "server over gRPC: items as caption-only posts with all-MiniLM-L6-v2 vectors of title, "
        "genres and training-part tags, history through ImportEvents, then the learned ranker "
        "trained on it (the deployment step after an import, `mediarec train-ranker`), pages "
        'through Recommend with dry_run, in serve\'s default configuration ("mediarec"; the '
        "new-user, content-off, time-shift and candidate rows too) and with the best knobs of "
        'its own search space ("mediarec, tuned knobs"). Means over seeds of per-user means.',
        "",
        f"Users per seed: test {n['test_users']}, with a cold test item "
        f"{n['cold_item_users']}, new-user cohort {n['new_users']}.",
        "",
        head,
        rule,
        row("NDCG@10", summary["ndcg10"]),
        "| NDCG@10, 95 % CI | "
        + " | ".join(_interval(summary.get("ndcg10_ci95", {}).get(m)) for m in models)
        + " |",
        row("Recall@20", summary["recall20"]),
        row("Recall@20, cold items", summary["recall20_cold"]),
    ]
    for k, values in summary["new_user_ndcg10"].items():
        lines.append(row(f"new users, {k} likes: NDCG@10", values))
    off = summary["content_off"]
    shifted = summary["shifted_120d_ndcg10"]
    lines += [
        "",
        f"mediarec / EASE NDCG@10: 95 % CI [{lo:.3f}, {hi:.3f}] (paired bootstrap over "
        "(seed, user) pairs).",
        f"mediarec with content off (`recommend.content_signals = false`): NDCG@10 "
        f"{_cell(off['ndcg10'])}, Recall@20 {_cell(off['recall20'])}.",
        f"History replayed 120 days earlier: mediarec NDCG@10 {_cell(shifted['mediarec'])} "
        f"against {_cell(shifted['unshifted'])}.",
        f"Recall@200 of mediarec's candidate union (validation, first seed): "
        f"{_cell(summary['candidate_recall200'])}.",
        "",
        "Knobs chosen on validation (and their validation NDCG@10):",
        "",
    ]
    for model, params in summary["params"].items():
        lines.append(f"- {LABELS.get(model, model)}: `{json.dumps(params)}`")
    cal = summary["calibration_ndcg10"]
    lines += [
        "",
        "Calibration, under the protocol of Microsoft Recommenders' MovieLens notebooks "
        "(every rating an implicit positive, random 75/25 split within each user, NDCG@10): "
        f"EASE (lambda 500) {cal['ease_lambda500']:.3f}, item-kNN (cosine) "
        f"{cal['item_knn_cosine']:.3f}, against the published 0.382 (SAR) and 0.475 (BiVAE) "
        "on ML-100K, a different MovieLens sample of the same size. The temporal split above "
        "is much harder: its numbers are not comparable to those.",
        "",
    ]
    return "\n".join(lines)


def write_fragment(out: Path, summary: Mapping[str, Any]) -> None:
    """``real.json`` and ``real.md`` under ``out``, then docs/benchmarks.md assembled again."""
    out.mkdir(parents=True, exist_ok=True)
    text = render(summary)
    (out / "real.json").write_text(json.dumps(summary, indent=2) + "\n")
    (out / "real.md").write_text(text)
    assemble_beside(out)
