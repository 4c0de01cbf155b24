"""Opens the store an operator configured: the one place that names both adapters."""

from __future__ import annotations

from pathlib import Path

from mediarec.server.store import EDGE_SUBDIR, VectorStore
from mediarec.server.store.edge import EdgeTuning


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
        # Imported here: qdrant_client is only loaded by deployments that use it.
        from mediarec.server.store.remote import RemoteStore

        return RemoteStore.connect(qdrant_url, api_key)
    from mediarec.server.store.edge import EdgeStore

    return EdgeStore(Path(data_dir) / EDGE_SUBDIR, edge_tuning)
