"""The cold pool: items without events read from a real Qdrant Edge store, and their appeal."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from mediarec.server.recommend.coldstart import (
    ColdPool,
    build_cold_pool,
    fit_appeal,
    newest_unengaged,
    predict_appeal,
)
from mediarec.server.store import MediaPoint, schema
from mediarec.server.store.edge import EdgeStore

DIMS = {schema.VISUAL: 3, schema.CAPTION: 3}


def test_the_cold_pool_holds_the_newest_unengaged_items_with_unit_vectors(
    tmp_path: Path,
) -> None:
    store = EdgeStore(tmp_path)
    store.ensure_collection("test-model", DIMS)
    store.upsert([
        MediaPoint("photo-old", {schema.VISUAL: np.array([2.0, 0, 0])}, {schema.CREATED_AT: 10}),
        MediaPoint("photo-new", {schema.VISUAL: np.array([0, 3.0, 0])}, {schema.CREATED_AT: 30}),
        MediaPoint("liked-newest", {schema.VISUAL: np.array([1.0, 0, 0])},
                   {schema.CREATED_AT: 40}),
        MediaPoint("caption-only", {schema.CAPTION: np.array([0, 0, 4.0])},
                   {schema.CREATED_AT: 20}),
        MediaPoint("undated", {schema.VISUAL: np.array([1.0, 1.0, 0])}, {}),
    ])  # fmt: skip
    try:
        ids, vectors = newest_unengaged(store, {"liked-newest"}, 3)
        assert ids == ("photo-new", "caption-only", "photo-old")
        np.testing.assert_allclose(vectors, [[0, 1, 0], [0, 0, 1], [1, 0, 0]], atol=1e-6)
        # Undated items count as the oldest; a pool of 0 is no pool.
        assert newest_unengaged(store, {"liked-newest"}, 10)[0][-1] == "undated"
        assert newest_unengaged(store, set(), 0)[0] == ()
        # Engaged items along x were liked most: the pool's x-most item has the best appeal.
        engaged = np.array([[1.0, 0, 0], [0, 1.0, 0], [0, 0, 1.0]])
        pool = build_cold_pool(store, {"liked-newest"}, 3, engaged, np.array([50, 5, 0]), 0.1)
        assert pool.ids == ids
        assert pool.by_appeal == ("photo-old", "photo-new", "caption-only")
        # In pool order; about a tenth of the best item's engagements are predicted for y.
        appeal = pool.appeal(vectors)
        assert appeal is not None
        assert appeal[2] == pytest.approx(1.0)
        assert 0.05 < appeal[0] < 0.2
        assert 0.0 <= appeal[1] < 0.01
        assert pool.appeal(np.ones((1, 2))) is None  # another dimension
    finally:
        store.close()


@pytest.mark.parametrize(
    ("vector", "expected"),
    [
        ([1.0, 0.0], 1.0),
        ([np.log1p(0.5 * np.e - 0.5), 0.0], 0.5),  # half the best item's engagements
        ([0.3, 0.9], np.expm1(0.3) / np.expm1(1.0)),  # only the first coordinate counts
        ([0.0, 1.0], 0.0),
        ([-1.0, 0.0], 0.0),  # a negative prediction is no engagement, not less than none
        ([3.0, 0.0], 1.0),  # beyond the pool's best
    ],
    ids=["best", "half", "between", "none", "below-none", "above-best"],
)
def test_appeal_is_the_predicted_engagements_over_the_pool_best(
    vector: list[float], expected: float
) -> None:
    # The model predicts the first coordinate as log(1 + engagements); the best pool item's
    # prediction is 1.
    pool = ColdPool(ids=("a",), weights=np.array([1.0, 0.0, 0.0]), best_prediction=1.0)
    appeal = pool.appeal(np.array([vector]))
    assert appeal is not None
    np.testing.assert_allclose(appeal, [expected])
    assert ColdPool().appeal(np.array([vector])) is None  # no pool, no model


def test_a_pool_predicted_no_engagement_gives_no_appeal() -> None:
    pool = ColdPool(ids=("a",), weights=np.array([1.0, 0.0, 0.0]), best_prediction=0.0)
    appeal = pool.appeal(np.array([[2.0, 0.0], [0.5, 1.0]]))
    assert appeal is not None
    np.testing.assert_array_equal(appeal, [0.0, 0.0])


def test_appeal_follows_the_content_that_engaged_items_share() -> None:
    # Items pointing along x were engaged with a lot, along y hardly: a new item's appeal
    # follows its direction.
    rng = np.random.default_rng(0)
    directions = np.array([[1.0, 0.0], [0.0, 1.0]])
    engaged = directions[rng.integers(2, size=200)] + 0.1 * rng.standard_normal((200, 2))
    engaged /= np.linalg.norm(engaged, axis=1, keepdims=True)
    engagements = np.where(engaged[:, 0] > engaged[:, 1], 100.0, 1.0)
    weights = fit_appeal(engaged, engagements, ridge=1.0)
    predicted = predict_appeal(weights, directions)
    assert predicted[0] > predicted[1]
    np.testing.assert_allclose(predicted, np.log1p([100.0, 1.0]), atol=0.3)


def test_without_engaged_items_or_with_another_dimension_appeal_is_flat() -> None:
    assert fit_appeal(np.zeros((0, 2)), np.zeros(0), 1.0).size == 0
    assert (predict_appeal(np.zeros(0), np.ones((3, 2))) == 0).all()
    assert (predict_appeal(np.ones(4), np.ones((3, 2))) == 0).all()
