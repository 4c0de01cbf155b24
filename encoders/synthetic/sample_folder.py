"""A small sample media folder from the demo world: captioned photos and two short videos.

Used by ``make demo`` and ``make smoke``; everything is generated, so the demo needs no network
and no third-party media.
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
from PIL import Image

from mediarec.encoders.synthetic.world import Attributes, Post, WorldGenerator
from mediarec.encoders.synthetic_video import write_video

PHOTO_SIZE = 256
VIDEO_SIZE = (256, 192)
VIDEO_SECONDS = 3
VIDEO_FPS = 12
_EPOCH = datetime(2026, 11, 1, tzinfo=UTC)


@dataclass(frozen=True)
class SampleItem:
    path: Path
    caption: str
    attributes: Attributes
    kind: str  # "image" or "video"


def write_sample_folder(folder: Path, n_photos: int = 24, seed: int = 7) -> list[SampleItem]:
    """Write ``n_photos`` JPEGs with sidecars and two MP4 videos; return what was written.

    Sidecars alternate between ``name.txt`` (caption only) and ``name.json`` (caption, tags,
    creator, created_at) so both formats of the folder indexer are exercised.
    """
    folder.mkdir(parents=True, exist_ok=True)
    world = WorldGenerator(seed=seed, image_size=PHOTO_SIZE)
    rng = random.Random(seed)
    items: list[SampleItem] = []
    for index, post in enumerate(world.posts(n_photos)):
        path = folder / "photos" / f"photo_{index:03d}.jpg"
        path.parent.mkdir(exist_ok=True)
        post.image.save(path, quality=90)
        _write_sidecar(path, post, index, rng)
        items.append(SampleItem(path, post.caption, post.attributes, "image"))
    for index in range(2):
        post = world.post()
        path = folder / "videos" / f"clip_{index}.mp4"
        path.parent.mkdir(exist_ok=True)
        write_video(path, _panning_frames(post.image), fps=VIDEO_FPS, gop=VIDEO_FPS)
        _write_sidecar(path, post, 1000 + index, rng)
        items.append(SampleItem(path, post.caption, post.attributes, "video"))
    return items


def _write_sidecar(media: Path, post: Post, index: int, rng: random.Random) -> None:
    if index % 2 == 0:
        media.with_suffix(".txt").write_text(post.caption + "\n", encoding="utf-8")
        return
    attrs = post.attributes.as_dict()
    sidecar = {
        "caption": post.caption,
        "tags": sorted({attrs["colour"], attrs["shape"], attrs["scene"].replace(" ", "")}),
        "creator_id": f"creator_{rng.randrange(5)}",
        "created_at": (_EPOCH + timedelta(hours=index)).isoformat(),
    }
    media.with_suffix(".json").write_text(json.dumps(sidecar, indent=2), encoding="utf-8")


def _panning_frames(image: Image.Image) -> list[np.ndarray]:
    """A slow pan across the post's picture: the content stays what the caption says."""
    width, height = VIDEO_SIZE
    canvas = image.resize((width + width // 4, height + height // 4), Image.Resampling.BICUBIC)
    frames = []
    total = VIDEO_SECONDS * VIDEO_FPS
    for step in range(total):
        dx = round(step * (canvas.width - width) / max(total - 1, 1))
        dy = round(step * (canvas.height - height) / max(total - 1, 1))
        frames.append(np.asarray(canvas.crop((dx, dy, dx + width, dy + height))))
    return frames
