"""The trained ranker: file format, training from a logged history, the CLI, metrics."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from mediarec.server.engagement import open_engagement_store
from mediarec.server.recommend import blend as b
from mediarec.server.recommend.ranker import (
    DEFAULT_RANKER,
    FORMAT_VERSION,
    RankerFileError,
    RankerModel,
    load_or_default,
    load_ranker,
    save_ranker,
)
from mediarec.server.recommend.train import (
    TrainConfig,
    auc,
    fit_logistic,
    mean_ndcg,
    train_ranker,
)
from mediarec.server.recommend.types import Event, EventKind, ServedItem

T0 = 1_750_000_000.0


def log_history(store, requests: int, seed: int = 0) -> None:
    """Served lists where engagement follows the *social* feature, not content.

    The default blend weighs content over social, so a trained model must learn better.
    """
    rng = np.random.default_rng(seed)
    served, events = [], []
    for r in range(requests):
        user = f"u{r % 40}"
        t = T0 + 60.0 * r
        for pos in range(10):
            media = f"m{r}-{pos}"
            content, social = float(rng.uniform()), float(rng.uniform())
            features = {name: 0.0 for name in b.FEATURES}
            features |= {b.CONTENT: content, b.SOCIAL: social, "user_confidence": 0.5,
                         "item_confidence": 0.0, "feed": 1.0, "explored": 0.0}
            served.append(ServedItem(f"r{r}", user, media, pos, content, 1.0, ("content",),
                                     features, t))
            if rng.uniform() < 0.05 + 0.6 * social**2:
                events.append(Event(f"e{r}-{pos}", user, EventKind.LIKE, t + 30.0,
                                    media_id=media))
    store.log_served(served)
    results = store.log_events(events)
    assert all(result.accepted for result in results)


@pytest.fixture
def engagement(tmp_path: Path):
    store = open_engagement_store(tmp_path, clock=lambda: T0 + 10 * 86_400)
    yield store
    store.close()


def test_model_file_round_trips(tmp_path: Path) -> None:
    model = RankerModel(weights={b.CONTENT: 0.5, b.SOCIAL: 2.0}, bias=-1.5, trained=True,
                        info={"examples": 10})
    path = tmp_path / "ranker.json"
    save_ranker(model, path)
    loaded = load_ranker(path)
    assert loaded.trained
    assert loaded.bias == -1.5
    assert loaded.weights[b.SOCIAL] == 2.0 and loaded.weights[b.COHORT] == 0.0
    assert loaded.info["examples"] == 10
    assert not list(tmp_path.glob("*.tmp"))


@pytest.mark.parametrize(
    "content",
    [
        "not json",
        json.dumps({"format": "something-else"}),
        json.dumps({"format": "mediarec-ranker", "version": 99, "weights": {}}),
        # Version 1 was fit under the earlier gates: it must be trained again, not reused.
        json.dumps({"format": "mediarec-ranker", "version": 1, "weights": {"content": 1.0}}),
        json.dumps({"format": "mediarec-ranker", "version": FORMAT_VERSION,
                    "weights": {"vibes": 1.0}}),
        json.dumps({"format": "mediarec-ranker", "version": FORMAT_VERSION,
                    "weights": {"content": "x"}}),
        json.dumps({"format": "mediarec-ranker", "version": FORMAT_VERSION,
                    "weights": {"content": 10**400}}),  # beyond a float
        json.dumps({"format": "mediarec-ranker"}).encode("utf-16"),  # not UTF-8
    ],
)
def test_a_broken_ranker_file_is_an_error_not_a_silent_fallback(tmp_path: Path, content) -> None:
    path = tmp_path / "ranker.json"
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content)
    with pytest.raises(RankerFileError):
        load_or_default(path)


def test_a_missing_file_means_the_default_weights(tmp_path: Path) -> None:
    assert load_or_default(tmp_path / "absent.json") is DEFAULT_RANKER
    assert load_or_default("") is DEFAULT_RANKER
    assert dict(DEFAULT_RANKER.weights) == dict(b.DEFAULT_WEIGHTS)


def test_empty_log_says_so_and_keeps_the_defaults(engagement, tmp_path: Path) -> None:
    out = tmp_path / "ranker.json"
    report = train_ranker(engagement, out_path=out)
    assert not report.trained
    assert "too little training data" in report.message
    assert "keeping the default" in report.message
    assert not out.exists()


def test_tiny_log_says_so_and_keeps_the_defaults(engagement, tmp_path: Path) -> None:
    log_history(engagement, 3)
    out = tmp_path / "ranker.json"
    report = train_ranker(engagement, out_path=out)
    assert not report.trained and report.examples == 30
    assert not out.exists()


def test_training_learns_what_predicts_engagement(engagement, tmp_path: Path) -> None:
    log_history(engagement, 150)
    out = tmp_path / "ranker.json"
    report = train_ranker(engagement, out_path=out, config=TrainConfig(min_examples=100))
    assert report.trained
    assert report.before is not None and report.after is not None
    assert report.after.auc > report.before.auc + 0.1
    assert report.after.ndcg > report.before.ndcg
    assert report.after.logloss < report.before.logloss
    model = load_ranker(out)
    assert model.weights[b.SOCIAL] > model.weights[b.CONTENT]
    assert model.info["metrics"]["after"]["auc"] == pytest.approx(report.after.auc)


@pytest.mark.parametrize(
    ("scores", "labels", "expected"),
    [([0.1, 0.4, 0.35, 0.8], [0, 0, 1, 1], 0.75), ([1, 2, 3], [0, 1, 1], 1.0),
     ([1, 1, 1, 1], [0, 1, 0, 1], 0.5)],
)
def test_auc(scores, labels, expected) -> None:
    assert auc(np.array(scores, float), np.array(labels, float)) == pytest.approx(expected)


def test_ndcg_is_one_when_positives_lead_each_list() -> None:
    scores = np.array([3.0, 2.0, 1.0, 1.0, 2.0])
    labels = np.array([1.0, 0.0, 0.0, 0.0, 1.0])
    requests = np.array([0, 0, 0, 1, 1])
    assert mean_ndcg(scores, labels, requests) == pytest.approx(1.0)
    assert mean_ndcg(-scores, labels, requests) < 1.0


def test_logistic_fit_recovers_a_known_model() -> None:
    rng = np.random.default_rng(5)
    x = rng.normal(size=(4000, 2))
    y = (rng.uniform(size=4000) < 1 / (1 + np.exp(-(2.0 * x[:, 0] - 1.0 * x[:, 1] + 0.5)))) * 1.0
    w, bias = fit_logistic(x, y, np.ones(4000), l2=0.0)
    assert w == pytest.approx([2.0, -1.0], abs=0.2)
    assert bias == pytest.approx(0.5, abs=0.15)


def test_logistic_fit_stays_finite_on_separable_data_with_large_features() -> None:
    # Plain Newton steps overshoot here (the Platt fit once ended with a bias of -3e12).
    rng = np.random.default_rng(9)
    x = np.concatenate([rng.uniform(0, 50, 300), rng.uniform(60, 400, 40)])[:, None]
    y = (x[:, 0] > 55).astype(float)
    w, bias = fit_logistic(x, y, np.ones(len(y)), l2=0.0)
    assert np.all(np.isfinite(w)) and np.isfinite(bias)
    assert abs(bias) < 1e4
    scores = x[:, 0] * w[0] + bias
    assert scores[y == 1].min() > scores[y == 0].max()  # still separates the classes


def test_logistic_fit_never_increases_the_penalised_loss_from_its_start() -> None:
    rng = np.random.default_rng(3)
    x = rng.normal(size=(500, 3)) * np.array([1.0, 100.0, 0.01])
    y = (rng.uniform(size=500) < 0.1) * 1.0
    centre = np.array([5.0, -5.0, 50.0])
    w, bias = fit_logistic(x, y, np.ones(500), l2=5.0, centre=centre)

    def penalised(weights: np.ndarray, b: float) -> float:
        z = x @ weights + b
        return float(np.sum(np.logaddexp(0, z) - y * z) + 2.5 * np.sum((weights - centre) ** 2))

    assert penalised(w, bias) < penalised(centre, 0.0)
    assert np.all(np.isfinite(w))
