"""Everything known about a file before it is decoded: its ``ItemMetadata``."""

from __future__ import annotations

import contextlib

from mediarec.server.indexing.exif import read_exif
from mediarec.server.indexing.folder import FolderFile
from mediarec.server.indexing.sidecars import Fields, read_sidecars
from mediarec.server.media import ItemMetadata


def read_metadata(file: FolderFile, listed: Fields | None = None) -> ItemMetadata:
    """The item's metadata, each field from the most specific source that has it.

    Sidecars override the manifest record ``listed``. A photo's EXIF then gives the time and
    place it was taken where neither said, and the file's mtime gives ``created_at`` where
    nothing else did; only a file with no mtime leaves it to the server (the indexing time).
    """
    fields: Fields = dict(listed or {}) | read_sidecars(file)
    if file.kind == "image" and not {"created_at", "location"} <= fields.keys():
        taken, place = read_exif(file.path)
        if taken is not None:
            fields.setdefault("created_at", taken)
        if place is not None:
            fields.setdefault("location", place)
    if "created_at" not in fields:
        with contextlib.suppress(OSError):
            fields["created_at"] = int(file.path.stat().st_mtime)
    return ItemMetadata(media_id=file.media_id, source=str(file.path), **fields)
