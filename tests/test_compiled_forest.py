"""The learned ranker's trees compiled to native code score exactly as LightGBM does."""

from __future__ import annotations

import tempfile
from pathlib import Path

import lightgbm as lgb
import numpy as np
import pytest

from mediarec.server.recommend.compiled_forest import (
    CompiledForest,
    ForestCompileError,
    _check_against,
)
from mediarec.server.recommend.learned import (
    LearnedRanker,
    LearnedRankerFileError,
    load_learned_or_none,
    save_learned_ranker,
)
from mediarec.server.recommend.ltr_features import FEATURES


def _lambdarank(seed: int, rounds: int = 10) -> tuple[lgb.Booster, np.ndarray]:
    """A small lambdarank model over 5 features, one of them often missing."""
    rng = np.random.default_rng(seed)
    x = rng.random((600, 5))
    x[rng.random(600) < 0.3, 4] = np.nan
    relevance = (x[:, 0] + 0.5 * np.nan_to_num(x[:, 4]) > 0.9).astype(int) + (x[:, 1] > 0.8)
    data = lgb.Dataset(x, relevance, group=[20] * 30)
    params = {"objective": "lambdarank", "num_leaves": 15, "min_data_in_leaf": 5, "verbose": -1}
    return lgb.train(params, data, num_boost_round=rounds), x


def test_the_compiled_trees_score_rows_as_lightgbm_does() -> None:
    booster, x = _lambdarank(0)
    rows = np.vstack([
        x[:200],
        np.random.default_rng(1).normal(0.5, 2.0, (100, 5)),  # outside the training range
        np.full((1, 5), np.nan),
    ])  # fmt: skip
    got = CompiledForest(booster).predict(rows)
    assert got.dtype == np.float64
    assert got == pytest.approx(booster.predict(rows, raw_score=True), abs=1e-9)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_any_float_rows_and_none_at_all_are_scored(dtype: type) -> None:
    booster, x = _lambdarank(2, rounds=5)
    forest = CompiledForest(booster)
    assert forest.predict(x[:0]).shape == (0,)
    rows = x[:7].astype(dtype)
    assert forest.predict(rows) == pytest.approx(booster.predict(rows), abs=1e-9)


def test_a_model_whose_trees_never_split_scores_its_constant() -> None:
    x = np.random.default_rng(3).random((50, 3))
    booster = lgb.train({"objective": "regression", "verbose": -1}, lgb.Dataset(x, np.ones(50)),
                        num_boost_round=2)  # fmt: skip
    assert CompiledForest(booster).predict(x[:4]) == pytest.approx(booster.predict(x[:4]))


def test_a_forest_that_scores_unlike_its_booster_is_refused() -> None:
    forest = CompiledForest(_lambdarank(4, rounds=5)[0])
    other, x = _lambdarank(5, rounds=5)
    with pytest.raises(ForestCompileError, match="away from LightGBM's"):
        _check_against(other, forest, x[:50])


def test_rows_of_another_width_are_refused() -> None:
    booster, x = _lambdarank(6, rounds=3)
    with pytest.raises(ValueError, match="rows of 5 features expected"):
        CompiledForest(booster).predict(x[:10, :4])
    with pytest.raises(ValueError, match="rows of 5 features expected"):
        CompiledForest(booster).predict(x[0])


def test_a_model_with_a_categorical_split_is_refused() -> None:
    rng = np.random.default_rng(7)
    x = np.column_stack([rng.integers(0, 5, 400), rng.random(400)])
    y = (x[:, 0] == 3).astype(float)
    booster = lgb.train(
        {"objective": "regression", "verbose": -1, "min_data_in_leaf": 5, "min_data_per_group": 5},
        lgb.Dataset(x, y, categorical_feature=[0]), num_boost_round=3,
    )  # fmt: skip
    with pytest.raises(ForestCompileError, match="categorical split"):
        CompiledForest(booster)


def test_a_forest_that_cannot_compile_is_an_error_not_a_fallback(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    model = LearnedRanker(_ltr_booster())
    path = tmp_path / "learned_ranker.json"
    save_learned_ranker(model, path)
    # Nowhere to write the model text that lleaves compiles from (a read-only host, say).
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "missing"))
    with pytest.raises(LearnedRankerFileError, match="cannot be served.*do not compile"):
        load_learned_or_none(path)


def _ltr_booster() -> lgb.Booster:
    """A tiny model over the learned ranker's own features."""
    rng = np.random.default_rng(8)
    x = rng.random((200, len(FEATURES)))
    y = (x[:, 0] > 0.5).astype(int)
    data = lgb.Dataset(x, y, group=[20] * 10)
    return lgb.train({"objective": "lambdarank", "verbose": -1, "min_data_in_leaf": 5}, data, 3)
