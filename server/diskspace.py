"""Refuse writes while the data dir's file system is nearly full.

A full disk must not take the process down, and the embedded vector store writes through
memory-mapped files: on a file system with no room left, touching a new page of one is a
SIGBUS that kills the server (seen on tmpfs, and possible on any file system with sparse
files). Keeping a reserve free, and refusing writes with RESOURCE_EXHAUSTED before it is
used up, keeps every write far from that edge, as databases' disk watermarks do.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

from mediarec.server.service_errors import ResourceLimitError

MB = 1 << 20


class DiskGuard:
    """``check()`` raises ResourceLimitError while less than ``min_free_mb`` is free."""

    def __init__(
        self,
        path: Path,
        min_free_mb: int,
        statvfs: Callable[[Path], os.statvfs_result] = os.statvfs,
    ) -> None:
        self._path = path
        self._min_free = min_free_mb * MB
        self._statvfs = statvfs

    def free_bytes(self) -> int:
        stat = self._statvfs(self._path)
        return int(stat.f_bavail * stat.f_frsize)

    def check(self) -> None:
        if self._min_free <= 0:
            return
        free = self.free_bytes()
        if free < self._min_free:
            raise ResourceLimitError(
                "storage",
                f"the server's storage has {free / MB:.0f} MB free, under the "
                f"{self._min_free / MB:.0f} MB it keeps in reserve (storage.min_free_mb), so "
                "nothing was written; free space and retry",
            )
