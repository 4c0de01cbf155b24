"""`mediarec train-ranker`: train the learned ranker from the event history, and refit the
blend's weights from served impressions when there are enough of them.

It opens the data dir like the other local commands (the store must not be in use by a running
server; a server can train on a schedule instead, ``recommend.learned_train_interval_s``). The
learned model goes to ``recommend.learned_ranker_path`` (default DATA_DIR/learned_ranker.json),
with its model card beside it (``.md``); `serve` loads it at start.
"""

from __future__ import annotations

import logging
import sys
import time
from pathlib import Path

from mediarec.server.cli.common import EXIT_FAILED, EXIT_OK, CommandError, open_local_deps
from mediarec.server.config import Settings, recommend_settings
from mediarec.server.recommend.learned import (
    LearnedRanker,
    LearnedRankerFileError,
    load_learned_or_none,
)
from mediarec.server.recommend.ltr_features import describe
from mediarec.server.recommend.ltr_train import BASELINE_COLUMNS, NotEnoughHistoryError
from mediarec.server.recommend.ranker import RANKER_FILE
from mediarec.server.recommend.train import TrainConfig, format_report, train_ranker

logger = logging.getLogger(__name__)

LOCKED = (
    "the data dir is in use by a running server; stop it first, or let the server retrain "
    "on a schedule (recommend.learned_train_interval_s)"
)


def run_train(settings: Settings, blend: TrainConfig) -> int:
    """Train both models; 0 when the learned ranker was trained, 1 when it could not be."""
    path = recommend_settings(settings.recommend, settings.storage.data_dir).learned_ranker_path
    try:
        load_learned_or_none(path)
    except LearnedRankerFileError as exc:  # serve refuses it, so it can only be replaced
        print(f"mediarec train-ranker: replacing an unusable model: {exc}", file=sys.stderr)
        Path(path).unlink()
    try:
        deps = open_local_deps(settings, locked_message=LOCKED)
    except CommandError as exc:
        print(f"mediarec train-ranker: {exc}", file=sys.stderr)
        return exc.exit_code
    status = EXIT_OK
    try:
        recommender = deps.recommender
        try:
            model = recommender.train_learned_ranker()
        except NotEnoughHistoryError as exc:
            print(f"learned ranker: not trained: {exc}")
            status = EXIT_FAILED
        else:
            card = Path(path).with_suffix(".md")
            card.write_text(model_card(model), encoding="utf-8")
            print(summary(model))
            print(f"saved the learned ranker to {path} and its model card to {card}; "
                  "`mediarec serve` loads it at start")  # fmt: skip
        data_dir = Path(settings.storage.data_dir)
        out = Path(recommender.settings.ranker_path or data_dir / RANKER_FILE)
        report = train_ranker(deps.engagement, recommender.settings, blend, out_path=out)
        print(f"blend weights: {format_report(report)}")
        if report.trained:
            print(f"saved the blend weights to {out} (used when recommend.ranker_path names it)")
    finally:
        deps.close()
    return status


def summary(model: LearnedRanker) -> str:
    info = model.info
    metrics = info.get("validation_ndcg10", {})
    scores = ", ".join(f"{name} {value:.4f}" for name, value in metrics.items())
    return (
        f"learned ranker: {info.get('groups')} training lists from {info.get('events')} events "
        f"of {info.get('users')} users over {info.get('items')} items in "
        f"{info.get('train_s')} s; held-out NDCG@10: {scores or 'no held-out users'}"
    )


def model_card(model: LearnedRanker) -> str:
    """The trained model's card: data, method, features and held-out metrics."""
    info = model.info
    config = info.get("config", {})
    metrics = info.get("validation_ndcg10", {})
    lines = [
        "# Learned ranker (`mediarec train-ranker`)",
        "",
        f"Trained {info.get('trained_at', '?')} from {info.get('events')} events of "
        f"{info.get('users')} users over {info.get('items')} items "
        f"({info.get('groups')} training lists, {info.get('train_s')} s; "
        f"{info.get('served_impressions', 0)} served impressions joined their lists).",
        "",
        "Method: LightGBM lambdarank over the candidates of every source, trained by time-split "
        f"self-supervision: {config.get('cuts')} nested cuts per user, each holding out the next "
        f"{config.get('label_fraction')} of the user's events as labels (their positives), with "
        "every collaborative feature computed from a core built without those events. "
        f"{config.get('rounds')} rounds, learning rate {config.get('learning_rate')}, "
        f"{config.get('num_leaves')} leaves, at least {config.get('min_data_in_leaf')} rows per "
        f"leaf. At the first cut, a share of {config.get('newcomer_share')} of users are also "
        "newcomers, ranked by a core without any of their events after each of their first "
        f"{config.get('newcomer_likes')} likes. See docs/recommend.md.",
        "",
        "## Held-out users",
        "",
        f"NDCG@10 on the first cut of {info.get('held_out_groups')} held-out users' lists "
        "(the ideal counts every label, among the candidates or not), the model against each "
        "single score over the same candidates:",
        "",
        "| ranking | NDCG@10 |",
        "|---|---|",
    ]
    lines += [f"| {name} | {metrics[name]:.4f} |" for name in ("model", *BASELINE_COLUMNS)
              if name in metrics]  # fmt: skip
    if "newcomers_model" in metrics:
        lines += [
            "",
            f"The held-out users' {info.get('held_out_newcomer_groups')} newcomer lists, apart: "
            f"model {metrics['newcomers_model']:.4f}, "
            f"popularity {metrics.get('newcomers_popularity', 0.0):.4f}.",
        ]
    lines += ["", "## Features", "", "| feature | reported as | meaning |", "|---|---|---|"]
    lines += [f"| `{n}` | {r} | {d} |" for n, r, d in describe()]
    lines += ["", f"Written {time.strftime('%Y-%m-%d', time.gmtime())}.", ""]
    return "\n".join(lines)
