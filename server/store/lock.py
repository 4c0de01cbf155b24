"""An exclusive, process-level lock on a store directory (``fcntl.flock`` on a lock file).

Qdrant Edge does lock its WAL, but a second opener only sees ``Can't init WAL:
Kind(WouldBlock)``; this lock is taken first so the second process gets a clear
:class:`StoreLockedError` naming the holder. The kernel drops the lock when the holder dies,
so a crashed server never leaves a stale lock behind.
"""

from __future__ import annotations

import fcntl
import logging
import os
from pathlib import Path

from mediarec.server.store.base import StoreLockedError

logger = logging.getLogger(__name__)

LOCK_FILE_NAME = "LOCK"


class DirLock:
    """Holds ``<directory>/LOCK`` exclusively until :meth:`release`."""

    def __init__(self, directory: Path) -> None:
        self._path = directory / LOCK_FILE_NAME
        self._fd: int | None = None

    @property
    def path(self) -> Path:
        return self._path

    def acquire(self) -> None:
        self._path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self._path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _read_holder(fd)
            os.close(fd)
            raise StoreLockedError(
                f"the embedded store at {self._path.parent} is in use by another process"
                f"{f' (pid {holder})' if holder else ''}; stop that process or talk to the "
                "running server instead"
            ) from None
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        self._fd = fd
        logger.debug("locked %s", self._path)

    def release(self) -> None:
        if self._fd is None:
            return
        fcntl.flock(self._fd, fcntl.LOCK_UN)
        os.close(self._fd)
        self._fd = None


def _read_holder(fd: int) -> str:
    try:
        return os.pread(fd, 32, 0).decode(errors="replace").strip()
    except OSError:
        return ""
