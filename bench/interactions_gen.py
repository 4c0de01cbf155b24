"""Synthetic event logs of any size, for measuring how the collaborative core scales.

Real logs at 100k items and 10M events are not in ``../shared/datasets``, so this makes one
with the two properties that decide the cost of the core: a long-tailed item popularity (a few
items co-occur with almost everything, which is what makes item x item products expensive) and
taste (each user draws most events from one of ``tastes`` groups of items, so the item graphs
have real neighbourhoods). Users' activity is long-tailed too. Generation is vectorised and
seeded: the same arguments give the same log.

Quality is not measured on these logs (that is what the real data is for), only cost.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from mediarec.server.recommend.collab import Interactions

YEAR_S = 365 * 86_400.0


@dataclass(frozen=True)
class LogShape:
    """The size and shape of a generated log."""

    users: int
    items: int
    events: int
    tastes: int = 200
    in_taste_share: float = 0.7  # the rest of a user's events follow global popularity
    popularity_exponent: float = 0.9  # item of popularity rank r is drawn ~ 1 / (r + 10) ** this
    positive_share: float = 0.5
    span_years: float = 3.0
    seed: int = 0


def generate(shape: LogShape) -> Interactions:
    """An event log of ``shape.events`` events (see the module docstring)."""
    rng = np.random.default_rng(shape.seed)
    weight = 1.0 / (np.arange(shape.items) + 10.0) ** shape.popularity_exponent
    popularity = rng.permutation(weight)  # popularity independent of the item's index
    users = _users_of_events(rng, shape)
    taste_of_user = rng.integers(0, shape.tastes, shape.users)
    taste_of_item = rng.integers(0, shape.tastes, shape.items)
    items = np.empty(shape.events, dtype=np.int64)
    in_taste = rng.random(shape.events) < shape.in_taste_share
    items[~in_taste] = _draw(rng, np.arange(shape.items), popularity, int((~in_taste).sum()))
    event_taste = taste_of_user[users]
    for taste in range(shape.tastes):
        wanted = np.flatnonzero(in_taste & (event_taste == taste))
        members = np.flatnonzero(taste_of_item == taste)
        if wanted.size and members.size:
            items[wanted] = _draw(rng, members, popularity[members], wanted.size)
        elif wanted.size:
            items[wanted] = _draw(rng, np.arange(shape.items), popularity, wanted.size)
    start = rng.random(shape.users) * shape.span_years * YEAR_S
    timestamps = start[users] + rng.exponential(30 * 86_400.0, shape.events)
    return Interactions(
        n_users=shape.users,
        n_items=shape.items,
        users=users,
        items=items,
        timestamps=timestamps,
        positive=rng.random(shape.events) < shape.positive_share,
    )


def _users_of_events(rng: np.random.Generator, shape: LogShape) -> np.ndarray:
    """Each event's user: activity is log-normal across users, every user has one event."""
    activity = rng.lognormal(0.0, 1.0, shape.users)
    extra = _draw(rng, np.arange(shape.users), activity, shape.events - shape.users)
    return np.sort(np.concatenate([np.arange(shape.users), extra]))


def _draw(rng: np.random.Generator, values: np.ndarray, weights: np.ndarray, n: int) -> np.ndarray:
    cdf = np.cumsum(weights, dtype=np.float64)
    at = np.searchsorted(cdf, rng.random(n) * cdf[-1], side="right")
    return values[np.minimum(at, values.size - 1)]
