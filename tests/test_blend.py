"""The blended score: table-driven cases of the cold-start-aware gates and the breakdown."""

from __future__ import annotations

import math

import numpy as np
import pytest

from mediarec.server.recommend import blend as b
from mediarec.server.recommend.types import Surface

W = b.DEFAULT_WEIGHTS

# (case, features, user_confidence, item_confidence, surface, expected breakdown)
# Personal similarity signals (content, co-engagement) count 0.5 + 0.5 u for user confidence u;
# content stands in for an unknown item's co-engagement by 1.4 u; popularity's gate falls from
# 1.5 to 0.3 as u grows, times the item's confidence (the engagement behind it).
CASES = [
    ("new item: content also stands in for co-engagement", {b.CONTENT: 1.0}, 1.0, 0.0,
     Surface.FEED, {b.CONTENT: 1.8 * W[b.CONTENT]}),
    ("well-known item: content fades to 40 %", {b.CONTENT: 1.0}, 1.0, 1.0, Surface.FEED,
     {b.CONTENT: 0.4 * W[b.CONTENT]}),
    ("a user known halfway: personal signals at three quarters, content stands in at half",
     {b.CONTENT: 1.0}, 0.5, 0.0, Surface.FEED, {b.CONTENT: 0.75 * (0.4 + 0.7) * W[b.CONTENT]}),
    ("a user with no history: content does not stand in for co-engagement", {b.CONTENT: 1.0},
     0.0, 0.0, Surface.FEED, {b.CONTENT: 0.5 * 0.4 * W[b.CONTENT]}),
    ("no history: personal signals at half", {b.COENGAGEMENT: 1.0}, 0.0, 1.0, Surface.FEED,
     {b.COENGAGEMENT: 0.5 * W[b.COENGAGEMENT]}),
    ("new item: co-engagement is gated off", {b.COENGAGEMENT: 1.0}, 0.8, 0.0, Surface.FEED, {}),
    ("half-known item: co-engagement at half", {b.COENGAGEMENT: 1.0}, 1.0, 0.5, Surface.FEED,
     {b.COENGAGEMENT: 0.5 * W[b.COENGAGEMENT]}),
    ("no history: popularity at 1.5, as far as engagement backs it", {b.POPULARITY: 1.0}, 0.0,
     0.3, Surface.FEED, {b.POPULARITY: 1.5 * 0.3 * W[b.POPULARITY]}),
    ("known user: popularity at 0.3", {b.POPULARITY: 1.0}, 1.0, 1.0, Surface.FEED,
     {b.POPULARITY: 0.3 * W[b.POPULARITY]}),
    ("a user known halfway: popularity halfway, 0.9", {b.POPULARITY: 1.0}, 0.5, 1.0,
     Surface.FEED, {b.POPULARITY: 0.9 * W[b.POPULARITY]}),
    ("popularity without any engagement behind it counts nothing", {b.POPULARITY: 1.0}, 0.0,
     0.0, Surface.FEED, {}),
    ("few events: cohort counts", {b.COHORT: 0.5}, 0.2, 0.0, Surface.FEED,
     {b.COHORT: 0.8 * 0.5 * W[b.COHORT]}),
    ("known user: cohort gated off", {b.COHORT: 1.0}, 1.0, 0.0, Surface.FEED, {}),
    ("interests fade to half for a known user", {b.INTEREST: 1.0}, 1.0, 0.0, Surface.FEED,
     {b.INTEREST: 0.5 * W[b.INTEREST]}),
    ("FEED boosts followed creators", {b.FOLLOWING: 1.0}, 0.5, 0.5, Surface.FEED,
     {b.FOLLOWING: b.FEED_FOLLOWING_BOOST * W[b.FOLLOWING]}),
    ("REELS does not boost them", {b.FOLLOWING: 1.0}, 0.5, 0.5, Surface.REELS,
     {b.FOLLOWING: W[b.FOLLOWING]}),
    ("freshness only for unknown items", {b.FRESHNESS: 1.0}, 0.5, 1.0, Surface.FEED, {}),
    ("negative feedback subtracts", {b.CONTENT: 1.0, b.NEGATIVE: 1.0}, 1.0, 1.0, Surface.FEED,
     {b.CONTENT: 0.4 * W[b.CONTENT], b.NEGATIVE: W[b.NEGATIVE]}),
    ("fatigue subtracts", {b.FATIGUE: 0.5}, 0.5, 0.0, Surface.FEED,
     {b.FATIGUE: 0.5 * W[b.FATIGUE]}),
    ("nothing known, nothing scored", {}, 0.0, 0.0, Surface.FEED, {}),
]


@pytest.mark.parametrize(
    ("features", "user_conf", "item_conf", "surface", "expected"),
    [case[1:] for case in CASES],
    ids=[case[0] for case in CASES],
)
def test_blend_cases(features, user_conf, item_conf, surface, expected) -> None:
    result = b.blend(features, user_conf, item_conf, surface=surface)
    assert result.breakdown.keys() == expected.keys()
    for name, value in expected.items():
        assert result.breakdown[name] == pytest.approx(value)
    assert result.score == pytest.approx(sum(expected.values()))


# (case, item_confidence, user_confidence, winner, loser): which signal leads.
DOMINANCE = [
    ("content leads for a brand-new item", 0.0, 0.8, b.CONTENT, b.COENGAGEMENT),
    ("content leads for a barely known item", 0.2, 0.8, b.CONTENT, b.COENGAGEMENT),
    ("co-engagement leads for a well-known item", 0.8, 0.8, b.COENGAGEMENT, b.CONTENT),
    ("popularity leads cohort for a user with no history (an item half known)", 0.5, 0.0,
     b.POPULARITY, b.COHORT),
    ("cohort leads popularity that little engagement backs", 0.1, 0.0, b.COHORT, b.POPULARITY),
    ("content leads popularity for a known user", 0.5, 0.9, b.CONTENT, b.POPULARITY),
]


@pytest.mark.parametrize(
    ("item_conf", "user_conf", "winner", "loser"),
    [case[1:] for case in DOMINANCE],
    ids=[case[0] for case in DOMINANCE],
)
def test_who_dominates_depends_on_user_and_item_knowledge(
    item_conf, user_conf, winner, loser
) -> None:
    result = b.blend({winner: 1.0, loser: 1.0}, user_conf, item_conf)
    assert result.breakdown.get(winner, 0.0) > result.breakdown.get(loser, 0.0)


def test_an_unknown_item_can_match_a_known_one_on_content_alone() -> None:
    new = b.blend({b.CONTENT: 1.0}, 0.8, 0.0)
    known = b.blend({b.CONTENT: 1.0, b.COENGAGEMENT: 1.0}, 0.8, 0.9)
    assert new.score == pytest.approx(known.score, rel=0.25)


def test_breakdown_adds_up_to_the_score_with_a_bias() -> None:
    rng = np.random.default_rng(3)
    x = rng.uniform(0, 1, size=(50, len(b.FEATURES)))
    item_conf = rng.uniform(0, 1, size=50)
    weights = rng.normal(size=len(b.FEATURES))
    scores, contributions = b.blend_matrix(x, 0.4, item_conf, weights, bias=-0.7)
    for score, row in zip(scores, contributions, strict=True):
        breakdown = b.breakdown_of(row, -0.7)
        assert math.isclose(sum(breakdown.values()), score, abs_tol=1e-9)
        assert breakdown[b.BIAS] == -0.7


def test_unknown_feature_is_an_error() -> None:
    with pytest.raises(ValueError, match="unknown blend feature"):
        b.blend({"vibes": 1.0}, 0.0, 0.0)
    with pytest.raises(ValueError, match="unknown blend features"):
        b.weight_vector({"vibes": 1.0})


@pytest.mark.parametrize(
    ("positives", "prior", "expected"), [(0, 5.0, 0.0), (5, 5.0, 0.5), (15, 5.0, 0.75)]
)
def test_user_confidence(positives, prior, expected) -> None:
    assert b.user_confidence(positives, prior) == pytest.approx(expected)


def test_item_confidence_is_vectorised_and_clamps_negatives() -> None:
    got = b.item_confidence(np.array([-3.0, 0.0, 10.0, 30.0]), 10.0)
    assert got == pytest.approx([0.0, 0.0, 0.5, 0.75])


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        ([0.2, 0.4, 0.6], [0.0, 0.5, 1.0]),
        ([0.3, 0.3], [1.0, 1.0]),  # constant and positive: all equally good
        ([0.0, 0.0], [0.0, 0.0]),  # constant zero: no signal
        ([], []),
    ],
)
def test_scale_unit(values, expected) -> None:
    assert b.scale_unit(np.array(values)) == pytest.approx(expected)


@pytest.mark.parametrize(
    ("values", "expected"),
    [([0.0, 2.0, 4.0], [0.0, 0.5, 1.0]), ([0.0, 0.0], [0.0, 0.0]), ([-1.0, 1.0], [0.0, 1.0])],
)
def test_scale_max(values, expected) -> None:
    assert b.scale_max(np.array(values)) == pytest.approx(expected)


def test_the_gates_keywords_reproduce_the_previous_gates() -> None:
    """bench/tune_blend.py compares variants under the gates before evidence-backed popularity;
    its PREVIOUS_GATES must give exactly those gates."""
    from bench.tune_blend import PREVIOUS_GATES

    item_conf = np.array([0.0, 0.3, 1.0])
    for u in (0.0, 0.4, 1.0):
        g = b.gates(u, item_conf, **PREVIOUS_GATES)
        personal = 0.5 + 0.5 * u
        content = (0.4 + 1.4 * (1.0 - item_conf)) * personal
        assert g[:, b.FEATURE_INDEX[b.CONTENT]] == pytest.approx(content)
        popularity = np.full(3, 0.5 + 0.5 * (1.0 - u))  # whatever the item's engagement
        assert g[:, b.FEATURE_INDEX[b.POPULARITY]] == pytest.approx(popularity)


def test_a_negative_popularity_evidence_is_refused() -> None:
    with pytest.raises(ValueError, match="popularity_evidence"):
        b.gates(0.5, np.array([0.0]), popularity_evidence=-1.0)
