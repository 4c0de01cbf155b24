"""What the gallery's templates show, made from the client's values: pure, no HTTP."""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import quote

from mediarec.client.types import MediaItem, MediaType, Recommendation, SearchHit


@dataclass(frozen=True)
class Tile:
    """One thumbnail of a grid: a search hit or a recommendation."""

    media_id: str
    media_type: str  # "image", "video" or "text"
    caption: str
    score: float
    thumb_url: str  # empty for a caption-only post
    similar_url: str
    moment: str  # for a video, the matched moment as "m:ss"; else empty


@dataclass(frozen=True)
class Bar:
    """One signal of a score breakdown, drawn as a bar of ``width`` % of the largest."""

    signal: str
    value: float
    width: float
    negative: bool


@dataclass(frozen=True)
class RecTile:
    tile: Tile
    reasons: tuple[str, ...]
    sources: tuple[str, ...]
    bars: tuple[Bar, ...]
    explored: bool


def item_url(prefix: str, media_id: str) -> str:
    return f"{prefix}/{quote(media_id, safe='')}"


def clock(seconds: float) -> str:
    whole = int(round(seconds))
    return f"{whole // 60}:{whole % 60:02d}"


def nearest_frame(timestamps: tuple[float, ...], moment_s: float | None) -> int:
    """Index of the sampled frame closest to ``moment_s`` (0 when there is none)."""
    if not timestamps or moment_s is None:
        return 0
    return min(range(len(timestamps)), key=lambda i: (abs(timestamps[i] - moment_s), i))


def tile(item: MediaItem, score: float, moment_s: float | None) -> Tile:
    media_type = item.metadata.media_type
    kind = {MediaType.IMAGE: "image", MediaType.VIDEO: "video"}.get(media_type, "text")
    thumb = ""
    if kind != "text":
        frame = nearest_frame(item.frame_timestamps_s, moment_s) if kind == "video" else 0
        thumb = item_url("/thumb", item.media_id) + (f"?frame={frame}" if frame else "")
    return Tile(
        media_id=item.media_id,
        media_type=kind,
        caption=item.metadata.caption,
        score=score,
        thumb_url=thumb,
        similar_url=item_url("/similar", item.media_id),
        moment=clock(moment_s) if kind == "video" and moment_s is not None else "",
    )


def hit_tiles(hits: list[SearchHit]) -> list[Tile]:
    return [tile(hit.item, hit.score, hit.matched_frame_timestamp_s) for hit in hits]


def breakdown_bars(breakdown: tuple[tuple[str, float], ...]) -> tuple[Bar, ...]:
    """Bars in the API's order (largest magnitude first), scaled to the largest."""
    largest = max((abs(value) for _, value in breakdown), default=0.0)
    return tuple(
        Bar(signal, value, 100.0 * abs(value) / largest if largest > 0 else 0.0, value < 0)
        for signal, value in breakdown
    )


def rec_tiles(items: tuple[Recommendation, ...]) -> list[RecTile]:
    return [
        RecTile(
            tile=tile(rec.item, rec.score, rec.matched_frame_timestamp_s),
            reasons=rec.reasons,
            sources=rec.sources,
            bars=breakdown_bars(rec.score_breakdown),
            explored=rec.explored,
        )
        for rec in items
    ]
