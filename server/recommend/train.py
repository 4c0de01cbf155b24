"""`mediarec train-ranker`: fit the ranking weights from logged impressions -> engagement.

Every served item (``EngagementStore.iter_served``) is one example: its logged blend features,
gated exactly as the server gates them, and a label that is 1 when the same user engaged with
the same media positively (like, comment, share, save or a long view) within
``label_window_s`` after it was served. A logistic regression (damped Newton steps) is fitted on the
older 80 % of requests and evaluated on the newest 20 % against the default weights: AUC, log
loss (the default blend is Platt-calibrated on the training part so its log loss is
comparable) and NDCG of each served list re-ranked by the model. The weights are shrunk
toward the calibrated default weights, so a small log moves them little. The saved model is then
refitted on every example. Explored items are weighted by 1 / propensity (clipped) so the
model learns from the exploration policy without its selection bias.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from mediarec.server.recommend import blend as b
from mediarec.server.recommend.profile import positive_weight
from mediarec.server.recommend.ranker import RankerModel, save_ranker
from mediarec.server.recommend.settings import RecommendSettings
from mediarec.server.recommend.types import EngagementStore, Surface

logger = logging.getLogger(__name__)

DAY_S = 86_400.0


@dataclass(frozen=True)
class TrainConfig:
    since: float | None = None  # only impressions served at or after this time
    label_window_s: float = DAY_S  # engagement within this long after serving is a positive
    l2: float = 5.0  # ridge penalty pulling the weights toward the (calibrated) defaults
    min_examples: int = 200  # fewer served items: keep the defaults
    min_positives: int = 20  # fewer positive labels: keep the defaults
    test_fraction: float = 0.2  # newest requests held out for the before/after metrics
    max_inverse_propensity: float = 10.0
    iterations: int = 50


@dataclass(frozen=True)
class Metrics:
    auc: float
    logloss: float
    ndcg: float

    def as_dict(self) -> dict[str, float]:
        return {"auc": self.auc, "logloss": self.logloss, "ndcg": self.ndcg}


@dataclass(frozen=True)
class TrainReport:
    trained: bool
    message: str
    examples: int = 0
    positives: int = 0
    window: tuple[float, float] | None = None
    before: Metrics | None = None
    after: Metrics | None = None
    model: RankerModel | None = None
    info: Mapping[str, object] = field(default_factory=dict)


@dataclass(frozen=True)
class Examples:
    x: np.ndarray  # (n, F) gated features
    y: np.ndarray  # (n,) 0/1
    weight: np.ndarray  # (n,) inverse-propensity weights
    request: np.ndarray  # (n,) request index, for per-list metrics
    time: np.ndarray  # (n,) served timestamp
    position: np.ndarray  # (n,) position in the ranking (a training-only debiasing input)

    def __len__(self) -> int:
        return int(self.y.shape[0])

    def subset(self, mask: np.ndarray) -> Examples:
        return Examples(self.x[mask], self.y[mask], self.weight[mask], self.request[mask],
                        self.time[mask], self.position[mask])


def build_examples(
    engagement: EngagementStore, settings: RecommendSettings, config: TrainConfig
) -> Examples:
    """Join served items with later positive engagement of the same user on the same media."""
    served = list(engagement.iter_served(since=config.since))
    positives: dict[tuple[str, str], list[float]] = {}
    since = None if config.since is None else config.since
    for e in engagement.iter_events(since=since):
        if e.media_id and positive_weight(e, settings) > 0:
            positives.setdefault((e.user_id, e.media_id), []).append(e.timestamp)
    rows, labels, weights, requests, times, positions = [], [], [], [], [], []
    request_index: dict[str, int] = {}
    for item in served:
        f = item.features
        x = np.array([[float(f.get(name, 0.0)) for name in b.FEATURES]])
        surface = Surface.FEED if f.get("feed", 0.0) >= 0.5 else Surface.EXPLORE
        gates = b.gates(
            float(f.get("user_confidence", 0.0)),
            np.array([float(f.get("item_confidence", 0.0))]),
            surface,
        )
        rows.append((gates * x)[0])
        stamps = positives.get((item.user_id, item.media_id), ())
        labels.append(
            1.0
            if any(item.timestamp <= t <= item.timestamp + config.label_window_s for t in stamps)
            else 0.0
        )
        p = max(float(item.propensity), 1.0 / config.max_inverse_propensity)
        weights.append(1.0 / p if f.get("explored", 0.0) >= 0.5 else 1.0)
        requests.append(request_index.setdefault(item.request_id, len(request_index)))
        times.append(item.timestamp)
        positions.append(item.position)
    n_features = len(b.FEATURES)
    return Examples(
        x=np.array(rows).reshape(-1, n_features),
        y=np.array(labels),
        weight=np.array(weights),
        request=np.array(requests, dtype=np.int64),
        time=np.array(times),
        position=np.array(positions, dtype=np.float64),
    )


def fit_logistic(
    x: np.ndarray,
    y: np.ndarray,
    weight: np.ndarray,
    l2: float,
    iterations: int = 50,
    *,
    centre: np.ndarray | None = None,
    free: int = 0,
) -> tuple[np.ndarray, float]:
    """Weighted logistic regression by damped Newton steps: (weights, bias).

    The weights are shrunk (L2) toward ``centre`` (0 by default); the last ``free`` columns
    and the bias get only a vanishing ridge, which keeps them finite on separable data. Each
    Newton step is halved until the penalised log loss decreases enough (Armijo), so a poor
    starting point or a flat direction cannot make the fit diverge.
    """
    n, d = x.shape
    design = np.hstack([x, np.ones((n, 1))])
    target = np.zeros(d + 1)
    if centre is not None:
        target[: centre.shape[0]] = centre
    theta = target.copy()
    penalty = np.full(d + 1, float(l2))
    penalty[d - free :] = 0.0  # the free columns and the bias
    penalty = np.maximum(penalty, 1e-6 * max(float(weight.sum()), 1.0))

    def objective(t: np.ndarray) -> float:
        z = design @ t
        loss = np.logaddexp(0.0, z) - y * z  # -log-likelihood, stable for any z
        return float(weight @ loss + 0.5 * penalty @ (t - target) ** 2)

    current = objective(theta)
    for _ in range(iterations):
        p = _sigmoid(design @ theta)
        grad = design.T @ (weight * (p - y)) + penalty * (theta - target)
        hess = (design * (weight * p * (1 - p))[:, None]).T @ design + np.diag(penalty)
        step = np.linalg.solve(hess, grad)
        decrease = float(grad @ step)  # > 0: the Hessian is positive definite
        if decrease < 1e-10:
            break
        size = 1.0
        while size > 1e-8:
            candidate = theta - size * step
            value = objective(candidate)
            if value <= current - 1e-4 * size * decrease:
                break
            size /= 2.0
        else:
            break  # no step decreases the loss: at the optimum up to rounding
        theta, current = candidate, value
    return theta[:-1], float(theta[-1])


def _sigmoid(z: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-np.clip(z, -30, 30)))


def auc(scores: np.ndarray, labels: np.ndarray) -> float:
    """Area under the ROC curve (Mann-Whitney, ties counted half); NaN without both classes."""
    pos, neg = int(labels.sum()), int((1 - labels).sum())
    if pos == 0 or neg == 0:
        return float("nan")
    order = np.argsort(scores, kind="stable")
    ranks = np.empty(len(scores))
    sorted_scores = scores[order]
    i = 0
    while i < len(scores):  # average ranks of ties
        j = i
        while j + 1 < len(scores) and sorted_scores[j + 1] == sorted_scores[i]:
            j += 1
        ranks[order[i : j + 1]] = (i + j) / 2.0 + 1.0
        i = j + 1
    return float((ranks[labels == 1].sum() - pos * (pos + 1) / 2.0) / (pos * neg))


def logloss(p: np.ndarray, labels: np.ndarray) -> float:
    p = np.clip(p, 1e-7, 1 - 1e-7)
    return float(-np.mean(labels * np.log(p) + (1 - labels) * np.log(1 - p)))


def mean_ndcg(scores: np.ndarray, labels: np.ndarray, requests: np.ndarray) -> float:
    """NDCG of each served list re-ranked by ``scores``, averaged over lists with a positive."""
    values = []
    for r in np.unique(requests):
        mask = requests == r
        rel = labels[mask]
        if rel.sum() == 0:
            continue
        order = np.argsort(-scores[mask], kind="stable")
        discounts = 1.0 / np.log2(np.arange(2, rel.size + 2))
        dcg = float((rel[order] * discounts).sum())
        ideal = float((np.sort(rel)[::-1] * discounts).sum())
        values.append(dcg / ideal)
    return float(np.mean(values)) if values else float("nan")


def evaluate(probabilities: np.ndarray, scores: np.ndarray, ex: Examples) -> Metrics:
    return Metrics(
        auc=auc(scores, ex.y),
        logloss=logloss(probabilities, ex.y),
        ndcg=mean_ndcg(scores, ex.y, ex.request),
    )


def train_ranker(
    engagement: EngagementStore,
    settings: RecommendSettings | None = None,
    config: TrainConfig | None = None,
    *,
    out_path: str | Path | None = None,
    now: float | None = None,
) -> TrainReport:
    """Fit, report before/after, and save to ``out_path`` (unless the log is too small)."""
    settings = settings or RecommendSettings()
    config = config or TrainConfig()
    ex = build_examples(engagement, settings, config)
    n, positives = len(ex), int(ex.y.sum())
    if n < config.min_examples or positives < config.min_positives or positives == n:
        message = (
            f"too little training data: {n} served items with {positives} positive labels "
            f"(need at least {config.min_examples} items and {config.min_positives} positives, "
            "and some negatives); keeping the default blend weights"
        )
        return TrainReport(False, message, examples=n, positives=positives)
    window = (float(ex.time.min()), float(ex.time.max()))
    train, test = _split_by_time(ex, config.test_fraction)
    default = b.weight_vector(b.DEFAULT_WEIGHTS)
    # Before: the default blend, Platt-calibrated on the training part.
    a, c = fit_logistic((train.x @ default)[:, None], train.y, train.weight, 0.0)
    default_scores = test.x @ default
    before = evaluate(_sigmoid(default_scores * a[0] + c), default_scores, test)
    # After: weights shrunk toward the calibrated defaults, so little data keeps them close.
    centre = max(float(a[0]), 0.0) * default
    weights, bias = _fit(train, centre, config)
    test_logits = test.x @ weights + bias
    after = evaluate(_sigmoid(test_logits), test_logits, test)
    final_w, final_bias = _fit(ex, centre, config)
    info = {
        "trained_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now or time.time())),
        "window": {"from": window[0], "to": window[1]},
        "examples": n,
        "positives": positives,
        "label_window_s": config.label_window_s,
        "l2": config.l2,
        "metrics": {
            "test_examples": len(test),
            "before": before.as_dict(),
            "after": after.as_dict(),
        },
    }
    model = RankerModel(
        weights=dict(zip(b.FEATURES, final_w.tolist(), strict=True)),
        bias=final_bias,
        trained=True,
        info=info,
    )
    if out_path is not None:
        save_ranker(model, out_path)
    return TrainReport(
        True, "trained", examples=n, positives=positives, window=window, before=before,
        after=after, model=model, info=info,
    )


def _fit(ex: Examples, centre: np.ndarray, config: TrainConfig) -> tuple[np.ndarray, float]:
    # No position term: a served position is a function of the very features being weighed,
    # so a position input would soak up their effect instead of the position bias.
    return fit_logistic(ex.x, ex.y, ex.weight, config.l2, config.iterations, centre=centre)


def _split_by_time(ex: Examples, test_fraction: float) -> tuple[Examples, Examples]:
    """Hold out the newest requests (whole lists stay on one side)."""
    first_seen: dict[int, float] = {}
    for r, t in zip(ex.request.tolist(), ex.time.tolist(), strict=True):
        first_seen[r] = min(t, first_seen.get(r, math.inf))
    ordered = sorted(first_seen, key=lambda r: (first_seen[r], r))
    cut = max(1, int(round(len(ordered) * (1.0 - test_fraction))))
    cut = min(cut, len(ordered) - 1) if len(ordered) > 1 else cut
    test_requests = np.array(ordered[cut:], dtype=np.int64)
    is_test = np.isin(ex.request, test_requests)
    if not is_test.any() or is_test.all():  # a single request: evaluate on what we have
        return ex, ex
    return ex.subset(~is_test), ex.subset(is_test)


def format_report(report: TrainReport) -> str:
    if not report.trained:
        return report.message
    assert report.before is not None and report.after is not None and report.model is not None
    lines = [
        f"training data: {report.examples} served items, {report.positives} positive labels",
        "offline metrics on the newest requests (held out):",
        f"  {'':8} {'AUC':>8} {'logloss':>8} {'NDCG':>8}",
    ]
    for name, m in (("before", report.before), ("after", report.after)):
        lines.append(f"  {name:8} {m.auc:8.4f} {m.logloss:8.4f} {m.ndcg:8.4f}")
    weights = ", ".join(f"{k}={v:+.3f}" for k, v in report.model.weights.items())
    lines.append(f"weights: {weights}; bias={report.model.bias:+.3f}")
    return "\n".join(lines)
