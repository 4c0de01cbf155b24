"""Path attribution for a tree ensemble: each split's change of the node value, credited to
the feature it splits on (Saabas; XGBoost's ``approx_contribs``, ``treeinterpreter``).

Along the path from a tree's root to a leaf the node value changes at each split, and the
changes add up to the leaf's value minus the root's. A leaf's path therefore has a fixed
per-feature vector, computed once per model; explaining a row is then a table lookup per tree
on the leaves LightGBM reports, and a row's attributions plus the base value (the roots' sum)
are exactly its score. LightGBM itself offers only TreeSHAP (``pred_contrib``), whose cost per
row grows with leaves x depth squared and is far more than the score's; a served page explains
each of its rows.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np


@dataclass(frozen=True)
class PathTable:
    """Per-leaf attributions of one ensemble, with the trees' leaves numbered consecutively."""

    offsets: np.ndarray  # (T,) the first row of each tree's leaves in ``leaves``
    leaves: np.ndarray  # (total leaves, F) each leaf's path attribution per feature
    base: float  # the sum of the trees' root values

    def attribute(self, leaf_index: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Attributions ``(n, F)`` and base values ``(n,)`` for rows that reached
        ``leaf_index`` ``(n, T)`` (each tree's own leaf numbers)."""
        rows = np.asarray(leaf_index, dtype=np.int64) + self.offsets[None, :]
        out = np.zeros((rows.shape[0], self.leaves.shape[1]))
        # A block of rows at a time bounds the (rows, trees, features) gather.
        for start in range(0, rows.shape[0], _ROWS_PER_GATHER):
            block = rows[start : start + _ROWS_PER_GATHER]
            out[start : start + block.shape[0]] = self.leaves[block].sum(axis=1)
        return out, np.full(rows.shape[0], self.base)


_ROWS_PER_GATHER = 64


def path_table(trees: Sequence[Mapping[str, Any]], n_features: int) -> PathTable:
    """The table of LightGBM's ``dump_model()["tree_info"]``: each tree's ``tree_structure``
    of split nodes (``split_feature``, ``internal_value``, two children) and leaves
    (``leaf_value``, and ``leaf_index`` unless the tree is that one leaf)."""
    offsets = np.zeros(len(trees), dtype=np.int64)
    blocks: list[np.ndarray] = []
    base = 0.0
    total = 0
    for t, tree in enumerate(trees):
        root = tree["tree_structure"]
        block = np.zeros((int(tree.get("num_leaves", 1)), n_features))
        base += _value(root)
        # Depth-first with an explicit stack: leaf-wise trees can be deeper than recursion
        # should go. Each entry: a node and the attribution of the path down to it.
        stack = [(root, np.zeros(n_features))]
        while stack:
            node, path = stack.pop()
            if _is_leaf(node):
                block[int(node.get("leaf_index", 0))] = path
                continue
            feature = int(node["split_feature"])
            for child in (node["left_child"], node["right_child"]):
                step = path.copy()
                step[feature] += _value(child) - _value(node)
                stack.append((child, step))
        offsets[t] = total
        total += block.shape[0]
        blocks.append(block)
    leaves = np.vstack(blocks) if blocks else np.zeros((0, n_features))
    return PathTable(offsets, leaves, base)


def _is_leaf(node: Mapping[str, Any]) -> bool:
    return "split_feature" not in node


def _value(node: Mapping[str, Any]) -> float:
    return float(node["leaf_value"] if _is_leaf(node) else node["internal_value"])
