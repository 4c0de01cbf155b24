"""The ``VectorStore`` boundary, and the behaviour both Qdrant adapters share.

Every public method's signature is written here once. Where the two engines differ only in
their calls, the method checks its arguments, plans the filter and shapes the results here, and
asks the adapter for one engine primitive (the ``_``-prefixed abstract methods). Where an engine
does the whole job its own way (opening a collection, statistics, index builds, the content
version, closing), the method is abstract and each adapter writes it.
"""

from __future__ import annotations

import abc
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal, Protocol

import numpy as np

from mediarec.server.store import schema
from mediarec.server.store.base import (
    Frame,
    FrameMatch,
    Fusion,
    MediaPoint,
    SearchFilter,
    SearchHit,
    StoreStats,
)
from mediarec.server.store.filters import AnyOf, FilterPlan, IntRange, plan_filter
from mediarec.server.store.points import (
    FUSION_TIE_SLACK,
    as_float32,
    attach_frames,
    check_frames,
    check_vector,
    check_vector_name,
    checked_vectors,
    frame_match,
    frame_payloads,
    frames_of,
    media_payload,
    query_limits,
    settle_fused_ties,
    vectors_of,
    video_ids,
    with_keys,
)


class StoredPoint(Protocol):
    """A point as an engine returns it from a read (Qdrant Edge's and qdrant-client's both fit)."""

    @property
    def payload(self) -> dict[str, Any] | None: ...

    @property
    def vector(self) -> Any: ...


class ScoredStoredPoint(Protocol):
    """A point as an engine returns it from a search."""

    @property
    def payload(self) -> dict[str, Any] | None: ...

    @property
    def score(self) -> float: ...


@dataclass(frozen=True)
class PreparedPoint:
    """A checked point ready for an engine: its point id, named vectors and stored payload."""

    point_id: str
    vectors: dict[str, Any]  # name -> list of floats (the engines' own element types differ)
    payload: dict[str, Any]


@dataclass(frozen=True)
class BatchQuery:
    """Checked nearest-neighbour queries on one named vector, with one limit each."""

    vector_name: str
    vectors: list[np.ndarray]
    limits: list[int]
    plan: FilterPlan | None
    exact: bool
    with_payload: bool
    hnsw_ef: int | None  # None: the store's own beam


@dataclass(frozen=True)
class FusedQuery:
    """Checked (vector name, query vector) rankings, fused by reciprocal rank."""

    rankings: list[tuple[str, np.ndarray]]  # a name may repeat: each entry is one ranking
    depth: int  # hits each ranking contributes before fusion
    limit: int
    plan: FilterPlan | None
    rrf_k: int
    weights: list[float] | None  # one per ranking; None: all equal


@dataclass(frozen=True)
class Page:
    """One page of media points in ``created_at`` order."""

    plan: FilterPlan | None
    limit: int
    newest_first: bool
    payload: Literal[True] | list[str]  # True: all of it


class VectorStore(abc.ABC):
    """Media vectors and payloads in Qdrant: one collection per encoder model.

    ``ensure_collection`` binds the store to the model's collection; every other data call
    needs it first (else :class:`CollectionNotReadyError`). Writes return once durable.
    """

    engine: str

    @property
    @abc.abstractmethod
    def collection(self) -> str:
        """The bound collection's name ("" before ``ensure_collection``)."""

    @abc.abstractmethod
    def ensure_collection(self, model_id: str, dims: Mapping[str, int]) -> None:
        """Create or open the collection of ``model_id`` with these named-vector dims."""

    def upsert(self, points: Sequence[MediaPoint]) -> None:
        """Insert or overwrite media points (idempotent by media_id)."""
        dims = self._ready_dims()
        if not points:
            return
        self._write_media(
            [
                PreparedPoint(
                    schema.media_point_id(p.media_id),
                    {n: v.tolist() for n, v in checked_vectors(p, dims).items()},
                    media_payload(p),
                )
                for p in points
            ]
        )

    def upsert_frames(
        self,
        media_id: str,
        frame_vectors: np.ndarray,
        timestamps_s: Sequence[float],
        payload: Mapping[str, Any] | None = None,
    ) -> None:
        """Replace the frame points of a video with ``frame_vectors`` (n, visual dim)."""
        dims = self._ready_dims()
        vectors = check_frames(frame_vectors, timestamps_s, dims[schema.VISUAL], media_id)
        payloads = frame_payloads(media_id, timestamps_s, payload)
        frames = [
            PreparedPoint(
                schema.frame_point_id(media_id, i),
                {schema.VISUAL: vectors[i].tolist()},
                payloads[i],
            )
            for i in range(len(payloads))
        ]
        # Upsert first, then drop frames past the new count: a crash in between leaves extra
        # frames of the old sampling, never a video without frames.
        stale = FilterPlan(
            must=(
                AnyOf(schema.MEDIA_ID, (media_id,)),
                IntRange(schema.FRAME_INDEX, len(frames), None),
            ),
            must_not=(),
        )
        self._replace_frames(frames, stale)

    def get(self, media_ids: Sequence[str], *, with_vectors: bool = False) -> dict[str, MediaPoint]:
        """Stored points by media_id; unknown ids are absent from the result."""
        self._ready_dims()
        if not media_ids:
            return {}
        records = self._retrieve(_point_ids(media_ids), True, with_vectors)
        return {
            r.payload[schema.MEDIA_ID]: MediaPoint(
                media_id=r.payload[schema.MEDIA_ID],
                vectors=vectors_of(r.vector) if with_vectors else {},
                payload=r.payload,
            )
            for r in records
            if r.payload
        }

    def get_frames(self, media_id: str) -> list[Frame]:
        """The stored frames of a video, in frame order (empty for non-videos)."""
        self._ready_dims()
        return frames_of(r.payload for r in self._frame_points(_of_media((media_id,))))

    def delete(self, media_ids: Sequence[str]) -> None:
        """Delete media points and their frames; unknown ids are ignored."""
        self._ready_dims()
        if media_ids:
            self._delete_media(_point_ids(media_ids), _of_media(tuple(media_ids)))

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
        hits = self.search_batch(
            vector_name, [query_vector], k, filter, exact=exact, with_payload=with_payload
        )[0]
        wanted = match_frames and vector_name == schema.VISUAL
        return self._with_best_frames(hits, query_vector, wanted)

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
        dims = self._ready_dims()
        limits = query_limits(k, len(query_vectors))
        dim = check_vector_name(vector_name, dims)
        plan = plan_filter(filter)
        vectors = [check_vector(q, dim, "query") for q in query_vectors]
        if not vectors:
            return []
        return self._query_batch(
            BatchQuery(vector_name, vectors, limits, plan, exact, with_payload, hnsw_ef)
        )

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
        dims = self._ready_dims()
        plan = plan_filter(filter)
        rankings = [
            (name, check_vector(query_vector, check_vector_name(name, dims), "query"))
            for name in vector_names
        ]
        weights = fusion.weights_for(len(rankings))
        depth = max(k, fusion.depth)
        query = FusedQuery(rankings, depth, k + FUSION_TIE_SLACK, plan, fusion.rrf_k, weights)
        hits = settle_fused_ties(self._query_fused(query), k)
        return self._with_best_frames(
            hits, query_vector, match_frames and schema.VISUAL in vector_names
        )

    def search_frames(
        self, query_vector: np.ndarray, media_ids: Sequence[str]
    ) -> dict[str, FrameMatch]:
        """The best-matching frame of each video in ``media_ids`` (videos without frames absent)."""
        dims = self._ready_dims()
        if not media_ids:
            return {}
        query = check_vector(query_vector, dims[schema.VISUAL], "query")
        nearest = self._nearest_frames(query, [_of_media((m,)) for m in media_ids])
        return {
            media_id: frame_match(points[0].payload, points[0].score)
            for media_id, points in zip(media_ids, nearest, strict=True)
            if points and points[0].payload
        }

    def retrieve_vectors(self, media_ids: Sequence[str], vector_name: str) -> dict[str, np.ndarray]:
        """Stored vectors by media_id; ids without that vector are absent."""
        check_vector_name(vector_name, self._ready_dims())
        if not media_ids:
            return {}
        records = self._retrieve(_point_ids(media_ids), [schema.MEDIA_ID], [vector_name])
        return {
            r.payload[schema.MEDIA_ID]: as_float32(r.vector[vector_name])
            for r in records
            if r.payload and isinstance(r.vector, dict) and vector_name in r.vector
        }

    def count(self, filter: SearchFilter | None = None) -> int:
        """Number of media points (matching ``filter``)."""
        self._ready_dims()
        return self._count(plan_filter(filter))

    def iter_ids(self, filter: SearchFilter | None = None, batch_size: int = 1000) -> Iterator[str]:
        """Every stored media_id (matching ``filter``), in no particular order."""
        yield from (p.media_id for p in self.iter_payloads((), filter, batch_size))

    def iter_payloads(
        self,
        payload_keys: Sequence[str],
        filter: SearchFilter | None = None,
        batch_size: int = 1000,
    ) -> Iterator[MediaPoint]:
        """Every media point (matching ``filter``) with only these payload keys and its media_id,
        no vectors, in no particular order; read page by page, so memory stays bounded."""
        self._ready_dims()
        records = self._scroll(plan_filter(filter), with_keys(payload_keys), batch_size)
        yield from _payload_points(records)

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
        self._ready_dims()
        keys: Literal[True] | list[str] = True if payload_keys is None else with_keys(payload_keys)
        records = self._page(Page(plan_filter(filter), limit, newest_first, keys))
        return list(_payload_points(records))

    @abc.abstractmethod
    def request_optimize(self) -> None:
        """Ask for an index build in the background now (a no-op where the engine does it)."""

    @abc.abstractmethod
    def wait_optimized(self, timeout: float | None = None) -> bool:
        """Block until no background index build is running or pending; False on timeout."""

    @abc.abstractmethod
    def stats(self) -> StoreStats:
        """Point, frame and index counts of the bound collection."""

    @abc.abstractmethod
    def content_version(self) -> int | None:
        """A number that changes after every write (media, frames, a switch of collection),
        or None where writers this process does not see may change the collection (a Qdrant
        server).

        Readers that keep search results (the recommender's per-user candidates) read it
        before they search and reuse the results only while it is unchanged.
        """

    @abc.abstractmethod
    def close(self) -> None:
        """Release files, locks and connections. Idempotent."""

    def _with_best_frames(
        self, hits: list[SearchHit], query_vector: np.ndarray, wanted: bool
    ) -> list[SearchHit]:
        """``hits`` with each video's best frame for ``query_vector`` when ``wanted`` (a search
        that asked for frames and read the visual vectors)."""
        if not (wanted and hits):
            return hits
        return attach_frames(hits, self.search_frames(query_vector, video_ids(hits)))

    # ------------------------------------------------------- engine primitives
    # Each runs only on a bound store: the public method has called _ready_dims() first.

    @abc.abstractmethod
    def _ready_dims(self) -> Mapping[str, int]:
        """The bound collection's named-vector dims, else CollectionNotReadyError."""

    @abc.abstractmethod
    def _write_media(self, points: list[PreparedPoint]) -> None:
        """Upsert media points (a non-empty list)."""

    @abc.abstractmethod
    def _replace_frames(self, frames: list[PreparedPoint], stale: FilterPlan) -> None:
        """Upsert ``frames`` (maybe none), then delete the frame points ``stale`` matches."""

    @abc.abstractmethod
    def _delete_media(self, point_ids: list[str], frames_of_media: FilterPlan) -> None:
        """Delete these media points and the frame points ``frames_of_media`` matches."""

    @abc.abstractmethod
    def _retrieve(
        self, point_ids: list[str], payload: bool | list[str], vectors: bool | list[str]
    ) -> Sequence[StoredPoint]:
        """Media points by point id (a non-empty list), with this much payload and vector."""

    @abc.abstractmethod
    def _frame_points(self, plan: FilterPlan) -> Sequence[StoredPoint]:
        """The frame points ``plan`` matches (one video's, up to the adapter's cap on frames
        per video), with their index and timestamp."""

    @abc.abstractmethod
    def _query_batch(self, query: BatchQuery) -> list[list[SearchHit]]:
        """The hits of each query, in query order."""

    @abc.abstractmethod
    def _query_fused(self, query: FusedQuery) -> list[SearchHit]:
        """The engine's fused ranking, ``query.limit`` hits at most, best first."""

    @abc.abstractmethod
    def _nearest_frames(
        self, query: np.ndarray, plans: list[FilterPlan]
    ) -> Sequence[Sequence[ScoredStoredPoint]]:
        """The nearest frame point within each plan (one video each), exactly, in plan order."""

    @abc.abstractmethod
    def _count(self, plan: FilterPlan | None) -> int:
        """Media points ``plan`` matches, exactly."""

    @abc.abstractmethod
    def _scroll(
        self, plan: FilterPlan | None, payload_keys: list[str], batch_size: int
    ) -> Iterator[StoredPoint]:
        """Every media point ``plan`` matches, read ``batch_size`` at a time."""

    @abc.abstractmethod
    def _page(self, page: Page) -> Sequence[StoredPoint]:
        """One page of media points in ``created_at`` order."""


def _payload_points(records: Iterable[StoredPoint]) -> Iterator[MediaPoint]:
    """Read points as media points without vectors (a point without payload is skipped)."""
    return (
        MediaPoint(media_id=r.payload[schema.MEDIA_ID], payload=r.payload)
        for r in records
        if r.payload
    )


def _point_ids(media_ids: Sequence[str]) -> list[str]:
    return [schema.media_point_id(m) for m in media_ids]


def _of_media(media_ids: tuple[str, ...]) -> FilterPlan:
    """The frame points of these videos."""
    return FilterPlan(must=(AnyOf(schema.MEDIA_ID, media_ids),), must_not=())
