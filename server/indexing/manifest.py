"""Folder-level metadata files (manifests): one record per media file, in JSON, JSONL or CSV.

A manifest lists files by ``path`` (or ``file``), relative to the manifest's own folder, with
the fields a sidecar may hold: ``caption`` (or ``captions``, a list whose first entry is used),
``tags``, ``creator_id`` (or ``creator``), ``created_at`` and ``location``; CSV spells the
location as ``region``, ``latitude`` and ``longitude`` columns. A JSON manifest is a list of
records, or an object whose ``items`` is one (a one-object ``photo.json`` is a sidecar, never a
manifest).

``mediarec index`` reads the manifests it is given and those it finds at the top of the folder.
A file found there is a manifest when its records name files; anything else is left alone.
"""

from __future__ import annotations

import csv
import json
import logging
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mediarec.server.indexing.sidecars import Fields, SidecarError, parse_fields

logger = logging.getLogger(__name__)

MANIFEST_SUFFIXES = (".json", ".jsonl", ".csv")
PATH_KEYS = ("path", "file")
# A manifest is read whole; a bigger one is more likely a mistake than a photo library.
MAX_MANIFEST_BYTES = 256 << 20


class ManifestError(ValueError):
    """A manifest cannot be used; the message names the file and the record."""


@dataclass(frozen=True)
class Manifests:
    """What the manifests of one run say, by file path relative to the indexed folder."""

    fields: dict[str, Fields]
    files: tuple[Path, ...]  # the manifests read
    outside: tuple[str, ...]  # records naming a file outside the folder, "manifest: path"

    def listed(self, rel: str) -> Fields | None:
        return self.fields.get(rel)


def discover(folder: Path) -> list[Path]:
    """The top-level files of ``folder`` that are manifests (their records name files)."""
    found = []
    for path in sorted(folder.iterdir()):
        if path.name.startswith(".") or path.suffix.lower() not in MANIFEST_SUFFIXES:
            continue
        if path.is_file() and _names_files(path):
            found.append(path)
    return found


def load_one(folder: Path, path: Path) -> Manifests:
    """Read one manifest; raises :class:`ManifestError` for a record that cannot be used."""
    root = folder.resolve()
    fields: dict[str, Fields] = {}
    outside: list[str] = []
    # The manifest's folder is resolved like the indexed one; a listed file is not, so a
    # symlink in the folder keeps its own name (the walk does not resolve files either).
    base = path.absolute().parent.resolve()
    for where, record in _records(path):
        listed = _path_of(record, where)
        target = Path(os.path.normpath(base / listed))
        if not target.is_relative_to(root):
            outside.append(f"{path.name}: {listed}")
            continue
        try:
            fields[target.relative_to(root).as_posix()] = parse_fields(record, where)
        except SidecarError as exc:
            raise ManifestError(str(exc)) from exc
    return Manifests(fields, (path,), tuple(outside))


def merge(parts: Sequence[Manifests]) -> Manifests:
    """Manifests read one by one as one, in order: a later record for a file wins."""
    fields: dict[str, Fields] = {}
    for part in parts:
        fields |= part.fields
    return Manifests(
        fields,
        tuple(path for part in parts for path in part.files),
        tuple(entry for part in parts for entry in part.outside),
    )


def _names_files(path: Path) -> bool:
    try:
        first = next(_records(path), None)
    except (ManifestError, OSError):
        return False
    return first is not None and any(isinstance(first[1].get(k), str) for k in PATH_KEYS)


def _path_of(record: dict[str, Any], where: str) -> str:
    for key in PATH_KEYS:
        value = record.get(key)
        if isinstance(value, str) and value.strip():
            return value.strip()
    raise ManifestError(f"{where}: names no file (give its path as 'path' or 'file')")


def _records(path: Path) -> Iterator[tuple[str, dict[str, Any]]]:
    """(where, record) pairs; ``where`` names the file and the record for error messages."""
    if path.stat().st_size > MAX_MANIFEST_BYTES:
        raise ManifestError(f"{path.name} is over {MAX_MANIFEST_BYTES >> 20} MiB")
    suffix = path.suffix.lower()
    try:
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ManifestError(f"{path.name} is not UTF-8 text ({exc.reason})") from exc
    if suffix == ".csv":
        yield from _csv_records(path.name, text)
    elif suffix == ".jsonl":
        for number, line in enumerate(text.splitlines(), start=1):
            if line.strip():
                where = f"{path.name} line {number}"
                yield where, _object(_json(path.name, line, number), where)
    else:
        doc = _json(path.name, text, None)
        items = doc.get("items") if isinstance(doc, dict) else doc
        if not isinstance(items, list):
            raise ManifestError(f"{path.name} must hold a list of records")
        for number, item in enumerate(items, start=1):
            where = f"{path.name} entry {number}"
            yield where, _object(item, where)


def _json(name: str, text: str, line: int | None) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        at = f"line {line}" if line is not None else f"line {exc.lineno}"
        raise ManifestError(f"{name} is not valid JSON ({exc.msg}, {at})") from exc


def _object(value: Any, where: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise ManifestError(f"{where} must be a JSON object")
    return value


def _csv_records(name: str, text: str) -> Iterator[tuple[str, dict[str, Any]]]:
    reader = csv.DictReader(text.splitlines())
    for row in reader:
        where = f"{name} line {reader.line_num}"
        record: dict[str, Any] = {k.strip(): v for k, v in row.items() if k and v not in (None, "")}
        coordinates = {}
        for key in ("latitude", "longitude"):
            if key in record:
                try:
                    coordinates[key] = float(record.pop(key))
                except ValueError as exc:
                    raise ManifestError(f"{where}: {key} must be a number") from exc
        if coordinates or "region" in record:
            record["location"] = {"region": record.pop("region", ""), **coordinates}
        created = record.get("created_at")
        if isinstance(created, str) and created.strip().lstrip("-").isdigit():
            record["created_at"] = int(created)
        yield where, record
