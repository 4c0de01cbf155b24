"""A full disk: writes get RESOURCE_EXHAUSTED with one sentence, the server stays up, and the
store reopens with every acknowledged write once there is room again. Writes stop at a free
space reserve (storage.min_free_mb) before the stores meet the edge; without one, SQLite's
"disk is full" is RESOURCE_EXHAUSTED too.

The data dir lives on a small tmpfs mounted for the test (Linux, as root, as in CI); a machine
that cannot mount one skips it and says why.
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from mediarec.client import (
    Embeddings,
    Event,
    EventKind,
    MediaMetadata,
    MediarecClient,
    MediaType,
    ResourceExhausted,
    ServingStatus,
)
from mediarec.server.grpc.errors import DISK_FULL
from tests.servers import serve_demo

SMALL_MB, ROOMY_MB = 60, 240
BATCH = 1000


def _mount(path: Path, size_mb: int, *options: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["mount", "-t", "tmpfs", "-o", ",".join((*options, f"size={size_mb}m")), "tmpfs",
         str(path)],
        capture_output=True, text=True, check=False,
    )  # fmt: skip


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    mount_point = tmp_path / "small"
    mount_point.mkdir()
    mounted = _mount(mount_point, SMALL_MB)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here: {mounted.stderr.strip()}")
    try:
        yield mount_point
    finally:
        subprocess.run(["umount", "-l", str(mount_point)], check=False)


def _batch(n: int) -> list[Event]:
    # Long ids fill the disk in a few batches.
    return [
        Event(event_id=f"e{n}-{i}-" + "x" * 200, user_id=f"u{i % 50}", kind=EventKind.VIEW,
              timestamp=1.0e9 + i, media_id=f"m{i}-" + "y" * 200)
        for i in range(BATCH)
    ]  # fmt: skip


def _fill(client: MediarecClient) -> tuple[int, ResourceExhausted]:
    """Log batches until one is refused: (events acknowledged, the refusal)."""
    acknowledged = 0
    for n in range(SMALL_MB * 4):  # far more than fits
        try:
            client.log_events(_batch(n))
        except ResourceExhausted as refused:
            return acknowledged, refused
        acknowledged += BATCH
    raise AssertionError("the disk never filled")


def _reopens_with(small_disk: Path, acknowledged: int) -> None:
    """With room again, the store opens, holds every acknowledged event, and takes more."""
    grown = _mount(small_disk, ROOMY_MB, "remount")
    assert grown.returncode == 0, grown.stderr
    again = serve_demo(small_disk / "data", min_free_mb=0)
    try:
        with MediarecClient(f"127.0.0.1:{again.port}") as client:
            assert client.refresh().events_included == acknowledged
            client.log_events(_batch(10_000))
    finally:
        again.stop(0)


def test_writes_stop_at_the_free_space_reserve_and_nothing_is_lost(small_disk: Path) -> None:
    running = serve_demo(small_disk / "data", min_free_mb=20)
    try:
        with MediarecClient(f"127.0.0.1:{running.port}") as client:
            acknowledged, refused = _fill(client)
            assert "MB free, under the 20 MB it keeps in reserve" in refused.details
            assert len(refused.details.splitlines()) == 1
            info = client.server_info()
            vector = np.random.default_rng(0).normal(size=info.dims)
            with pytest.raises(ResourceExhausted):  # the vector store is spared the edge
                client.index_embeddings(
                    MediaMetadata(media_id="late", caption="late", media_type=MediaType.TEXT),
                    Embeddings(model_id=info.model_id,
                               caption=(vector / np.linalg.norm(vector)).tolist()),
                )  # fmt: skip
            with pytest.raises(ResourceExhausted):
                client.set_interests("u1", "cats")
            assert client.health() is ServingStatus.SERVING
            assert client.recommend("u1", k=3, dry_run=True) is not None  # reads still work
    finally:
        running.stop(0)
    assert acknowledged > 0
    _reopens_with(small_disk, acknowledged)


def test_a_disk_that_fills_anyway_is_resource_exhausted_not_internal(small_disk: Path) -> None:
    running = serve_demo(small_disk / "data", min_free_mb=0)  # no reserve: SQLite meets the edge
    try:
        with MediarecClient(f"127.0.0.1:{running.port}") as client:
            acknowledged, refused = _fill(client)
            assert refused.details == DISK_FULL
            assert client.health() is ServingStatus.SERVING
    finally:
        running.stop(0)
    _reopens_with(small_disk, acknowledged)
