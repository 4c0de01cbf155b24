"""A LightGBM model's trees compiled to native code, to score a request's candidates.

LightGBM's ``predict`` walks every tree's node arrays for every row; with a model of a few
hundred trees over a request's several hundred candidates, that walk was the largest single
cost of a warm call. lleaves turns each tree into branches of machine code through LLVM, and
its scores are LightGBM's own (the raw score, which is a lambdarank model's prediction).

Compiling takes seconds for a model of hundreds of trees, so it runs once, when a model is
loaded or trained. A compiled forest that disagrees with its booster on a probe of rows is an
error, never a silent switch back to LightGBM.
"""

from __future__ import annotations

import logging
import tempfile
import time
from pathlib import Path
from typing import Any

import lightgbm as lgb
import lleaves
import numpy as np

logger = logging.getLogger(__name__)

# Scores of the two predictors may differ by float rounding in the sum over trees, no more.
_PROBE_TOLERANCE = 1e-9
_PROBE_ROWS = 64


class ForestCompileError(RuntimeError):
    """The compiled forest does not reproduce LightGBM's scores."""


class CompiledForest:
    """``predict(x)``: the booster's raw scores for the rows of ``x``, from native code."""

    def __init__(self, booster: lgb.Booster) -> None:
        started = time.monotonic()
        self.num_feature = booster.num_feature()
        # lleaves reads LightGBM's text model from a file.
        with tempfile.TemporaryDirectory(prefix="mediarec-forest-") as tmp:
            path = Path(tmp) / "model.txt"
            path.write_text(booster.model_to_string(), encoding="utf-8")
            model = lleaves.Model(model_file=str(path))
            model.compile(raw_score=True)
        self._model: Any = model
        _check_against(booster, self)
        logger.debug(
            "compiled %d trees in %.1f s", booster.num_trees(), time.monotonic() - started
        )

    def predict(self, x: np.ndarray) -> np.ndarray:
        rows = np.ascontiguousarray(x, dtype=np.float64).reshape(-1, self.num_feature)
        if rows.shape[0] == 0:
            return np.zeros(0)
        # One thread: the server's request threads are the parallelism.
        return np.asarray(self._model.predict(rows, n_jobs=1), dtype=np.float64)


def _check_against(booster: lgb.Booster, forest: CompiledForest) -> None:
    """Raise unless ``forest`` scores like ``booster`` on rows that straddle every split
    threshold the model uses, missing values included."""
    probe = _probe_rows(booster)
    expected = np.asarray(booster.predict(probe, raw_score=True, num_threads=1), np.float64)
    got = forest.predict(probe)
    worst = float(np.max(np.abs(expected - got), initial=0.0))
    if not np.allclose(got, expected, rtol=_PROBE_TOLERANCE, atol=_PROBE_TOLERANCE):
        raise ForestCompileError(
            f"the compiled trees score up to {worst:.3g} away from LightGBM's on the probe rows"
        )


def _probe_rows(booster: lgb.Booster) -> np.ndarray:
    """Rows with each feature drawn from around its split thresholds (both sides of each),
    plus a row of missing values; seeded, so a check is repeatable."""
    n = booster.num_feature()
    thresholds: list[list[float]] = [[] for _ in range(n)]
    for tree in booster.dump_model()["tree_info"]:
        stack = [tree["tree_structure"]]
        while stack:
            node = stack.pop()
            if "split_feature" in node:
                threshold = node.get("threshold")
                if isinstance(threshold, int | float):  # a categorical split lists categories
                    thresholds[int(node["split_feature"])].append(float(threshold))
                stack += [node["left_child"], node["right_child"]]
    rng = np.random.default_rng(0)
    probe = np.empty((_PROBE_ROWS, n))
    for f, values in enumerate(thresholds):
        points = np.asarray(values or [0.0])
        picks = rng.choice(points, size=_PROBE_ROWS)
        probe[:, f] = picks + rng.choice([-1e-6, 1e-6], size=_PROBE_ROWS) * (1 + np.abs(picks))
    probe[-1] = np.nan
    return probe
