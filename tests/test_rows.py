"""Values kept by row: table tests of the lookups, and a snapshot's lists read by row."""

from __future__ import annotations

import numpy as np
import pytest

from mediarec.server.recommend.collab import CollabModel
from mediarec.server.recommend.rows import (
    EMPTY_ROWS,
    RowValues,
    extended_index,
    rows_of,
    values_at,
)
from mediarec.server.recommend.state import (
    CoEngagement,
    Cohorts,
    DerivedState,
    build_coengagement,
    top_items,
)

KEPT = RowValues(np.array([1, 4, 7]), np.array([0.5, 2.0, -1.0]))


@pytest.mark.parametrize(
    ("values", "rows", "expected"),
    [
        (KEPT, [4, 1, 7], [2.0, 0.5, -1.0]),  # any order
        (KEPT, [0, 2, 5, 8, 100], [0.0] * 5),  # before, between and after the kept rows
        (KEPT, [-1, 7, -1], [0.0, -1.0, 0.0]),  # -1: an unknown item
        (KEPT, [], []),
        (EMPTY_ROWS, [3, -1], [0.0, 0.0]),
    ],
)
def test_values_are_read_at_their_rows_and_zero_elsewhere(
    values: RowValues, rows: list[int], expected: list[float]
) -> None:
    assert values.at(np.array(rows, dtype=np.int64)).tolist() == expected


def test_a_dense_column_keeps_its_non_zero_entries_and_round_trips() -> None:
    dense = np.array([0.0, 3.0, 0.0, 0.0, -2.0])
    kept = RowValues.of_dense(dense)
    assert kept.rows.tolist() == [1, 4] and kept.values.tolist() == [3.0, -2.0]
    assert kept.dense(5).tolist() == dense.tolist()
    assert kept.at(np.arange(5)).tolist() == dense.tolist()


def test_a_mapping_is_kept_at_its_ids_rows_and_ids_without_a_row_drop_out() -> None:
    kept = RowValues.of_mapping({"c": 3.0, "a": 1.0, "zz": 9.0}, {"a": 5, "b": 0, "c": 2})
    assert kept.rows.tolist() == [2, 5] and kept.values.tolist() == [3.0, 1.0]


def test_an_index_is_extended_after_its_rows_and_ids_map_to_minus_one_without_one() -> None:
    index = extended_index({"a": 0, "b": 1}, [["c", "a"], ["d", "c"]])
    assert index == {"a": 0, "b": 1, "c": 2, "d": 3}
    assert rows_of(index, ["d", "x", "a"]).tolist() == [3, -1, 0]


@pytest.mark.parametrize(
    ("values", "keys", "default", "expected"),
    [
        ({"a": 2, "b": 0.5}, ["b", "x", "a", "a"], 0.0, [0.5, 0.0, 2.0, 2.0]),  # ints as floats
        ({"a": 1.0}, ["x", "y"], -1.0, [-1.0, -1.0]),  # the default where absent
        ({}, ["a", "b"], 3.0, [3.0, 3.0]),  # an empty map: no lookup at all
        ({"a": 1.0}, [], 0.0, []),
    ],
)
def test_values_at(
    values: dict[str, float], keys: list[str], default: float, expected: list[float]
) -> None:
    out = values_at(values, keys, default)
    assert out.dtype == np.float64
    assert out.tolist() == expected


def test_a_snapshot_reads_its_lists_by_row_as_by_id() -> None:
    graph = build_coengagement([["a", "b"], ["b", "c"], ["a", "c"]], 5, 0.0, 100, 1.0)
    trending = {"global": top_items({"b": 4.0, "t": 2.0}, 10)}  # "t": not in the graph
    cohorts = Cohorts(np.eye(2, dtype=np.float32), (top_items({"c": 1.0, "f": 3.0}, 10),))
    collab = CollabModel(item_ids=("f", "a"), index={"f": 0, "a": 1})
    state = DerivedState(coengagement=graph, trending=trending, cohorts=cohorts, collab=collab)
    ids = ["a", "b", "c", "t", "f", "unknown"]
    rows = state.rows_of(ids)
    assert rows[-1] == -1 and len(set(rows[:-1].tolist())) == 5
    levels = state.trending_levels("global").at(rows)
    assert levels.tolist() == [state.trending_list("global").level(m) for m in ids]
    assert state.trending_levels("no such key").at(rows).tolist() == [0.0] * 6
    favourites = cohorts.favourites[0]
    assert state.cohort_levels(0).at(rows).tolist() == [favourites.level(m) for m in ids]
    assert state.collab_rows(rows).tolist() == [1, -1, -1, -1, 0, -1]
    # The co-engagement scores read by the snapshot's rows: only "a"'s neighbours score.
    scores = graph.scores({"a": 1.0})
    co, counts = scores.lookup_rows(rows)
    neighbours = {graph.ids[i] for i in graph.neighbours_of("a")[0].tolist()}
    assert neighbours and "b" in neighbours
    assert [c > 0 for c in co] == [m in neighbours for m in ids]
    assert counts.tolist() == [int(m in neighbours) for m in ids]


def test_an_empty_snapshot_knows_no_item() -> None:
    state = DerivedState(coengagement=CoEngagement())
    rows = state.rows_of(["a"])
    assert rows.tolist() == [-1]
    assert state.collab_rows(rows).tolist() == [-1]
