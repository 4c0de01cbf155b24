"""Importing a type must not load an engine: the layers below stay cheap to name."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.parametrize(
    ("module", "must_not_load"),
    [
        ("mediarec.server.store", ("qdrant_edge", "qdrant_client")),
        ("mediarec.server.recommend.types", ("qdrant_edge", "qdrant_client", "torch")),
        # The recommender raises domain errors; their gRPC statuses belong to the API layer.
        ("mediarec.server.recommend.recommender", ("grpc",)),
        ("mediarec.server.service_errors", ("grpc",)),
    ],
)
def test_importing_types_loads_no_engine(module: str, must_not_load: tuple[str, ...]) -> None:
    probe = (
        f"import sys, {module}; "
        f"print(','.join(m for m in {must_not_load!r} if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", probe], cwd=ROOT, capture_output=True,
                         text=True, check=True)  # fmt: skip
    assert out.stdout.strip() == ""


def test_the_adapters_are_still_importable_by_name() -> None:
    from mediarec.server.store.edge import EdgeStore, EdgeTuning
    from mediarec.server.store.remote import RemoteStore

    assert EdgeStore.__name__ == "EdgeStore" and RemoteStore.__name__ == "RemoteStore"
    assert EdgeTuning().hnsw_m > 0
