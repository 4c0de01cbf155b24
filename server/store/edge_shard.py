"""One Qdrant Edge shard on disk that stays searchable while its HNSW index is built elsewhere.

Why a child process: qdrant-edge-py 0.9 holds the GIL for the whole of ``EdgeShard.optimize()``
(measured: a Python ticker thread ran once during a 3.9 s optimize), so optimizing in a thread
would freeze every request of the server for minutes at 100k points. Instead each build:

1. flushes the live shard and copies its directory (sparse) to the next generation, under the
   write lock; reads continue meanwhile, and from here on every write is also journaled;
2. runs ``optimize()`` on the copy in a niced child process, with no lock held;
3. loads the optimized copy, replays the journal into it, and under the write lock replays the
   tail, flushes, points ``CURRENT`` at it and swaps it in;
4. closes and deletes the old generation once no reader holds it.

Searches always run on the live shard, so they never wait for a build and stay exact over the
points that no index covers yet.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import re
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import qdrant_edge as qe

from mediarec.server.store.base import StoreError, StoreLockedError
from mediarec.server.store.schema import IndexKind
from mediarec.server.store.sparse_copy import copy_tree_sparse

logger = logging.getLogger(__name__)

CURRENT_FILE = "CURRENT"
_GENERATION = re.compile(r"^gen-(\d{6})$")

# Runs in the child. Only qdrant_edge is imported, so the child needs nothing of ours.
_OPTIMIZER_SCRIPT = """
import ctypes, os, sys
try:  # PR_SET_PDEATHSIG = SIGKILL: never outlive the server that started the build
    ctypes.CDLL("libc.so.6").prctl(1, 9)
except OSError:
    pass
os.nice(int(sys.argv[2]))
import qdrant_edge
shard = qdrant_edge.EdgeShard.load(sys.argv[1])
changed = shard.optimize()
shard.flush()
shard.close()
print("changed" if changed else "unchanged")
"""

_EDGE_INDEX_TYPES = {
    IndexKind.KEYWORD: qe.PayloadSchemaType.Keyword,
    IndexKind.INTEGER: qe.PayloadSchemaType.Integer,
}


@dataclass(frozen=True)
class ShardPolicy:
    """When the shard persists its segments and rebuilds its index."""

    build_after_writes: int  # points written since the last build that trigger the next one
    build_niceness: int = 10  # the build yields the CPU to requests on a small machine
    # A full flush persists every segment (~25 fsyncs, GIL held); in between, a write is made
    # durable by fsyncing only the WAL it was appended to.
    full_flush_interval_s: float = 5.0


@dataclass
class _Generation:
    number: int
    path: Path
    shard: qe.EdgeShard
    readers: int = 0


def _generation_name(number: int) -> str:
    return f"gen-{number:06d}"


class ManagedShard:
    """A generation-swapped Edge shard: durable writes, lock-free reads, background builds."""

    def __init__(self, root: Path, live: _Generation, policy: ShardPolicy) -> None:
        self._root = root
        self._policy = policy
        self._live = live
        self._readers = threading.Condition()  # guards _live swaps and reader counts
        self._write_lock = threading.Lock()  # orders writes, journal appends and swaps
        self._flush_lock = threading.Lock()
        self._write_seq = 0
        self._flushed_seq = 0
        self._last_full_flush = time.monotonic()
        self._journal: list[qe.UpdateOperation] | None = None
        self._writes_since_build = 0
        self._sched = threading.Condition()  # guards the builder state below
        self._builder: threading.Thread | None = None
        self._build_requested = False
        self._child: subprocess.Popen[str] | None = None
        self._closed = False

    # ----------------------------------------------------------------- opening

    @classmethod
    def open(
        cls,
        root: Path,
        config: qe.EdgeConfig,
        indexes: Mapping[str, IndexKind],
        policy: ShardPolicy,
    ) -> ManagedShard:
        """Load the current generation under ``root``, or create the first one."""
        root.mkdir(parents=True, exist_ok=True)
        current = _read_current(root)
        if current is None:
            live = _create_generation(root, 1, config, indexes)
        else:
            number = int(_GENERATION.match(current).group(1))  # type: ignore[union-attr]
            live = _Generation(number, root / current, _load_shard(root / current))
        _remove_stale_generations(root, keep=live.path.name)
        return cls(root, live, policy)

    # ------------------------------------------------------------------- reads

    @contextlib.contextmanager
    def reading(self) -> Iterator[qe.EdgeShard]:
        """The live shard, kept open until the block ends even if a build swaps it out."""
        with self._using() as generation:
            yield generation.shard

    @contextlib.contextmanager
    def _using(self) -> Iterator[_Generation]:
        with self._readers:
            if self._closed:
                raise StoreError("the store is closed")
            generation = self._live
            generation.readers += 1
        try:
            yield generation
        finally:
            with self._readers:
                generation.readers -= 1
                if generation.readers == 0:
                    self._readers.notify_all()

    # ------------------------------------------------------------------ writes

    def write(
        self,
        operations: Sequence[qe.UpdateOperation],
        points_written: int,
        applied: Callable[[], None] | None = None,
    ) -> None:
        """Apply ``operations`` in order and return once they are on disk. ``applied`` runs
        under the write lock right after they are applied, so the caller's in-memory view of
        the points (hit_keys.py) changes in the order the writes did. A write that finds no
        room raises OSError (ENOSPC or EFBIG)."""
        with no_room_as_oserror():
            self._write(operations, points_written, applied)

    def _write(
        self,
        operations: Sequence[qe.UpdateOperation],
        points_written: int,
        applied: Callable[[], None] | None,
    ) -> None:
        with self._write_lock:
            with self.reading() as shard:
                for operation in operations:
                    shard.update(operation)
            if applied is not None:
                applied()
            if self._journal is not None:
                self._journal.extend(operations)
            self._write_seq += 1
            seq = self._write_seq
            self._writes_since_build += points_written
            due = self._writes_since_build >= self._policy.build_after_writes
        self._make_durable(seq)
        if due:
            self.request_build()

    def _make_durable(self, seq: int) -> None:
        # Group commit: one sync covers every write applied before it, so concurrent writers
        # share syncs instead of queueing one each.
        with self._flush_lock:
            if self._flushed_seq >= seq:
                return
            target = self._write_seq
            with self._using() as generation:
                due = time.monotonic() - self._last_full_flush >= self._policy.full_flush_interval_s
                if due or not _sync_wal(generation.path):
                    generation.shard.flush()
                    self._last_full_flush = time.monotonic()
            self._flushed_seq = target

    # ------------------------------------------------------------------ builds

    @property
    def building(self) -> bool:
        with self._sched:
            return self._builder is not None

    def request_build(self) -> None:
        """Start a background build now, or once more after the running one."""
        with self._sched:
            if self._closed:
                return
            self._build_requested = True
            if self._builder is None:
                self._builder = threading.Thread(
                    target=self._build_loop, name=f"edge-build-{self._root.name}", daemon=True
                )
                self._builder.start()

    def wait_idle(self, timeout: float | None = None) -> bool:
        """Wait until no build is running or requested; False if ``timeout`` passed first."""
        with self._sched:
            return self._sched.wait_for(lambda: self._builder is None, timeout)

    def _build_loop(self) -> None:
        while True:
            with self._sched:
                if self._closed or not self._build_requested:
                    self._builder = None
                    self._sched.notify_all()
                    return
                self._build_requested = False
            try:
                self._build_once()
            except Exception:  # a failed build must never take the store down; the next
                logger.exception("background index build of %s failed", self._root.name)

    def _build_once(self) -> None:
        old = self._live  # only this thread swaps generations
        target = self._root / _generation_name(old.number + 1)
        with self._write_lock:
            with self.reading() as shard:
                shard.flush()
            shutil.rmtree(target, ignore_errors=True)
            # The WAL is copied too: without it the copy would number new operations from
            # zero and silently ignore later updates of points it already holds.
            copy_tree_sparse(old.path, target)
            self._journal = []
            self._writes_since_build = 0
        try:
            swapped = self._optimize_in_child(target) and self._catch_up_and_swap(old, target)
        except BaseException:
            self._abandon(target)
            raise
        if swapped:
            self._retire(old)
        else:
            self._abandon(target)

    def _optimize_in_child(self, target: Path) -> bool:
        """True when the child changed the copy (built an index, merged or vacuumed)."""
        logger.info("building the index of %s in the background", self._root.name)
        child = subprocess.Popen(
            [
                sys.executable,
                "-c",
                _OPTIMIZER_SCRIPT,
                str(target),
                str(self._policy.build_niceness),
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        with self._sched:
            self._child = child
            closed = self._closed
        if closed:
            child.kill()
        out, err = child.communicate()
        with self._sched:
            self._child = None
            if self._closed:
                return False
        if child.returncode != 0:
            raise StoreError(f"optimizer exited with {child.returncode}: {err.strip()[-500:]}")
        changed = out.strip() == "changed"
        if not changed:
            logger.debug("build of %s: nothing to optimize", self._root.name)
        return changed

    def _catch_up_and_swap(self, old: _Generation, target: Path) -> bool:
        """Replay the journal into the optimized copy and make it live; False if closing."""
        journal = self._journal
        assert journal is not None
        shard = _load_shard(target)
        try:
            replayed = 0
            # Catch up outside the lock first, so writers wait only for the last few operations.
            while len(journal) - replayed > 64:
                pending = journal[replayed:]
                for operation in pending:
                    shard.update(operation)
                replayed += len(pending)
            with self._write_lock:
                if self._closed:
                    shard.close()
                    return False
                for operation in journal[replayed:]:
                    shard.update(operation)
                if not _sync_wal(target):  # the replayed tail must be durable in the new copy
                    shard.flush()
                _write_current(self._root, target.name)
                with self._readers:
                    self._live = _Generation(old.number + 1, target, shard)
                self._journal = None
        except BaseException:
            if self._live.shard is not shard:
                shard.close()
            raise
        logger.info("swapped in the optimized %s (%s)", self._root.name, target.name)
        return True

    def _abandon(self, target: Path) -> None:
        with self._write_lock:
            self._journal = None
        if self._live.path == target:
            return
        if (self._root / CURRENT_FILE).read_text().strip() == target.name:
            _write_current(self._root, self._live.path.name)  # a swap failed half-way
        shutil.rmtree(target, ignore_errors=True)

    def _retire(self, generation: _Generation) -> None:
        with self._readers:
            self._readers.wait_for(lambda: generation.readers == 0)
            generation.shard.close()
        shutil.rmtree(generation.path, ignore_errors=True)

    # ----------------------------------------------------------------- closing

    def close(self) -> None:
        with self._sched:
            if self._closed:
                return
            self._closed = True
            builder, child = self._builder, self._child
        if child is not None:
            child.kill()  # our own child; the copy it was optimizing is discarded
        if builder is not None:
            builder.join()
        with self._readers:
            self._readers.wait_for(lambda: self._live.readers == 0)
            try:
                with no_room_as_oserror():
                    self._live.shard.flush()
            except OSError as error:
                # Every acknowledged write is already in the synced WAL, which the next open
                # replays; a flush that finds no room must not fail the shutdown.
                logger.error("flushing the vector store on close failed: %s", error)
            self._live.shard.close()


def _sync_wal(shard_dir: Path) -> bool:
    """fsync the shard's write-ahead log (files and directory); False if it isn't where expected
    or a segment was renamed while it synced.

    Edge appends each update to its WAL through a shared mmap and syncs nothing until flush();
    fsync on the WAL files writes those pages, and a reopen replays them. It releases the GIL,
    unlike flush(). On False (a layout change in a future Edge, or a rename racing the sync)
    the caller falls back to a full flush.
    """
    wal = shard_dir / "wal"
    if not wal.is_dir():
        return False
    with os.scandir(wal) as entries:
        for entry in entries:
            if not entry.is_file(follow_symlinks=False):
                continue
            try:
                _fsync_path(entry.path)
            except FileNotFoundError:
                # Renamed since the listing: a preallocated `tmp-open-N` made ready, or a full
                # `open-N` retired to `closed-...` by a concurrent write, which holds
                # acknowledged writes under a name this pass did not sync. The caller's full
                # flush covers both.
                return False
    _fsync_path(str(wal))
    return True


def _fsync_path(path: str) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _create_generation(
    root: Path, number: int, config: qe.EdgeConfig, indexes: Mapping[str, IndexKind]
) -> _Generation:
    path = root / _generation_name(number)
    shutil.rmtree(path, ignore_errors=True)  # a creation that crashed before CURRENT was written
    shard = qe.EdgeShard.create(str(path), config)
    for field_name, kind in indexes.items():
        shard.update(qe.UpdateOperation.create_field_index(field_name, _EDGE_INDEX_TYPES[kind]))
    shard.flush()
    _write_current(root, path.name)
    return _Generation(number, path, shard)


def _load_shard(path: Path) -> qe.EdgeShard:
    try:
        return qe.EdgeShard.load(str(path))
    except Exception as exc:  # Edge raises bare Exception; WouldBlock means its WAL is locked
        if "WouldBlock" in str(exc):
            raise StoreLockedError(f"{path} is open in another process") from exc
        raise StoreError(f"cannot open the Edge shard at {path}: {exc}") from exc


def _read_current(root: Path) -> str | None:
    try:
        name = (root / CURRENT_FILE).read_text().strip()
    except FileNotFoundError:
        return None
    if not _GENERATION.match(name) or not (root / name).is_dir():
        raise StoreError(f"{root / CURRENT_FILE} names {name!r}, which is not a generation here")
    return name


def _write_current(root: Path, name: str) -> None:
    """Point CURRENT at ``name`` atomically and durably (write, fsync, rename, fsync dir)."""
    tmp = root / (CURRENT_FILE + ".tmp")
    with open(tmp, "w") as fh:
        fh.write(name + "\n")
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, root / CURRENT_FILE)
    _fsync_path(str(root))


def _remove_stale_generations(root: Path, keep: str) -> None:
    """Delete generations left by builds that a crash interrupted."""
    for entry in root.iterdir():
        if entry.is_dir() and _GENERATION.match(entry.name) and entry.name != keep:
            logger.info("removing the stale generation %s", entry)
            shutil.rmtree(entry, ignore_errors=True)


# Qdrant Edge reports I/O failures as a bare Exception whose text ends in the OS error.
_NO_ROOM_TEXT = re.compile(r"os error (28|27|122)\b|No space left on device|File too large")


@contextlib.contextmanager
def no_room_as_oserror() -> Iterator[None]:
    """Turn Qdrant Edge's "no space left" and "file too large" failures into the OSError the
    rest of the service knows (RESOURCE_EXHAUSTED at the API); anything else passes as is."""
    try:
        yield
    except Exception as error:
        found = None if isinstance(error, OSError) else _NO_ROOM_TEXT.search(str(error))
        if found is None:
            raise
        too_large = found.group(1) == "27" or found.group(0) == "File too large"
        number = errno.EFBIG if too_large else errno.ENOSPC
        raise OSError(number, f"the vector store found no room: {error}") from error

