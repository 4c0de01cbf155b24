"""Near-duplicate collapsing, MMR and the per-creator cap."""

from __future__ import annotations

import numpy as np
import pytest

from mediarec.server.recommend.diversity import collapse_near_duplicates, merge_pages, mmr_rank


def unit(rows) -> np.ndarray:
    x = np.asarray(rows, dtype=np.float64)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def test_near_duplicates_fold_into_the_best_scored_copy() -> None:
    v = unit([[1, 0, 0], [0.999, 0.01, 0], [0, 1, 0], [0, 0, 1]])
    result = collapse_near_duplicates([1, 0, 2, 3], v, threshold=0.95)
    assert result.keep == [1, 2, 3]
    assert result.folded == {1: [0]}


def test_declared_duplicate_groups_fold_even_when_vectors_differ() -> None:
    v = unit([[1, 0, 0], [0, 1, 0], [0, 0, 1]])
    result = collapse_near_duplicates([0, 1, 2], v, 0.95, groups=["a", "b", "a"])
    assert result.keep == [0, 1]
    assert result.folded == {0: [2]}


def test_empty_group_keys_join_nothing_and_groups_fold_in_score_order() -> None:
    v = unit(np.eye(6))  # no two vectors alike: only the keys can join items
    result = collapse_near_duplicates(
        [5, 4, 3, 2, 1, 0], v, 0.95, groups=["a", "b", "", "a", "", "a"]
    )
    assert result.keep == [5, 4, 2, 1]
    assert result.folded == {5: [3, 0]}


def test_lambda_one_is_plain_relevance_order() -> None:
    v = unit(np.random.default_rng(0).normal(size=(6, 4)))
    rel = np.array([0.1, 0.9, 0.5, 0.7, 0.3, 0.2])
    assert mmr_rank(rel, v, 6, 1.0, [""] * 6, 0, 6) == [1, 3, 2, 4, 5, 0]


def test_mmr_interleaves_two_topics_instead_of_stacking_one() -> None:
    a = unit([[1, 0.02 * i, 0] for i in range(4)])
    b = unit([[0, 1, 0.02 * i] for i in range(4)])
    weak = unit([[0, 0, 1]])  # a poor candidate anchors the relevance scale
    v = np.vstack([a, b, weak])
    rel = np.array([1.0, 0.98, 0.96, 0.94, 0.9, 0.88, 0.86, 0.84, 0.0])
    plain = mmr_rank(rel, v, 4, 1.0, [""] * 9, 0, 9)
    diverse = mmr_rank(rel, v, 4, 0.6, [""] * 9, 0, 9)
    assert all(i < 4 for i in plain)
    assert {i < 4 for i in diverse[:2]} == {True, False}  # one of each topic first


def test_creator_cap_limits_each_page() -> None:
    v = unit(np.random.default_rng(1).normal(size=(13, 8)))
    rel = np.linspace(1.0, 0.1, 13)
    creators = ["alice"] * 5 + [f"other{i}" for i in range(8)]
    ranking = mmr_rank(rel, v, 10, 1.0, creators, 2, 5)
    assert len(ranking) == 10
    for page in (ranking[:5], ranking[5:]):
        assert sum(creators[i] == "alice" for i in page) == 2
    assert ranking[:2] == [0, 1]  # the cap demotes, it does not reorder the allowed


def test_creator_cap_yields_when_only_capped_creators_are_left() -> None:
    v = unit(np.random.default_rng(2).normal(size=(4, 8)))
    ranking = mmr_rank(np.ones(4), v, 4, 1.0, ["alice"] * 4, 1, 4)
    assert sorted(ranking) == [0, 1, 2, 3]


def test_fixed_positions_are_kept_and_never_repeated() -> None:
    v = unit(np.random.default_rng(3).normal(size=(6, 8)))
    rel = np.linspace(1.0, 0.5, 6)
    ranking = mmr_rank(rel, v, 6, 1.0, [""] * 6, 0, 6, fixed={2: 5})
    assert ranking[2] == 5
    assert sorted(ranking) == list(range(6))


def test_empty_input() -> None:
    assert mmr_rank(np.zeros(0), np.zeros((0, 3)), 5, 0.7, [], 2, 5) == []
    assert collapse_near_duplicates([], np.zeros((0, 3)), 0.9).keep == []


def test_merge_puts_explored_items_in_their_slots_and_keeps_the_cap() -> None:
    creators = ["a", "a", "a", "b", "c", "d", "x", "y"]
    exploited = [0, 1, 2, 3, 4, 5]
    final = merge_pages(exploited, [6, 7], {1, 4}, creators, creator_cap=2, page_size=4)
    assert final[1] == 6 and final[4] == 7
    assert sorted(final) == list(range(8))
    for page in (final[:4], final[4:]):
        assert max(sum(creators[i] == c for i in page) for c in "abcd") <= 2
    assert final[:4] == [0, 6, 1, 3]  # the third "a" waits for the next page


def test_explored_items_keep_the_creator_cap_too() -> None:
    # As a Recommend page once came out: two draws of creator "f", who also leads the
    # exploited items; the second draw waits for the next page and its slot goes to "a".
    creators = ["a", "f", "b", "c", "f", "f"]
    final = merge_pages([1, 0, 2, 3], [4, 5], {1, 2}, creators, creator_cap=2, page_size=4)
    assert sorted(final) == list(range(6))
    assert final[:4] == [1, 4, 0, 2]
    assert final[4:] == [3, 5]
    for page in (final[:4], final[4:]):
        assert max(sum(creators[i] == c for i in page) for c in "abcf") <= 2


def test_merge_fills_missing_slots_from_the_exploited_items() -> None:
    final = merge_pages([0, 1, 2], [], {1}, ["a", "b", "c"], 0, 3)
    assert final == [0, 1, 2]
    assert merge_pages([], [5, 6], {0}, [""] * 7, 2, 3) == [5, 6]


@pytest.mark.parametrize("seed", range(40))
def test_relevance_alone_ranks_as_mmr_with_nothing_to_penalise(seed: int) -> None:
    # With lam = 1 MMR takes a shortcut (a sort under the cap); zero vectors send the general
    # loop the same ranking problem, ties, the cap, unknown creators and fixed slots included.
    rng = np.random.default_rng(seed)
    n = int(rng.integers(1, 40))
    rel = np.round(rng.random(n), 1)  # many ties
    creators = [str(c) if c else "" for c in rng.integers(0, 4, n)]
    depth, cap, page = int(rng.integers(1, n + 5)), int(rng.integers(0, 3)), int(rng.integers(1, 8))
    slots = zip(rng.integers(0, depth, 2), rng.choice(n, 2), strict=True)
    fixed = {int(p): int(i) for p, i in slots}
    fixed = {p: i for p, i in fixed.items() if list(fixed.values()).count(i) == 1}
    vectors = rng.normal(size=(n, 4))
    shortcut = mmr_rank(rel, vectors, depth, 1.0, creators, cap, page, dict(fixed))
    general = mmr_rank(rel, np.zeros((n, 4)), depth, 0.5, creators, cap, page, dict(fixed))
    assert shortcut == general
