"""The vector-store boundary's types: plain dataclasses and typed errors (the ``VectorStore``
contract itself is in ``contract.py``).

No protobuf and no engine types cross this boundary; the gRPC servicer converts at its edge and
each adapter converts at its own.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np


class StoreError(Exception):
    """Base class of every error raised by :mod:`mediarec.server.store`."""


class DimensionMismatchError(StoreError):
    """A vector's dimension differs from the collection's (the message names both)."""

    def __init__(self, what: str, expected: int, got: int) -> None:
        super().__init__(f"{what}: the collection stores {expected}-d vectors, got {got}-d")
        self.expected = expected
        self.got = got


class InvalidVectorError(StoreError, ValueError):
    """A vector is not a finite 1-d array, or names a vector the collection does not have."""


class StoreLockedError(StoreError):
    """The on-disk store is already open in another process."""


class CollectionNotReadyError(StoreError):
    """An operation ran before ``ensure_collection`` bound the store to a collection."""


@dataclass(frozen=True)
class MediaPoint:
    """One media item: its named vectors (``visual`` and/or ``caption``) and its payload."""

    media_id: str
    vectors: Mapping[str, np.ndarray] = field(default_factory=dict)
    payload: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Frame:
    """A stored video frame: its position in the sampled sequence and its time in the video."""

    frame_index: int
    timestamp_s: float


@dataclass(frozen=True)
class FrameMatch:
    """The frame of a video that best matches a query."""

    frame_index: int
    timestamp_s: float
    score: float


@dataclass(frozen=True)
class SearchHit:
    """One search result; ``frame`` is set for videos when frame matching was asked for."""

    media_id: str
    score: float
    payload: Mapping[str, Any]
    frame: FrameMatch | None = None


def _as_tuple(values: Sequence[str] | str) -> tuple[str, ...]:
    if isinstance(values, str):  # a bare string would otherwise become a tuple of characters
        return (values,)
    return tuple(values)


@dataclass(frozen=True)
class SearchFilter:
    """Conditions on payload fields. Empty fields don't constrain; set fields are ANDed.

    ``tags``, ``topics``, ``media_types``, ``creator_ids`` and ``media_ids`` match any of their
    values. ``created_at_from`` / ``created_at_to`` are inclusive unix seconds.
    """

    media_types: tuple[str, ...] = ()
    creator_ids: tuple[str, ...] = ()
    tags: tuple[str, ...] = ()
    topics: tuple[str, ...] = ()
    created_at_from: int | None = None
    created_at_to: int | None = None
    media_ids: tuple[str, ...] = ()
    content_hashes: tuple[str, ...] = ()
    exclude_media_ids: tuple[str, ...] = ()
    exclude_creator_ids: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        for name in (
            "media_types",
            "creator_ids",
            "tags",
            "topics",
            "media_ids",
            "content_hashes",
            "exclude_media_ids",
            "exclude_creator_ids",
        ):
            object.__setattr__(self, name, _as_tuple(getattr(self, name)))
        lo, hi = self.created_at_from, self.created_at_to
        if lo is not None and hi is not None and lo > hi:
            raise ValueError(f"created_at_from ({lo}) is after created_at_to ({hi})")


@dataclass(frozen=True)
class Fusion:
    """How ``search_fused`` combines its rankings: weighted reciprocal-rank fusion.

    An item at 0-based rank r of a ranking of weight w adds ``1 / (rrf_k - 1 + (r + 1) / w)``,
    Qdrant's formula (``1 / (rrf_k + r)`` at weight 1). Each ranking reads ``depth``
    candidates, or k where that is more.
    """

    rrf_k: int = 2  # Qdrant's default
    weights: tuple[float, ...] = ()  # one per vector name; empty: all equal
    depth: int = 50

    def __post_init__(self) -> None:
        if self.rrf_k < 1:
            raise ValueError(f"rrf_k must be at least 1, got {self.rrf_k}")
        if any(not w > 0 for w in self.weights):  # also refuses NaN
            raise ValueError(f"fusion weights must be positive, got {self.weights}")
        if self.depth < 1:
            raise ValueError(f"depth must be at least 1, got {self.depth}")

    def weights_for(self, rankings: int) -> list[float] | None:
        """The engine's weights for ``rankings`` rankings (None: equal)."""
        if not self.weights:
            return None
        if len(self.weights) != rankings:
            raise ValueError(f"{len(self.weights)} fusion weights for {rankings} rankings")
        return list(self.weights)


@dataclass(frozen=True)
class StoreStats:
    """What a store holds right now (for health, logs and benchmarks)."""

    engine: str
    collection: str
    points: int
    frames: int
    indexed_vectors: int
    optimizing: bool
