"""Vector storage over Qdrant: the embedded Qdrant Edge engine, or a Qdrant server or cluster.

``open_store`` picks the engine; callers then ``ensure_collection(model_id, dims)`` and use the
:class:`VectorStore` Protocol. See docs/storage.md for the layout and the trade-offs.
"""

from __future__ import annotations

from pathlib import Path

from server.store.base import (
    CollectionNotReadyError,
    DimensionMismatchError,
    Frame,
    FrameMatch,
    InvalidVectorError,
    MediaPoint,
    SearchFilter,
    SearchHit,
    StoreError,
    StoreLockedError,
    StoreStats,
    VectorStore,
)
from server.store.edge import EdgeStore, EdgeTuning
from server.store.remote import RemoteStore

EDGE_SUBDIR = "qdrant-edge"

__all__ = [
    "EDGE_SUBDIR",
    "CollectionNotReadyError",
    "DimensionMismatchError",
    "EdgeStore",
    "EdgeTuning",
    "Frame",
    "FrameMatch",
    "InvalidVectorError",
    "MediaPoint",
    "RemoteStore",
    "SearchFilter",
    "SearchHit",
    "StoreError",
    "StoreLockedError",
    "StoreStats",
    "VectorStore",
    "open_store",
]


def open_store(
    data_dir: Path,
    qdrant_url: str | None = None,
    api_key: str | None = None,
    *,
    edge_tuning: EdgeTuning | None = None,
) -> VectorStore:
    """The Qdrant server at ``qdrant_url`` when given, else Qdrant Edge under ``data_dir``.

    Raises StoreLockedError when another process has the embedded store open.
    """
    if qdrant_url:
        return RemoteStore.connect(qdrant_url, api_key)
    return EdgeStore(Path(data_dir) / EDGE_SUBDIR, edge_tuning)
