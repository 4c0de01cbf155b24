"""Thompson-sampling exploration: logged propensities match how often the policy chooses."""

from __future__ import annotations

import numpy as np
import pytest

from mediarec.server.recommend import bandit


def _arms() -> bandit.BetaArms:
    prior = bandit.prior_mean(np.array([0.0, 0.2, 0.5, 0.8, 1.0, 0.9]), base=0.02, gain=0.2)
    engagements = np.array([0, 1, 0, 3, 0, 0])
    impressions = np.array([0, 10, 5, 12, 40, 2])
    return bandit.posterior(prior, 20.0, engagements, impressions)


@pytest.mark.parametrize("slots", [1, 2, 4])
def test_logged_propensity_matches_empirical_selection_frequency(slots: int) -> None:
    arms = _arms()
    logged = bandit.selection_propensities(arms, slots, 400, np.random.default_rng(11))
    draws = 20_000
    counts = np.zeros(len(arms))
    seeds = np.random.SeedSequence(99).spawn(draws)
    for seed in seeds:  # independent policy runs, as independent requests would be
        counts[bandit.thompson_select(arms, slots, np.random.default_rng(seed))] += 1
    empirical = counts / draws
    # 400 re-samples: standard error <= 0.025; 4 of them cover any arm comfortably.
    assert np.max(np.abs(empirical - logged)) < 0.08
    assert logged.sum() == pytest.approx(slots, abs=0.01)
    precise = bandit.selection_propensities(arms, slots, 20_000, np.random.default_rng(12))
    assert np.max(np.abs(empirical - precise)) < 0.02


def test_page_propensities_match_where_the_policy_puts_each_arm() -> None:
    arms = _arms()
    slots, pages = 2, 2
    logged = bandit.block_propensities(arms, slots, pages, 400, np.random.default_rng(3))
    draws = 20_000
    landed = np.zeros((len(arms), pages))
    for seed in np.random.SeedSequence(7).spawn(draws):
        order = bandit.thompson_select(arms, slots * pages, np.random.default_rng(seed))
        for n, arm in enumerate(order):
            landed[arm, n // slots] += 1
    assert np.max(np.abs(landed / draws - logged)) < 0.08
    total = bandit.selection_propensities(arms, slots * pages, 20_000, np.random.default_rng(4))
    assert logged.sum(axis=1) == pytest.approx(total, abs=0.06)


def test_every_arm_wins_when_slots_cover_the_pool() -> None:
    arms = _arms()
    assert bandit.selection_propensities(arms, 6, 100, np.random.default_rng(0)) == (
        pytest.approx(np.ones(6))
    )
    picks = bandit.thompson_select(arms, 10, np.random.default_rng(0))
    assert sorted(picks.tolist()) == list(range(6))


def test_propensity_is_never_zero() -> None:
    arms = bandit.posterior(np.array([0.9, 0.001]), 1000.0, np.zeros(2), np.zeros(2))
    p = bandit.selection_propensities(arms, 1, 200, np.random.default_rng(0))
    assert p[1] == pytest.approx(1 / 200)


def test_content_prior_makes_a_well_matched_new_item_win_more_often() -> None:
    prior = bandit.prior_mean(np.array([0.0, 1.0]), base=0.02, gain=0.2)
    arms = bandit.posterior(prior, 20.0, np.zeros(2), np.zeros(2))
    p = bandit.selection_propensities(arms, 1, 4000, np.random.default_rng(1))
    assert p[1] > 0.8


def test_observed_failures_lower_an_arm() -> None:
    prior = np.full(2, 0.2)
    arms = bandit.posterior(prior, 20.0, np.array([0, 0]), np.array([0, 200]))
    p = bandit.selection_propensities(arms, 1, 4000, np.random.default_rng(2))
    assert p[0] > 0.95


@pytest.mark.parametrize(
    ("engagements", "impressions", "alpha", "beta"),
    [
        (0, 0, 4.0, 16.0),  # the prior alone
        (2, 10, 6.0, 24.0),  # 2 successes, 8 failures
        (5, 0, 4.0, 16.0),  # likes nobody was shown: imported, or from outside the feed
        (5, 3, 7.0, 16.0),  # only the shown ones count, and none failed
    ],
)
def test_posterior_counts_only_engagements_that_impressions_account_for(
    engagements: int, impressions: int, alpha: float, beta: float
) -> None:
    arms = bandit.posterior(np.array([0.2]), 20.0, np.array([engagements]), np.array([impressions]))
    assert arms.alpha[0] == pytest.approx(alpha)
    assert arms.beta[0] == pytest.approx(beta)


@pytest.mark.parametrize(
    ("k", "fraction", "max_slots", "min_k", "expected"),
    [(20, 0.1, 2, 5, 2), (10, 0.1, 2, 5, 1), (4, 0.5, 2, 5, 0), (100, 0.1, 2, 5, 2),
     (20, 0.0, 2, 5, 0), (6, 0.7, 4, 5, 3)],  # at most the page's second half
)
def test_exploration_budget(k, fraction, max_slots, min_k, expected) -> None:
    assert bandit.exploration_slots(k, fraction, max_slots, min_k) == expected


@pytest.mark.parametrize("k", [5, 6, 7, 10, 20, 50])
def test_the_largest_budget_gets_distinct_positions(k: int) -> None:
    slots = bandit.exploration_slots(k, 1.0, k, 1)
    assert len(set(bandit.slot_positions(k, slots))) == slots


def test_slot_positions_are_spread_over_the_second_half_and_never_first() -> None:
    assert bandit.slot_positions(20, 2) == [12, 17]
    assert bandit.slot_positions(10, 1) == [7]
    assert bandit.slot_positions(5, 1) == [3]
    assert bandit.slot_positions(2, 1) == [1]
    assert bandit.slot_positions(10, 0) == []
