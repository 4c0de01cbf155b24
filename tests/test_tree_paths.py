"""Path attribution of a tree ensemble: hand-built trees, then a trained LightGBM model."""

from __future__ import annotations

from typing import Any

import lightgbm as lgb
import numpy as np
import pytest

from mediarec.server.recommend.tree_paths import path_table


def leaf(index: int, value: float) -> dict[str, Any]:
    return {"leaf_index": index, "leaf_value": value}


Node = dict[str, Any]


def split(feature: int, value: float, left: Node, right: Node) -> Node:
    return {"split_feature": feature, "internal_value": value, "left_child": left,
            "right_child": right}  # fmt: skip


STUMP = {"num_leaves": 1, "tree_structure": {"leaf_value": 0.25}}  # as LightGBM writes one
ONE_SPLIT = {"num_leaves": 2, "tree_structure": split(1, 0.5, leaf(0, 0.2), leaf(1, 0.9))}
# Feature 0 at the root, then feature 2 on the right: leaf 2's path credits both.
TWO_LEVELS = {
    "num_leaves": 3,
    "tree_structure": split(0, 0.0, leaf(0, -1.0), split(2, 1.0, leaf(1, 0.5), leaf(2, 3.0))),
}


@pytest.mark.parametrize(
    ("trees", "leaves", "attribution", "base"),
    [
        ([STUMP], [0], [0.0, 0.0, 0.0], 0.25),
        ([ONE_SPLIT], [0], [0.0, -0.3, 0.0], 0.5),
        ([ONE_SPLIT], [1], [0.0, 0.4, 0.0], 0.5),
        ([TWO_LEVELS], [0], [-1.0, 0.0, 0.0], 0.0),
        ([TWO_LEVELS], [1], [1.0, 0.0, -0.5], 0.0),
        ([TWO_LEVELS], [2], [1.0, 0.0, 2.0], 0.0),
        # Two trees: each row of the table is found through its tree's offset.
        ([ONE_SPLIT, TWO_LEVELS], [1, 2], [1.0, 0.4, 2.0], 0.5),
        ([STUMP, ONE_SPLIT, TWO_LEVELS], [0, 0, 1], [1.0, -0.3, -0.5], 0.75),
    ],
)
def test_a_leaf_is_credited_with_each_split_on_its_path(
    trees: list[dict[str, Any]], leaves: list[int], attribution: list[float], base: float
) -> None:
    table = path_table(trees, n_features=3)
    got, bases = table.attribute(np.array([leaves]))
    assert got[0] == pytest.approx(attribution)
    assert bases.tolist() == pytest.approx([base])
    # A row's attributions plus the base are the sum of its leaves' values.
    values = [_leaf_value(tree["tree_structure"], n) for tree, n in zip(trees, leaves, strict=True)]
    assert got[0].sum() + bases[0] == pytest.approx(sum(values))


def _leaf_value(node: dict[str, Any], index: int) -> float:
    if "split_feature" not in node:
        return float(node["leaf_value"]) if node.get("leaf_index", 0) == index else float("nan")
    left = _leaf_value(node["left_child"], index)
    return left if not np.isnan(left) else _leaf_value(node["right_child"], index)


def test_a_trained_model_is_explained_by_the_features_it_uses_and_adds_up() -> None:
    rng = np.random.default_rng(0)
    x = rng.random((2000, 4))
    y = 3.0 * x[:, 0] + (x[:, 2] > 0.5)  # features 1 and 3 are noise
    booster = lgb.train(
        {"objective": "regression", "num_leaves": 7, "verbose": -1, "min_data_in_leaf": 20},
        lgb.Dataset(x, y),
        num_boost_round=40,
    )
    table = path_table(booster.dump_model()["tree_info"], 4)
    rows = x[:50]
    got, base = table.attribute(booster.predict(rows, pred_leaf=True))
    assert got.sum(axis=1) + base == pytest.approx(booster.predict(rows), abs=1e-9)
    used = np.abs(got).mean(axis=0)
    assert used[0] > used[2] > 10 * max(used[1], used[3])


def test_a_model_whose_trees_never_split_is_explained_by_its_base_alone() -> None:
    x = np.random.default_rng(1).random((50, 3))
    booster = lgb.train({"objective": "regression", "verbose": -1}, lgb.Dataset(x, np.ones(50)),
                        num_boost_round=2)  # fmt: skip
    table = path_table(booster.dump_model()["tree_info"], 3)
    got, base = table.attribute(booster.predict(x[:4], pred_leaf=True).reshape(4, -1))
    assert not got.any()
    assert base == pytest.approx(booster.predict(x[:4]))


def test_many_rows_are_attributed_as_one_at_a_time() -> None:
    table = path_table([ONE_SPLIT, TWO_LEVELS], n_features=3)
    leaves = np.random.default_rng(2).integers(0, 2, size=(300, 2))
    together, _ = table.attribute(leaves)
    one_by_one = np.vstack([table.attribute(row[None, :])[0] for row in leaves])
    assert np.array_equal(together, one_by_one)
