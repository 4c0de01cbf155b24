"""Exploration of new items: Thompson sampling on engagement rate with a content-based prior.

Each arm (a new, little-shown item) has a Beta posterior over its engagement rate. The prior's
mean comes from how well the item's content matches the user, its strength is a number of
pseudo-impressions, and the item's observed engagements and impressions update it. One draw per
arm, the best ``slots`` draws win the exploration slots.

The propensity logged with an explored item is the probability that this policy puts it in
the slots, estimated by re-sampling the same posteriors many times (a Beta top-k inclusion
probability has no closed form). Pure numpy; the caller passes the random generator.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

_MIN_PARAM = 1e-3


@dataclass(frozen=True)
class BetaArms:
    """Posterior parameters of ``n`` arms: rate ~ Beta(alpha, beta)."""

    alpha: np.ndarray
    beta: np.ndarray

    def __len__(self) -> int:
        return int(self.alpha.shape[0])


def prior_mean(match: np.ndarray, base: float, gain: float) -> np.ndarray:
    """Prior engagement rate from a content match in [0, 1]: ``base + gain * match``."""
    m = base + gain * np.clip(np.asarray(match, dtype=np.float64), 0.0, 1.0)
    return np.clip(m, 0.001, 0.999)


def posterior(
    prior: np.ndarray, strength: float, engagements: np.ndarray, impressions: np.ndarray
) -> BetaArms:
    """Beta posteriors: prior pseudo-counts plus observed successes and failures.

    The arm is an item's engagement rate per impression, so only engagements that impressions
    account for are successes: an imported like, or one from outside the feed, says nothing
    about that rate (counting it would rank an item with a few likes and no impressions above
    every item the content prior favours)."""
    prior = np.asarray(prior, dtype=np.float64)
    shown = np.maximum(np.asarray(impressions, dtype=np.float64), 0.0)
    successes = np.clip(np.asarray(engagements, dtype=np.float64), 0.0, shown)
    failures = shown - successes
    alpha = np.maximum(prior * strength + successes, _MIN_PARAM)
    beta = np.maximum((1.0 - prior) * strength + failures, _MIN_PARAM)
    return BetaArms(alpha, beta)


def thompson_select(arms: BetaArms, slots: int, rng: np.random.Generator) -> np.ndarray:
    """Indices of the arms that win ``slots`` slots in one Thompson draw, best draw first."""
    n = len(arms)
    if slots <= 0 or n == 0:
        return np.zeros(0, dtype=np.int64)
    draws = rng.beta(arms.alpha, arms.beta)
    return np.argsort(-draws, kind="stable")[: min(slots, n)]


def selection_propensities(
    arms: BetaArms, slots: int, samples: int, rng: np.random.Generator
) -> np.ndarray:
    """P(arm i wins one of ``slots`` slots) per arm, estimated from ``samples`` policy draws.

    Each re-sample is exactly what :func:`thompson_select` does, so the estimate converges to
    the policy's true selection frequency; it is floored at ``1 / samples`` so that an item the
    policy did show never gets propensity 0.
    """
    n = len(arms)
    if n == 0 or slots <= 0:
        return np.zeros(n)
    if slots >= n:
        return np.ones(n)
    draws = rng.beta(arms.alpha, arms.beta, size=(samples, n))
    top = np.argpartition(-draws, slots - 1, axis=1)[:, :slots]
    counts = np.bincount(top.reshape(-1), minlength=n).astype(np.float64)
    return np.maximum(counts / samples, 1.0 / samples)


def block_propensities(
    arms: BetaArms, block_size: int, blocks: int, samples: int, rng: np.random.Generator
) -> np.ndarray:
    """``P[i, p]``: probability that arm i's Thompson draw ranks in block p, i.e. among draws
    ``p * block_size .. (p + 1) * block_size - 1`` (block p fills page p's exploration slots).

    Estimated from ``samples`` re-samples of the policy; floored at ``1 / samples``. Summed
    over the blocks it is :func:`selection_propensities` for ``block_size * blocks`` slots.
    """
    n = len(arms)
    if n == 0 or block_size <= 0 or blocks <= 0:
        return np.zeros((n, max(blocks, 0)))
    draws = rng.beta(arms.alpha, arms.beta, size=(samples, n))
    picked = min(n, block_size * blocks)
    winners = np.argsort(-draws, axis=1, kind="stable")[:, :picked]  # arm at each rank
    block_of_rank = np.arange(picked) // block_size
    counts = np.bincount(
        (winners * blocks + block_of_rank[None, :]).reshape(-1), minlength=n * blocks
    ).reshape(n, blocks)
    return np.maximum(counts / samples, 1.0 / samples)


def exploration_slots(k: int, fraction: float, max_slots: int, min_k: int) -> int:
    """The exploration budget of a page of ``k`` items."""
    if k < min_k or fraction <= 0:
        return 0
    # Slots go in the page's second half (slot_positions), so that half is the most there is.
    return int(min(max_slots, k - k // 2, max(1, round(k * fraction))))


def slot_positions(k: int, slots: int) -> list[int]:
    """Positions within a page of ``k`` where exploration items go: spread over the page's
    second half, which is where a gamble costs the user least (the first half is what the
    ranker is surest of)."""
    if slots <= 0:
        return []
    half = k // 2
    span = k - half
    return sorted({min(k - 1, max(1, half + int((s + 0.5) * span / slots))) for s in range(slots)})
