"""What a folder run did to each file, and the JSON report that records it."""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import Any

logger = logging.getLogger(__name__)


REPORTS_SUBDIR = "index-reports"


def default_report_path(data_dir: Path, folder: Path) -> Path:
    """Where a run over ``folder`` reports by default: under the data dir, never in the user's
    folder, one file per folder (the latest run), named so a person can find it."""
    resolved = folder.resolve()
    digest = hashlib.sha1(str(resolved).encode("utf-8", "surrogateescape")).hexdigest()[:10]
    readable = re.sub(r"[^A-Za-z0-9._-]", "_", resolved.name)[:60] or "root"
    return data_dir / REPORTS_SUBDIR / f"{readable}-{digest}.json"


class FileStatus(StrEnum):
    CREATED = "created"
    UPDATED = "updated"
    UNCHANGED = "unchanged"
    FAILED = "failed"
    # Sent when the server went away, before it answered: it may or may not have stored the
    # file (the next run finds out), so the file is neither "stored" nor "not processed".
    UNKNOWN = "unknown"


@dataclass(frozen=True)
class FileResult:
    path: str
    media_id: str
    status: FileStatus
    media_type: str = ""
    reason: str = ""

    def as_dict(self) -> dict[str, str]:
        return {
            "path": self.path,
            "media_id": self.media_id,
            "status": self.status.value,
            "media_type": self.media_type,
            "reason": self.reason,
        }


@dataclass
class IndexReport:
    folder: str
    target: str
    total_files: int
    results: list[FileResult] = field(default_factory=list)
    interrupted: bool = False
    aborted: str = ""  # why the sink stopped the run, if it did
    started_at: float = field(default_factory=time.time)
    elapsed_s: float = 0.0
    # What the walk read and left out, and the manifests it used.
    extensions_read: tuple[str, ...] = ()
    skipped_by_extension: dict[str, int] = field(default_factory=dict)
    manifests: tuple[str, ...] = ()
    # Manifest records that name no file of the folder (gone, or outside it): "manifest: path".
    unmatched_records: tuple[str, ...] = ()
    pruned: tuple[str, ...] = ()  # ids removed by --prune: their files were gone
    prune_refused: str = ""  # why --prune removed nothing (it needs --force), if it did not

    def count(self, status: FileStatus) -> int:
        return sum(1 for r in self.results if r.status is status)

    @property
    def failures(self) -> list[FileResult]:
        return [r for r in self.results if r.status is FileStatus.FAILED]

    @property
    def not_processed(self) -> int:
        return self.total_files - len(self.results)

    @property
    def skipped(self) -> int:
        return sum(self.skipped_by_extension.values())

    def counts(self) -> dict[str, int]:
        counts = {status.value: self.count(status) for status in FileStatus}
        return {
            "files": self.total_files,
            **counts,
            "not_processed": self.not_processed,
            "skipped_by_extension": self.skipped,
            "pruned": len(self.pruned),
        }

    def as_dict(self) -> dict[str, Any]:
        return {
            "folder": self.folder,
            "target": self.target,
            "started_at": datetime.fromtimestamp(self.started_at, UTC).isoformat(),
            "elapsed_s": round(self.elapsed_s, 3),
            "files_per_s": round(len(self.results) / self.elapsed_s, 2) if self.elapsed_s else 0,
            "interrupted": self.interrupted,
            "aborted": self.aborted,
            "counts": self.counts(),
            "extensions_read": list(self.extensions_read),
            "skipped_by_extension": self.skipped_by_extension,
            "manifests": list(self.manifests),
            "unmatched_manifest_records": list(self.unmatched_records),
            "pruned": list(self.pruned),
            "prune_refused": self.prune_refused,
            "results": [r.as_dict() for r in sorted(self.results, key=lambda r: r.path)],
        }


def write_report(report: IndexReport, path: Path) -> None:
    """Write the JSON report atomically (a reader never sees half a report)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.partial")
    partial.write_text(json.dumps(report.as_dict(), indent=2) + "\n", encoding="utf-8")
    os.replace(partial, path)
