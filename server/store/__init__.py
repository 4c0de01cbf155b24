"""Vector storage over Qdrant: the embedded Qdrant Edge engine, or a Qdrant server or cluster.

``open_store`` picks the engine; callers then ``ensure_collection(model_id, dims)`` and use the
:class:`VectorStore` Protocol. See docs/storage.md for the layout and the trade-offs.
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import TYPE_CHECKING, Any

from server.store.base import (
    CollectionNotReadyError,
    DimensionMismatchError,
    Frame,
    FrameMatch,
    Fusion,
    InvalidVectorError,
    MediaPoint,
    SearchFilter,
    SearchHit,
    StoreError,
    StoreLockedError,
    StoreStats,
    VectorStore,
)

if TYPE_CHECKING:
    from server.store.edge import EdgeStore, EdgeTuning
    from server.store.remote import RemoteStore

# The adapters load their engines (qdrant_edge, qdrant_client): importing a type from here
# must not, so they are imported when first named.
_ADAPTERS = {
    "EdgeStore": "server.store.edge",
    "EdgeTuning": "server.store.edge",
    "RemoteStore": "server.store.remote",
}


def __getattr__(name: str) -> Any:
    module = _ADAPTERS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)


EDGE_SUBDIR = "qdrant-edge"

__all__ = [
    "EDGE_SUBDIR",
    "CollectionNotReadyError",
    "DimensionMismatchError",
    "EdgeStore",
    "EdgeTuning",
    "Frame",
    "FrameMatch",
    "Fusion",
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
        from server.store.remote import RemoteStore

        return RemoteStore.connect(qdrant_url, api_key)
    from server.store.edge import EdgeStore

    return EdgeStore(Path(data_dir) / EDGE_SUBDIR, edge_tuning)
