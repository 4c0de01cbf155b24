"""MovieLens ratings as one interaction table, and the split every model of bench-real shares.

The split (seeded; pure, so a unit test can pin it):

- New users: a seeded 20 % of users is held out of training entirely. Those with at least
  ``NEW_USER_MIN_POSITIVES`` positives form the new-user cohort.
- Per-user temporal: each remaining user's ratings are ordered by time, ties within a second
  broken by a seeded hash of (user, item), never by id. The last 20 % are test; of the
  training part, the last 10 % are validation.
- Cold items: a seeded 15 % of items keep no training or validation events; their test events
  stay, so they can be found only through content. For choosing cold-start knobs, a
  "valid-cold" run mirrors this one part earlier: another seeded 15 % of items (the
  validation-cold items) lose their fit-part events (``fit_cold``) and keep their validation
  events. Every other run, and the tuning of every model, uses the whole fit part.
- Ratings >= 4 are positives (likes); the rest are views. Candidates for a user are all items
  minus the items of their training part (for validation runs: of their fit part).
"""

from __future__ import annotations

import csv
import hashlib
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

POSITIVE_RATING = 4.0
TEST_SHARE = 0.2
VALID_SHARE = 0.1
COLD_ITEM_SHARE = 0.15
NEW_USER_SHARE = 0.2
NEW_USER_MIN_POSITIVES = 10
NEW_USER_KS = (0, 1, 3, 10)
_YEAR = re.compile(r"\((\d{4})\)\s*$")


class DatasetMissingError(FileNotFoundError):
    """The dataset folder or one of its files is missing; the message says how to get it."""


@dataclass(frozen=True)
class Movie:
    item: int  # dense index
    movie_id: int
    title: str
    genres: tuple[str, ...]
    year: int | None


@dataclass(frozen=True)
class Dataset:
    """Ratings as parallel arrays over dense user and item indices, plus movies and tags."""

    users: np.ndarray  # (n,) int
    items: np.ndarray  # (n,) int
    ratings: np.ndarray  # (n,) float
    timestamps: np.ndarray  # (n,) float, unix seconds
    movies: tuple[Movie, ...]
    user_ids: tuple[int, ...]  # dense user index -> MovieLens userId
    tag_users: np.ndarray  # tags: who, on which item, when, what
    tag_items: np.ndarray
    tag_timestamps: np.ndarray
    tag_texts: tuple[str, ...]

    @property
    def n_users(self) -> int:
        return len(self.user_ids)

    @property
    def n_items(self) -> int:
        return len(self.movies)


def load_movielens(folder: Path) -> Dataset:
    """``ratings.csv``, ``movies.csv`` and ``tags.csv`` of an ml-latest-small folder."""
    needed = [folder / name for name in ("ratings.csv", "movies.csv", "tags.csv")]
    missing = [p.name for p in needed if not p.is_file()]
    if missing:
        raise DatasetMissingError(
            f"{folder} lacks {', '.join(missing)}: bench-real needs MovieLens ml-latest-small "
            "(https://grouplens.org/datasets/movielens/, research use; see "
            "../shared/datasets/README.md). Unpack it there or pass --data DIR."
        )
    movies: list[Movie] = []
    item_of: dict[int, int] = {}
    with (folder / "movies.csv").open(encoding="utf-8", newline="") as handle:
        for row in csv.DictReader(handle):
            movie_id = int(row["movieId"])
            item_of[movie_id] = len(movies)
            title = row["title"].strip()
            match = _YEAR.search(title)
            genres = tuple(g for g in row["genres"].split("|") if g and g != "(no genres listed)")
            movies.append(
                Movie(len(movies), movie_id, title, genres, int(match.group(1)) if match else None)
            )
    user_of: dict[int, int] = {}
    users, items, ratings, stamps = [], [], [], []
    with (folder / "ratings.csv").open(encoding="utf-8", newline="") as handle:
        for row in csv.DictReader(handle):
            user = user_of.setdefault(int(row["userId"]), len(user_of))
            users.append(user)
            items.append(item_of[int(row["movieId"])])
            ratings.append(float(row["rating"]))
            stamps.append(float(row["timestamp"]))
    tag_users, tag_items, tag_stamps, tag_texts = [], [], [], []
    with (folder / "tags.csv").open(encoding="utf-8", newline="") as handle:
        for row in csv.DictReader(handle):
            movie_id, user_id = int(row["movieId"]), int(row["userId"])
            if movie_id not in item_of:
                continue
            tag_users.append(user_of.get(user_id, -1))  # a tagger who never rated: -1
            tag_items.append(item_of[movie_id])
            tag_stamps.append(float(row["timestamp"]))
            tag_texts.append(row["tag"].strip())
    return Dataset(
        users=np.array(users, dtype=np.int64),
        items=np.array(items, dtype=np.int64),
        ratings=np.array(ratings, dtype=np.float64),
        timestamps=np.array(stamps, dtype=np.float64),
        movies=tuple(movies),
        user_ids=tuple(sorted(user_of, key=user_of.__getitem__)),
        tag_users=np.array(tag_users, dtype=np.int64),
        tag_items=np.array(tag_items, dtype=np.int64),
        tag_timestamps=np.array(tag_stamps, dtype=np.float64),
        tag_texts=tuple(tag_texts),
    )


def tie_break(seed: int, user: int, item: int) -> int:
    """A seeded order for ratings of one user within the same second (never the ids' order)."""
    digest = hashlib.blake2b(f"{seed}:{user}:{item}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big")


@dataclass(frozen=True)
class Split:
    """Row indices into the dataset's rating arrays, per part, and who and what is held out."""

    seed: int
    train: np.ndarray  # fit + validation rows of established users (cold items removed)
    fit: np.ndarray  # train minus validation
    fit_cold: np.ndarray  # fit minus the validation-cold items' rows
    valid: np.ndarray
    test: np.ndarray  # every test row, cold items included
    cold_items: np.ndarray  # sorted item indices
    valid_cold_items: np.ndarray  # sorted item indices, disjoint from cold_items
    new_users: np.ndarray  # held-out users (sorted), every one
    new_user_rows: dict[int, np.ndarray] = field(default_factory=dict)  # user -> rows by time

    @property
    def new_user_cohort(self) -> list[int]:
        """Held-out users with at least ``NEW_USER_MIN_POSITIVES`` positives (the cohort)."""
        return sorted(self.new_user_rows)

    def rows_for(self, evaluate_on: str) -> tuple[np.ndarray, np.ndarray]:
        """(training rows, target rows) of a run: "test", "valid" or "valid-cold"."""
        if evaluate_on == "test":
            return self.train, self.test
        return (self.fit_cold if evaluate_on == "valid-cold" else self.fit), self.valid

    def cold_for(self, evaluate_on: str) -> np.ndarray:
        """The items a run holds out of training: "test", "valid" (none) or "valid-cold"."""
        if evaluate_on == "test":
            return self.cold_items
        return self.valid_cold_items if evaluate_on == "valid-cold" else np.zeros(0, np.int64)

    def sha(self) -> str:
        """A digest of the split, so two runs can tell whether they shared it."""
        digest = hashlib.sha256()
        for part in (self.train, self.valid, self.test, self.cold_items, self.new_users):
            digest.update(np.ascontiguousarray(part, dtype=np.int64).tobytes())
            digest.update(b"|")
        return digest.hexdigest()[:16]


def split(data: Dataset, seed: int) -> Split:
    """The split described in the module docstring."""
    rng = np.random.default_rng(seed)
    n_new = int(round(NEW_USER_SHARE * data.n_users))
    new_users = np.sort(rng.choice(data.n_users, size=n_new, replace=False))
    n_cold = int(round(COLD_ITEM_SHARE * data.n_items))
    cold_items = np.sort(rng.choice(data.n_items, size=n_cold, replace=False))
    warm_items = np.setdiff1d(np.arange(data.n_items), cold_items)
    valid_cold_items = np.sort(rng.choice(warm_items, size=n_cold, replace=False))
    is_new = np.isin(data.users, new_users)
    is_cold = np.isin(data.items, cold_items)
    is_valid_cold = np.isin(data.items, valid_cold_items)
    order = _temporal_order(data, seed)
    train, fit, fit_cold, valid, test = [], [], [], [], []
    new_user_rows: dict[int, np.ndarray] = {}
    for user, rows in _rows_by_user(data.users, order).items():
        if is_new[rows[0]]:
            positives = rows[data.ratings[rows] >= POSITIVE_RATING]
            if positives.size >= NEW_USER_MIN_POSITIVES:
                new_user_rows[user] = rows
            continue
        n_test = int(math.ceil(TEST_SHARE * rows.size))
        head, tail = rows[: rows.size - n_test], rows[rows.size - n_test :]
        test.append(tail)
        n_valid = int(math.ceil(VALID_SHARE * head.size)) if head.size > 1 else 0
        fit_rows, valid_rows = head[: head.size - n_valid], head[head.size - n_valid :]
        train.append(head[~is_cold[head]])
        fit.append(fit_rows[~is_cold[fit_rows]])
        fit_cold.append(fit_rows[~is_cold[fit_rows] & ~is_valid_cold[fit_rows]])
        valid.append(valid_rows[~is_cold[valid_rows]])
    return Split(
        seed=seed,
        train=_cat(train),
        fit=_cat(fit),
        fit_cold=_cat(fit_cold),
        valid=_cat(valid),
        test=_cat(test),
        cold_items=cold_items,
        valid_cold_items=valid_cold_items,
        new_users=new_users,
        new_user_rows=new_user_rows,
    )


def _temporal_order(data: Dataset, seed: int) -> np.ndarray:
    ties = np.array(
        [tie_break(seed, int(u), int(i)) for u, i in zip(data.users, data.items, strict=True)],
        dtype=np.uint64,
    )
    return np.lexsort((ties, data.timestamps, data.users))


def _rows_by_user(users: np.ndarray, order: np.ndarray) -> dict[int, np.ndarray]:
    sorted_users = users[order]
    bounds = np.flatnonzero(np.diff(sorted_users)) + 1
    return {
        int(chunk[0]): rows
        for chunk, rows in zip(np.split(sorted_users, bounds), np.split(order, bounds), strict=True)
    }


def _cat(parts: Sequence[np.ndarray]) -> np.ndarray:
    return np.concatenate(parts) if parts else np.zeros(0, dtype=np.int64)
