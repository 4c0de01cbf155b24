"""Qdrant Edge behaviour the service relies on: background index builds that never block
requests, the single-process lock, and durability of acknowledged writes across kill -9."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from mediarec.server.store import (
    EDGE_SUBDIR,
    MediaPoint,
    SearchFilter,
    StoreLockedError,
    edge_shard,
    schema,
)
from mediarec.server.store.edge import EdgeStore, EdgeTuning
from mediarec.server.store.factory import open_store

ROOT = Path(__file__).resolve().parents[1]
DIM = 128
DIMS = {schema.VISUAL: DIM}
MODEL = "test-model"
# Small thresholds so a few thousand points get a real HNSW graph; builds only when asked.
INDEXING = EdgeTuning(indexing_threshold_kb=64, full_scan_threshold_kb=16, build_after_writes=10**9)


def unit_rows(x: np.ndarray) -> np.ndarray:
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def clustered(n: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    centers = rng.standard_normal((32, DIM))
    return unit_rows(centers[rng.integers(32, size=n)] + 0.35 * rng.standard_normal((n, DIM)))


def points(vectors: np.ndarray, prefix: str = "m", start: int = 0) -> list[MediaPoint]:
    return [
        MediaPoint(f"{prefix}{start + i}", {schema.VISUAL: v}, {schema.CREATED_AT: start + i})
        for i, v in enumerate(vectors)
    ]


def top_ids(vectors: np.ndarray, query: np.ndarray, k: int, prefix: str = "m") -> list[str]:
    return [f"{prefix}{i}" for i in np.argsort(-(vectors @ query))[:k]]


def run_python(code: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def generations(store_dir: Path) -> list[str]:
    return sorted(p.name for p in store_dir.glob("*/gen-*"))


@pytest.fixture
def indexed_store(tmp_path: Path) -> tuple[EdgeStore, np.ndarray]:
    store = EdgeStore(tmp_path, INDEXING)
    store.ensure_collection(MODEL, DIMS)
    vectors = clustered(8000)
    store.upsert(points(vectors))
    return store, vectors


def test_background_build_never_blocks_searches(
    indexed_store: tuple[EdgeStore, np.ndarray],
) -> None:
    store, vectors = indexed_store
    try:
        assert store.stats().indexed_vectors == 0
        ticks: list[float] = []
        stop = threading.Event()

        def ticker() -> None:  # stands in for every other thread of the server
            while not stop.is_set():
                ticks.append(time.perf_counter())
                time.sleep(0.002)

        thread = threading.Thread(target=ticker)
        thread.start()
        queries = clustered(400, seed=9)
        latencies, recalls, exact_checked = [], [], 0
        store.request_optimize()
        started = time.perf_counter()
        for i, query in enumerate(queries):
            if not store.stats().optimizing:
                break
            t = time.perf_counter()
            approx = [h.media_id for h in store.search(schema.VISUAL, query, 10)]
            latencies.append(time.perf_counter() - t)
            recalls.append(len(set(approx) & set(top_ids(vectors, query, 10))) / 10)
            if i % 4 == 0:
                exact = store.search(schema.VISUAL, query, 10, exact=True)
                assert [h.media_id for h in exact] == top_ids(vectors, query, 10)
                exact_checked += 1
            time.sleep(0.01)
        build_s = time.perf_counter() - started
        assert store.wait_optimized(timeout=120)
        stop.set()
        thread.join()

        assert len(latencies) >= 10, f"the build ({build_s:.1f} s) was over before searching"
        assert exact_checked >= 3
        longest_pause = float(np.diff(np.array(ticks)).max())
        # In-process, optimize() holds the GIL for the whole build, so the ticker would stall
        # for about build_s. Here the longest pause is one short Edge call at the swap
        # (loading the optimized copy, closing the old one: 0.05-0.4 s on this disk).
        assert longest_pause < min(1.0, 0.5 * build_s), (longest_pause, build_s)
        assert np.median(latencies) < 0.05
        assert np.mean(recalls) >= 0.98
        assert store.stats().indexed_vectors >= 8000
    finally:
        store.close()


def test_writes_during_a_build_survive_the_swap(
    indexed_store: tuple[EdgeStore, np.ndarray], tmp_path: Path
) -> None:
    store, vectors = indexed_store
    added = clustered(300, seed=3)
    store.request_optimize()
    time.sleep(0.3)  # let the build copy the shard; later writes go to the journal
    store.upsert(points(added, prefix="new"))
    store.upsert([MediaPoint("m5", {schema.VISUAL: vectors[5]}, {"edited": "yes"})])
    store.delete([f"m{i}" for i in range(100, 200)])
    assert store.stats().optimizing, "the build ended before the writes; the test proves nothing"
    assert store.wait_optimized(timeout=120)
    assert store.stats().indexed_vectors > 0

    def check(s: EdgeStore) -> None:
        assert s.count() == 8000 + 300 - 100
        assert s.get(["m150"]) == {}
        assert s.get(["m5"])["m5"].payload["edited"] == "yes"
        assert s.get(["new7"])["new7"].payload[schema.CREATED_AT] == 7
        hits = s.search(schema.VISUAL, added[42], 1, exact=True)
        assert hits[0].media_id == "new42"

    check(store)
    store.close()
    assert len(generations(tmp_path)) == 2  # media + frames: old generations were deleted
    reopened = EdgeStore(tmp_path, INDEXING)
    try:
        reopened.ensure_collection(MODEL, DIMS)
        check(reopened)
    finally:
        reopened.close()


def test_writes_trigger_a_build_once_enough_accumulate(tmp_path: Path) -> None:
    tuning = EdgeTuning(
        indexing_threshold_kb=64, full_scan_threshold_kb=16, build_after_writes=3000
    )
    store = EdgeStore(tmp_path, tuning)
    try:
        store.ensure_collection(MODEL, DIMS)
        vectors = clustered(3500)
        store.upsert(points(vectors[:2000]))
        assert not store.stats().optimizing
        store.upsert(points(vectors[2000:], start=2000))
        assert store.wait_optimized(timeout=120)
        assert store.stats().indexed_vectors >= 3000
    finally:
        store.close()


def test_a_failed_build_leaves_the_store_serving(
    indexed_store: tuple[EdgeStore, np.ndarray], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store, vectors = indexed_store
    monkeypatch.setattr(edge_shard, "_OPTIMIZER_SCRIPT", "import sys; sys.exit(3)")
    try:
        store.request_optimize()
        assert store.wait_optimized(timeout=60)
        assert store.stats().indexed_vectors == 0
        assert len(generations(tmp_path)) == 2
        store.upsert(points(vectors[:1], prefix="after"))
        assert store.search(schema.VISUAL, vectors[0], 2, exact=True)[0].media_id in {
            "m0",
            "after0",
        }
    finally:
        store.close()


def test_close_during_a_build_keeps_every_point(
    indexed_store: tuple[EdgeStore, np.ndarray], tmp_path: Path
) -> None:
    store, _ = indexed_store
    store.request_optimize()
    time.sleep(0.3)
    store.close()
    assert len(generations(tmp_path)) == 2
    reopened = EdgeStore(tmp_path, INDEXING)
    try:
        reopened.ensure_collection(MODEL, DIMS)
        assert reopened.count() == 8000
    finally:
        reopened.close()


def test_a_second_process_gets_store_locked_error(tmp_path: Path) -> None:
    store = open_store(tmp_path)
    probe = f"""
        from pathlib import Path
        from mediarec.server.store import StoreLockedError
        from mediarec.server.store.factory import open_store
        try:
            open_store(Path({str(tmp_path)!r})).close()
            print("opened")
        except StoreLockedError as exc:
            print("locked:", exc)
    """
    try:
        result = run_python(probe)
        assert result.stdout.startswith("locked:"), result.stderr
        assert str(os.getpid()) in result.stdout
    finally:
        store.close()
    assert run_python(probe).stdout.strip() == "opened"


def test_the_lock_is_also_held_against_this_process(tmp_path: Path) -> None:
    store = EdgeStore(tmp_path / EDGE_SUBDIR)
    try:
        with pytest.raises(StoreLockedError):
            EdgeStore(tmp_path / EDGE_SUBDIR)
    finally:
        store.close()
    EdgeStore(tmp_path / EDGE_SUBDIR).close()


def test_acknowledged_writes_survive_kill_9(tmp_path: Path) -> None:
    writer = f"""
        import sys, time
        from pathlib import Path
        import numpy as np
        from mediarec.server.store import MediaPoint
        from mediarec.server.store.edge import EdgeStore, EdgeTuning
        # No periodic full flush: acknowledged writes live only in the fsynced WAL.
        store = EdgeStore(Path({str(tmp_path)!r}), EdgeTuning(full_flush_interval_s=1e9))
        store.ensure_collection("test-model", {{"visual": {DIM}}})
        rng = np.random.default_rng(0)
        for batch in range(1000):
            vectors = rng.standard_normal((20, {DIM})).astype(np.float32)
            store.upsert([MediaPoint(f"m{{batch * 20 + i}}", {{"visual": v}}, {{"batch": batch}})
                          for i, v in enumerate(vectors)])
            print(batch * 20 + 20, flush=True)
            time.sleep(0.002)
    """
    child = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(writer)],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    acknowledged = 0
    assert child.stdout is not None
    try:
        for line in child.stdout:
            acknowledged = int(line)
            if acknowledged >= 600:
                break
    finally:
        os.kill(child.pid, signal.SIGKILL)
        child.wait()
    assert acknowledged >= 600, child.stderr.read() if child.stderr else ""

    store = EdgeStore(tmp_path)
    try:
        store.ensure_collection("test-model", DIMS)
        assert store.count() >= acknowledged
        got = store.get([f"m{i}" for i in range(acknowledged)])
        assert len(got) == acknowledged
        rng = np.random.default_rng(0)
        first = rng.standard_normal((20, DIM)).astype(np.float32)
        assert store.search(schema.VISUAL, first[3], 1, exact=True)[0].media_id == "m3"
    finally:
        store.close()


def test_stale_generations_of_a_crashed_build_are_removed(tmp_path: Path) -> None:
    store = EdgeStore(tmp_path)
    store.ensure_collection(MODEL, DIMS)
    store.upsert(points(clustered(50)))
    collection = store.collection
    store.close()
    (tmp_path / collection / "gen-000099" / "segments").mkdir(parents=True)
    reopened = EdgeStore(tmp_path)
    try:
        reopened.ensure_collection(MODEL, DIMS)
        assert not (tmp_path / collection / "gen-000099").exists()
        assert reopened.count(SearchFilter(created_at_to=9)) == 10
    finally:
        reopened.close()


def test_write_durability_uses_edge_wal_layout(tmp_path: Path) -> None:
    """Writes are made durable by fsyncing Edge's WAL directory. If a future Edge moves it,
    this fails (and the store silently falls back to slower full flushes until fixed)."""
    store = EdgeStore(tmp_path)
    try:
        store.ensure_collection(MODEL, DIMS)
        store.upsert(points(clustered(5)))
        live = (
            tmp_path
            / store.collection
            / (tmp_path / store.collection / "CURRENT").read_text().strip()
        )
        assert edge_shard._sync_wal(live)
    finally:
        store.close()


def test_hits_without_payload_name_the_right_media_across_writes_and_reopen(
    tmp_path: Path,
) -> None:
    """Searches without payload take media id and type from the store's in-memory map: it
    follows upserts, type changes and deletes, is rebuilt on open, and a point it lacks (a
    write racing the search) is read from the store rather than dropped."""
    vectors = clustered(50)

    def hits(store: EdgeStore, i: int) -> dict[str, str]:
        found = store.search(schema.VISUAL, vectors[i], 5, with_payload=False)
        return {h.media_id: h.payload[schema.MEDIA_TYPE] for h in found}

    store = EdgeStore(tmp_path)
    store.ensure_collection(MODEL, DIMS)
    store.upsert(
        [MediaPoint(f"m{i}", {schema.VISUAL: v}, {schema.MEDIA_TYPE: "photo"})
         for i, v in enumerate(vectors)]
    )  # fmt: skip
    assert hits(store, 3)["m3"] == "photo"
    store.upsert([MediaPoint("m3", {schema.VISUAL: vectors[3]}, {schema.MEDIA_TYPE: "video"})])
    assert hits(store, 3)["m3"] == "video"
    store.delete(["m3"])
    assert "m3" not in hits(store, 3)
    store.close()

    reopened = EdgeStore(tmp_path)
    reopened.ensure_collection(MODEL, DIMS)
    assert len(reopened._hit_keys) == 49
    assert hits(reopened, 7)["m7"] == "photo"
    reopened._hit_keys.replace_all(())  # as if every point had been written during the search
    found = hits(reopened, 7)
    assert found["m7"] == "photo" and len(found) == 5
    assert len(reopened._hit_keys) == 5  # what it read back, it now remembers
    reopened.close()


def test_wal_sync_asks_for_a_full_flush_when_a_segment_is_renamed_while_listing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Edge's WAL renames segments from other threads (a preallocated `tmp-open-N` made
    ready, a full `open-N` retired to `closed-...`); a name that is gone by the time it is
    opened must neither fail the write nor pass for synced: the caller then flushes."""
    wal = tmp_path / "wal"
    wal.mkdir()
    (wal / "open-1").write_bytes(b"acknowledged")
    real_scandir = os.scandir

    def scandir_then_retire(path: str | Path) -> contextlib.nullcontext[list[os.DirEntry[str]]]:
        with real_scandir(path) as listing:
            entries = list(listing)
        (wal / "open-1").rename(wal / "closed-0")
        return contextlib.nullcontext(entries)

    monkeypatch.setattr(edge_shard.os, "scandir", scandir_then_retire)
    assert not edge_shard._sync_wal(tmp_path)
