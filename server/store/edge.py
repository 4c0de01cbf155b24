"""The embedded store: Qdrant Edge (Qdrant's Rust engine in-process) under the data dir.

Layout under ``<store dir>`` (see docs/storage.md)::

    LOCK                               fcntl lock: one process at a time
    <collection>/collection.json       model id and named-vector dims
    <collection>/CURRENT, gen-NNNNNN/  media points: named vectors visual + caption
    <collection>__frames/...           one point per sampled video frame (visual only)
"""

from __future__ import annotations

import contextlib
import itertools
import json
import logging
import os
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import qdrant_edge as qe

from mediarec.server.store import schema
from mediarec.server.store.base import CollectionNotReadyError, SearchHit, StoreStats
from mediarec.server.store.contract import BatchQuery, FusedQuery, Page, PreparedPoint, VectorStore
from mediarec.server.store.edge_shard import ManagedShard, ShardPolicy
from mediarec.server.store.filters import AnyOf, Condition, FilterPlan, IdIn, translated
from mediarec.server.store.hit_keys import HitKeys
from mediarec.server.store.lock import DirLock
from mediarec.server.store.points import check_dims, compare_dims

logger = logging.getLogger(__name__)

META_FILE = "collection.json"
_LAYOUT_VERSION = 1
_UPSERT_CHUNK = 1000
_MAX_FRAMES_PER_VIDEO = 10_000
_SCROLL_BATCH = 5_000
# Payload a hit always needs, even when the caller asks for none: its id and whether it has frames.
_HIT_KEYS = [schema.MEDIA_ID, schema.MEDIA_TYPE]


@dataclass(frozen=True)
class EdgeTuning:
    """Index and background-build settings. HNSW and thresholds apply when a shard is created."""

    hnsw_m: int = 16
    hnsw_ef_construct: int = 100
    hnsw_ef: int = 256  # search-time beam; recall vs latency measured in docs/storage.md
    full_scan_threshold_kb: int = 10_000  # below this, filtered searches scan instead of HNSW
    indexing_threshold_kb: int = 10_000  # a segment gets HNSW once its vectors exceed this
    build_after_writes: int | None = None  # None: points that fill indexing_threshold_kb
    frames_build_after_writes: int = 100_000  # frames get no HNSW; builds only vacuum them
    build_niceness: int = 10
    full_flush_interval_s: float = 5.0  # segments persisted at most this often; WAL every write
    max_indexing_threads: int = 0  # 0: Edge picks


class EdgeStore(VectorStore):
    """:class:`~mediarec.server.store.contract.VectorStore` on Qdrant Edge, one process per store
    dir."""

    engine = "qdrant-edge"

    def __init__(self, store_dir: Path, tuning: EdgeTuning | None = None) -> None:
        self._dir = store_dir
        self._tuning = tuning or EdgeTuning()
        self._lock = DirLock(store_dir)
        self._lock.acquire()
        self._collection = ""
        self._dims: dict[str, int] = {}
        self._media: ManagedShard | None = None
        self._frames: ManagedShard | None = None
        self._hit_keys = HitKeys()  # searches skip Edge's payload reads (see hit_keys.py)
        # Only this process writes (the directory lock), so counting its writes tells readers
        # whether anything changed. Each write's number is set after the write is visible.
        self._write_numbers = itertools.count(1)
        self._content_version = 0

    @property
    def collection(self) -> str:
        return self._collection

    def content_version(self) -> int:
        return self._content_version

    @contextlib.contextmanager
    def _writing(self) -> Iterator[None]:
        """Around every write: a new content version is set after it, also when it failed
        part-way (part of it may be applied; an extra change of version is harmless)."""
        try:
            yield
        finally:
            self._content_version = next(self._write_numbers)

    # -------------------------------------------------------------- collection

    def ensure_collection(self, model_id: str, dims: Mapping[str, int]) -> None:
        check_dims(dims)
        name = schema.collection_name(model_id)
        if name == self._collection:
            compare_dims(name, model_id, self._dims, dims)
            return
        with self._writing():  # another collection: nothing read from the last one holds
            self._close_shards()
        meta_path = self._dir / name / META_FILE
        if meta_path.exists():
            stored = json.loads(meta_path.read_text())["dims"]
            compare_dims(name, model_id, stored, dims)
        else:
            _write_json(
                meta_path, {"model_id": model_id, "dims": dict(dims), "layout": _LAYOUT_VERSION}
            )
        tuning = self._tuning
        self._media = ManagedShard.open(
            self._dir / name,
            self._media_config(dims),
            schema.MEDIA_INDEXES,
            self._policy(self._build_after_writes(dims)),
        )
        self._frames = ManagedShard.open(
            self._dir / schema.frames_collection_name(name),
            qe.EdgeConfig(
                vectors={schema.VISUAL: _vector_params(dims[schema.VISUAL])},
                # Frames are only ever searched within a few videos (payload index + scan),
                # so they get no HNSW; their builds merge and vacuum only.
                optimizers=qe.EdgeOptimizersConfig(indexing_threshold=0),
            ),
            schema.FRAME_INDEXES,
            self._policy(tuning.frames_build_after_writes),
        )
        self._collection, self._dims = name, dict(dims)
        self._load_hit_keys()
        logger.info("opened collection %s (model %s, dims %s)", name, model_id, dict(dims))
        if self._unindexed_vectors() >= self._build_after_writes(dims):
            self._media.request_build()

    def _media_config(self, dims: Mapping[str, int]) -> qe.EdgeConfig:
        t = self._tuning
        return qe.EdgeConfig(
            vectors={vector: _vector_params(dim) for vector, dim in dims.items()},
            hnsw_config=qe.HnswIndexConfig(
                m=t.hnsw_m,
                ef_construct=t.hnsw_ef_construct,
                full_scan_threshold=t.full_scan_threshold_kb,
                max_indexing_threads=t.max_indexing_threads,
            ),
            optimizers=qe.EdgeOptimizersConfig(indexing_threshold=t.indexing_threshold_kb),
        )

    def _policy(self, build_after_writes: int) -> ShardPolicy:
        return ShardPolicy(
            build_after_writes=build_after_writes,
            build_niceness=self._tuning.build_niceness,
            full_flush_interval_s=self._tuning.full_flush_interval_s,
        )

    def _build_after_writes(self, dims: Mapping[str, int]) -> int:
        if self._tuning.build_after_writes is not None:
            return self._tuning.build_after_writes
        return max(1, self._tuning.indexing_threshold_kb * 1024 // (4 * max(dims.values())))

    def _unindexed_vectors(self) -> int:
        with self._shards()[0].reading() as shard:
            stored = sum(
                shard.count(qe.CountRequest(filter=qe.Filter(must=[qe.HasVectorCondition(v)])))
                for v in self._dims
            )
            return stored - shard.info().indexed_vectors_count

    def _load_hit_keys(self) -> None:
        records = self._scroll(None, list(_HIT_KEYS), _SCROLL_BATCH)
        self._hit_keys.replace_all((r.id, r.payload) for r in records if r.payload)

    def _shards(self) -> tuple[ManagedShard, ManagedShard]:
        if self._media is None or self._frames is None:
            raise CollectionNotReadyError("call ensure_collection(model_id, dims) first")
        return self._media, self._frames

    def _ready_dims(self) -> Mapping[str, int]:
        self._shards()
        return self._dims

    # ------------------------------------------------------------------ writes

    def _write_media(self, points: list[PreparedPoint]) -> None:
        media, _ = self._shards()
        payloads = [(p.point_id, p.payload) for p in points]
        edge_points = [_point(p) for p in points]
        operations = [
            qe.UpdateOperation.upsert_points(edge_points[i : i + _UPSERT_CHUNK])
            for i in range(0, len(edge_points), _UPSERT_CHUNK)
        ]
        with self._writing():
            media.write(operations, len(edge_points), lambda: self._hit_keys.put(payloads))

    def _replace_frames(self, frames: list[PreparedPoint], stale: FilterPlan) -> None:
        _, frame_shard = self._shards()
        operations = [qe.UpdateOperation.delete_points_by_filter(_edge_filter_of(stale))]
        if frames:
            operations.insert(0, qe.UpdateOperation.upsert_points([_point(f) for f in frames]))
        with self._writing():
            frame_shard.write(operations, len(frames))

    def _delete_media(self, point_ids: list[str], frames_of_media: FilterPlan) -> None:
        media, frames = self._shards()
        ids: list[qe.PointId] = list(point_ids)
        of_media = _edge_filter_of(frames_of_media)
        with self._writing():
            media.write(
                [qe.UpdateOperation.delete_points(ids)], len(ids),
                lambda: self._hit_keys.remove(ids),
            )  # fmt: skip
            frames.write([qe.UpdateOperation.delete_points_by_filter(of_media)], len(ids))

    # ------------------------------------------------------------------- reads

    def _retrieve(
        self, point_ids: list[str], payload: bool | list[str], vectors: bool | list[str]
    ) -> list[qe.Record]:
        media, _ = self._shards()
        ids: list[qe.PointId] = list(point_ids)
        with media.reading() as shard:
            return shard.retrieve(ids, payload, vectors)

    def _frame_points(self, plan: FilterPlan) -> list[qe.Record]:
        _, frames = self._shards()
        request = qe.ScrollRequest(
            limit=_MAX_FRAMES_PER_VIDEO,
            filter=_edge_filter(plan),
            with_payload=[schema.FRAME_INDEX, schema.FRAME_TIMESTAMP_S],
            with_vector=False,
        )
        with frames.reading() as shard:
            records, _ = shard.scroll(request)
        return records

    def _query_batch(self, query: BatchQuery) -> list[list[SearchHit]]:
        media, _ = self._shards()
        edge_filter = _edge_filter(query.plan)
        beam = query.hnsw_ef or self._tuning.hnsw_ef
        requests = [
            qe.QueryRequest(
                limit=limit,
                query=qe.Query.Nearest(vector.tolist(), using=query.vector_name),
                filter=edge_filter,
                params=(
                    qe.SearchParams(exact=True)
                    if query.exact
                    else qe.SearchParams(hnsw_ef=max(beam, limit))
                ),
                with_payload=query.with_payload,
                with_vector=False,
            )
            for vector, limit in zip(query.vectors, query.limits, strict=True)
        ]
        with media.reading() as shard:
            if len(requests) == 1:
                results = [shard.query(requests[0])]
            else:
                results = shard.query_batch(qe.QueryBatchRequest(requests))
            if not query.with_payload:
                payloads = self._hit_payloads(shard, [p.id for points in results for p in points])
                return [
                    [_hit(payloads[p.id], p.score) for p in points if p.id in payloads]
                    for points in results
                ]
        return [[_hit(p.payload or {}, p.score) for p in points if p.payload] for points in results]

    def _query_fused(self, query: FusedQuery) -> list[SearchHit]:
        media, _ = self._shards()
        edge_filter = _edge_filter(query.plan)
        prefetches = [
            qe.Prefetch(
                limit=query.depth,
                query=qe.Query.Nearest(vector.tolist(), using=name),
                filter=edge_filter,
                params=qe.SearchParams(hnsw_ef=max(self._tuning.hnsw_ef, query.depth)),
            )
            for name, vector in query.rankings
        ]
        rrf = qe.Fusion.Rrf(k=query.rrf_k, weights=query.weights)
        request = qe.QueryRequest(
            limit=query.limit,
            prefetches=prefetches,
            # The stub types Fusion as the query, but the engine takes its members (Rrf).
            query=rrf,  # type: ignore[arg-type]
            with_payload=True,
            with_vector=False,
        )
        with media.reading() as shard:
            points = shard.query(request)
        return [_hit(p.payload, p.score) for p in points if p.payload]

    def _hit_payloads(
        self, shard: qe.EdgeShard, point_ids: Sequence[qe.PointId]
    ) -> dict[qe.PointId, dict[str, Any]]:
        """{media_id, media_type} of each point, from memory; a point the map does not know
        yet (a search between a write and its map update) is read from the store, and one
        deleted since is left out."""
        found: dict[qe.PointId, dict[str, Any]] = {}
        missing = []
        for point_id in point_ids:
            payload = self._hit_keys.payload(point_id)
            if payload is None:
                missing.append(point_id)
            else:
                found[point_id] = payload
        if missing:
            records = shard.retrieve(missing, _HIT_KEYS, False)
            self._hit_keys.learn((r.id, r.payload) for r in records if r.payload)
            found |= {r.id: dict(r.payload) for r in records if r.payload}
        return found

    def _nearest_frames(
        self, query: np.ndarray, plans: list[FilterPlan]
    ) -> list[list[qe.ScoredPoint]]:
        _, frames = self._shards()
        vector = query.tolist()
        requests = [
            qe.QueryRequest(
                limit=1,
                query=qe.Query.Nearest(vector, using=schema.VISUAL),
                filter=_edge_filter(plan),
                params=qe.SearchParams(exact=True),
                with_payload=[schema.FRAME_INDEX, schema.FRAME_TIMESTAMP_S],
                with_vector=False,
            )
            for plan in plans
        ]
        with frames.reading() as shard:
            return shard.query_batch(qe.QueryBatchRequest(requests))

    def _count(self, plan: FilterPlan | None) -> int:
        media, _ = self._shards()
        request = qe.CountRequest(exact=True, filter=_edge_filter(plan))
        with media.reading() as shard:
            return int(shard.count(request))

    def _scroll(
        self, plan: FilterPlan | None, payload_keys: list[str], batch_size: int
    ) -> Iterator[qe.Record]:
        """Every media point ``plan`` matches, page by page (a reader per page)."""
        media, _ = self._shards()
        edge_filter = _edge_filter(plan)
        offset: Any = None
        while True:
            request = qe.ScrollRequest(
                offset=offset,
                limit=batch_size,
                filter=edge_filter,
                with_payload=payload_keys,
                with_vector=False,
            )
            with media.reading() as shard:
                records, offset = shard.scroll(request)
            yield from records
            if offset is None:
                return

    def _page(self, page: Page) -> list[qe.Record]:
        media, _ = self._shards()
        direction = qe.Direction.Desc if page.newest_first else qe.Direction.Asc
        request = qe.ScrollRequest(
            limit=page.limit,
            filter=_edge_filter(page.plan),
            with_payload=page.payload,
            with_vector=False,
            order_by=qe.OrderBy(schema.CREATED_AT, direction),
        )
        with media.reading() as shard:
            records, _ = shard.scroll(request)
        return records

    # --------------------------------------------------------------- lifecycle

    def request_optimize(self) -> None:
        self._shards()[0].request_build()

    def wait_optimized(self, timeout: float | None = None) -> bool:
        media, frames = self._shards()
        return media.wait_idle(timeout) and frames.wait_idle(timeout)

    def stats(self) -> StoreStats:
        media, frames = self._shards()
        with media.reading() as shard:
            info = shard.info()
        with frames.reading() as shard:
            frame_count = shard.info().points_count
        return StoreStats(
            engine=self.engine,
            collection=self._collection,
            points=info.points_count,
            frames=frame_count,
            indexed_vectors=info.indexed_vectors_count,
            optimizing=media.building or frames.building,
        )

    def close(self) -> None:
        self._close_shards()
        self._lock.release()

    def _close_shards(self) -> None:
        for shard in (self._media, self._frames):
            if shard is not None:
                shard.close()
        self._media = self._frames = None
        self._hit_keys.replace_all(())
        self._collection, self._dims = "", {}


def _point(point: PreparedPoint) -> qe.Point:
    return qe.Point(point.point_id, point.vectors, point.payload)


def _hit(payload: dict[str, Any], score: float) -> SearchHit:
    return SearchHit(payload[schema.MEDIA_ID], float(score), payload)


def _vector_params(dim: int) -> qe.EdgeVectorParams:
    return qe.EdgeVectorParams(size=dim, distance=qe.Distance.Cosine)


def _write_json(path: Path, data: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    with open(tmp, "w") as fh:
        json.dump(data, fh)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


def _edge_condition(condition: Condition) -> Any:
    if isinstance(condition, AnyOf):
        return qe.FieldCondition(condition.key, match=qe.MatchAny(list(condition.values)))
    if isinstance(condition, IdIn):
        return qe.HasIdCondition(set(condition.point_ids))
    gte = None if condition.gte is None else float(condition.gte)
    lte = None if condition.lte is None else float(condition.lte)
    return qe.FieldCondition(condition.key, range=qe.RangeFloat(gte=gte, lte=lte))


def _edge_filter(plan: FilterPlan | None) -> qe.Filter | None:
    return None if plan is None else _edge_filter_of(plan)


def _edge_filter_of(plan: FilterPlan) -> qe.Filter:
    must, must_not = translated(plan, _edge_condition)
    return qe.Filter(must=must, must_not=must_not)
