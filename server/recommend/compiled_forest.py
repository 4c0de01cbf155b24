"""A LightGBM model's trees compiled to native code, to score a request's candidates.

LightGBM's ``predict`` walks every tree's node arrays for every row, and a request scores
every candidate with every tree. lleaves turns each tree into branches of machine code through
LLVM; its scores are LightGBM's own raw scores (which is what a lambdarank model predicts).

Compiling costs far more than scoring, so it runs once, when a model is loaded or trained. A
forest that fails to compile, or that scores a probe of rows unlike LightGBM, is an error
(``ForestCompileError``), never a silent switch back to LightGBM.
"""

from __future__ import annotations

import logging
import tempfile
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import lightgbm as lgb
import numpy as np

logger = logging.getLogger(__name__)

# Scores of the two predictors may differ by float rounding in the sum over trees, no more.
_PROBE_TOLERANCE = 1e-9


class ForestCompileError(RuntimeError):
    """The trees do not compile, or the compiled forest does not reproduce LightGBM's scores."""


class CompiledForest:
    """``predict(x)``: the booster's raw scores for the rows of ``x``, from native code.

    ``trees``: the booster's ``dump_model()["tree_info"]`` when the caller has it already.
    """

    def __init__(
        self, booster: lgb.Booster, trees: Sequence[Mapping[str, Any]] | None = None
    ) -> None:
        started = time.monotonic()
        trees = booster.dump_model()["tree_info"] if trees is None else trees
        self.num_feature = booster.num_feature()
        probe = _probe_rows(trees, self.num_feature)  # refuses what it cannot probe
        try:
            # Imported here: llvmlite loads LLVM, which a server without a model never needs.
            import lleaves

            # lleaves reads LightGBM's text model from a file.
            with tempfile.TemporaryDirectory(prefix="mediarec-forest-") as tmp:
                path = Path(tmp) / "model.txt"
                path.write_text(booster.model_to_string(), encoding="utf-8")
                model = lleaves.Model(model_file=str(path))
                model.compile(raw_score=True)
        except (OSError, ValueError, RuntimeError, ImportError) as exc:
            raise ForestCompileError(f"the trees do not compile to native code ({exc})") from exc
        self._model: Any = model
        _check_against(booster, self, probe)
        logger.info(
            "compiled %d trees to native code in %.1f s",
            booster.num_trees(), time.monotonic() - started,
        )  # fmt: skip

    def predict(self, x: np.ndarray) -> np.ndarray:
        if x.ndim != 2 or x.shape[1] != self.num_feature:
            raise ValueError(f"rows of {self.num_feature} features expected, got {x.shape}")
        if x.shape[0] == 0:
            return np.zeros(0)
        rows = np.ascontiguousarray(x, dtype=np.float64)
        # One thread: the server's request threads are the parallelism.
        return np.asarray(self._model.predict(rows, n_jobs=1), dtype=np.float64)


def _check_against(booster: lgb.Booster, forest: CompiledForest, probe: np.ndarray) -> None:
    """Raise unless ``forest`` scores the ``probe`` rows as ``booster`` does."""
    expected = np.asarray(booster.predict(probe, raw_score=True, num_threads=1), np.float64)
    got = forest.predict(probe)
    if not np.allclose(got, expected, rtol=_PROBE_TOLERANCE, atol=_PROBE_TOLERANCE):
        worst = float(np.max(np.abs(expected - got)))
        raise ForestCompileError(
            f"the compiled trees score up to {worst:.3g} away from LightGBM's on the probe rows"
        )


def _probe_rows(trees: Sequence[Mapping[str, Any]], n_features: int) -> np.ndarray:
    """Rows that take every split each way: each feature steps through its thresholds, each
    exactly and just above and below it (the longest list sets the row count; shorter ones
    repeat), then a row of zeros, a row of missing values, and one row per feature with that
    feature alone missing. A categorical split is refused: the model has none (``ltr_train``
    trains on numbers) and the probe could not cover one."""
    thresholds: list[set[float]] = [set() for _ in range(n_features)]
    for tree in trees:
        stack = [tree["tree_structure"]]
        while stack:
            node = stack.pop()
            if "split_feature" not in node:
                continue
            if node.get("decision_type", "<=") != "<=":
                raise ForestCompileError("the model has a categorical split, which is not served")
            thresholds[int(node["split_feature"])].add(float(node["threshold"]))
            stack += [node["left_child"], node["right_child"]]
    columns = []
    for values in thresholds:
        points = np.array(sorted(values) or [0.0])
        columns.append(
            np.concatenate([points, np.nextafter(points, np.inf), np.nextafter(points, -np.inf)])
        )
    rows = max(c.size for c in columns)
    grid = np.stack([np.resize(c, rows) for c in columns], axis=1)
    single_missing = np.zeros((n_features, n_features))
    np.fill_diagonal(single_missing, np.nan)
    return np.vstack([grid, np.zeros((1, n_features)), np.full((1, n_features), np.nan),
                      single_missing])  # fmt: skip
