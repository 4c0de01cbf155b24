"""Vector storage over Qdrant: the embedded Qdrant Edge engine, or a Qdrant server or cluster.

This package exports the :class:`VectorStore` contract and its types only, so importing them
loads no engine. ``mediarec.server.store.factory.open_store`` picks an adapter
(``mediarec.server.store.edge`` or ``mediarec.server.store.remote``); callers then
``ensure_collection(model_id, dims)`` and use the contract. See docs/storage.md for the layout
and the trade-offs.
"""

from __future__ import annotations

from mediarec.server.store.base import (
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
)
from mediarec.server.store.contract import VectorStore

# The embedded store's folder under the data dir.
EDGE_SUBDIR = "qdrant-edge"

__all__ = [
    "EDGE_SUBDIR",
    "CollectionNotReadyError",
    "DimensionMismatchError",
    "Frame",
    "FrameMatch",
    "Fusion",
    "InvalidVectorError",
    "MediaPoint",
    "SearchFilter",
    "SearchHit",
    "StoreError",
    "StoreLockedError",
    "StoreStats",
    "VectorStore",
]
