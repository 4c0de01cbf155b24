"""The media files of a folder: which files are read, and the media id each one gets."""

from __future__ import annotations

import hashlib
import logging
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from mediarec.encoders.images import SUPPORTED_IMAGE_EXTENSIONS, SUPPORTED_VIDEO_EXTENSIONS
from mediarec.server.indexing.indexer import MEDIA_ID_PATTERN

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class FolderFile:
    path: Path  # absolute
    rel: str  # relative to the folder, POSIX form
    media_id: str
    kind: str  # "image" or "video", from the extension (the bytes decide in the end)


def media_id_for(rel: str, prefix: str = "") -> str:
    """The media id of a file: ``prefix`` and its relative path, or a cleaned path plus a hash
    of the original.

    Paths with characters a media id cannot hold (spaces, accents, ...) keep a readable id;
    the hash suffix keeps two such paths from ever sharing one.
    """
    wanted = prefix + rel
    if MEDIA_ID_PATTERN.match(wanted):
        return wanted
    cleaned = re.sub(r"[^A-Za-z0-9._:/@+=-]", "_", wanted).lstrip("._:/@+=-") or "file"
    digest = hashlib.sha1(wanted.encode("utf-8", "surrogateescape")).hexdigest()[:12]
    return f"{cleaned[:240]}@{digest}"


ID_PREFIX_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:/@+=-]{0,63}$")


def check_id_prefix(prefix: str) -> str:
    """``prefix`` if media ids can start with it; a ValueError naming the valid form if not."""
    if prefix and not ID_PREFIX_PATTERN.match(prefix):
        raise ValueError(
            f"--id-prefix {prefix!r} must be 1-64 letters, digits or ._:/@+=- and start with a "
            "letter or digit, e.g. 'trip-2024/'"
        )
    return prefix


@dataclass(frozen=True)
class FolderScan:
    files: list[FolderFile]  # sorted by relative path
    # Files left out because their extension is not read, by lowercased extension ("" for
    # none); sidecars of media files and the ``exclude`` paths are not counted.
    skipped: dict[str, int]


def scan_folder(folder: Path, exclude: Sequence[Path] = (), id_prefix: str = "") -> FolderScan:
    """Supported media files under ``folder``, recursively, and what was left out; each file's
    media id is ``id_prefix`` followed by its path relative to the folder.

    Hidden files and folders (names starting with ".") and the paths in ``exclude`` are
    skipped; symlinked folders are not followed, so a link loop cannot trap the walk.
    """
    root = folder.resolve()
    excluded = {p.resolve() for p in exclude}
    found: list[FolderFile] = []
    others: list[Path] = []
    for directory, subdirs, names in os.walk(root):
        subdirs[:] = sorted(d for d in subdirs if not d.startswith("."))
        for name in names:
            path = Path(directory) / name
            if name.startswith(".") or path in excluded or not path.is_file():
                continue
            kind = _kind_of(name)
            if kind is None:
                others.append(path)
                continue
            rel = path.relative_to(root).as_posix()
            found.append(FolderFile(path, rel, media_id_for(rel, id_prefix), kind))
    found.sort(key=lambda f: f.rel)
    media = {f.path for f in found}
    stems = {p.with_suffix("") for p in media}
    skipped: dict[str, int] = {}
    for path in others:
        if not _is_sidecar(path, media, stems):
            suffix = path.suffix.lower()
            skipped[suffix] = skipped.get(suffix, 0) + 1
    return FolderScan(found, dict(sorted(skipped.items())))


def read_extensions() -> tuple[str, ...]:
    """Every extension the walk reads, images first."""
    return (*sorted(SUPPORTED_IMAGE_EXTENSIONS), *sorted(SUPPORTED_VIDEO_EXTENSIONS))


def _is_sidecar(path: Path, media: set[Path], stems: set[Path]) -> bool:
    """``photo.jpg.json`` or ``photo.json`` (or ``.txt``) beside a media file ``photo.jpg``."""
    if path.suffix.lower() not in (".json", ".txt"):
        return False
    bare = path.with_suffix("")
    return bare in media or bare in stems


def _kind_of(name: str) -> str | None:
    suffix = os.path.splitext(name)[1].lower()
    if suffix in SUPPORTED_IMAGE_EXTENSIONS:
        return "image"
    if suffix in SUPPORTED_VIDEO_EXTENSIONS:
        return "video"
    return None
