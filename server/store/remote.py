"""The qdrant-client adapter: a Qdrant server or cluster (``--qdrant-url``).

qdrant-client's local mode (``:memory:`` or a path) speaks the same API through a brute-force
Python engine; it is used only as the congruence partner in tests, never to serve.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np
from qdrant_client import QdrantClient
from qdrant_client import models as qm

from mediarec.server.store import schema
from mediarec.server.store.base import (
    CollectionNotReadyError,
    Fusion,
    SearchHit,
    StoreError,
    StoreLockedError,
    StoreStats,
)
from mediarec.server.store.contract import BatchQuery, FusedQuery, Page, PreparedPoint, VectorStore
from mediarec.server.store.filters import AnyOf, Condition, FilterPlan, IdIn, translated
from mediarec.server.store.points import check_dims, compare_dims

logger = logging.getLogger(__name__)

_UPSERT_CHUNK = 256
_MAX_FRAMES_PER_VIDEO = 10_000
_HIT_KEYS = [schema.MEDIA_ID, schema.MEDIA_TYPE]
_INDEX_TYPES = {
    schema.IndexKind.KEYWORD: qm.PayloadSchemaType.KEYWORD,
    schema.IndexKind.INTEGER: qm.PayloadSchemaType.INTEGER,
}


class RemoteStore(VectorStore):
    """:class:`~mediarec.server.store.contract.VectorStore` through qdrant-client."""

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

    def _ready_dims(self) -> Mapping[str, int]:
        if not self._collection:
            raise CollectionNotReadyError("call ensure_collection(model_id, dims) first")
        return self._dims

    # ------------------------------------------------------------------ writes

    def _write_options(self) -> dict[str, Any]:
        # Acknowledged once applied on the leader of every shard (a local instance ignores it).
        return {} if self._local else {"ordering": qm.WriteOrdering.STRONG}

    def _write_media(self, points: list[PreparedPoint]) -> None:
        structs = [_struct(p) for p in points]
        with _store_errors():
            for i in range(0, len(structs), _UPSERT_CHUNK):
                self._client.upsert(
                    self._collection,
                    structs[i : i + _UPSERT_CHUNK],
                    wait=True,
                    **self._write_options(),
                )

    def _replace_frames(self, frames: list[PreparedPoint], stale: FilterPlan) -> None:
        with _store_errors():
            if frames:
                self._client.upsert(
                    self._frames, [_struct(f) for f in frames], wait=True, **self._write_options()
                )
            self._delete_where(stale)

    def _delete_media(self, point_ids: list[str], frames_of_media: FilterPlan) -> None:
        ids: list[qm.ExtendedPointId] = list(point_ids)
        with _store_errors():
            self._client.delete(
                self._collection, qm.PointIdsList(points=ids), wait=True, **self._write_options()
            )
            self._delete_where(frames_of_media)

    def _delete_where(self, frames_plan: FilterPlan) -> None:
        selector = qm.FilterSelector(filter=_filter_of(frames_plan))
        self._client.delete(self._frames, selector, wait=True, **self._write_options())

    # ------------------------------------------------------------------- reads

    def _retrieve(
        self, point_ids: list[str], payload: bool | list[str], vectors: bool | list[str]
    ) -> list[qm.Record]:
        ids: list[qm.ExtendedPointId] = list(point_ids)
        with _store_errors():
            return self._client.retrieve(
                self._collection, ids, with_payload=payload, with_vectors=vectors
            )

    def _frame_points(self, plan: FilterPlan) -> list[qm.Record]:
        with _store_errors():
            records, _ = self._client.scroll(
                self._frames,
                scroll_filter=_filter(plan),
                limit=_MAX_FRAMES_PER_VIDEO,
                with_payload=[schema.FRAME_INDEX, schema.FRAME_TIMESTAMP_S],
                with_vectors=False,
            )
        return records

    def _query_batch(self, query: BatchQuery) -> list[list[SearchHit]]:
        query_filter = _filter(query.plan)
        requests = [
            qm.QueryRequest(
                query=vector.tolist(),
                using=query.vector_name,
                limit=limit,
                filter=query_filter,
                params=self._params(query.exact, limit, query.hnsw_ef),
                with_payload=True if query.with_payload else list(_HIT_KEYS),
                with_vector=False,
            )
            for vector, limit in zip(query.vectors, query.limits, strict=True)
        ]
        with _store_errors():
            responses = self._client.query_batch_points(self._collection, requests)
        return [_hits(r.points) for r in responses]

    def _query_fused(self, query: FusedQuery) -> list[SearchHit]:
        query_filter = _filter(query.plan)
        prefetches = [
            qm.Prefetch(
                query=vector.tolist(),
                using=name,
                limit=query.depth,
                filter=query_filter,
                params=self._params(False, query.depth, None),
            )
            for name, vector in query.rankings
        ]
        weights = query.weights
        if query.rrf_k == Fusion().rrf_k and (weights is None or set(weights) == {1.0}):
            # Plain RRF (Qdrant 1.10 and later); a weighted or other-k one needs a newer server.
            fused: qm.FusionQuery | qm.RrfQuery = qm.FusionQuery(fusion=qm.Fusion.RRF)
        else:
            fused = qm.RrfQuery(rrf=qm.Rrf(k=query.rrf_k, weights=weights))
        with _store_errors():
            response = self._client.query_points(
                self._collection,
                prefetch=prefetches,
                query=fused,
                limit=query.limit,
                with_payload=True,
                with_vectors=False,
            )
        return _hits(response.points)

    def _params(self, exact: bool, k: int, hnsw_ef: int | None) -> qm.SearchParams | None:
        if self._local:
            return None  # local mode is always exact and warns about search params
        if exact:
            return qm.SearchParams(exact=True)
        return qm.SearchParams(hnsw_ef=max(hnsw_ef or self._hnsw_ef, k))

    def _nearest_frames(
        self, query: np.ndarray, plans: list[FilterPlan]
    ) -> list[list[qm.ScoredPoint]]:
        vector = query.tolist()
        requests = [
            qm.QueryRequest(
                query=vector,
                using=schema.VISUAL,
                limit=1,
                filter=_filter(plan),
                params=None if self._local else qm.SearchParams(exact=True),
                with_payload=[schema.FRAME_INDEX, schema.FRAME_TIMESTAMP_S],
                with_vector=False,
            )
            for plan in plans
        ]
        with _store_errors():
            responses = self._client.query_batch_points(self._frames, requests)
        return [r.points for r in responses]

    def _count(self, plan: FilterPlan | None) -> int:
        with _store_errors():
            result = self._client.count(self._collection, count_filter=_filter(plan), exact=True)
        return int(result.count)

    def _scroll(
        self, plan: FilterPlan | None, payload_keys: list[str], batch_size: int
    ) -> Iterator[qm.Record]:
        scroll_filter = _filter(plan)
        offset: Any = None
        while True:
            with _store_errors():
                records, offset = self._client.scroll(
                    self._collection,
                    scroll_filter=scroll_filter,
                    limit=batch_size,
                    offset=offset,
                    with_payload=payload_keys,
                    with_vectors=False,
                )
            yield from records
            if offset is None:
                return

    def _page(self, page: Page) -> list[qm.Record]:
        direction = qm.Direction.DESC if page.newest_first else qm.Direction.ASC
        with _store_errors():
            records, _ = self._client.scroll(
                self._collection,
                scroll_filter=_filter(page.plan),
                limit=page.limit,
                with_payload=page.payload,
                with_vectors=False,
                order_by=qm.OrderBy(key=schema.CREATED_AT, direction=direction),
            )
        return records

    # --------------------------------------------------------------- lifecycle

    def request_optimize(self) -> None:
        """A Qdrant server indexes in its own background optimizer; nothing to do."""

    def wait_optimized(self, timeout: float | None = None) -> bool:
        return True

    def stats(self) -> StoreStats:
        self._ready_dims()
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
        """Delete the bound collection and its frames (tests and operators; not in the contract)."""
        self._ready_dims()
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


def _struct(point: PreparedPoint) -> qm.PointStruct:
    return qm.PointStruct(id=point.point_id, vector=point.vectors, payload=point.payload)


def _hits(points: list[qm.ScoredPoint]) -> list[SearchHit]:
    return [
        SearchHit(p.payload[schema.MEDIA_ID], float(p.score), p.payload)
        for p in points
        if p.payload
    ]


def _filter(plan: FilterPlan | None) -> qm.Filter | None:
    return None if plan is None else _filter_of(plan)


def _filter_of(plan: FilterPlan) -> qm.Filter:
    must, must_not = translated(plan, _condition)
    return qm.Filter(must=must, must_not=must_not)


def _condition(condition: Condition) -> qm.Condition:
    if isinstance(condition, AnyOf):
        return qm.FieldCondition(key=condition.key, match=qm.MatchAny(any=list(condition.values)))
    if isinstance(condition, IdIn):
        return qm.HasIdCondition(has_id=list(condition.point_ids))
    bounds = qm.Range(gte=condition.gte, lte=condition.lte)
    return qm.FieldCondition(key=condition.key, range=bounds)
