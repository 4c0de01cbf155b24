"""``mediarec search``: text, image or "more like this" queries, printed as a table.

Runs in-process against the embedded store, or through a running server with ``--server``.
"""

from __future__ import annotations

import json
import logging
import shutil
import sys
from collections.abc import Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

from mediarec.server.cli.common import (
    EXIT_FAILED,
    EXIT_OK,
    CommandError,
    open_local_deps,
    server_error,
)

if TYPE_CHECKING:
    from mediarec.server.config import Settings

logger = logging.getLogger(__name__)

MIN_CAPTION_WIDTH = 20


@dataclass(frozen=True)
class ResultRow:
    """One search result as the table shows it, whichever side produced it."""

    score: float
    media_id: str
    media_type: str
    frame_s: float | None
    caption: str


@dataclass(frozen=True)
class Query:
    text: str | None = None
    image: bytes | None = None
    similar: str | None = None
    match: str = "hybrid"  # for text: "hybrid", "pixels" or "captions"


@dataclass(frozen=True)
class Filters:
    """What results may be: any of the types, any of the creators, any of the tags."""

    media_types: tuple[str, ...] = ()  # "image", "video", "text"
    creator_ids: tuple[str, ...] = ()
    tags: tuple[str, ...] = ()


def run_search(
    settings: Settings,
    *,
    text: str | None = None,
    image: Path | None = None,
    similar: str | None = None,
    k: int = 10,
    match: str = "hybrid",
    server: str | None = None,
    api_key: str | None = None,
    filters: Filters = Filters(),
    as_json: bool = False,
) -> int:
    """Run one query and print the results (a table, or JSON); 0 on success, 1 on an error,
    2 if the store is locked by a running server."""
    try:
        query = Query(
            text=text, image=_read_image(image) if image else None, similar=similar, match=match
        )
        rows = (
            _search_server(server, api_key, query, k, filters)
            if server
            else _search_local(settings, query, k, filters)
        )
    except CommandError as exc:
        print(f"mediarec search: {exc}", file=sys.stderr)
        return exc.exit_code
    if as_json:
        json.dump([asdict(row) for row in rows], sys.stdout, indent=2)
        print()
    else:
        print_table(rows, sys.stdout)
    return EXIT_OK


def _read_image(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        message = f"cannot read the query image {path}: {exc.strerror}"
        raise CommandError(message, EXIT_FAILED) from exc


def _search_local(
    settings: Settings, query: Query, k: int, filters: Filters = Filters()
) -> list[ResultRow]:
    from mediarec.encoders.base import EncoderError
    from mediarec.server.search import TextMatch
    from mediarec.server.service_errors import ServiceError
    from mediarec.server.store import SearchFilter

    # Searching labels nothing, so the topic vocabulary need not be embedded at startup.
    deps = open_local_deps(replace(settings, topics=replace(settings.topics, top_k=0)))
    try:
        search = deps.search
        everything = SearchFilter(media_types=filters.media_types,
                                  creator_ids=filters.creator_ids, tags=filters.tags)  # fmt: skip
        k = search.resolve_k(k)
        if query.text is not None:
            hits = search.by_text(query.text, k, everything, TextMatch(query.match))
        elif query.image is not None:
            hits = search.by_image(query.image, k, everything)
        else:
            hits = search.similar_to(query.similar or "", k, everything)
    except (ServiceError, EncoderError) as exc:
        raise CommandError(str(exc), EXIT_FAILED) from exc
    finally:
        deps.close()
    return [
        ResultRow(
            hit.score,
            hit.item.metadata.media_id,
            hit.item.media_type.value,
            hit.matched_frame_timestamp_s,
            hit.item.metadata.caption,
        )
        for hit in hits
    ]


def _search_server(
    server: str, api_key: str | None, query: Query, k: int, filters: Filters = Filters()
) -> list[ResultRow]:
    from mediarec.client import MediaFilter, MediarecClient, MediarecError, MediaType, TextMatch

    only = MediaFilter(
        media_types=tuple(MediaType[t.upper()] for t in filters.media_types),
        creator_ids=filters.creator_ids,
        tags=filters.tags,
    )
    with MediarecClient(server, api_key=api_key) as client:
        try:
            if query.text is not None:
                match = TextMatch[query.match.upper()]
                hits = client.search_text(query.text, k=k, media_filter=only, match=match)
            elif query.image is not None:
                hits = client.search_image(query.image, k=k, media_filter=only)
            else:
                hits = client.search_similar(query.similar or "", k=k, media_filter=only)
        except MediarecError as exc:
            raise CommandError(f"{server}: {server_error(exc, api_key)}", EXIT_FAILED) from exc
    return [
        ResultRow(
            hit.score,
            hit.item.media_id,
            hit.item.metadata.media_type.name.lower(),
            hit.matched_frame_timestamp_s,
            hit.item.metadata.caption,
        )
        for hit in hits
    ]


def print_table(rows: Sequence[ResultRow], out: TextIO, width: int | None = None) -> None:
    """rank, score, type, media_id, matched frame time (videos) and the caption, truncated."""
    if not rows:
        print("no results", file=out)
        return
    width = width or shutil.get_terminal_size((100, 24)).columns
    id_width = max(8, *(len(r.media_id) for r in rows))
    header = f"{'rank':>4}  {'score':>6}  {'type':<5}  {'media_id':<{id_width}}  {'frame':>6}  "
    caption_width = max(MIN_CAPTION_WIDTH, width - len(header))
    print(f"{header}caption", file=out)
    for rank, row in enumerate(rows, start=1):
        frame = f"{row.frame_s:.1f}s" if row.frame_s is not None else ""
        print(
            f"{rank:>4}  {row.score:>6.3f}  {row.media_type:<5}  {row.media_id:<{id_width}}  "
            f"{frame:>6}  {_truncate(row.caption, caption_width)}",
            file=out,
        )


def _truncate(text: str, width: int) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= width else flat[: width - 1] + "…"
