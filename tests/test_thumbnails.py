"""Thumbnails made at index time and read back through GetThumbnail, on a real server: they
follow the item through metadata changes, replacement, deletion and an upgrade of an old data
dir, and the gallery's other calls (GetUser, import progress in GetServerInfo)."""

from __future__ import annotations

import io
import sqlite3
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from client import (
    Embeddings,
    Event,
    EventKind,
    IndexOutcome,
    InvalidArgument,
    MediaMetadata,
    MediarecClient,
    NotFound,
)
from encoders.synthetic.world import WorldGenerator
from encoders.synthetic_video import write_video
from server.app import RunningServer
from server.thumbnails import FILE_NAME, THUMBNAIL_MAX_SIDE, make_thumbnail
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


def test_indexing_an_unchanged_item_again_backfills_a_missing_thumbnail(served: Served) -> None:
    data = photo(5)
    served.client.index_media(MediaMetadata("thumb/old"), data)
    with sqlite3.connect(served.data_dir / FILE_NAME) as db:  # as a data dir from before them
        db.execute("DELETE FROM thumbnails WHERE media_id = 'thumb/old'")
    with pytest.raises(NotFound, match="indexed before thumbnails"):
        served.client.get_thumbnail("thumb/old")
    again = served.client.index_media(MediaMetadata("thumb/old"), data)
    assert again.outcome is IndexOutcome.UNCHANGED
    assert decoded(served.client.get_thumbnail("thumb/old")).size == (320, 160)


def test_get_user_returns_the_newest_events_first_and_the_interests(served: Served) -> None:
    events = [
        Event(f"gu-{n}", "gu-user", EventKind.LIKE, timestamp=1_700_000_000.0 + n,
              media_id=f"m{n}")
        for n in range(30)
    ]  # fmt: skip
    served.client.log_events(events)
    served.client.set_interests("gu-user", "cats, boats")
    info = served.client.get_user("gu-user", recent_events=5)
    assert [e.media_id for e in info.recent_events] == ["m29", "m28", "m27", "m26", "m25"]
    assert info.recent_events[0].kind is EventKind.LIKE
    assert info.recent_events[0].timestamp is not None
    assert info.recent_events[0].timestamp.timestamp() == 1_700_000_029.0
    assert info.event_count == 30
    assert [i.text for i in info.interests] == ["cats, boats"]
    assert len(served.client.get_user("gu-user").recent_events) == 20  # the default
    empty = served.client.get_user("nobody-at-all")
    assert (empty.recent_events, empty.event_count, empty.interests) == ((), 0, ())
    with pytest.raises(InvalidArgument, match="maximum of 200"):
        served.client.get_user("gu-user", recent_events=201)


def test_server_info_shows_a_running_imports_progress(served: Served) -> None:
    first_sent = threading.Event()
    release = threading.Event()

    def history() -> Iterator[Event]:
        for n in range(10):
            yield Event(f"imp-{n}", "importer", EventKind.VIEW, timestamp=1.7e9, media_id="x")
        first_sent.set()
        assert release.wait(30)  # the stream stays open while the test looks
        yield Event("imp-last", "importer", EventKind.VIEW, timestamp=1.7e9, media_id="x")

    done: list[object] = []
    worker = threading.Thread(
        target=lambda: done.append(served.client.import_events(history(), chunk_events=10))
    )
    worker.start()
    try:
        assert first_sent.wait(30)
        for _ in range(200):  # the server stores the first chunk soon after it arrives
            running = served.client.server_info().imports
            if running and running[0].rows == 10:
                break
            threading.Event().wait(0.05)
        assert len(running) == 1 and running[0].accepted == 10 and running[0].started_at
    finally:
        release.set()
        worker.join(60)
    assert done and served.client.server_info().imports == ()
