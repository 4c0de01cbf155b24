"""Per-item values kept by integer row, read at many rows in one array gather.

A request scores a few hundred candidates against several lists that a derived-state snapshot
keeps (trending levels per context, a cohort's favourites, co-engagement scores, the
collaborative core's index). Each candidate is looked up once, in the snapshot's row index,
and every list is then read by a binary search over its sorted rows, rather than by one
dictionary lookup per candidate per list.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from itertools import repeat

import numpy as np


@dataclass(frozen=True)
class RowValues:
    """Values at some rows of a table (the rest read 0), kept by sorted row."""

    rows: np.ndarray  # sorted, distinct
    values: np.ndarray  # float64, one per row

    @classmethod
    def of_dense(cls, dense: np.ndarray) -> RowValues:
        """The non-zero entries of a dense column."""
        rows = np.flatnonzero(dense)
        return cls(rows, dense[rows])

    @classmethod
    def of_mapping(cls, values: Mapping[str, float], index: Mapping[str, int]) -> RowValues:
        """``values`` by media id, at their rows in ``index`` (ids it lacks are left out)."""
        pairs = sorted((index[m], v) for m, v in values.items() if m in index)
        return cls(
            np.fromiter((r for r, _ in pairs), dtype=np.int64, count=len(pairs)),
            np.fromiter((v for _, v in pairs), dtype=np.float64, count=len(pairs)),
        )

    def dense(self, n: int) -> np.ndarray:
        out = np.zeros(n)
        out[self.rows] = self.values
        return out

    def at(self, rows: np.ndarray) -> np.ndarray:
        """The values at ``rows`` (0 where none is kept, and at row -1: an unknown item)."""
        found, hit = find_rows(self.rows, rows)
        return np.where(hit, self.values[found], 0.0) if self.rows.size else np.zeros(rows.size)

    @property
    def nbytes(self) -> int:
        return int(self.rows.nbytes + self.values.nbytes)


EMPTY_ROWS = RowValues(np.zeros(0, dtype=np.int64), np.zeros(0))


def find_rows(kept: np.ndarray, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Where each of ``rows`` sits in the sorted ``kept`` rows, and whether it is there (the
    position is clipped to a valid one where it is not; all 0 when ``kept`` is empty)."""
    if kept.size == 0:
        return np.zeros(rows.size, dtype=np.int64), np.zeros(rows.size, dtype=bool)
    found = np.minimum(np.searchsorted(kept, rows), kept.size - 1)
    return found, kept[found] == rows


def rows_of(index: Mapping[str, int], media_ids: Sequence[str]) -> np.ndarray:
    """Each media id's row in ``index``, -1 where it has none."""
    n = len(media_ids)
    return np.fromiter(map(index.get, media_ids, repeat(-1, n)), dtype=np.int64, count=n)


def values_at(values: Mapping[str, float], keys: Sequence[str], default: float = 0.0) -> np.ndarray:
    """``values[k]`` for each of ``keys`` (``default`` where absent), as floats; without a
    lookup when ``values`` is empty, as most users' maps are. ``map`` over the bound ``get``,
    not a generator: this runs for every candidate of a request."""
    n = len(keys)
    if not values:
        return np.full(n, default, dtype=np.float64)
    return np.fromiter(map(values.get, keys, repeat(default, n)), dtype=np.float64, count=n)


def extended_index(index: Mapping[str, int], more: Sequence[Sequence[str]]) -> dict[str, int]:
    """``index`` (rows 0..n-1) with the ids of ``more`` it lacks appended as rows n, n+1, ..."""
    out = dict(index)
    for ids in more:
        for media_id in ids:
            if media_id not in out:
                out[media_id] = len(out)
    return out
