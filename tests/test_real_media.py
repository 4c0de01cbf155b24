"""Real CC-licensed photos and videos from ``$MEDIAREC_TEST_MEDIA`` through the real server.

Skipped when MEDIAREC_TEST_MEDIA is unset. The folder holds ``images/*.jpg`` described by
``images.json`` and ``videos/*.mp4|webm``; nothing from it is copied into the repository.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import av
import pytest

from mediarec.client import IndexOutcome, MediaFilter, MediaMetadata, MediarecClient, MediaType
from mediarec.server.app import build_server
from mediarec.server.config import load_settings
from mediarec.server.runtime import ServiceState, open_deps

pytestmark = pytest.mark.media

MODEL_ID = "mediarec-demo"
VIDEO_SUFFIXES = (".mp4", ".webm", ".mov", ".mkv")


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MediarecClient]:
    settings = load_settings(
        {
            "model_id": MODEL_ID,
            "data_dir": str(tmp_path_factory.mktemp("real-media") / "data"),
            "port": 0,
        },
        {},
        None,
    )
    deps = open_deps(settings)
    running = build_server(settings, ServiceState(deps))
    with MediarecClient(f"127.0.0.1:{running.port}") as client:
        yield client
    running.stop(0)


def pyav_duration_s(path: Path) -> float:
    """The video's duration as PyAV reports it: the video stream's, else the container's."""
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        if stream.duration is not None and stream.time_base is not None:
            return float(stream.duration * stream.time_base)
        assert container.duration is not None, f"{path.name}: PyAV knows no duration"
        return container.duration / av.time_base


def _captions(media_dir: Path) -> dict[str, str]:
    records = json.loads((media_dir / "images.json").read_text(encoding="utf-8"))
    return {Path(r["file"]).name: r["captions"][0] for r in records}


def test_every_real_photo_indexes(client: MediarecClient, test_media_dir: Path) -> None:
    captions = _captions(test_media_dir)
    photos = sorted((test_media_dir / "images").glob("*.jpg"))
    assert photos
    for path in photos:
        metadata = MediaMetadata(
            media_id=f"img-{path.stem}", caption=captions.get(path.name, ""), creator_id="coco"
        )
        result = client.index_media(metadata, path.read_bytes())
        assert result.outcome is IndexOutcome.CREATED, path.name
        assert result.media_type is MediaType.IMAGE, path.name
        # The demo model's only vocabulary names its synthetic world's shapes and colours:
        # on a real photo it labels nothing rather than "crosses" (its registry entry).
        assert result.topics == (), path.name
    assert client.server_info().topic_vocabulary == ()
    hits = client.search_text(
        "a plate of food on a table", k=5, media_filter=MediaFilter(creator_ids=("coco",))
    )
    assert len(hits) == 5
    first = photos[0]
    metadata = MediaMetadata(
        media_id=f"img-{first.stem}", caption=captions.get(first.name, ""), creator_id="coco"
    )
    again = client.index_file(first, metadata)
    assert again.outcome is IndexOutcome.UNCHANGED  # streamed or inline, same content hash


def _videos(media_dir: Path) -> list[Path]:
    return sorted(p for p in (media_dir / "videos").iterdir() if p.suffix in VIDEO_SUFFIXES)


def test_every_real_video_indexes_with_frames_inside_its_duration(
    client: MediarecClient, test_media_dir: Path
) -> None:
    videos = _videos(test_media_dir)
    assert videos
    frames = client.server_info().video_frames
    for path in videos:
        duration = pyav_duration_s(path)
        result = client.index_file(path, MediaMetadata(media_id=f"vid-{path.stem}"))

        assert result.media_type is MediaType.VIDEO, path.name
        stamps = result.frame_timestamps_s
        assert result.frame_count == frames == len(stamps), path.name
        assert all(a < b for a, b in zip(stamps, stamps[1:], strict=False)), (path.name, stamps)
        assert stamps[0] >= 0.0 and stamps[-1] < duration, (path.name, stamps, duration)
        item = client.get_media(f"vid-{path.stem}")
        assert 0.0 < item.duration_s <= duration + 0.05, (path.name, item.duration_s, duration)
        assert item.frame_timestamps_s == stamps
    only_videos = MediaFilter(media_types=(MediaType.VIDEO,))
    hits = client.search_text("a squirrel", k=10, media_filter=only_videos)
    assert {h.item.media_id for h in hits} == {f"vid-{p.stem}" for p in videos}
    for hit in hits:
        assert hit.matched_frame_timestamp_s in hit.item.frame_timestamps_s
