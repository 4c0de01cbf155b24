"""Thumbnails made at index time: a small JPEG of each photo and of each sampled video frame.

They live in a SQLite file in the data dir, beside the vector store, rather than in the vector
payloads: every search and every recommendation page reads payloads, and a few kilobytes of
JPEG per hit would be read and decoded for nothing. Each row names the content hash it was
made from, and a read asks for the stored item's hash: whatever happens between the two
stores (a crash between their writes, a race of two indexings), a stored item is never shown
with another picture; at worst it has none until it is indexed again. Deleting the item
deletes its rows. Index 0 is a photo's thumbnail; a video has one per sampled frame, in the
order of its ``frame_timestamps_s``. The file is local to the server's data dir, also when
the vectors live in a shared Qdrant server.
"""

from __future__ import annotations

import io
import logging
import sqlite3
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Protocol

from PIL import Image

logger = logging.getLogger(__name__)

THUMBNAIL_MAX_SIDE = 320  # pixels of the longer side; a gallery grid shows them at ~200
JPEG_QUALITY = 80
FILE_NAME = "thumbnails.sqlite"


class Thumbnails(Protocol):
    """Where the indexer puts thumbnails and the API reads them."""

    def put(self, media_id: str, content_sha256: str, thumbnails: Sequence[bytes]) -> None:
        """Replace every thumbnail of ``media_id`` with these, made from the content with this
        hash (none: remove them)."""
        ...

    def get(self, media_id: str, index: int, content_sha256: str) -> bytes | None:
        """The ``index``-th thumbnail of ``media_id`` if it was made from this content."""
        ...

    def delete(self, media_ids: Sequence[str]) -> None: ...


def make_thumbnail(image: Image.Image, max_side: int = THUMBNAIL_MAX_SIDE) -> bytes:
    """A JPEG of ``image`` whose longer side is at most ``max_side`` (never upscaled)."""
    thumb = image if image.mode in ("RGB", "RGBA", "L", "LA") else image.convert("RGB")
    thumb = thumb.copy()  # shrunk before the colour conversion: a huge image is never doubled
    thumb.thumbnail((max_side, max_side), Image.Resampling.LANCZOS)
    thumb = thumb.convert("RGB")
    out = io.BytesIO()
    thumb.save(out, format="JPEG", quality=JPEG_QUALITY, optimize=True)
    return out.getvalue()


class SqliteThumbnails:
    """Thumbnails in one SQLite file (WAL), safe to share between threads."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()
        self._db = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        # Thumbnails are written before the vectors that make an item visible, so a crash can
        # leave at worst an orphan row, which the item's next indexing replaces.
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.execute(
            "CREATE TABLE IF NOT EXISTS thumbnails ("
            " media_id TEXT NOT NULL, idx INTEGER NOT NULL, content_sha256 TEXT NOT NULL,"
            " jpeg BLOB NOT NULL, PRIMARY KEY (media_id, idx)) WITHOUT ROWID"
        )

    def put(self, media_id: str, content_sha256: str, thumbnails: Sequence[bytes]) -> None:
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                self._db.execute("DELETE FROM thumbnails WHERE media_id = ?", (media_id,))
                self._db.executemany(
                    "INSERT INTO thumbnails (media_id, idx, content_sha256, jpeg) "
                    "VALUES (?, ?, ?, ?)",
                    [(media_id, i, content_sha256, jpeg) for i, jpeg in enumerate(thumbnails)],
                )
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise

    def get(self, media_id: str, index: int, content_sha256: str) -> bytes | None:
        with self._lock:
            row = self._db.execute(
                "SELECT jpeg FROM thumbnails WHERE media_id = ? AND idx = ? "
                "AND content_sha256 = ?",
                (media_id, index, content_sha256),
            ).fetchone()
        return None if row is None else bytes(row[0])

    def delete(self, media_ids: Sequence[str]) -> None:
        with self._lock:
            self._db.executemany(
                "DELETE FROM thumbnails WHERE media_id = ?", [(m,) for m in media_ids]
            )

    def close(self) -> None:
        with self._lock:
            self._db.close()


def open_thumbnails(data_dir: Path) -> SqliteThumbnails:
    return SqliteThumbnails(Path(data_dir) / FILE_NAME)
