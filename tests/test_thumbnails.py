"""Thumbnails made at index time and read back through GetThumbnail, on a real server: they
follow the item through metadata changes, replacement, deletion and an upgrade of an old data
dir."""

from __future__ import annotations

import io
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from mediarec.client import (
    Embeddings,
    IndexOutcome,
    InvalidArgument,
    MediaMetadata,
    MediarecClient,
    NotFound,
)
from mediarec.encoders.synthetic.world import WorldGenerator
from mediarec.encoders.synthetic_video import write_video
from mediarec.server.app import RunningServer
from mediarec.server.thumbnails import FILE_NAME, THUMBNAIL_MAX_SIDE, make_thumbnail
from tests.servers import serve_demo


@dataclass
class Served:
    server: RunningServer
    client: MediarecClient
    data_dir: Path

    def thumbnail_rows(self, media_id: str) -> int:
        with sqlite3.connect(self.data_dir / FILE_NAME) as db:
            return int(
                db.execute("SELECT count(*) FROM thumbnails WHERE media_id = ?", (media_id,))
                .fetchone()[0]
            )


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    data_dir = tmp_path_factory.mktemp("thumbs") / "data"
    server = serve_demo(data_dir, video_frames=4)
    client = MediarecClient(f"127.0.0.1:{server.port}")
    try:
        yield Served(server, client, data_dir)
    finally:
        client.close()
        server.stop(0)


def jpeg_of(image: Image.Image) -> bytes:
    out = io.BytesIO()
    image.save(out, format="JPEG", quality=92)
    return out.getvalue()


def photo(seed: int, size: int = 640) -> bytes:
    return jpeg_of(WorldGenerator(seed, image_size=size).post().image.resize((size, size // 2)))


def decoded(jpeg: bytes) -> Image.Image:
    image = Image.open(io.BytesIO(jpeg))
    assert image.format == "JPEG"
    return image


@pytest.mark.parametrize(("size", "expected"), [((1000, 500), (320, 160)),
                                                ((200, 100), (200, 100)),
                                                ((90, 400), (72, 320))])  # fmt: skip
def test_a_thumbnail_fits_its_longer_side_and_is_never_upscaled(
    size: tuple[int, int], expected: tuple[int, int]
) -> None:
    assert decoded(make_thumbnail(Image.new("RGB", size, "red"))).size == expected
    assert THUMBNAIL_MAX_SIDE == 320


def test_a_photo_gets_its_thumbnail_and_keeps_it_through_a_metadata_change(
    served: Served,
) -> None:
    data = photo(1)
    served.client.index_media(MediaMetadata("thumb/photo", caption="first words"), data)
    first = served.client.get_thumbnail("thumb/photo")
    assert decoded(first).size == (320, 160)
    # The picture matches the photo: the same colours, at thumbnail size.
    original = np.asarray(Image.open(io.BytesIO(data)).convert("RGB").resize((32, 16)), float)
    small = np.asarray(decoded(first).convert("RGB").resize((32, 16)), float)
    assert np.abs(original - small).mean() < 12
    changed = served.client.index_media(MediaMetadata("thumb/photo", caption="new words"), data)
    assert changed.outcome is IndexOutcome.UPDATED
    assert served.client.get_thumbnail("thumb/photo") == first


def test_new_bytes_replace_the_thumbnail_and_a_video_has_one_per_frame(
    served: Served, tmp_path: Path
) -> None:
    served.client.index_media(MediaMetadata("thumb/swap"), photo(2))
    before = served.client.get_thumbnail("thumb/swap")
    frames = [np.asarray(WorldGenerator(s, image_size=96).post().image) for s in range(8)]
    clip = tmp_path / "clip.mp4"
    write_video(clip, frames, fps=4, gop=4)
    result = served.client.index_file(clip, MediaMetadata("thumb/swap"))
    assert len(result.frame_timestamps_s) == 4
    shots = [served.client.get_thumbnail("thumb/swap", i) for i in range(4)]
    assert before not in shots and len(set(shots)) == 4
    assert served.thumbnail_rows("thumb/swap") == 4
    with pytest.raises(NotFound, match="has 4 frames"):
        served.client.get_thumbnail("thumb/swap", 4)
    with pytest.raises(InvalidArgument, match="frame_index"):
        served.client.get_thumbnail("thumb/swap", -1)


def test_an_item_without_pictures_has_no_thumbnail_and_says_why(served: Served) -> None:
    served.client.index_media(MediaMetadata("thumb/was-photo"), photo(3))
    assert served.thumbnail_rows("thumb/was-photo") == 1
    served.client.index_media(MediaMetadata("thumb/was-photo", caption="only words now"))
    assert served.thumbnail_rows("thumb/was-photo") == 0  # the old picture went with it
    with pytest.raises(NotFound, match="caption-only post"):
        served.client.get_thumbnail("thumb/was-photo")
    vector = np.ones(128, np.float32).tolist()
    served.client.index_embeddings(
        MediaMetadata("thumb/vectors"), Embeddings(model_id="", visual=vector)
    )
    with pytest.raises(NotFound, match="stored from vectors"):
        served.client.get_thumbnail("thumb/vectors")
    with pytest.raises(NotFound, match="No media"):
        served.client.get_thumbnail("thumb/never-indexed")


def test_deleting_an_item_deletes_its_thumbnails(served: Served) -> None:
    served.client.index_media(MediaMetadata("thumb/gone"), photo(4))
    assert served.thumbnail_rows("thumb/gone") == 1
    served.client.delete_media("thumb/gone")
    assert served.thumbnail_rows("thumb/gone") == 0


def forget_thumbnails(served: Served, media_id: str) -> None:
    """As in a data dir from before thumbnails."""
    with sqlite3.connect(served.data_dir / FILE_NAME) as db:
        db.execute("DELETE FROM thumbnails WHERE media_id = ?", (media_id,))


def test_indexing_an_unchanged_item_again_backfills_a_missing_thumbnail(served: Served) -> None:
    data = photo(5)
    served.client.index_media(MediaMetadata("thumb/old"), data)
    forget_thumbnails(served, "thumb/old")
    with pytest.raises(NotFound, match="before thumbnails were made"):
        served.client.get_thumbnail("thumb/old")
    again = served.client.index_media(MediaMetadata("thumb/old"), data)
    assert again.outcome is IndexOutcome.UNCHANGED
    assert decoded(served.client.get_thumbnail("thumb/old")).size == (320, 160)
    # A metadata change, which reuses the stored vectors, makes them too.
    forget_thumbnails(served, "thumb/old")
    changed = served.client.index_media(MediaMetadata("thumb/old", caption="now captioned"), data)
    assert changed.outcome is IndexOutcome.UPDATED
    assert decoded(served.client.get_thumbnail("thumb/old")).size == (320, 160)


def test_a_thumbnail_of_other_content_is_never_shown(served: Served) -> None:
    served.client.index_media(MediaMetadata("thumb/mixed"), photo(6))
    with sqlite3.connect(served.data_dir / FILE_NAME) as db:  # as if a crash split two writes
        db.execute("UPDATE thumbnails SET content_sha256 = 'other' WHERE media_id = 'thumb/mixed'")
    with pytest.raises(NotFound):
        served.client.get_thumbnail("thumb/mixed")


def test_indexing_a_folder_through_the_server_again_backfills_thumbnails(
    served: Served, tmp_path: Path
) -> None:
    from mediarec.server.cli import main

    folder = tmp_path / "album"
    folder.mkdir()
    (folder / "beach.jpg").write_bytes(photo(7))
    command = ["index", str(folder), "--server", f"127.0.0.1:{served.server.port}",
               "--id-prefix", "album/", "--no-progress"]  # fmt: skip
    assert main(command) == 0
    assert served.thumbnail_rows("album/beach.jpg") == 1
    forget_thumbnails(served, "album/beach.jpg")
    assert main(command) == 0
    assert decoded(served.client.get_thumbnail("album/beach.jpg")).size == (320, 160)
