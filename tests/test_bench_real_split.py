"""bench-real's split: what each model may see, pinned on a generated rating table."""

from __future__ import annotations

import numpy as np
import pytest

from bench.real.data import (
    COLD_ITEM_SHARE,
    NEW_USER_MIN_POSITIVES,
    NEW_USER_SHARE,
    POSITIVE_RATING,
    Dataset,
    Movie,
    split,
    tie_break,
)


def generated(n_users: int = 60, n_items: int = 200, seed: int = 0) -> Dataset:
    rng = np.random.default_rng(seed)
    users, items, ratings, stamps = [], [], [], []
    for u in range(n_users):
        chosen = rng.choice(n_items, size=int(rng.integers(12, 60)), replace=False)
        base = 1e9 + rng.uniform(0, 1e8)
        times = np.sort(base + rng.integers(0, 40, size=chosen.size) * 3600.0)  # many ties
        users += [u] * chosen.size
        items += chosen.tolist()
        ratings += rng.choice([1.0, 2.5, 3.0, 4.0, 4.5, 5.0], size=chosen.size).tolist()
        stamps += times.tolist()
    movies = tuple(Movie(i, 1000 + i, f"Film {i} (1999)", ("Drama",), 1999) for i in range(n_items))
    return Dataset(
        users=np.array(users), items=np.array(items), ratings=np.array(ratings),
        timestamps=np.array(stamps), movies=movies, user_ids=tuple(range(n_users)),
        tag_users=np.zeros(0, dtype=np.int64), tag_items=np.zeros(0, dtype=np.int64),
        tag_timestamps=np.zeros(0), tag_texts=(),
    )  # fmt: skip


@pytest.fixture(scope="module")
def data() -> Dataset:
    return generated()


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_no_test_or_validation_interaction_is_in_training(data: Dataset, seed: int) -> None:
    s = split(data, seed)
    assert not set(s.test) & set(s.train)
    assert not set(s.valid) & set(s.fit)
    assert set(s.fit) | set(s.valid) == set(s.train)
    # Per user, everything trained on happened no later than anything held out for them.
    for part in (s.test, s.valid):
        for user in np.unique(data.users[part]):
            held = part[data.users[part] == user]
            seen = s.train if part is s.test else s.fit
            seen = seen[data.users[seen] == user]
            if seen.size:
                assert data.timestamps[seen].max() <= data.timestamps[held].min()


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_cold_items_have_no_training_events_but_keep_their_test_events(
    data: Dataset, seed: int
) -> None:
    s = split(data, seed)
    assert s.cold_items.size == round(COLD_ITEM_SHARE * data.n_items)
    assert not np.isin(data.items[s.train], s.cold_items).any()
    assert np.isin(data.items[s.test], s.cold_items).any()


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_validation_cold_items_mirror_the_test_cold_items_one_part_earlier(
    data: Dataset, seed: int
) -> None:
    s = split(data, seed)
    assert s.valid_cold_items.size == s.cold_items.size
    assert not set(s.valid_cold_items) & set(s.cold_items)
    train, targets = s.rows_for("valid-cold")
    assert list(targets) == list(s.valid)
    assert not np.isin(data.items[train], s.valid_cold_items).any()
    assert set(train) == set(s.fit) - set(np.flatnonzero(np.isin(data.items, s.valid_cold_items)))
    assert np.isin(data.items[s.valid], s.valid_cold_items).any()
    # Only the valid-cold run treats them as cold: tuning and the test train on their events.
    assert np.isin(data.items[s.fit], s.valid_cold_items).any()
    assert [list(p) for p in s.rows_for("valid")] == [list(s.fit), list(s.valid)]
    assert [list(p) for p in s.rows_for("test")] == [list(s.train), list(s.test)]
    assert list(s.cold_for("test")) == list(s.cold_items)
    assert list(s.cold_for("valid-cold")) == list(s.valid_cold_items)
    assert s.cold_for("valid").size == 0


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_held_out_users_appear_nowhere_in_training_or_test(data: Dataset, seed: int) -> None:
    s = split(data, seed)
    assert s.new_users.size == round(NEW_USER_SHARE * data.n_users)
    for part in (s.train, s.valid, s.test):
        assert not np.isin(data.users[part], s.new_users).any()
    for user in s.new_user_cohort:
        assert user in s.new_users
        rows = s.new_user_rows[user]
        assert (data.ratings[rows] >= POSITIVE_RATING).sum() >= NEW_USER_MIN_POSITIVES
        assert np.all(np.diff(data.timestamps[rows]) >= 0)


def test_the_split_is_seeded_and_ties_are_not_broken_by_id(data: Dataset) -> None:
    assert split(data, 1).sha() == split(data, 1).sha()
    assert split(data, 1).sha() != split(data, 2).sha()
    order = sorted(range(50), key=lambda item: tie_break(7, 3, item))
    assert order != sorted(order)


def test_test_is_the_last_fifth_of_each_users_ratings(data: Dataset) -> None:
    s = split(data, 1)
    kept = ~np.isin(data.users, s.new_users)
    for user in np.unique(data.users[kept]):
        total = int((data.users == user).sum())
        in_test = int((data.users[s.test] == user).sum())
        assert in_test == int(np.ceil(0.2 * total))
