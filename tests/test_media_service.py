"""End-to-end tests of MediaService: a real server on 127.0.0.1:0, embedded Qdrant Edge, the
bundled demo CLIP, and the typed Python client (raw stubs only where the client would refuse
to send a malformed request).

Everything indexed here is generated from the demo model's synthetic world, so text queries
have ground truth: a post is relevant to "red shapes" exactly when its latent colour is red.
"""

from __future__ import annotations

import hashlib
import io
import math
import os
import random
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import grpc
import numpy as np
import pytest
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc
from PIL import Image

from mediarec.client import (
    Embeddings,
    FrameVector,
    IndexOutcome,
    InvalidArgument,
    Location,
    MediaFilter,
    MediaMetadata,
    MediarecClient,
    MediaType,
    NotFound,
    ResourceExhausted,
    ServingStatus,
    TextMatch,
    Unauthenticated,
    Unavailable,
)
from mediarec.encoders.synthetic.world import (
    ATTRIBUTE_FAMILIES,
    Attributes,
    Post,
    WorldGenerator,
    canonical_caption,
)
from mediarec.encoders.synthetic_video import write_video
from mediarec.server.app import RunningServer, build_server
from mediarec.server.config import Settings, load_settings
from mediarec.server.runtime import ServiceDeps, ServiceState, open_deps
from mediarec.server.store import schema
from mediarec.server.topics import demo_world_prompts
from mediarec.v1 import common_pb2, media_pb2, media_pb2_grpc

MODEL_ID = "mediarec-demo"
DEMO_DIM = 128
VIDEO_FRAMES = 6  # not the default 8, so the test sees the setting honoured
MAX_MESSAGE_BYTES = 2 << 20  # the unary cap; the streamed upload below is larger
UPLOAD_MB = float(os.environ.get("MEDIAREC_TEST_UPLOAD_MB", "8"))
# The generated video is at least UPLOAD_MB and can overshoot by a third (whole GOPs).
MAX_UPLOAD_BYTES = int(1.5 * UPLOAD_MB * (1 << 20)) + (4 << 20)
WORLD_SEED = 2024
WORLD_POSTS = 180
WORLD_CREATOR = "world"
EPOCH = datetime(2026, 6, 1, tzinfo=UTC)


# -- harness -------------------------------------------------------------------------------------


@dataclass
class Service:
    settings: Settings
    deps: ServiceDeps
    running: RunningServer
    client: MediarecClient

    @property
    def target(self) -> str:
        return f"127.0.0.1:{self.running.port}"

    def count(self) -> int:
        return self.client.server_info().media_count


def service_settings(data_dir: Path, **overrides: object) -> Settings:
    values: dict[str, object] = {
        "model_id": MODEL_ID,
        "data_dir": str(data_dir),
        "port": 0,
        "topics": "demo-world",
        "video_frames": VIDEO_FRAMES,
        "max_message_bytes": MAX_MESSAGE_BYTES,
        "max_upload_bytes": MAX_UPLOAD_BYTES,
    }
    values.update(overrides)
    return load_settings(values, {}, None)


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    settings = service_settings(tmp_path_factory.mktemp("media-service") / "data")
    deps = open_deps(settings)
    running = build_server(settings, ServiceState(deps))
    client = MediarecClient(f"127.0.0.1:{running.port}")
    try:
        yield Service(settings, deps, running, client)
    finally:
        client.close()
        running.stop(0)


@pytest.fixture(scope="module")
def anchor(service: Service) -> str:
    """A stored photo that tests which need some existing item can rely on."""
    post = WorldGenerator(99, image_size=128).post()
    service.client.index_media(
        MediaMetadata(media_id="anchor", creator_id="anchor", caption=post.caption),
        jpeg(post.image),
    )
    return "anchor"


@pytest.fixture(scope="module")
def stub(service: Service) -> Iterator[media_pb2_grpc.MediaServiceStub]:
    """The raw generated stub, for requests the typed client would never build."""
    with grpc.insecure_channel(service.target) as channel:
        yield media_pb2_grpc.MediaServiceStub(channel)


def jpeg(image: Image.Image, quality: int = 92) -> bytes:
    buffer = io.BytesIO()
    image.convert("RGB").save(buffer, "JPEG", quality=quality)
    return buffer.getvalue()


def png(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, "PNG")
    return buffer.getvalue()


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def world_video(path: Path, post: Post, seconds: float = 3.0, fps: int = 12) -> Path:
    """A slow pan over one world picture, so every frame shows what the caption says."""
    width, height = 160, 128
    canvas = post.image.resize((200, 160), Image.Resampling.BICUBIC)
    total = round(seconds * fps)
    frames = []
    for step in range(total):
        dx = round(step * (canvas.width - width) / (total - 1))
        dy = round(step * (canvas.height - height) / (total - 1))
        frames.append(np.asarray(canvas.crop((dx, dy, dx + width, dy + height))))
    return write_video(path, frames, fps=fps, gop=fps)


# -- the synthetic world corpus ------------------------------------------------------------------


@dataclass(frozen=True)
class WorldCorpus:
    attributes: dict[str, Attributes]  # media_id -> latent attributes
    images: dict[str, bytes]  # media_id -> the JPEG that was indexed
    topics: dict[str, tuple[str, ...]]  # media_id -> returned topic labels, best first
    near_duplicate_of: dict[str, str]  # media_id -> what IndexMedia named, if anything


@pytest.fixture(scope="module")
def world(service: Service) -> WorldCorpus:
    """WORLD_POSTS generated photos with captions, indexed one IndexMedia call each."""
    attributes, images, topics, near = {}, {}, {}, {}
    for i, post in enumerate(WorldGenerator(WORLD_SEED, image_size=128).posts(WORLD_POSTS)):
        media_id = f"world-{i:03d}"
        data = jpeg(post.image)
        result = service.client.index_media(
            MediaMetadata(media_id=media_id, creator_id=WORLD_CREATOR, caption=post.caption),
            data,
        )
        assert result.outcome is IndexOutcome.CREATED
        attributes[media_id] = post.attributes
        images[media_id] = data
        topics[media_id] = tuple(t.label for t in result.topics)
        near[media_id] = result.near_duplicate_of
    return WorldCorpus(attributes, images, topics, near)


WORLD_ONLY = MediaFilter(creator_ids=(WORLD_CREATOR,))


# -- round trips ---------------------------------------------------------------------------------


def test_photo_round_trip_keeps_every_metadata_field(service: Service) -> None:
    post = WorldGenerator(1, image_size=128).post()
    data = jpeg(post.image)
    created = datetime(2026, 3, 4, 5, 6, 7, tzinfo=UTC)
    metadata = MediaMetadata(
        media_id="rt-photo",
        creator_id="alice",
        caption=post.caption,
        tags=("shapes", "demo"),
        created_at=created,
        location=Location(region="Lisbon", latitude=38.72, longitude=-9.14),
    )

    result = service.client.index_media(metadata, data)

    assert result.outcome is IndexOutcome.CREATED
    assert result.media_type is MediaType.IMAGE
    assert (result.model_id, result.dims) == (MODEL_ID, DEMO_DIM)
    assert result.content_sha256 == sha256(data)
    assert result.frame_count == 0 and result.frame_timestamps_s == ()
    assert not result.duplicate
    assert len(result.topics) == service.settings.topics.top_k
    item = service.client.get_media("rt-photo")
    assert item.metadata == replace(metadata, media_type=MediaType.IMAGE)
    assert item.topics == result.topics
    assert item.content_sha256 == sha256(data)
    assert item.model_id == MODEL_ID
    assert item.indexed_at is not None


def test_video_round_trip_samples_the_configured_frames_within_its_duration(
    service: Service, anchor: str, tmp_path: Path
) -> None:
    post = WorldGenerator(2, image_size=128).post()
    data = world_video(tmp_path / "clip.mp4", post, seconds=3.0, fps=12).read_bytes()

    result = service.client.index_media(
        MediaMetadata(media_id="rt-video", creator_id="bob", caption=post.caption), data
    )

    assert result.media_type is MediaType.VIDEO
    assert result.frame_count == VIDEO_FRAMES == len(result.frame_timestamps_s)
    stamps = result.frame_timestamps_s
    assert all(a < b for a, b in zip(stamps, stamps[1:], strict=False))
    item = service.client.get_media("rt-video")
    assert item.duration_s == pytest.approx(3.0, abs=1 / 12)
    assert item.frame_timestamps_s == stamps
    assert stamps[0] >= 0.0 and stamps[-1] < item.duration_s
    # A video hit names its best-matching frame, one of the stored ones.
    hits = service.client.search_similar(
        anchor, k=50, media_filter=MediaFilter(media_types=(MediaType.VIDEO,))
    )
    video_hit = next(h for h in hits if h.item.media_id == "rt-video")
    assert video_hit.matched_frame_timestamp_s in stamps


def test_caption_only_post_round_trip(service: Service) -> None:
    metadata = MediaMetadata(
        media_id="rt-text",
        creator_id="carol",
        caption="three striped blue hearts in a forest",
        created_at=datetime(2026, 1, 2, tzinfo=UTC),
    )

    result = service.client.index_media(metadata)

    assert result.media_type is MediaType.TEXT
    assert result.content_sha256 == "" and result.frame_count == 0
    assert result.topics  # labelled from the caption vector
    assert service.client.get_media("rt-text").metadata == replace(
        metadata, media_type=MediaType.TEXT
    )
    hits = service.client.search_text("blue hearts in a forest", k=100)
    assert "rt-text" in [h.item.media_id for h in hits]


def test_delete_removes_the_item_and_unknown_ids_are_not_found(service: Service) -> None:
    post = WorldGenerator(3, image_size=128).post()
    service.client.index_media(MediaMetadata(media_id="rt-delete"), jpeg(post.image))
    before = service.count()

    assert service.client.delete_media("rt-delete") is True

    assert service.count() == before - 1
    with pytest.raises(NotFound):
        service.client.get_media("rt-delete")
    with pytest.raises(NotFound):
        service.client.delete_media("rt-delete")
    assert service.client.delete_media("rt-delete", allow_missing=True) is False
    with pytest.raises(NotFound):
        service.client.search_similar("rt-delete")


# -- idempotence ---------------------------------------------------------------------------------


def test_reindexing_the_same_item_changes_nothing(service: Service, tmp_path: Path) -> None:
    gen = WorldGenerator(4, image_size=128)
    photo = jpeg(gen.post().image)
    video = world_video(tmp_path / "v.mp4", gen.post()).read_bytes()
    photo_md = MediaMetadata(media_id="idem-photo", caption="a photo", tags=("x",))
    video_md = MediaMetadata(media_id="idem-video", caption="a video")
    text_md = MediaMetadata(media_id="idem-text", caption="two red circles at the beach")
    first = [
        service.client.index_media(photo_md, photo),
        service.client.index_media(video_md, video),
        service.client.index_media(text_md),
    ]
    count = service.count()
    stored = [service.client.get_media(m.media_id) for m in (photo_md, video_md, text_md)]

    again = [
        service.client.index_media(photo_md, photo),
        service.client.index_media(video_md, video),
        service.client.index_media(text_md),
    ]

    assert [r.outcome for r in again] == [IndexOutcome.UNCHANGED] * 3
    for old, new in zip(first, again, strict=True):
        assert replace(new, outcome=IndexOutcome.CREATED) == old
    assert service.count() == count
    assert [service.client.get_media(m.media_id) for m in (photo_md, video_md, text_md)] == stored


def test_changed_caption_updates_the_item(service: Service) -> None:
    data = jpeg(WorldGenerator(5, image_size=128).post().image)
    metadata = MediaMetadata(media_id="idem-update", caption="before")
    service.client.index_media(metadata, data)
    count = service.count()

    result = service.client.index_media(replace(metadata, caption="after"), data)

    assert result.outcome is IndexOutcome.UPDATED
    assert service.count() == count
    assert service.client.get_media("idem-update").metadata.caption == "after"


def test_a_video_replaced_by_a_photo_loses_its_frames(
    service: Service, anchor: str, tmp_path: Path
) -> None:
    gen = WorldGenerator(6, image_size=128)
    video = world_video(tmp_path / "v.mp4", gen.post()).read_bytes()
    metadata = MediaMetadata(media_id="idem-retype", creator_id="retype")
    service.client.index_media(metadata, video)

    result = service.client.index_media(metadata, jpeg(gen.post().image))

    assert result.outcome is IndexOutcome.UPDATED and result.media_type is MediaType.IMAGE
    item = service.client.get_media("idem-retype")
    assert item.metadata.media_type is MediaType.IMAGE and item.frame_timestamps_s == ()
    hits = service.client.search_similar(
        anchor, k=5, media_filter=MediaFilter(creator_ids=("retype",))
    )
    assert [h.item.media_id for h in hits] == ["idem-retype"]
    assert hits[0].matched_frame_timestamp_s is None


def test_same_bytes_under_another_id_is_a_duplicate(service: Service) -> None:
    data = jpeg(WorldGenerator(7, image_size=128).post().image)
    service.client.index_media(MediaMetadata(media_id="dup-first"), data)

    result = service.client.index_media(MediaMetadata(media_id="dup-second"), data)

    assert result.outcome is IndexOutcome.CREATED
    assert result.duplicate and result.duplicate_of == "dup-first"
    assert result.near_duplicate_of == "dup-first"
    # Re-sending the first is unchanged and still names its twin.
    again = service.client.index_media(MediaMetadata(media_id="dup-first"), data)
    assert again.outcome is IndexOutcome.UNCHANGED
    assert again.duplicate and again.duplicate_of == "dup-second"


def test_reencoded_jpeg_is_named_as_near_duplicate(service: Service) -> None:
    image = WorldGenerator(8, image_size=128).post().image
    service.client.index_media(MediaMetadata(media_id="near-original"), jpeg(image, 95))

    result = service.client.index_media(
        MediaMetadata(media_id="near-repost"), jpeg(image.resize((112, 112)), 60)
    )

    assert not result.duplicate
    assert result.near_duplicate_of == "near-original"
    assert service.client.get_media("near-repost").near_duplicate_of == "near-original"
    as_png = service.client.index_media(MediaMetadata(media_id="near-png"), png(image))
    assert as_png.near_duplicate_of in ("near-original", "near-repost")


def test_near_duplicates_among_distinct_posts_are_look_alikes(world: WorldCorpus) -> None:
    # Every world post is a fresh rendering, so none is a repost. At the default cosine of 0.95
    # the demo model pairs none of these 180 (an earlier one, which hardly saw shapes, paired 7;
    # re-encodes score 0.998); any it pairs must share at least 3 of their 5 attributes.
    flagged = {m: other for m, other in world.near_duplicate_of.items() if other}
    assert len(flagged) <= 0.1 * len(world.near_duplicate_of)
    for media_id, other in flagged.items():
        mine, theirs = world.attributes[media_id].as_dict(), world.attributes[other].as_dict()
        assert sum(mine[f] == theirs[f] for f in mine) >= 3, (media_id, other)


def test_a_flat_grey_picture_is_nobodys_near_duplicate(
    service: Service, world: WorldCorpus
) -> None:
    result = service.client.index_media(
        MediaMetadata(media_id="near-grey"), jpeg(Image.new("RGB", (128, 128), (128, 128, 128)))
    )
    assert result.near_duplicate_of == ""


def test_concurrent_indexing_and_search_lose_nothing(service: Service) -> None:
    posts = WorldGenerator(12, image_size=128).posts(24)
    count = service.count()

    def work(i: int) -> str:
        media_id = f"conc-{i:02d}"
        post = posts[i]
        service.client.index_media(
            MediaMetadata(media_id=media_id, caption=post.caption, creator_id="conc"),
            jpeg(post.image),
        )
        service.client.search_text(post.caption, k=5)
        return media_id

    with ThreadPoolExecutor(max_workers=6) as pool:
        ids = list(pool.map(work, range(len(posts))))

    assert service.count() == count + len(posts)
    hits = service.client.search_text(
        "shapes", k=100, media_filter=MediaFilter(creator_ids=("conc",))
    )
    assert sorted(h.item.media_id for h in hits) == ids


# -- topics --------------------------------------------------------------------------------------


def test_the_demo_world_vocabulary_is_the_worlds_attributes(service: Service) -> None:
    info = service.client.server_info()
    assert set(info.topic_vocabulary) == set(demo_world_prompts(per_topic=1))
    assert {"red", "circles", "sandy beach", "striped"} <= set(info.topic_vocabulary)


def _labels(attrs: Attributes) -> dict[str, str]:
    from mediarec.encoders.synthetic.world import attribute_phrases

    phrases = attribute_phrases()
    return {
        family: phrases[family][ATTRIBUTE_FAMILIES[family].index(value)]
        for family, value in attrs.as_dict().items()
    }


def test_top_topics_name_the_pictures_own_attributes(world: WorldCorpus) -> None:
    # Measured on this corpus: colour or shape in the top 3 for 95 % of posts (colour 79 %,
    # shape 54 %), and 90 % of all top-3 labels true.
    colour_or_shape = true_labels = 0
    for media_id, attrs in world.attributes.items():
        labels = _labels(attrs)
        top3 = set(world.topics[media_id][:3])
        colour_or_shape += bool({labels["colour"], labels["shape"]} & top3)
        true_labels += len(set(labels.values()) & top3)
    assert colour_or_shape / len(world.attributes) >= 0.8
    assert true_labels / (3 * len(world.attributes)) >= 0.6


def test_topics_filter_search(service: Service, world: WorldCorpus) -> None:
    for topics in (("red",), ("striped", "night sky")):
        expected = {m for m, labels in world.topics.items() if set(topics) & set(labels)}
        hits = service.client.search_text(
            "a photo of shapes",
            k=WORLD_POSTS,
            media_filter=replace(WORLD_ONLY, topics=topics),
        )
        assert expected and {h.item.media_id for h in hits} == expected, topics


# -- search quality on the synthetic world ------------------------------------------------------

# Single-attribute queries in the world's own wording, and the family they ask for: every family,
# shapes included (the demo model's card measures single-attribute precision@10 of 1.0 for every
# value on 1,000 posts).
QUALITY_QUERIES = (
    ("red shapes", "colour", "red"),
    ("blue shapes", "colour", "blue"),
    ("yellow shapes", "colour", "yellow"),
    ("striped shapes", "texture", "striped"),
    ("dotted shapes", "texture", "dotted"),
    ("shapes in a snowy field", "scene", "snowy field"),
    ("shapes under a night sky", "scene", "night sky"),
    ("shapes on a sandy beach", "scene", "beach"),
    ("a photo of circles", "shape", "circle"),
    ("a photo of stars", "shape", "star"),
    ("a photo of hearts", "shape", "heart"),
    ("a photo of triangles", "shape", "triangle"),
    ("two shapes", "count", "two"),
)


def precision_at_10(
    service: Service, world: WorldCorpus, query: str, family: str, value: str
) -> float:
    hits = service.client.search_text(query, k=10, media_filter=WORLD_ONLY)
    assert len(hits) == 10
    relevant = [getattr(world.attributes[h.item.media_id], family) == value for h in hits]
    return sum(relevant) / 10


@pytest.mark.parametrize(("query", "family", "value"), QUALITY_QUERIES)
def test_text_query_precision_at_10(
    service: Service, world: WorldCorpus, query: str, family: str, value: str
) -> None:
    assert precision_at_10(service, world, query, family, value) >= 0.8


def test_image_query_finds_the_same_image_first(service: Service, world: WorldCorpus) -> None:
    media_id = "world-042"
    hits = service.client.search_image(world.images[media_id], k=5, media_filter=WORLD_ONLY)
    assert hits[0].item.media_id == media_id
    assert hits[0].score == pytest.approx(1.0, abs=1e-3)


def test_text_search_matches_captions_as_well_as_pixels(service: Service) -> None:
    """A photo whose caption says what its picture does not is found by hybrid search.

    "mislabelled" shows red circles on a beach but its caption describes blue stars at night;
    "stars" shows blue stars at night and has no caption; the rest are other pictures.
    """
    generator = WorldGenerator(77, image_size=128)
    shown = Attributes("circle", "red", "two", "beach", "solid")
    described = Attributes("star", "blue", "three", "night sky", "striped")
    others = [
        Attributes("square", "green", "one", "forest", "dotted"),
        Attributes("heart", "yellow", "four", "snowy field", "outlined"),
        Attributes("triangle", "purple", "one", "city street", "solid"),
    ]
    query = canonical_caption(described)
    items = {"mislabelled": (shown, query), "stars": (described, "")}
    items |= {f"other-{i}": (attrs, "") for i, attrs in enumerate(others)}
    for media_id, (attrs, caption) in items.items():
        service.client.index_media(
            MediaMetadata(media_id=f"hybrid-{media_id}", creator_id="hybrid", caption=caption),
            jpeg(generator.render(attrs)),
        )
    only = MediaFilter(creator_ids=("hybrid",))

    def ids(match: TextMatch) -> list[str]:
        hits = service.client.search_text(query, k=5, media_filter=only, match=match)
        return [h.item.media_id.removeprefix("hybrid-") for h in hits]

    pixels = ids(TextMatch.PIXELS)
    assert pixels[0] == "stars" and pixels.index("mislabelled") > 0
    assert ids(TextMatch.CAPTIONS) == ["mislabelled"]  # the only item with a caption
    # First in the captions and found in the pictures too, it beats the best picture alone.
    hybrid = ids(TextMatch.HYBRID)
    assert hybrid[:2] == ["mislabelled", "stars"]
    assert ids(TextMatch.UNSPECIFIED) == hybrid  # the server's default
    # Fused scores are reciprocal ranks (Qdrant's RRF, k = 2), not cosines.
    top, second = service.client.search_text(query, k=2, media_filter=only)
    assert top.score == pytest.approx(1 / 2 + 1 / (2 + pixels.index("mislabelled")))
    assert second.score == pytest.approx(1 / 2)


def test_more_like_this_excludes_the_seed(service: Service, world: WorldCorpus) -> None:
    seed = "world-007"
    hits = service.client.search_similar(seed, k=10, media_filter=WORLD_ONLY)
    ids = [h.item.media_id for h in hits]
    assert len(ids) == 10 and seed not in ids
    scores = [h.score for h in hits]
    assert scores == sorted(scores, reverse=True)
    # Neighbours share attributes with the seed far more than chance would.
    attrs = world.attributes[seed].as_dict()
    shared = np.mean(
        [sum(attrs[f] == v for f, v in world.attributes[i].as_dict().items()) for i in ids]
    )
    chance = sum(1 / len(v) for v in ATTRIBUTE_FAMILIES.values())
    assert shared > 2 * chance


# -- filters -------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def filter_items(service: Service, tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict]:
    """Nine items across types, creators, tags and hours, all tagged "filters"."""
    gen = WorldGenerator(9, image_size=128)
    folder = tmp_path_factory.mktemp("filter-videos")
    items: dict[str, dict] = {}
    for i in range(9):
        kind = ("image", "video", "text")[i % 3]
        creator = ("dora", "eve", "finn")[i // 3]
        tags = ("filters", "even" if i % 2 == 0 else "odd")
        created = EPOCH + timedelta(hours=i)
        post = gen.post()
        metadata = MediaMetadata(
            media_id=f"flt-{i}", creator_id=creator, caption=post.caption, tags=tags,
            created_at=created,
        )
        if kind == "image":
            service.client.index_media(metadata, jpeg(post.image))
        elif kind == "video":
            service.client.index_media(
                metadata, world_video(folder / f"{i}.mp4", post, seconds=1.0).read_bytes()
            )
        else:
            service.client.index_media(metadata)
        items[metadata.media_id] = {
            "kind": kind, "creator": creator, "tags": tags, "created": created,
        }
    return items


def _filtered_ids(service: Service, media_filter: MediaFilter) -> set[str]:
    base = replace(media_filter, tags=media_filter.tags or ("filters",))
    hits = service.client.search_text("shapes", k=100, media_filter=base)
    return {h.item.media_id for h in hits}


def _expect(items: dict[str, dict], keep) -> set[str]:  # type: ignore[no-untyped-def]
    return {media_id for media_id, item in items.items() if keep(item)}


def test_filter_by_media_type(service: Service, filter_items: dict[str, dict]) -> None:
    for kinds in (("image",), ("video",), ("text",), ("image", "text")):
        types = tuple(MediaType[k.upper()] for k in kinds)
        got = _filtered_ids(service, MediaFilter(media_types=types))
        expected = {m for m, item in filter_items.items() if item["kind"] in kinds}
        assert got == expected, kinds


def test_filter_by_creator(service: Service, filter_items: dict[str, dict]) -> None:
    got = _filtered_ids(service, MediaFilter(creator_ids=("dora", "finn")))
    assert got == _expect(filter_items, lambda item: item["creator"] in ("dora", "finn"))


def test_filter_by_tags(service: Service, filter_items: dict[str, dict]) -> None:
    got = _filtered_ids(service, MediaFilter(tags=("odd",)))
    assert got == _expect(filter_items, lambda item: "odd" in item["tags"])
    assert _filtered_ids(service, MediaFilter(tags=("no-such-tag",))) == set()


def test_filter_by_created_at_range_with_exclusive_end(
    service: Service, filter_items: dict[str, dict]
) -> None:
    start, end = EPOCH + timedelta(hours=2), EPOCH + timedelta(hours=5)
    got = _filtered_ids(service, MediaFilter(created_after=start, created_before=end))
    assert got == _expect(filter_items, lambda item: start <= item["created"] < end)
    assert got == {"flt-2", "flt-3", "flt-4"}
    only_after = _filtered_ids(service, MediaFilter(created_after=EPOCH + timedelta(hours=7)))
    assert only_after == {"flt-7", "flt-8"}


def test_filters_combine(service: Service, filter_items: dict[str, dict]) -> None:
    got = _filtered_ids(
        service,
        MediaFilter(
            media_types=(MediaType.IMAGE, MediaType.VIDEO),
            creator_ids=("eve", "finn"),
            created_before=EPOCH + timedelta(hours=8),
        ),
    )
    assert got == {"flt-3", "flt-4", "flt-6", "flt-7"}


def test_filters_apply_to_more_like_this(service: Service, filter_items: dict[str, dict]) -> None:
    hits = service.client.search_similar(
        "flt-0", k=50, media_filter=MediaFilter(tags=("filters",), creator_ids=("dora",))
    )
    assert {h.item.media_id for h in hits} <= {"flt-1", "flt-2"}
    assert "flt-0" not in {h.item.media_id for h in hits}


# -- streamed upload -----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def big_video(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real H.264 MP4 of noise frames, at least MEDIAREC_TEST_UPLOAD_MB (default 8) MB."""
    target = int(UPLOAD_MB * (1 << 20))
    path = tmp_path_factory.mktemp("upload") / "big.mp4"
    rng = np.random.default_rng(0)
    # Noise at 640x480 compresses to roughly 160 kB a frame; the 1.3 factor leaves headroom.
    n = max(24, math.ceil(1.3 * target / 160_000))
    frames = (rng.integers(0, 256, (480, 640, 3), dtype=np.uint8) for _ in range(n))
    write_video(path, frames, fps=24, gop=24)
    assert path.stat().st_size >= min(target, MAX_UPLOAD_BYTES - 1)
    return path


def test_streamed_upload_bypasses_the_unary_message_cap(
    service: Service, big_video: Path
) -> None:
    size = big_video.stat().st_size
    assert size > MAX_MESSAGE_BYTES
    metadata = MediaMetadata(media_id="upload-big", caption="noise")
    with pytest.raises(ResourceExhausted):  # inline, the same bytes hit the message cap
        service.client.index_media(metadata, big_video.read_bytes())

    result = service.client.index_file(big_video, metadata)

    assert result.outcome is IndexOutcome.CREATED and result.media_type is MediaType.VIDEO
    assert result.frame_count == VIDEO_FRAMES
    assert result.content_sha256 == hashlib.sha256(big_video.read_bytes()).hexdigest()
    assert service.client.get_media("upload-big").duration_s > 0
    assert service.client.index_file(big_video, metadata).outcome is IndexOutcome.UNCHANGED
    assert not list(service.deps.spool_dir.iterdir())  # the spooled file is gone


def _upload(
    stub: media_pb2_grpc.MediaServiceStub, header: media_pb2.UploadMediaHeader, data: bytes
) -> media_pb2.UploadMediaResponse:
    def requests() -> Iterator[media_pb2.UploadMediaRequest]:
        yield media_pb2.UploadMediaRequest(header=header)
        for start in range(0, len(data), 64 << 10):
            yield media_pb2.UploadMediaRequest(chunk=data[start : start + (64 << 10)])

    return stub.UploadMedia(requests(), timeout=30)


@pytest.mark.parametrize(
    ("size_delta", "sha_ok"), [(0, False), (1, True), (-1, True)], ids=["sha", "short", "long"]
)
def test_upload_with_wrong_hash_or_size_is_refused_and_stores_nothing(
    service: Service, stub: media_pb2_grpc.MediaServiceStub, size_delta: int, sha_ok: bool
) -> None:
    data = jpeg(WorldGenerator(10, image_size=128).post().image)
    header = media_pb2.UploadMediaHeader(
        metadata=common_pb2.MediaMetadata(media_id="upload-bad"),
        total_size_bytes=len(data) + size_delta,
        sha256=sha256(data) if sha_ok else sha256(data + b"x"),
    )
    count = service.count()

    with pytest.raises(grpc.RpcError) as caught:
        _upload(stub, header, data)

    assert caught.value.code() is grpc.StatusCode.INVALID_ARGUMENT
    assert service.count() == count
    with pytest.raises(NotFound):
        service.client.get_media("upload-bad")
    assert not list(service.deps.spool_dir.iterdir())


def test_upload_over_the_size_limit_is_resource_exhausted(
    service: Service, tmp_path: Path
) -> None:
    junk = tmp_path / "junk.bin"
    with junk.open("wb") as handle:  # sparse: cheap to make, still hashed and sized for real
        handle.truncate(MAX_UPLOAD_BYTES + 1)
    count = service.count()

    with pytest.raises(ResourceExhausted):
        service.client.index_file(junk, MediaMetadata(media_id="upload-huge"))

    assert service.count() == count
    assert not list(service.deps.spool_dir.iterdir())


def test_bad_upload_metadata_is_refused_before_any_chunk(
    service: Service, stub: media_pb2_grpc.MediaServiceStub
) -> None:
    release = threading.Event()

    def requests() -> Iterator[media_pb2.UploadMediaRequest]:
        yield media_pb2.UploadMediaRequest(
            header=media_pb2.UploadMediaHeader(
                metadata=common_pb2.MediaMetadata(media_id="../escape"),
                total_size_bytes=MAX_UPLOAD_BYTES,
                sha256="0" * 64,
            )
        )
        release.wait(10)  # the chunks never come; the answer must not wait for them

    try:
        with pytest.raises(grpc.RpcError) as caught:
            stub.UploadMedia(requests(), timeout=5)
    finally:
        release.set()
    assert caught.value.code() is grpc.StatusCode.INVALID_ARGUMENT


def test_cancelled_upload_stores_nothing_and_leaves_no_spool_file(
    service: Service, stub: media_pb2_grpc.MediaServiceStub, big_video: Path
) -> None:
    data = big_video.read_bytes()
    sent_some = threading.Event()
    release = threading.Event()

    def requests() -> Iterator[media_pb2.UploadMediaRequest]:
        yield media_pb2.UploadMediaRequest(
            header=media_pb2.UploadMediaHeader(
                metadata=common_pb2.MediaMetadata(media_id="upload-cancelled"),
                total_size_bytes=len(data),
                sha256=sha256(data),
            )
        )
        yield media_pb2.UploadMediaRequest(chunk=data[: 256 << 10])
        sent_some.set()
        release.wait(10)

    call = stub.UploadMedia.future(requests(), timeout=30)
    try:
        assert sent_some.wait(10)
        deadline = time.monotonic() + 10
        while not list(service.deps.spool_dir.iterdir()) and time.monotonic() < deadline:
            time.sleep(0.02)  # the server has started spooling
        call.cancel()
    finally:
        release.set()
    deadline = time.monotonic() + 10
    while list(service.deps.spool_dir.iterdir()) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not list(service.deps.spool_dir.iterdir())
    with pytest.raises(NotFound):
        service.client.get_media("upload-cancelled")


# -- bring your own vectors ----------------------------------------------------------------------


def test_own_vectors_are_stored_and_searchable(service: Service) -> None:
    post = WorldGenerator(11, image_size=128).post()
    data = jpeg(post.image)
    encoder = service.deps.encoder
    visual = encoder.embed_images([Image.open(io.BytesIO(data)).convert("RGB")])[0]
    caption = encoder.embed_texts([post.caption])[0]

    result = service.client.index_embeddings(
        MediaMetadata(media_id="byo-photo", caption=post.caption),
        Embeddings(model_id=MODEL_ID, visual=(3.0 * visual).tolist(), caption=caption.tolist()),
    )

    assert result.outcome is IndexOutcome.CREATED and result.media_type is MediaType.IMAGE
    assert result.dims == DEMO_DIM and result.content_sha256 == ""
    stored = service.deps.store.retrieve_vectors(["byo-photo"], schema.VISUAL)["byo-photo"]
    np.testing.assert_allclose(stored, visual / np.linalg.norm(visual), atol=1e-5)
    hits = service.client.search_image(data, k=3)
    assert hits[0].item.media_id == "byo-photo" and hits[0].score > 0.99
    same = service.client.index_embeddings(
        MediaMetadata(media_id="byo-photo", caption=post.caption),
        Embeddings(model_id=MODEL_ID, visual=(3.0 * visual).tolist(), caption=caption.tolist()),
    )
    assert same.outcome is IndexOutcome.UNCHANGED


def test_own_frame_vectors_make_a_video(service: Service, anchor: str) -> None:
    rng = np.random.default_rng(1)
    frames = tuple(
        FrameVector(timestamp_s=0.5 + i, vector=rng.normal(size=DEMO_DIM).tolist())
        for i in range(4)
    )

    result = service.client.index_embeddings(
        MediaMetadata(media_id="byo-video"), Embeddings(model_id=MODEL_ID, frames=frames)
    )

    assert result.media_type is MediaType.VIDEO
    assert result.frame_timestamps_s == (0.5, 1.5, 2.5, 3.5)
    hits = service.client.search_similar(
        anchor, k=500, media_filter=MediaFilter(media_types=(MediaType.VIDEO,))
    )
    hit = next(h for h in hits if h.item.media_id == "byo-video")
    assert hit.matched_frame_timestamp_s in result.frame_timestamps_s


def _bad_vectors() -> dict[str, Embeddings]:
    good = [1.0] + [0.0] * (DEMO_DIM - 1)
    return {
        "short": Embeddings(model_id=MODEL_ID, visual=good[:-1]),
        "long": Embeddings(model_id=MODEL_ID, visual=[*good, 0.0]),
        "nan": Embeddings(model_id=MODEL_ID, visual=[math.nan, *good[1:]]),
        "inf": Embeddings(model_id=MODEL_ID, visual=[math.inf, *good[1:]]),
        "zero": Embeddings(model_id=MODEL_ID, visual=[0.0] * DEMO_DIM),
        "zero-caption": Embeddings(model_id=MODEL_ID, visual=good, caption=[0.0] * DEMO_DIM),
        "frame-dim": Embeddings(model_id=MODEL_ID, frames=(FrameVector(0.0, good[:3]),)),
        "frame-order": Embeddings(
            model_id=MODEL_ID, frames=(FrameVector(1.0, good), FrameVector(0.5, good))
        ),
        "other-model": Embeddings(model_id="openclip:ViT-B-32/laion2b_s34b_b79k", visual=good),
        "nothing": Embeddings(model_id=MODEL_ID),
    }


def test_an_empty_vector_is_invalid_not_ignored(
    service: Service, stub: media_pb2_grpc.MediaServiceStub
) -> None:
    request = media_pb2.IndexMediaRequest(
        metadata=common_pb2.MediaMetadata(media_id="byo-empty", caption="a caption"),
        embeddings=media_pb2.MediaEmbeddings(model_id=MODEL_ID, visual=media_pb2.Vector()),
    )
    with pytest.raises(grpc.RpcError) as caught:
        stub.IndexMedia(request, timeout=10)
    assert caught.value.code() is grpc.StatusCode.INVALID_ARGUMENT
    with pytest.raises(NotFound):
        service.client.get_media("byo-empty")


@pytest.mark.parametrize("case", sorted(_bad_vectors()))
def test_bad_own_vectors_are_invalid_and_store_nothing(service: Service, case: str) -> None:
    count = service.count()
    with pytest.raises(InvalidArgument):
        service.client.index_embeddings(MediaMetadata(media_id="byo-bad"), _bad_vectors()[case])
    assert service.count() == count
    with pytest.raises(NotFound):
        service.client.get_media("byo-bad")


# -- auth, health, reflection --------------------------------------------------------------------


def test_api_keys_guard_every_rpc_but_health(service: Service, anchor: str) -> None:
    settings = replace(
        service.settings, server=replace(service.settings.server, api_keys=("k1", "k2"))
    )
    # A second server over the same deps; stopped without closing the shared store.
    guarded = build_server(settings, ServiceState(service.deps))
    target = f"127.0.0.1:{guarded.port}"
    try:
        with MediarecClient(target) as anonymous, MediarecClient(target, api_key="nope") as wrong:
            for client in (anonymous, wrong):
                with pytest.raises(Unauthenticated):
                    client.get_media(anchor)
                with pytest.raises(Unauthenticated):
                    client.search_text("red")
                with pytest.raises(Unauthenticated):
                    client.index_media(MediaMetadata(media_id="auth-x", caption="x"))
                assert client.health() is ServingStatus.SERVING
        with MediarecClient(target, api_key="k2") as right:
            assert right.get_media(anchor).media_id == anchor
            assert right.server_info().model_id == MODEL_ID
        with pytest.raises(NotFound):
            service.client.get_media("auth-x")
    finally:
        guarded.server.stop(0)


def test_health_is_not_serving_until_deps_are_ready(service: Service, anchor: str) -> None:
    state = ServiceState()
    running = build_server(service.settings, state)
    try:
        with MediarecClient(f"127.0.0.1:{running.port}") as client:
            assert client.health() is ServingStatus.NOT_SERVING
            assert client.health("mediarec.v1.MediaService") is ServingStatus.NOT_SERVING
            with pytest.raises(Unavailable):
                client.get_media(anchor)
            with pytest.raises(Unavailable):
                client.server_info()

            state.set_ready(service.deps)
            running.set_serving()

            assert client.health() is ServingStatus.SERVING
            assert client.health("mediarec.v1.MediaService") is ServingStatus.SERVING
            assert client.get_media(anchor).media_id == anchor
    finally:
        running.server.stop(0)


def test_reflection_lists_the_media_service(service: Service) -> None:
    with grpc.insecure_channel(service.target) as channel:
        stub = reflection_pb2_grpc.ServerReflectionStub(channel)
        request = reflection_pb2.ServerReflectionRequest(list_services="")
        responses = list(stub.ServerReflectionInfo(iter([request]), timeout=10))
    names = {s.name for s in responses[0].list_services_response.service}
    assert {"mediarec.v1.MediaService", "grpc.health.v1.Health"} <= names


def test_server_info_counts_by_type(service: Service) -> None:
    info = service.client.server_info()
    assert info.model_id == MODEL_ID and info.dims == DEMO_DIM
    assert info.video_frames == VIDEO_FRAMES
    assert info.media_count == info.image_count + info.video_count + info.text_count
    assert info.limits.max_message_bytes == MAX_MESSAGE_BYTES


def test_search_results_are_bounded_by_k_and_sorted(service: Service, world: WorldCorpus) -> None:
    rng = random.Random(0)
    for k in (1, 7, 25):
        hits = service.client.search_text(rng.choice(QUALITY_QUERIES)[0], k=k)
        assert len(hits) == k
        assert [h.score for h in hits] == sorted((h.score for h in hits), reverse=True)
