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
        return self.leaves[rows].sum(axis=1), np.full(rows.shape[0], self.base)


def path_table(trees: Sequence[Mapping[str, Any]], n_features: int) -> PathTable:
    """The table of LightGBM's ``dump_model()["tree_info"]``: each tree's ``tree_structure``
    of split nodes (``split_feature``, ``internal_value``, two children) and leaves
    (``leaf_index``, ``leaf_value``)."""
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
            if "leaf_index" in node:
                block[int(node["leaf_index"])] = path
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


def _value(node: Mapping[str, Any]) -> float:
    return float(node["leaf_value"] if "leaf_index" in node else node["internal_value"])
