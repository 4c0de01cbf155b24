"""The qdrant-client adapter: a Qdrant server or cluster (``--qdrant-url``).

qdrant-client's local mode (``:memory:`` or a path) speaks the same API through a brute-force
Python engine; it is used only as the congruence partner in tests, never to serve.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from qdrant_client import QdrantClient
from qdrant_client import models as qm

from mediarec.server.store import schema
from mediarec.server.store.base import (
    CollectionNotReadyError,
    Frame,
    FrameMatch,
    Fusion,
    MediaPoint,
    SearchFilter,
    SearchHit,
    StoreError,
    StoreLockedError,
    StoreStats,
)
from mediarec.server.store.filters import AnyOf, Condition, FilterPlan, IdIn, IntRange, plan_filter
from mediarec.server.store.points import (
    FUSION_TIE_SLACK,
    SearchesThroughBatch,
    as_float32,
    check_dims,
    check_frames,
    check_vector,
    check_vector_name,
    checked_vectors,
    compare_dims,
    frame_match,
    frame_payloads,
    frames_of,
    media_payload,
    query_limits,
    settle_fused_ties,
    vectors_of,
    with_best_frames,
    with_keys,
)

logger = logging.getLogger(__name__)

_UPSERT_CHUNK = 256
_MAX_FRAMES_PER_VIDEO = 10_000
_HIT_KEYS = [schema.MEDIA_ID, schema.MEDIA_TYPE]
_INDEX_TYPES = {
    schema.IndexKind.KEYWORD: qm.PayloadSchemaType.KEYWORD,
    schema.IndexKind.INTEGER: qm.PayloadSchemaType.INTEGER,
}


class RemoteStore(SearchesThroughBatch):
    """:class:`~mediarec.server.store.base.VectorStore` through qdrant-client."""

    def __init__(self, client: QdrantClient, *, local_mode: bool, hnsw_ef: int = 256) -> None:
        self._client = client
        self._local = local_mode
        self._hnsw_ef = hnsw_ef
        self._collection = ""
        self._frames = ""
        self._dims: dict[str, int] = {}
        self.engine = "qdrant-client-local" if local_mode else "qdrant-server"

    @classmethod
    def connect(
        cls, url: str, api_key: str | None = None, *, timeout_s: int = 30, prefer_grpc: bool = False
    ) -> RemoteStore:
        """A store on the Qdrant server or cluster at ``url``."""
        client = QdrantClient(url=url, api_key=api_key, timeout=timeout_s, prefer_grpc=prefer_grpc)
        return cls(client, local_mode=False)

    @classmethod
    def local(cls, path: Path | None = None) -> RemoteStore:
        """qdrant-client's local mode, in memory or under ``path`` (tests only)."""
        try:
            if path is None:
                client = QdrantClient(location=":memory:")
            else:
                client = QdrantClient(path=str(path))
        except RuntimeError as exc:  # portalocker: the folder is open in another instance
            raise StoreLockedError(str(exc)) from exc
        return cls(client, local_mode=True)

    @property
    def collection(self) -> str:
        return self._collection

    # -------------------------------------------------------------- collection

    def ensure_collection(self, model_id: str, dims: Mapping[str, int]) -> None:
        check_dims(dims)
        name = schema.collection_name(model_id)
        frames = schema.frames_collection_name(name)
        with _store_errors():
            self._ensure(name, model_id, dims, schema.MEDIA_INDEXES)
            frame_dims = {schema.VISUAL: dims[schema.VISUAL]}
            self._ensure(frames, model_id, frame_dims, schema.FRAME_INDEXES)
        self._collection, self._frames, self._dims = name, frames, dict(dims)
        logger.info("using collection %s on %s (model %s)", name, self.engine, model_id)

    def _ensure(
        self,
        name: str,
        model_id: str,
        dims: Mapping[str, int],
        indexes: Mapping[str, schema.IndexKind],
    ) -> None:
        if not self._client.collection_exists(name):
            try:
                self._client.create_collection(
                    name,
                    vectors_config={
                        v: qm.VectorParams(size=d, distance=qm.Distance.COSINE)
                        for v, d in dims.items()
                    },
                )
            except Exception:
                if not self._client.collection_exists(name):
                    raise
                # another server created it first; its dims are checked below
            else:
                self._create_indexes(name, indexes)
        stored = self._client.get_collection(name).config.params.vectors
        if not isinstance(stored, dict):
            raise StoreError(f"collection {name} has no named vectors; it was not made by mediarec")
        compare_dims(name, model_id, {v: p.size for v, p in stored.items()}, dims)

    def _create_indexes(self, name: str, indexes: Mapping[str, schema.IndexKind]) -> None:
        if self._local:
            return  # local mode has no payload indexes (it warns); filters work without them
        for field_name, kind in indexes.items():
            self._client.create_payload_index(name, field_name, _INDEX_TYPES[kind], wait=True)

    def _require(self) -> None:
        if not self._collection:
            raise CollectionNotReadyError("call ensure_collection(model_id, dims) first")

    # ------------------------------------------------------------------ writes

    def _write_options(self) -> dict[str, Any]:
        # Acknowledged once applied on the leader of every shard (a local instance ignores it).
        return {} if self._local else {"ordering": qm.WriteOrdering.STRONG}

    def upsert(self, points: Sequence[MediaPoint]) -> None:
        self._require()
        structs = [
            qm.PointStruct(
                id=schema.media_point_id(p.media_id),
                vector={n: v.tolist() for n, v in checked_vectors(p, self._dims).items()},
                payload=media_payload(p),
            )
            for p in points
        ]
        with _store_errors():
            for i in range(0, len(structs), _UPSERT_CHUNK):
                self._client.upsert(
                    self._collection,
                    structs[i : i + _UPSERT_CHUNK],
                    wait=True,
                    **self._write_options(),
                )

    def upsert_frames(
        self,
        media_id: str,
        frame_vectors: np.ndarray,
        timestamps_s: Sequence[float],
        payload: Mapping[str, Any] | None = None,
    ) -> None:
        self._require()
        vectors = check_frames(frame_vectors, timestamps_s, self._dims[schema.VISUAL], media_id)
        payloads = frame_payloads(media_id, timestamps_s, payload)
        structs = [
            qm.PointStruct(
                id=schema.frame_point_id(media_id, i),
                vector={schema.VISUAL: vectors[i].tolist()},
                payload=payloads[i],
            )
            for i in range(len(payloads))
        ]
        stale = qm.Filter(
            must=[
                _condition(AnyOf(schema.MEDIA_ID, (media_id,))),
                _condition(IntRange(schema.FRAME_INDEX, len(structs), None)),
            ]
        )
        with _store_errors():
            if structs:
                self._client.upsert(self._frames, structs, wait=True, **self._write_options())
            self._client.delete(
                self._frames, qm.FilterSelector(filter=stale), wait=True, **self._write_options()
            )

    def delete(self, media_ids: Sequence[str]) -> None:
        self._require()
        if not media_ids:
            return
        ids: list[qm.ExtendedPointId] = [schema.media_point_id(m) for m in media_ids]
        of_media = qm.Filter(must=[_condition(AnyOf(schema.MEDIA_ID, tuple(media_ids)))])
        with _store_errors():
            self._client.delete(
                self._collection, qm.PointIdsList(points=ids), wait=True, **self._write_options()
            )
            self._client.delete(
                self._frames, qm.FilterSelector(filter=of_media), wait=True, **self._write_options()
            )

    # ------------------------------------------------------------------- reads

    def get(self, media_ids: Sequence[str], *, with_vectors: bool = False) -> dict[str, MediaPoint]:
        records = self._retrieve(media_ids, True, with_vectors)
        return {
            r.payload[schema.MEDIA_ID]: MediaPoint(
                media_id=r.payload[schema.MEDIA_ID],
                vectors=vectors_of(r.vector) if with_vectors else {},
                payload=r.payload,
            )
            for r in records
            if r.payload
        }

    def _retrieve(
        self,
        media_ids: Sequence[str],
        with_payload: bool | list[str],
        with_vectors: bool | list[str],
    ) -> list[qm.Record]:
        self._require()
        if not media_ids:
            return []
        with _store_errors():
            return self._client.retrieve(
                self._collection,
                [schema.media_point_id(m) for m in media_ids],
                with_payload=with_payload,
                with_vectors=with_vectors,
            )

    def get_frames(self, media_id: str) -> list[Frame]:
        self._require()
        with _store_errors():
            records, _ = self._client.scroll(
                self._frames,
                scroll_filter=qm.Filter(must=[_condition(AnyOf(schema.MEDIA_ID, (media_id,)))]),
                limit=_MAX_FRAMES_PER_VIDEO,
                with_payload=[schema.FRAME_INDEX, schema.FRAME_TIMESTAMP_S],
                with_vectors=False,
            )
        return frames_of(r.payload for r in records)

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
        self._require()
        limits = query_limits(k, len(query_vectors))
        dim = check_vector_name(vector_name, self._dims)
        query_filter = _filter(plan_filter(filter))
        requests = [
            qm.QueryRequest(
                query=check_vector(q, dim, "query").tolist(),
                using=vector_name,
                limit=limit,
                filter=query_filter,
                params=self._params(exact, limit, hnsw_ef),
                with_payload=True if with_payload else list(_HIT_KEYS),
                with_vector=False,
            )
            for q, limit in zip(query_vectors, limits, strict=True)
        ]
        if not requests:
            return []
        with _store_errors():
            responses = self._client.query_batch_points(self._collection, requests)
        return [
            [
                SearchHit(p.payload[schema.MEDIA_ID], float(p.score), p.payload)
                for p in r.points
                if p.payload
            ]
            for r in responses
        ]

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
        self._require()
        query_filter = _filter(plan_filter(filter))
        depth = max(k, fusion.depth)
        prefetches = [
            qm.Prefetch(
                query=check_vector(
                    query_vector, check_vector_name(name, self._dims), "query"
                ).tolist(),
                using=name,
                limit=depth,
                filter=query_filter,
                params=self._params(False, depth, None),
            )
            for name in vector_names
        ]
        weights = fusion.weights_for(len(prefetches))
        if fusion.rrf_k == Fusion().rrf_k and (weights is None or set(weights) == {1.0}):
            # Plain RRF (Qdrant 1.10 and later); a weighted or other-k one needs a newer server.
            query: qm.FusionQuery | qm.RrfQuery = qm.FusionQuery(fusion=qm.Fusion.RRF)
        else:
            query = qm.RrfQuery(rrf=qm.Rrf(k=fusion.rrf_k, weights=weights))
        with _store_errors():
            response = self._client.query_points(
                self._collection,
                prefetch=prefetches,
                query=query,
                limit=k + FUSION_TIE_SLACK,
                with_payload=True,
                with_vectors=False,
            )
        hits = settle_fused_ties(
            [
                SearchHit(p.payload[schema.MEDIA_ID], float(p.score), p.payload)
                for p in response.points
                if p.payload
            ],
            k,
        )
        return with_best_frames(
            self, hits, query_vector, match_frames and schema.VISUAL in vector_names
        )

    def _params(self, exact: bool, k: int, hnsw_ef: int | None) -> qm.SearchParams | None:
        if self._local:
            return None  # local mode is always exact and warns about search params
        if exact:
            return qm.SearchParams(exact=True)
        return qm.SearchParams(hnsw_ef=max(hnsw_ef or self._hnsw_ef, k))

    def search_frames(
        self, query_vector: np.ndarray, media_ids: Sequence[str]
    ) -> dict[str, FrameMatch]:
        self._require()
        if not media_ids:
            return {}
        query = check_vector(query_vector, self._dims[schema.VISUAL], "query").tolist()
        requests = [
            qm.QueryRequest(
                query=query,
                using=schema.VISUAL,
                limit=1,
                filter=qm.Filter(must=[_condition(AnyOf(schema.MEDIA_ID, (media_id,)))]),
                params=None if self._local else qm.SearchParams(exact=True),
                with_payload=[schema.FRAME_INDEX, schema.FRAME_TIMESTAMP_S],
                with_vector=False,
            )
            for media_id in media_ids
        ]
        with _store_errors():
            responses = self._client.query_batch_points(self._frames, requests)
        return {
            media_id: frame_match(r.points[0].payload, r.points[0].score)
            for media_id, r in zip(media_ids, responses, strict=True)
            if r.points and r.points[0].payload
        }

    def retrieve_vectors(self, media_ids: Sequence[str], vector_name: str) -> dict[str, np.ndarray]:
        self._require()
        check_vector_name(vector_name, self._dims)
        records = self._retrieve(media_ids, [schema.MEDIA_ID], [vector_name])
        return {
            r.payload[schema.MEDIA_ID]: as_float32(r.vector[vector_name])
            for r in records
            if r.payload and isinstance(r.vector, dict) and vector_name in r.vector
        }

    def count(self, filter: SearchFilter | None = None) -> int:
        self._require()
        with _store_errors():
            result = self._client.count(
                self._collection, count_filter=_filter(plan_filter(filter)), exact=True
            )
        return int(result.count)

    def iter_ids(self, filter: SearchFilter | None = None, batch_size: int = 1000) -> Iterator[str]:
        yield from (p.media_id for p in self.iter_payloads((), filter, batch_size))

    def iter_payloads(
        self,
        payload_keys: Sequence[str],
        filter: SearchFilter | None = None,
        batch_size: int = 1000,
    ) -> Iterator[MediaPoint]:
        self._require()
        scroll_filter = _filter(plan_filter(filter))
        offset: Any = None
        while True:
            with _store_errors():
                records, offset = self._client.scroll(
                    self._collection,
                    scroll_filter=scroll_filter,
                    limit=batch_size,
                    offset=offset,
                    with_payload=with_keys(payload_keys),
                    with_vectors=False,
                )
            yield from (
                MediaPoint(media_id=r.payload[schema.MEDIA_ID], payload=r.payload)
                for r in records
                if r.payload
            )
            if offset is None:
                return

    def list_media(
        self,
        filter: SearchFilter | None = None,
        limit: int = 100,
        *,
        newest_first: bool = True,
        payload_keys: Sequence[str] | None = None,
    ) -> list[MediaPoint]:
        self._require()
        direction = qm.Direction.DESC if newest_first else qm.Direction.ASC
        with _store_errors():
            records, _ = self._client.scroll(
                self._collection,
                scroll_filter=_filter(plan_filter(filter)),
                limit=limit,
                with_payload=True if payload_keys is None else with_keys(payload_keys),
                with_vectors=False,
                order_by=qm.OrderBy(key=schema.CREATED_AT, direction=direction),
            )
        return [
            MediaPoint(media_id=r.payload[schema.MEDIA_ID], payload=r.payload)
            for r in records
            if r.payload
        ]

    # --------------------------------------------------------------- lifecycle

    def request_optimize(self) -> None:
        """A Qdrant server indexes in its own background optimizer; nothing to do."""

    def wait_optimized(self, timeout: float | None = None) -> bool:
        return True

    def stats(self) -> StoreStats:
        self._require()
        with _store_errors():
            info = self._client.get_collection(self._collection)
            frames = self._client.count(self._frames, exact=True).count
        return StoreStats(
            engine=self.engine,
            collection=self._collection,
            points=int(info.points_count or 0),
            frames=int(frames),
            indexed_vectors=int(info.indexed_vectors_count or 0),
            optimizing=info.optimizer_status != qm.OptimizersStatusOneOf.OK,
        )

    def content_version(self) -> None:
        """None: other clients of the server may write, so no reader may keep results."""
        return None

    def drop_collection(self) -> None:
        """Delete the bound collection and its frames (tests and operators; not in the Protocol)."""
        self._require()
        with _store_errors():
            self._client.delete_collection(self._frames)
            self._client.delete_collection(self._collection)
        self._collection, self._frames, self._dims = "", "", {}

    def close(self) -> None:
        self._client.close()


@contextlib.contextmanager
def _store_errors() -> Iterator[None]:
    """Engine and transport failures surface as StoreError; our own typed errors pass."""
    try:
        yield
    except StoreError:
        raise
    except Exception as exc:
        raise StoreError(f"qdrant request failed: {exc}") from exc


def _condition(condition: Condition) -> qm.Condition:
    if isinstance(condition, AnyOf):
        return qm.FieldCondition(key=condition.key, match=qm.MatchAny(any=list(condition.values)))
    if isinstance(condition, IdIn):
        return qm.HasIdCondition(has_id=list(condition.point_ids))
    bounds = qm.Range(gte=condition.gte, lte=condition.lte)
    return qm.FieldCondition(key=condition.key, range=bounds)


def _filter(plan: FilterPlan | None) -> qm.Filter | None:
    if plan is None:
        return None
    return qm.Filter(
        must=[_condition(c) for c in plan.must] or None,
        must_not=[_condition(c) for c in plan.must_not] or None,
    )
