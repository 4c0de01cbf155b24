"""Metadata from the sidecar files next to a media file (``name.json``, ``name.txt``), and the
record format that sidecars and manifests share."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from mediarec.server.indexing.folder import FolderFile
from mediarec.server.media import Location

logger = logging.getLogger(__name__)


class SidecarError(ValueError):
    """A sidecar file exists but cannot be used; the message names the file and the field."""


# The metadata fields a sidecar or a manifest record may set, as ItemMetadata names them.
Fields = dict[str, Any]


def read_sidecars(file: FolderFile) -> Fields:
    """The fields set by the sidecars next to the media file, ``name.json`` and/or ``name.txt``.

    Both ``photo.json`` and ``photo.jpg.json`` are recognised (the longer name wins). The JSON
    object may hold ``caption``, ``tags`` (list or comma-separated), ``creator_id`` (or
    ``creator``), ``created_at`` (ISO 8601 or unix seconds) and ``location`` (a region string
    or ``{region, latitude, longitude}``). A ``.txt`` sidecar is the caption when the JSON
    has none. Raises :class:`SidecarError` for a sidecar that cannot be used.
    """
    fields: Fields = {}
    json_path = _sidecar(file.path, ".json")
    if json_path is not None:
        fields = _parse_json_sidecar(json_path)
    if not fields.get("caption"):
        txt_path = _sidecar(file.path, ".txt")
        if txt_path is not None:
            fields["caption"] = _read_text(txt_path).strip()
    return fields


def _sidecar(media: Path, suffix: str) -> Path | None:
    for candidate in (media.with_name(media.name + suffix), media.with_suffix(suffix)):
        if candidate.is_file():
            return candidate
    return None


def _read_text(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise SidecarError(f"sidecar {path.name} is not UTF-8 text ({exc.reason})") from exc


def _parse_json_sidecar(path: Path) -> dict[str, Any]:
    try:
        doc = json.loads(_read_text(path))
    except json.JSONDecodeError as exc:
        raise SidecarError(
            f"sidecar {path.name} is not valid JSON ({exc.msg}, line {exc.lineno})"
        ) from exc
    if not isinstance(doc, dict):
        raise SidecarError(f"sidecar {path.name} must hold a JSON object")
    return parse_fields(doc, f"sidecar {path.name}")


def parse_fields(doc: dict[str, Any], where: str) -> Fields:
    """The metadata fields of one JSON object (a sidecar, or a manifest record); ``where``
    starts each error message ("sidecar photo.json", "images.json entry 3")."""

    def bad(key: str, why: str) -> SidecarError:
        return SidecarError(f"{where}: {key} {why}")

    fields: Fields = {}
    if "caption" in doc:
        if not isinstance(doc["caption"], str):
            raise bad("caption", "must be a string")
        fields["caption"] = doc["caption"].strip()
    elif "captions" in doc:  # several human captions (COCO style): an item stores one
        captions = doc["captions"]
        if not isinstance(captions, list) or not all(isinstance(c, str) for c in captions):
            raise bad("captions", "must be a list of strings")
        fields["caption"] = next((c.strip() for c in captions if c.strip()), "")
    if "tags" in doc:
        fields["tags"] = _tags(doc["tags"], bad)
    creator = doc.get("creator_id", doc.get("creator"))
    if creator is not None:
        if not isinstance(creator, str | int) or isinstance(creator, bool):
            raise bad("creator_id", "must be a string")
        fields["creator_id"] = str(creator)
    if doc.get("created_at") is not None:
        fields["created_at"] = _unix_seconds(doc["created_at"], bad)
    if doc.get("location") is not None:
        fields["location"] = _location(doc["location"], bad)
    return fields


def _tags(value: Any, bad: Callable[[str, str], SidecarError]) -> tuple[str, ...]:
    if isinstance(value, str):
        return tuple(t.strip() for t in value.split(",") if t.strip())
    if not isinstance(value, list) or not all(isinstance(t, str) for t in value):
        raise bad("tags", "must be a list of strings")
    return tuple(t.strip() for t in value if t.strip())


def _unix_seconds(value: Any, bad: Callable[[str, str], SidecarError]) -> int:
    if isinstance(value, int | float) and not isinstance(value, bool):
        return int(value)
    if isinstance(value, str):
        try:
            moment = datetime.fromisoformat(value.strip())
        except ValueError:
            pass
        else:  # a time without a zone is taken as UTC, like the API does
            return int((moment if moment.tzinfo else moment.replace(tzinfo=UTC)).timestamp())
    raise bad("created_at", f"must be ISO 8601 or unix seconds, got {value!r}")


def _location(value: Any, bad: Callable[[str, str], SidecarError]) -> Location:
    if isinstance(value, str):
        return Location(region=value)
    if not isinstance(value, dict):
        raise bad("location", "must be a region string or an object")
    region = value.get("region", "")
    coords = [value.get("latitude"), value.get("longitude")]
    if not isinstance(region, str) or any(
        c is not None and (not isinstance(c, int | float) or isinstance(c, bool)) for c in coords
    ):
        raise bad("location", "needs a string region and numeric latitude/longitude")
    latitude, longitude = (None if c is None else float(c) for c in coords)
    return Location(region=region, latitude=latitude, longitude=longitude)
