"""The collaborative core and the learned ranker's features: pure, table-tested pieces."""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.sparse as sp

from mediarec.server.recommend import blend as b
from mediarec.server.recommend import collab
from mediarec.server.recommend.collab import (
    DAY_S,
    CollabModel,
    CollabSettings,
    Factors,
    Interactions,
    build_collab,
    item_knn,
    rp3beta,
    top_per_row,
)
from mediarec.server.recommend.ltr_features import FEATURES, feature_matrix, reported_contributions
from mediarec.server.recommend.ltr_train import Groups, history_at, mean_ndcg, newcomer_windows

SMALL = CollabSettings(als_factors=4, als_iterations=5, knn_neighbours=10, rp3_neighbours=10)


def interactions(rows: list[tuple[int, int, float, bool]], n_users: int, n_items: int):
    users, items, ts, pos = (np.array(c) for c in zip(*rows, strict=True))
    return Interactions(n_users, n_items, users.astype(np.int64), items.astype(np.int64),
                        ts.astype(float), pos.astype(bool))  # fmt: skip


@pytest.mark.parametrize(
    ("rows", "k", "expected"),
    [
        ([[0, 3, 1, 2]], 2, [[0, 3, 0, 2]]),
        ([[5, 0, 0, 1], [0, 0, 0, 0]], 1, [[5, 0, 0, 0], [0, 0, 0, 0]]),
        ([[1, 2], [3, 4]], 5, [[1, 2], [3, 4]]),
    ],
)
def test_top_per_row_keeps_each_rows_largest(rows, k, expected) -> None:
    kept = top_per_row(sp.csr_matrix(np.array(rows, dtype=float)), k)
    assert kept.toarray().tolist() == np.array(expected, dtype=float).tolist()


def test_item_knn_is_the_cosine_of_co_occurrence_raised_to_the_exponent() -> None:
    # items 0 and 1 share 2 of their users (2 users each), item 2 shares 1 of 2 with item 0
    x = sp.csr_matrix(np.array([[1, 1, 1], [1, 1, 0], [0, 0, 1]], dtype=float))
    sims = item_knn(x, neighbours=5, exponent=2.0).toarray()
    assert sims[0, 1] == pytest.approx(1.0)
    assert sims[0, 2] == pytest.approx((1 / 2) ** 2)
    assert sims[0, 0] == 0.0


def test_rp3beta_walks_item_user_item_and_discounts_popular_targets() -> None:
    x = sp.csr_matrix(np.array([[1, 1, 0], [1, 0, 1]], dtype=float))
    walk = rp3beta(x, beta=0.0, neighbours=5).toarray()
    # from item 0: to user 0 or 1 (1/2 each), then to the user's other item (1/2 each)
    assert walk[0, 1] == pytest.approx(0.25)
    assert walk[0, 2] == pytest.approx(0.25)
    x = sp.csr_matrix(np.array([[1, 1, 0], [1, 1, 0], [1, 0, 1]], dtype=float))
    # from item 2: to user 2, then to item 0 with 1/2; item 0 has 3 fans
    assert rp3beta(x, beta=0.0, neighbours=5)[2, 0] == pytest.approx(0.5)
    assert rp3beta(x, beta=1.0, neighbours=5)[2, 0] == pytest.approx(0.5 / 3)


@pytest.mark.parametrize("graph", ["knn", "rp3"])
def test_item_graphs_built_in_row_blocks_equal_the_whole_product(
    graph: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    rng = np.random.default_rng(5)
    x = sp.csr_matrix((rng.random((40, 23)) < 0.3).astype(float))

    def build() -> np.ndarray:
        if graph == "knn":
            return item_knn(x, neighbours=4, exponent=2.0).toarray()
        return rp3beta(x, beta=0.5, neighbours=4).toarray()

    whole = build()  # one block: 23 rows < ITEM_BLOCK_ROWS
    monkeypatch.setattr(collab, "ITEM_BLOCK_ROWS", 5)
    blocked = build()
    np.testing.assert_allclose(blocked, whole)
    assert (np.count_nonzero(whole, axis=1) <= 4).all()
    assert not np.diag(whole).any()


def test_fold_in_solves_the_implicit_als_normal_equations() -> None:
    rng = np.random.default_rng(0)
    items = rng.normal(size=(6, 3)).astype(np.float32)
    gram = items.T.astype(float) @ items.astype(float)
    factors = Factors(items, gram, regularization=0.5, alpha=2.0)
    history = np.array([1, 4])
    x = factors.fold_in(history)
    y = items.astype(float)
    c = np.ones(6)
    c[history] += 2.0
    p = np.zeros(6)
    p[history] = 1.0
    # gradient of sum c (p - y x)^2 + reg |x|^2 is zero at the solution
    grad = -2 * (y.T @ (c * (p - y @ x))) + 2 * 0.5 * x
    assert np.abs(grad).max() < 1e-8
    assert factors.fold_in(np.zeros(0, dtype=np.int64)).tolist() == [0.0, 0.0, 0.0]


def test_window_positives_count_only_the_window_ending_at_the_users_last_event() -> None:
    day = DAY_S
    data = interactions(
        [(0, 0, 10 * day, True), (1, 0, 100 * day, True), (2, 0, 200 * day, True),
         (0, 1, 150 * day, True), (1, 1, 150 * day, False)],
        3, 2,
    )  # fmt: skip
    core = build_collab(data, ["a", "b"], SMALL)
    assert core.window_positives(np.array([0, 1]), 160 * day, 90 * day).tolist() == [1.0, 1.0]
    assert core.window_positives(np.array([0, 1]), 365 * day, 365 * day).tolist() == [3.0, 1.0]
    assert core.window_positives(np.array([0]), 5 * day, 90 * day).tolist() == [0.0]
    assert core.positives.tolist() == [3.0, 1.0]
    assert core.first_positive[0] == 10 * day


def small_core() -> CollabModel:
    rows = []
    for user in range(6):  # users like items {0, 1, 2} or {3, 4, 5}, and view item 6
        group = (0, 1, 2) if user % 2 == 0 else (3, 4, 5)
        for n, item in enumerate(group):
            rows.append((user, item, 1000.0 * user + n, True))
        rows.append((user, 6, 1000.0 * user + 5, False))
    return build_collab(interactions(rows, 6, 7), [f"m{i}" for i in range(7)], SMALL)


def test_history_orders_positives_newest_first_and_drops_unknown_ids() -> None:
    core = small_core()
    history = core.history([("m2", 30.0), ("nope", 20.0), ("m0", 10.0)], [("m6", 5.0)], now=99.0)
    assert history.positives.tolist() == [2, 0]
    assert history.interactions.tolist() == [0, 2, 6]
    assert (history.first_ts, history.last_ts) == (5.0, 30.0)
    empty = core.history([], [], now=99.0)
    assert empty.empty and empty.last_ts == 99.0


def test_candidates_leave_out_the_history_and_follow_the_taste() -> None:
    core = small_core()
    history = core.history([("m0", 2.0), ("m1", 1.0)], [], now=3.0)
    cands = core.candidates(history, per_source=2)
    assert 0 not in cands and 1 not in cands
    assert 2 in cands  # the rest of the group the user likes


def test_als_all_on_the_candidates_is_the_dense_product_at_their_rows() -> None:
    core = small_core()
    history = core.history([("m0", 2.0)], [("m0", 2.0), ("m5", 1.0)], now=3.0)
    scores = core.user_scores(history)
    items = np.array([2, 6, -1, 3])
    assert core.als_all is not None
    dense = core.als_all.items @ core.als_all.fold_in(history.interactions).astype(np.float32)
    got = core.features(history, items, scores)["als_all"]
    np.testing.assert_allclose(got[[0, 1, 3]], dense[[2, 6, 3]], rtol=1e-5)
    assert got[2] == 0.0  # unknown to the core


def test_features_of_items_the_core_never_saw_are_zero_with_a_missing_age() -> None:
    core = small_core()
    history = core.history([("m0", 2.0)], [("m6", 1.0)], now=3.0)
    items = np.array([2, -1])
    vectors = np.array([[1.0, 0.0], [0.0, 1.0]], dtype=np.float32)
    x = feature_matrix(core, history, items, vectors, np.array([[1.0, 0.0]], np.float32))
    assert x.shape == (2, len(FEATURES))
    row = dict(zip(FEATURES, x[1].tolist(), strict=True))
    assert math.isnan(row["item_age_days"])
    assert row["knn"] == row["als"] == row["popularity"] == 0.0
    assert row["content"] == pytest.approx(0.0) and x[0, FEATURES.index("content")] == 1.0
    assert row["user_positives"] == pytest.approx(math.log1p(1))
    assert x[0, FEATURES.index("knn")] > 0


def test_reported_contributions_add_up_to_the_learned_ones() -> None:
    learned = np.arange(2 * len(FEATURES), dtype=float).reshape(2, len(FEATURES))
    reported = reported_contributions(learned)
    assert reported.shape == (2, len(b.FEATURES))
    assert reported.sum(axis=1).tolist() == learned.sum(axis=1).tolist()
    assert reported[0, b.FEATURE_INDEX[b.CONTENT]] == learned[0, -2] + learned[0, -1]


def test_history_at_takes_rows_in_time_order() -> None:
    h = history_at(np.array([3, 1, 3, 2]), np.array([1.0, 2.0, 3.0, 4.0]),
                   np.array([True, True, True, False]))  # fmt: skip
    assert h.positives.tolist() == [3, 1]
    assert h.interactions.tolist() == [1, 2, 3]
    assert (h.first_ts, h.last_ts) == (1.0, 4.0)


@pytest.mark.parametrize(
    ("scores", "labels", "wanted", "expected"),
    [
        ([3, 2, 1], [1, 0, 0], 1, 1.0),
        ([1, 2, 3], [1, 0, 0], 1, 0.5),
        ([3, 2, 1], [1, 0, 0], 2, 1.0 / (1.0 + 1.0 / math.log2(3))),  # one label never proposed
        ([3, 2, 1], [0, 0, 0], 1, 0.0),
    ],
)
def test_mean_ndcg_counts_labels_missing_from_the_candidates(
    scores, labels, wanted, expected
) -> None:
    g = Groups()
    g.add(np.zeros((3, 1)), np.array(labels, float), wanted)
    assert mean_ndcg(np.array(scores, float), np.array(labels, float), g) == pytest.approx(expected)


@pytest.mark.parametrize(
    ("likes", "expected"),
    [
        # rows: item 5 (view), 1 (like), 2 (like), 6 (view), 3 (like), 4 (like)
        ((1,), [([1], [1, 5], [2, 3, 4])]),
        ((2, 3), [([2, 1], [1, 2, 5], [3, 4]), ([3, 2, 1], [1, 2, 3, 5, 6], [4])]),
        ((4, 0), []),  # nothing after the 4th like; 0 likes is never a newcomer's window
    ],
)
def test_newcomer_windows_end_at_the_kth_like_and_label_every_later_like(
    likes: tuple[int, ...], expected: list[tuple[list[int], list[int], list[int]]]
) -> None:
    data = interactions(
        [(0, 5, 1.0, False), (0, 1, 2.0, True), (0, 2, 3.0, True), (0, 6, 4.0, False),
         (0, 3, 5.0, True), (0, 4, 6.0, True)], n_users=1, n_items=7,
    )  # fmt: skip
    windows = newcomer_windows(data, np.arange(6), likes)
    got = [(h.positives.tolist(), h.interactions.tolist(), labels.tolist())
           for h, labels in windows]  # fmt: skip
    assert got == expected


def test_top_per_row_breaks_ties_by_the_lowest_item_index() -> None:
    kept = top_per_row(sp.csr_matrix(np.array([[1.0, 2.0, 1.0, 1.0, 0.5]])), 3)
    assert kept.toarray().tolist() == [[1.0, 2.0, 1.0, 0.0, 0.0]]
    assert top_per_row(sp.csr_matrix(np.array([[1.0, 2.0]])), 0).nnz == 0


def test_top_per_row_matches_a_full_sort_of_each_row() -> None:
    rng = np.random.default_rng(9)
    dense = rng.integers(0, 4, size=(30, 25)).astype(float)  # many ties
    kept = top_per_row(sp.csr_matrix(dense), 5).toarray()
    for row, got in zip(dense, kept, strict=True):
        order = sorted(np.flatnonzero(row), key=lambda j: (-row[j], j))[:5]
        expected = np.zeros_like(row)
        expected[order] = row[order]
        assert got.tolist() == expected.tolist()
