"""Bad input to MediaService: each case gets its own status code and leaves the store unchanged.

The server runs with small limits (pixels, caption, tags, k) so over-limit input is cheap to
make. Every failing call that would write targets the id of an item that already exists, so
"unchanged" means that item survived as it was, and the item count did not move.
"""

from __future__ import annotations

import io
import json
import struct
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import grpc
import numpy as np
import pytest
from PIL import Image

from mediarec.client import (
    InvalidArgument,
    Location,
    MediaFilter,
    MediaItem,
    MediaMetadata,
    MediarecClient,
    MediarecError,
    MediaType,
    NotFound,
    ResourceExhausted,
    ServingStatus,
)
from mediarec.encoders.synthetic.world import WorldGenerator
from mediarec.encoders.synthetic_video import moving_shapes_frames, write_sparse_video, write_video
from mediarec.server.app import RunningServer, build_server
from mediarec.server.config import Settings, load_settings
from mediarec.server.grpc.errors import status_for
from mediarec.server.runtime import ServiceState, open_deps
from mediarec.server.store import DimensionMismatchError
from mediarec.v1 import common_pb2, media_pb2, media_pb2_grpc

MODEL_ID = "mediarec-demo"
MAX_PIXELS = 1_000_000
MAX_CAPTION = 200
MAX_TAGS = 5
MAX_K = 50
SEED_ID = "seed"


@dataclass
class ErrorService:
    settings: Settings
    running: RunningServer
    client: MediarecClient
    stub: media_pb2_grpc.MediaServiceStub
    seed_image: bytes
    video: bytes

    def snapshot(self) -> tuple[int, MediaItem]:
        return self.client.server_info().media_count, self.client.get_media(SEED_ID)


def jpeg(image: Image.Image, quality: int = 90) -> bytes:
    buffer = io.BytesIO()
    image.convert("RGB").save(buffer, "JPEG", quality=quality)
    return buffer.getvalue()


def png(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, "PNG")
    return buffer.getvalue()


@pytest.fixture(scope="module")
def svc(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ErrorService]:
    root = tmp_path_factory.mktemp("media-errors")
    settings = load_settings(
        {
            "model_id": MODEL_ID,
            "data_dir": str(root / "data"),
            "port": 0,
            "max_image_pixels": MAX_PIXELS,
            "max_caption_chars": MAX_CAPTION,
            "max_tags": MAX_TAGS,
            "search_max_k": MAX_K,
        },
        {},
        None,
    )
    deps = open_deps(settings)
    running = build_server(settings, ServiceState(deps))
    target = f"127.0.0.1:{running.port}"
    post = WorldGenerator(5, image_size=128).post()
    seed_image = jpeg(post.image)
    video_path = write_video(
        root / "clip.mp4", moving_shapes_frames(24, (160, 120), seed=3), fps=12, gop=12
    )
    client = MediarecClient(target)
    channel = grpc.insecure_channel(target)
    try:
        client.index_media(
            MediaMetadata(media_id=SEED_ID, caption=post.caption, tags=("seed",)), seed_image
        )
        client.index_media(MediaMetadata(media_id="other", caption="text post"))
        yield ErrorService(
            settings,
            running,
            client,
            media_pb2_grpc.MediaServiceStub(channel),
            seed_image,
            video_path.read_bytes(),
        )
    finally:
        channel.close()
        client.close()
        running.stop(0)


# -- crafted bad media ---------------------------------------------------------------------------


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def png_bomb(width: int = 100_000, height: int = 100_000) -> bytes:
    """A valid-looking PNG of a few hundred bytes whose header declares width x height pixels."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    rows = zlib.compress(b"\x00" * (1 + 3 * 64) * 8, 9)  # a little real data; never reached
    return (
        b"\x89PNG\r\n\x1a\n"
        + _png_chunk(b"IHDR", ihdr)
        + _png_chunk(b"IDAT", rows)
        + _png_chunk(b"IEND", b"")
    )


def corrupt_jpeg(data: bytes) -> bytes:
    """The JPEG with its entropy-coded scan replaced by noise (headers intact)."""
    scan = data.index(b"\xff\xda")
    noise = np.random.default_rng(0).integers(0, 256, len(data) - scan - 40, dtype=np.uint8)
    body = noise.tobytes().replace(b"\xff", b"\xfe")  # no accidental markers
    return data[: scan + 20] + b"\xff\xd8\xff" + body + data[-20:]


def image_of(width: int, height: int) -> Image.Image:
    return Image.new("RGB", (width, height), (200, 40, 40))


# -- the table of bad requests -------------------------------------------------------------------

Call = Callable[[ErrorService], object]


def _index(data: bytes | None = None, **fields: object) -> Call:
    def call(svc: ErrorService) -> object:
        values: dict[str, Any] = {"media_id": SEED_ID, "caption": "bad", **fields}
        metadata = MediaMetadata(**values)
        return svc.client.index_media(metadata, data)

    return call


def _with_seed_image(**fields: object) -> Call:
    def call(svc: ErrorService) -> object:
        return _index(svc.seed_image, **fields)(svc)

    return call


def _text(text: str = "red", k: int = 5, media_filter: MediaFilter | None = None) -> Call:
    return lambda svc: svc.client.search_text(text, k=k, media_filter=media_filter)


def _image_query(image: bytes) -> Call:
    return lambda svc: svc.client.search_image(image, k=5)


def _similar(media_id: str) -> Call:
    return lambda svc: svc.client.search_similar(media_id, k=5)


def _raw_search(request: media_pb2.SearchMediaRequest) -> Call:
    def call(svc: ErrorService) -> object:
        return svc.stub.SearchMedia(request, timeout=10)

    return call


def _raw_upload(*messages: media_pb2.UploadMediaRequest) -> Call:
    def call(svc: ErrorService) -> object:
        return svc.stub.UploadMedia(iter(messages), timeout=10)

    return call


def _upload_bytes(data: bytes, media_id: str = SEED_ID) -> Call:
    import hashlib

    header = media_pb2.UploadMediaHeader(
        metadata=common_pb2.MediaMetadata(media_id=media_id),
        total_size_bytes=len(data),
        sha256=hashlib.sha256(data).hexdigest(),
    )
    return _raw_upload(
        media_pb2.UploadMediaRequest(header=header), media_pb2.UploadMediaRequest(chunk=data)
    )


def _video(cut: Callable[[bytes], bytes], upload: bool = False) -> Call:
    """The service's real MP4, cut or damaged by ``cut``, sent in one message or streamed."""

    def call(svc: ErrorService) -> object:
        data = cut(svc.video)
        return _upload_bytes(data)(svc) if upload else _index(data)(svc)

    return call


def _noise_after(keep: int) -> Callable[[bytes], bytes]:
    def cut(data: bytes) -> bytes:
        noise = np.random.default_rng(1).integers(0, 256, len(data) - keep, dtype=np.uint8)
        return data[:keep] + noise.tobytes()

    return cut


def _vectors(dim_of: Callable[[int], dict[str, Any]]) -> Call:
    """IndexMedia with bring-your-own vectors built from the server's dimension."""

    def call(svc: ErrorService) -> object:
        dim = svc.running.state.require().encoder.dim
        fields = {"model_id": svc.running.state.require().encoder.model_id, **dim_of(dim)}
        request = media_pb2.IndexMediaRequest(
            metadata=common_pb2.MediaMetadata(media_id=SEED_ID),
            embeddings=media_pb2.MediaEmbeddings(**fields),
        )
        return svc.stub.IndexMedia(request, timeout=10)

    return call


def _unit(dim: int, scale: float = 1.0) -> media_pb2.Vector:
    return media_pb2.Vector(values=[scale] + [0.0] * (dim - 1))


def _frames(*times: float, size: int | None = None) -> Callable[[int], dict[str, Any]]:
    def fields(dim: int) -> dict[str, Any]:
        vector = _unit(size or dim)
        return {"frames": [media_pb2.FrameVector(timestamp_s=t, vector=vector) for t in times]}

    return fields


def _raw_list(prefix: str) -> Call:
    def call(svc: ErrorService) -> object:
        request = media_pb2.ListMediaRequest(source_prefix=prefix)
        return list(svc.stub.ListMedia(request, timeout=10))

    return call


JUNK = b"this is not a picture, it is a sentence. " * 20
_SMALL_JPEG = jpeg(WorldGenerator(6, image_size=128).post().image)
_SMALL_PNG = png(WorldGenerator(7, image_size=128).post().image)
_PIXELS_OVER = jpeg(image_of(1250, 1000))  # 1.25 MP, a real image just over the cap
# Under the pixel cap but 250,000:1: resize-then-crop would make it 56,000,000x224 pixels.
_ASPECT_BOMB = png(image_of(500_000, 2))
_GOOD_HASH = "0" * 64

INVALID = grpc.StatusCode.INVALID_ARGUMENT
EXHAUSTED = grpc.StatusCode.RESOURCE_EXHAUSTED
NOT_FOUND = grpc.StatusCode.NOT_FOUND

CASES: dict[str, tuple[Call, grpc.StatusCode]] = {
    # media bytes
    "empty-bytes": (_index(b""), INVALID),
    "unknown-bytes": (_index(JUNK), INVALID),
    "corrupt-jpeg": (_index(corrupt_jpeg(_SMALL_JPEG)), INVALID),
    "truncated-jpeg": (_index(_SMALL_JPEG[: len(_SMALL_JPEG) // 2]), INVALID),
    "truncated-png": (_index(_SMALL_PNG[: len(_SMALL_PNG) // 2]), INVALID),
    "png-header-only": (_index(_SMALL_PNG[:40]), INVALID),
    "decompression-bomb": (_index(png_bomb()), EXHAUSTED),
    "image-over-pixel-cap": (_index(_PIXELS_OVER), EXHAUSTED),
    "aspect-ratio-bomb": (_index(_ASPECT_BOMB), INVALID),
    # metadata
    "caption-over-cap": (_with_seed_image(caption="x" * (MAX_CAPTION + 1)), EXHAUSTED),
    "caption-only-over-cap": (_index(None, caption="x" * (MAX_CAPTION + 1)), EXHAUSTED),
    "too-many-tags": (
        _with_seed_image(tags=tuple(f"t{i}" for i in range(MAX_TAGS + 1))),
        EXHAUSTED,
    ),
    "empty-tag": (_with_seed_image(tags=("ok", "")), INVALID),
    "long-tag": (_with_seed_image(tags=("x" * 101,)), INVALID),
    "long-creator": (_with_seed_image(creator_id="c" * 300), INVALID),
    "empty-caption-only": (_index(None, caption="  "), INVALID),
    "media-id-empty": (_with_seed_image(media_id=""), INVALID),
    "media-id-path": (_with_seed_image(media_id="../x"), INVALID),
    "media-id-300-chars": (_with_seed_image(media_id="a" * 300), INVALID),
    "media-id-space": (_with_seed_image(media_id="a b"), INVALID),
    "hint-video-for-jpeg": (_with_seed_image(media_type=MediaType.VIDEO), INVALID),
    "hint-text-for-jpeg": (_with_seed_image(media_type=MediaType.TEXT), INVALID),
    "hint-image-for-caption": (_index(None, caption="x", media_type=MediaType.IMAGE), INVALID),
    # reading, deleting, searching
    "get-unknown": (lambda svc: svc.client.get_media("no-such-item"), NOT_FOUND),
    "get-empty-id": (lambda svc: svc.client.get_media(""), INVALID),
    "get-path-id": (lambda svc: svc.client.get_media("../x"), INVALID),
    "get-300-char-id": (lambda svc: svc.client.get_media("a" * 300), INVALID),
    "delete-unknown": (lambda svc: svc.client.delete_media("no-such-item"), NOT_FOUND),
    "delete-empty-id": (lambda svc: svc.client.delete_media("", allow_missing=True), INVALID),
    "similar-unknown": (_similar("no-such-item"), NOT_FOUND),
    "get-unknown-path-like": (
        lambda svc: svc.client.get_media("2024/trip/IMG_0001.jpg"),
        NOT_FOUND,
    ),
    "similar-media-unknown": (lambda svc: svc.client.similar_media("no-such-item"), NOT_FOUND),
    "recommend-unknown-seed": (
        lambda svc: svc.client.recommend("someone", k=5, seed_media_id="no-such-item"),
        NOT_FOUND,
    ),
    "k-over-max": (_text(k=MAX_K + 1), INVALID),
    "k-negative": (_text(k=-1), INVALID),
    "empty-text": (_text("   "), INVALID),
    "query-image-junk": (_image_query(JUNK), INVALID),
    "query-image-bomb": (_image_query(png_bomb()), EXHAUSTED),
    "query-image-over-pixel-cap": (_image_query(_PIXELS_OVER), EXHAUSTED),
    "query-image-aspect-ratio-bomb": (_image_query(_ASPECT_BOMB), INVALID),
    "time-range-backwards": (
        _text(
            media_filter=MediaFilter(
                created_after=datetime(2026, 2, 1, tzinfo=UTC),
                created_before=datetime(2026, 1, 1, tzinfo=UTC),
            )
        ),
        INVALID,
    ),
    "no-query": (_raw_search(media_pb2.SearchMediaRequest(k=5)), INVALID),
    "unknown-media-type": (
        _raw_search(
            media_pb2.SearchMediaRequest(
                text="red", filter=common_pb2.MediaFilter(media_types=[99])
            )
        ),
        INVALID,
    ),
    # streamed upload
    "upload-no-header": (_raw_upload(media_pb2.UploadMediaRequest(chunk=b"abc")), INVALID),
    "upload-nothing": (_raw_upload(), INVALID),
    "upload-two-headers": (
        _raw_upload(
            media_pb2.UploadMediaRequest(
                header=media_pb2.UploadMediaHeader(
                    metadata=common_pb2.MediaMetadata(media_id=SEED_ID),
                    total_size_bytes=3,
                    sha256=_GOOD_HASH,
                )
            ),
            media_pb2.UploadMediaRequest(header=media_pb2.UploadMediaHeader()),
        ),
        INVALID,
    ),
    "upload-bad-sha-format": (
        _raw_upload(
            media_pb2.UploadMediaRequest(
                header=media_pb2.UploadMediaHeader(
                    metadata=common_pb2.MediaMetadata(media_id=SEED_ID),
                    total_size_bytes=3,
                    sha256="not-a-hash",
                )
            ),
            media_pb2.UploadMediaRequest(chunk=b"abc"),
        ),
        INVALID,
    ),
    "upload-empty": (
        _raw_upload(
            media_pb2.UploadMediaRequest(
                header=media_pb2.UploadMediaHeader(
                    metadata=common_pb2.MediaMetadata(media_id=SEED_ID), sha256=_GOOD_HASH
                )
            )
        ),
        INVALID,
    ),
    "upload-junk": (_upload_bytes(JUNK), INVALID),
    "upload-truncated-png": (_upload_bytes(_SMALL_PNG[:300]), INVALID),
    "upload-bomb": (_upload_bytes(png_bomb()), EXHAUSTED),
    "upload-aspect-ratio-bomb": (_upload_bytes(_ASPECT_BOMB), INVALID),
    "upload-bad-media-id": (_upload_bytes(_SMALL_JPEG, media_id="../x"), INVALID),
    # video
    "video-truncated-half": (_video(lambda v: v[: len(v) // 2]), INVALID),
    "video-header-only": (_video(lambda v: v[:64]), INVALID),
    "video-noise-after-header": (_video(_noise_after(48)), INVALID),
    "video-noise-after-2k": (_video(_noise_after(2048)), INVALID),
    "video-zero-bytes-after-header": (_video(lambda v: v[:48] + b"\0" * 4096), INVALID),
    "upload-video-truncated": (_video(lambda v: v[: len(v) // 3], upload=True), INVALID),
    "upload-video-noise": (_video(_noise_after(2048), upload=True), INVALID),
    "query-image-is-a-video": (lambda svc: svc.client.search_image(svc.video, k=5), INVALID),
    # bring-your-own vectors and frame times
    "vectors-wrong-dim": (_vectors(lambda d: {"visual": _unit(d // 2)}), INVALID),
    "vectors-nan": (_vectors(lambda d: {"visual": _unit(d, float("nan"))}), INVALID),
    "vectors-infinite-caption": (_vectors(lambda d: {"caption": _unit(d, float("inf"))}), INVALID),
    "vectors-zero": (_vectors(lambda d: {"visual": _unit(d, 0.0)}), INVALID),
    "vectors-none": (_vectors(lambda d: {}), INVALID),
    "vectors-another-model": (
        _vectors(lambda d: {"model_id": "openclip:ViT-B-32/other", "visual": _unit(d)}),
        INVALID,
    ),
    "frames-wrong-dim": (_vectors(_frames(0.0, 1.0, size=7)), INVALID),
    "frames-negative-time": (_vectors(_frames(-1.0, 1.0)), INVALID),
    "frames-time-going-back": (_vectors(_frames(2.0, 1.0)), INVALID),
    "frames-infinite-time": (_vectors(_frames(0.0, float("inf"))), INVALID),
    # strings and numbers
    "source-over-4096": (_with_seed_image(source="/" + "s" * 4096), INVALID),
    "list-prefix-over-4096": (_raw_list("/" + "p" * 4096), INVALID),
    "text-match-unknown": (
        _raw_search(media_pb2.SearchMediaRequest(text="red", text_match=99)),  # type: ignore[arg-type]
        INVALID,
    ),
    "k-huge": (_text(k=2**31 - 1), INVALID),
    "latitude-out-of-range": (
        _with_seed_image(location=Location("x", latitude=120.0, longitude=0.0)),
        INVALID,
    ),
    "longitude-not-finite": (
        _with_seed_image(location=Location("x", latitude=0.0, longitude=float("nan"))),
        INVALID,
    ),
    "region-over-cap": (_with_seed_image(location=Location("r" * 1000)), INVALID),
    "creator-257-chars": (_with_seed_image(creator_id="c" * 257), INVALID),
    "text-query-over-cap": (_text("w" * (MAX_CAPTION + 1)), EXHAUSTED),
}


def _code_of(error: BaseException) -> grpc.StatusCode:
    if isinstance(error, MediarecError):
        return error.code
    assert isinstance(error, grpc.RpcError), error
    return error.code()  # type: ignore[attr-defined, no-any-return]


@pytest.mark.parametrize("case", list(CASES))
def test_bad_input_gets_its_status_code_and_changes_nothing(svc: ErrorService, case: str) -> None:
    call, expected = CASES[case]
    before = svc.snapshot()

    with pytest.raises((MediarecError, grpc.RpcError)) as caught:
        call(svc)

    code = _code_of(caught.value)
    assert code not in (grpc.StatusCode.UNKNOWN, grpc.StatusCode.INTERNAL), caught.value
    assert code == expected, caught.value
    assert svc.snapshot() == before
    assert not list((svc.settings.storage.data_dir / "uploads").iterdir())


PEAK_GROWTH_LIMIT = 512 << 20  # bytes: bad input may cost work, never the machine's memory


def _rss_bytes(field: str) -> int:
    """VmRSS or VmHWM (the peak) of this process, which runs the server in these tests."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) * 1024
    raise AssertionError(f"{field} not in /proc/self/status")


@pytest.mark.skipif(not Path("/proc/self/clear_refs").exists(), reason="needs Linux /proc")
def test_every_hostile_case_together_keeps_the_peak_within_512_mib(svc: ErrorService) -> None:
    Path("/proc/self/clear_refs").write_text("5")  # restart the peak (VmHWM) from now
    start = _rss_bytes("VmRSS")
    for call, _ in CASES.values():
        with pytest.raises((MediarecError, grpc.RpcError)):
            call(svc)
    grown = _rss_bytes("VmHWM") - start
    assert grown <= PEAK_GROWTH_LIMIT, f"peak RSS grew by {grown >> 20} MiB"
    assert svc.client.health() is ServingStatus.SERVING


def test_typed_client_errors_match_the_status(svc: ErrorService) -> None:
    with pytest.raises(InvalidArgument):
        svc.client.index_media(MediaMetadata(media_id="x"), JUNK)
    with pytest.raises(ResourceExhausted):
        svc.client.index_media(MediaMetadata(media_id="x"), png_bomb())
    with pytest.raises(NotFound):
        svc.client.get_media("no-such-item")


@pytest.mark.parametrize(
    ("data", "field"), [(JUNK, "data"), (b"\x00\x00\x00\x18ftypmp42" + JUNK, "data")]
)
def test_unknown_or_broken_formats_name_the_field(
    svc: ErrorService, data: bytes, field: str
) -> None:
    with pytest.raises(InvalidArgument) as caught:
        svc.client.index_media(MediaMetadata(media_id="fmt"), data)
    assert caught.value.details.startswith(f"{field}:")


def test_truncated_video_is_invalid_and_changes_nothing(svc: ErrorService) -> None:
    before = svc.snapshot()
    for cut in (len(svc.video) // 2, 2000):
        with pytest.raises(InvalidArgument):
            svc.client.index_media(MediaMetadata(media_id=SEED_ID), svc.video[:cut])
    assert svc.snapshot() == before


def test_a_video_that_claims_hours_is_over_a_limit_and_changes_nothing(
    svc: ErrorService, tmp_path: Path
) -> None:
    sparse = write_sparse_video(tmp_path / "sparse.mkv", gap_s=5 * 3600.0).read_bytes()
    before = svc.snapshot()
    with pytest.raises(ResourceExhausted) as caught:
        svc.client.index_media(MediaMetadata(media_id=SEED_ID), sparse)
    assert "hours, over the limit" in caught.value.details
    assert svc.snapshot() == before


@pytest.mark.parametrize(
    ("method", "payload"),
    [
        ("/mediarec.v1.MediaService/GetMedia", b"\x0a\x02\xff\xfe"),  # media_id: not UTF-8
        ("/mediarec.v1.MediaService/SearchMedia", b"\x0a\x03a\xc3("),  # text: cut sequence
        ("/mediarec.v1.MediaService/GetMedia", b"\x0a\x7f"),  # a length past the end
        ("/mediarec.v1.RecommendationService/Recommend", b"\x0a\x01\x80"),  # user_id
    ],
    ids=["get-media", "search-text", "truncated", "recommend"],
)
def test_undecodable_requests_are_invalid_not_internal(
    svc: ErrorService, method: str, payload: bytes
) -> None:
    before = svc.snapshot()
    channel = grpc.insecure_channel(f"127.0.0.1:{svc.running.port}")
    call = channel.unary_unary(method)  # raw bytes: no serializer
    with pytest.raises(grpc.RpcError) as caught:
        call(payload, timeout=10)
    channel.close()
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT  # type: ignore[attr-defined]
    assert svc.snapshot() == before


def test_a_bring_your_own_frame_time_must_be_finite(svc: ErrorService) -> None:
    dim = svc.running.state.require().encoder.dim
    vector = media_pb2.Vector(values=[1.0] + [0.0] * (dim - 1))
    before = svc.snapshot()
    for bad in (float("nan"), float("inf")):
        request = media_pb2.IndexMediaRequest(
            metadata=common_pb2.MediaMetadata(media_id=SEED_ID, caption="frames"),
            embeddings=media_pb2.MediaEmbeddings(
                model_id=MODEL_ID,
                frames=[
                    media_pb2.FrameVector(timestamp_s=0.0, vector=vector),
                    media_pb2.FrameVector(timestamp_s=bad, vector=vector),
                ],
            ),
        )
        with pytest.raises(grpc.RpcError) as caught:
            svc.stub.IndexMedia(request, timeout=10)
        assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT  # type: ignore[attr-defined]
    assert svc.snapshot() == before


def test_good_input_after_errors_still_works(svc: ErrorService) -> None:
    result = svc.client.index_media(MediaMetadata(media_id="late-video"), svc.video)
    assert result.frame_count == svc.settings.media.video_frames
    assert svc.client.get_media("late-video").metadata.media_type is MediaType.VIDEO
    assert svc.client.get_media(SEED_ID).metadata.tags == ("seed",)
    hits = svc.client.search_image(svc.seed_image, k=1)
    assert hits[0].item.media_id == SEED_ID


# -- model / collection dimension mismatch -------------------------------------------------------


def write_tiny_openclip(folder: Path, dim: int, seed: int = 0) -> None:
    """A random open_clip model in open_clip's local-dir format (config + safetensors)."""
    import torch
    from open_clip.model import CLIP
    from safetensors.torch import save_file

    config = {
        "model_cfg": {
            "embed_dim": dim,
            "vision_cfg": {"image_size": 32, "layers": 1, "width": 64, "patch_size": 16},
            "text_cfg": {
                "context_length": 16, "vocab_size": 49408, "width": 32, "heads": 2, "layers": 1,
            },
        },
        "preprocess_cfg": {"size": 32},
    }
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "open_clip_config.json").write_text(json.dumps(config))
    torch.manual_seed(seed)
    model = CLIP(**config["model_cfg"])
    tensors = {k: v.contiguous() for k, v in model.state_dict().items()}
    save_file(tensors, str(folder / "open_clip_model.safetensors"))


def test_reopening_a_collection_with_another_dimension_fails_naming_both(
    tmp_path: Path,
) -> None:
    model_dir = tmp_path / "tiny-model"
    settings = load_settings(
        {
            "model_id": f"openclip-dir:{model_dir}",
            "data_dir": str(tmp_path / "data"),
            "port": 0,
            "topics_top_k": 0,
        },
        {},
        None,
    )
    write_tiny_openclip(model_dir, dim=32)
    open_deps(settings).close()
    # The same model id (the folder) now holds weights of another width.
    write_tiny_openclip(model_dir, dim=48)

    with pytest.raises(DimensionMismatchError) as caught:
        open_deps(settings)

    message = str(caught.value)
    assert "32" in message and "48" in message
    code, _ = status_for(caught.value)
    assert code is grpc.StatusCode.FAILED_PRECONDITION
    # The store was released: the original model opens the data dir again.
    write_tiny_openclip(model_dir, dim=32)
    deps = open_deps(replace(settings))
    deps.close()
