"""The vector-store boundary: plain dataclasses, typed errors and the ``VectorStore`` Protocol.

No protobuf and no engine types cross this boundary; the gRPC servicer converts at its edge and
each adapter converts at its own.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

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


@runtime_checkable
class VectorStore(Protocol):
    """Media vectors and payloads in Qdrant: one collection per encoder model.

    ``ensure_collection`` binds the store to the model's collection; every other data call
    needs it first (else :class:`CollectionNotReadyError`). Writes return once durable.
    """

    @property
    def collection(self) -> str: ...

    def ensure_collection(self, model_id: str, dims: Mapping[str, int]) -> None:
        """Create or open the collection of ``model_id`` with these named-vector dims."""
        ...

    def upsert(self, points: Sequence[MediaPoint]) -> None:
        """Insert or overwrite media points (idempotent by media_id)."""
        ...

    def upsert_frames(
        self,
        media_id: str,
        frame_vectors: np.ndarray,
        timestamps_s: Sequence[float],
        payload: Mapping[str, Any] | None = None,
    ) -> None:
        """Replace the frame points of a video with ``frame_vectors`` (n, visual dim)."""
        ...

    def get(self, media_ids: Sequence[str], *, with_vectors: bool = False) -> dict[str, MediaPoint]:
        """Stored points by media_id; unknown ids are absent from the result."""
        ...

    def get_frames(self, media_id: str) -> list[Frame]:
        """The stored frames of a video, in frame order (empty for non-videos)."""
        ...

    def delete(self, media_ids: Sequence[str]) -> None:
        """Delete media points and their frames; unknown ids are ignored."""
        ...

    def search(
        self,
        vector_name: str,
        query_vector: np.ndarray,
        k: int,
        filter: SearchFilter | None = None,
        *,
        exact: bool = False,
        match_frames: bool = False,
        with_payload: bool = True,
    ) -> list[SearchHit]:
        """The ``k`` nearest media by cosine on ``vector_name``, best first.

        ``match_frames`` fills ``SearchHit.frame`` for video hits with their best frame.
        """
        ...

    def search_batch(
        self,
        vector_name: str,
        query_vectors: Sequence[np.ndarray] | np.ndarray,
        k: int | Sequence[int],
        filter: SearchFilter | None = None,
        *,
        exact: bool = False,
        with_payload: bool = True,
        hnsw_ef: int | None = None,
    ) -> list[list[SearchHit]]:
        """One ``search`` per query vector, planned together; results in query order.

        ``k`` is one limit for every query or a limit per query (asking each query for only
        what it needs saves a few µs per hit: results cross into Python one by one).
        ``hnsw_ef`` overrides the store's search beam for this call (never below a limit), for
        callers that trade recall for latency, such as candidate generation."""
        ...

    def search_fused(
        self,
        query_vector: np.ndarray,
        vector_names: Sequence[str],
        k: int,
        filter: SearchFilter | None = None,
        *,
        fusion: Fusion,
        match_frames: bool = False,
    ) -> list[SearchHit]:
        """The ``k`` best media by reciprocal-rank fusion of one nearest search per named vector.

        The engine fuses (Qdrant's prefetch + RRF), so items found by only one vector compete
        with the rest on rank alone. ``SearchHit.score`` is the fused score, not a cosine.
        """
        ...

    def search_frames(
        self, query_vector: np.ndarray, media_ids: Sequence[str]
    ) -> dict[str, FrameMatch]:
        """The best-matching frame of each video in ``media_ids`` (videos without frames absent)."""
        ...

    def retrieve_vectors(self, media_ids: Sequence[str], vector_name: str) -> dict[str, np.ndarray]:
        """Stored vectors by media_id; ids without that vector are absent."""
        ...

    def count(self, filter: SearchFilter | None = None) -> int:
        """Number of media points (matching ``filter``)."""
        ...

    def iter_ids(self, filter: SearchFilter | None = None, batch_size: int = 1000) -> Iterator[str]:
        """Every stored media_id (matching ``filter``), in no particular order."""
        ...

    def iter_payloads(
        self,
        payload_keys: Sequence[str],
        filter: SearchFilter | None = None,
        batch_size: int = 1000,
    ) -> Iterator[MediaPoint]:
        """Every media point (matching ``filter``) with only these payload keys and its media_id,
        no vectors, in no particular order; read page by page, so memory stays bounded."""
        ...

    def list_media(
        self,
        filter: SearchFilter | None = None,
        limit: int = 100,
        *,
        newest_first: bool = True,
        payload_keys: Sequence[str] | None = None,
    ) -> list[MediaPoint]:
        """Media points ordered by ``created_at`` (payload only, no vectors).

        ``payload_keys`` limits each payload to these keys and ``media_id`` (None: all of it);
        reading less payload is most of the saving on a hot path."""
        ...

    def request_optimize(self) -> None:
        """Ask for an index build in the background now (a no-op where the engine does it)."""
        ...

    def wait_optimized(self, timeout: float | None = None) -> bool:
        """Block until no background index build is running or pending; False on timeout."""
        ...

    def stats(self) -> StoreStats: ...

    def content_version(self) -> int | None:
        """A number that changes after every write (media, frames, a switch of collection),
        or None where writers this process does not see may change the collection (a Qdrant
        server).

        Readers that keep search results (the recommender's per-user candidates) read it
        before they search and reuse the results only while it is unchanged.
        """
        ...

    def close(self) -> None:
        """Release files, locks and connections. Idempotent."""
        ...
