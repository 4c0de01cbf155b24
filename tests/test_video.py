"""Frame sampling with real PyAV on clips written by mediarec.encoders.synthetic_video, plus real
clips."""

from __future__ import annotations

import io
import time
from pathlib import Path
from typing import Any

import av
import numpy as np
import pytest
from PIL import Image

from mediarec.encoders.media_errors import DecodeFailure, MediaDecodeError
from mediarec.encoders.synthetic_video import (
    frame_index_from_bar,
    moving_shapes_frames,
    write_sparse_video,
    write_video,
)
from mediarec.encoders.video import VideoInfo, plan_seeks, sample_frames, sample_times

FPS = 25
FRAMES = 100  # 4 s
SIZE = (320, 240)


class _Pipe(io.RawIOBase):
    """A write-only, non-seekable sink: muxers write no duration or index into it."""

    def __init__(self) -> None:
        self.data = bytearray()

    def writable(self) -> bool:
        return True

    def write(self, chunk) -> int:  # type: ignore[override]
        self.data += chunk
        return len(chunk)


@pytest.fixture(scope="module")
def originals() -> list[np.ndarray]:
    """The upright source frames every synthetic clip is encoded from."""
    return list(moving_shapes_frames(FRAMES, SIZE, seed=7))


@pytest.fixture(scope="module")
def clips(tmp_path_factory: pytest.TempPathFactory, originals: list[np.ndarray]) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("clips")

    def make(name: str, n: int = FRAMES, **kwargs: Any) -> Path:
        return write_video(folder / name, originals[:n], FPS, **kwargs)

    return {
        "h264": make("h264.mp4", gop=25),
        "vp8": make("vp8.webm", codec="libvpx", gop=25),
        "vp9": make("vp9.webm", codec="libvpx-vp9", gop=25),
        "huge_gop": make("huge_gop.mp4", gop=1000),
        "with_audio": make("audio.mp4", gop=25, with_audio=True),
        "rot90": make("rot90.mp4", gop=25, rotation_deg=90),
        "rot180": make("rot180.mp4", gop=25, rotation_deg=180),
        "rot270": make("rot270.mp4", gop=25, rotation_deg=270),
        "short": make("short.mp4", n=10, gop=5),
    }


def _assert_well_formed(info: VideoInfo, frames: list, k: int) -> None:
    times = [frame.timestamp_s for frame in frames]
    assert len(frames) == k
    assert times == sorted(times)
    assert all(0.0 <= t <= info.duration_s for t in times)
    assert all(frame.image.mode == "RGB" for frame in frames)
    assert all(frame.image.size == (info.width, info.height) for frame in frames)


def _mean_abs_diff(a: Image.Image, b: Image.Image | np.ndarray) -> float:
    return float(np.abs(np.asarray(a, dtype=np.int16) - np.asarray(b, dtype=np.int16)).mean())


@pytest.mark.parametrize(("clip", "codec"), [("h264", "h264"), ("vp8", "vp8"), ("vp9", "vp9")])
def test_samples_k_frames_that_match_their_timestamps(
    clips: dict[str, Path], clip: str, codec: str
) -> None:
    info, frames = sample_frames(clips[clip], k=8)
    _assert_well_formed(info, frames, 8)
    assert info.codec == codec
    assert (info.width, info.height) == SIZE
    assert info.duration_s == pytest.approx(FRAMES / FPS, abs=1e-6)
    assert info.fps == pytest.approx(FPS)
    assert info.keyframe_interval_s == pytest.approx(1.0, abs=0.05)
    # Each frame's progress bar names the frame index; it must agree with the timestamp.
    for frame in frames:
        assert frame_index_from_bar(frame.image, FRAMES) == round(frame.timestamp_s * FPS)
    # Frames land nearest the centres of 8 equal slices of the clip.
    for frame, target in zip(frames, sample_times(info.duration_s, 8), strict=True):
        assert abs(frame.timestamp_s - target) <= 0.5 / FPS + 1e-9


@pytest.mark.parametrize("clip", ["h264", "vp8", "vp9", "huge_gop"])
def test_seek_and_decode_strategies_return_the_same_frames(
    clips: dict[str, Path], clip: str
) -> None:
    _, by_seek = sample_frames(clips[clip], k=8, strategy="seek")
    _, by_decode = sample_frames(clips[clip], k=8, strategy="decode")
    _, by_auto = sample_frames(clips[clip], k=8, strategy="auto")
    for a, b, c in zip(by_seek, by_decode, by_auto, strict=True):
        assert a.timestamp_s == b.timestamp_s == c.timestamp_s
        assert _mean_abs_diff(a.image, b.image) < 0.5
        assert _mean_abs_diff(a.image, c.image) < 0.5


def test_auto_plan_seeks_with_dense_keyframes_and_decodes_through_a_single_gop() -> None:
    targets = sample_times(10.0, 8)
    every_second = tuple(float(t) for t in range(10))
    # The first target's keyframe is where decoding starts anyway; every later one is a seek.
    assert plan_seeks(every_second, targets, 1 / 25) == (False,) + (True,) * 7
    assert not any(plan_seeks((0.0,), targets, 1 / 25))
    assert plan_seeks((0.0,), targets, 1 / 25, strategy="seek") == (True,) * 8
    assert plan_seeks(every_second, targets, 1 / 25, strategy="decode") == (False,) * 8


def test_auto_plan_skips_a_seek_that_saves_less_than_its_overhead() -> None:
    # Keyframes 2 frames apart at 25 fps, targets 3 frames apart: carrying on decodes 3 frames
    # per target, a seek would cost its 8-frame overhead plus a frame.
    keyframes = tuple(i * 0.08 for i in range(50))
    targets = tuple(0.02 + i * 0.12 for i in range(8))
    assert not any(plan_seeks(keyframes, targets, 1 / 25))


def test_huge_gop_clip_has_one_keyframe_and_auto_decodes_it_straight_through(
    clips: dict[str, Path],
) -> None:
    info, frames = sample_frames(clips["huge_gop"], k=8)
    assert info.keyframe_interval_s is None
    assert not any(plan_seeks((0.0,), sample_times(info.duration_s, 8), 1 / info.fps))
    _assert_well_formed(info, frames, 8)


def test_audio_track_is_reported_and_not_required(clips: dict[str, Path]) -> None:
    silent, _ = sample_frames(clips["h264"], k=2)
    with_audio, frames = sample_frames(clips["with_audio"], k=2)
    assert not silent.has_audio
    assert with_audio.has_audio
    _assert_well_formed(with_audio, frames, 2)


@pytest.mark.parametrize("rotation", [90, 180, 270])
def test_rotated_clip_comes_out_upright(
    clips: dict[str, Path], originals: list[np.ndarray], rotation: int
) -> None:
    with av.open(str(clips[f"rot{rotation}"])) as container:
        stored = container.streams.video[0]
        stored_size = (stored.width, stored.height)
    assert stored_size == (SIZE if rotation == 180 else SIZE[::-1])
    info, frames = sample_frames(clips[f"rot{rotation}"], k=4)
    assert info.rotation_deg == rotation
    assert (info.width, info.height) == SIZE
    for frame in frames:
        index = round(frame.timestamp_s * FPS)
        assert frame.image.size == SIZE
        assert frame_index_from_bar(frame.image, FRAMES) == index
        assert _mean_abs_diff(frame.image, originals[index]) < 6.0


def test_bytes_and_path_sources_agree(clips: dict[str, Path]) -> None:
    from_path = sample_frames(clips["vp9"], k=3)
    from_bytes = sample_frames(clips["vp9"].read_bytes(), k=3)
    assert from_path[0] == from_bytes[0]
    assert [f.timestamp_s for f in from_path[1]] == [f.timestamp_s for f in from_bytes[1]]


def test_stream_without_duration_metadata_is_measured_by_demuxing(
    clips: dict[str, Path],
) -> None:
    sink = _Pipe()
    with av.open(str(clips["h264"])) as source, av.open(sink, "w", format="matroska") as out:
        video = source.streams.video[0]
        copy = out.add_stream_from_template(video)
        for packet in source.demux(video):
            if packet.dts is not None:
                packet.stream = copy
                out.mux(packet)
    data = bytes(sink.data)
    with av.open(io.BytesIO(data), mode="r") as container:
        assert container.duration is None
        assert container.streams.video[0].duration is None
    info, frames = sample_frames(data, k=8)
    assert info.duration_s == pytest.approx(FRAMES / FPS, abs=1e-6)
    _assert_well_formed(info, frames, 8)


def test_more_samples_than_frames_repeats_frames_in_order(clips: dict[str, Path]) -> None:
    info, frames = sample_frames(clips["short"], k=16)
    _assert_well_formed(info, frames, 16)
    assert len({f.timestamp_s for f in frames}) == 10


def test_one_sample_is_the_middle_frame(clips: dict[str, Path]) -> None:
    info, [frame] = sample_frames(clips["h264"], k=1)
    assert frame.timestamp_s == pytest.approx(info.duration_s / 2, abs=0.5 / FPS)


def test_frames_over_the_pixel_cap_are_rejected(clips: dict[str, Path]) -> None:
    with pytest.raises(MediaDecodeError) as caught:
        sample_frames(clips["h264"], max_pixels=320 * 240 - 1)
    assert caught.value.reason == DecodeFailure.TOO_MANY_PIXELS


def test_a_video_over_the_frame_limit_is_refused_before_it_is_decoded(
    clips: dict[str, Path],
) -> None:
    with pytest.raises(MediaDecodeError) as caught:
        sample_frames(clips["h264"], max_frames=FRAMES - 1)
    assert caught.value.reason == DecodeFailure.TOO_LONG
    assert f"more than {FRAMES - 1} frames" in str(caught.value)
    sample_frames(clips["h264"], max_frames=FRAMES)  # exactly at the limit is fine


def test_a_video_that_claims_hours_is_refused_as_too_long(tmp_path: Path) -> None:
    path = write_sparse_video(tmp_path / "sparse.mkv", gap_s=5 * 3600.0)
    with pytest.raises(MediaDecodeError) as caught:
        sample_frames(path, k=2)
    assert caught.value.reason == DecodeFailure.TOO_LONG
    assert "over the limit of 4.0 hours" in str(caught.value)
    info, _ = sample_frames(path, k=2, max_duration_s=6 * 3600.0)  # within a higher limit
    assert info.duration_s > 5 * 3600.0


def _jpeg() -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (32, 32)).save(buffer, "JPEG")
    return buffer.getvalue()


def _audio_only(path: Path) -> Path:
    with av.open(str(path), "w") as out:
        stream = out.add_stream("aac", rate=48_000)
        for index in range(10):
            frame = av.AudioFrame.from_ndarray(
                np.zeros((1, 1024), np.float32), format="fltp", layout="mono"
            )
            frame.sample_rate = 48_000
            frame.pts = index * 1024
            out.mux(stream.encode(frame))
        out.mux(stream.encode(None))
    return path


@pytest.mark.parametrize(
    ("make", "reason"),
    [
        (lambda clips, tmp: b"", DecodeFailure.EMPTY),
        (lambda clips, tmp: np.random.default_rng(0).bytes(4096), DecodeFailure.UNKNOWN_FORMAT),
        (lambda clips, tmp: _jpeg(), DecodeFailure.UNSUPPORTED_FORMAT),
        # The MP4 index (moov) sits at the end of these files, so a cut-off file cannot be opened.
        (lambda clips, tmp: clips["h264"].read_bytes()[:5000], DecodeFailure.CORRUPT),
        (lambda clips, tmp: _audio_only(tmp / "tone.m4a"), DecodeFailure.NO_VIDEO_STREAM),
    ],
    ids=["empty", "noise", "jpeg", "cut-mp4", "audio-only"],
)
def test_unusable_input_raises_with_reason(
    clips: dict[str, Path], tmp_path: Path, make, reason: DecodeFailure
) -> None:
    started = time.perf_counter()
    with pytest.raises(MediaDecodeError) as caught:
        sample_frames(make(clips, tmp_path))
    assert caught.value.reason == reason
    assert time.perf_counter() - started < 5.0


def test_scrambled_packets_give_frames_or_corrupt_and_nothing_else(
    clips: dict[str, Path],
) -> None:
    data = bytearray(clips["h264"].read_bytes())
    third = len(data) // 3
    data[third : 2 * third] = np.random.default_rng(1).bytes(third)
    try:
        info, frames = sample_frames(bytes(data), k=8)
    except MediaDecodeError as error:
        assert error.reason == DecodeFailure.CORRUPT
    else:
        _assert_well_formed(info, frames, 8)


def test_bad_arguments_are_value_errors(clips: dict[str, Path]) -> None:
    with pytest.raises(ValueError):
        sample_frames(clips["h264"], k=0)
    with pytest.raises(ValueError):
        sample_frames(clips["h264"], strategy="fastest")  # type: ignore[arg-type]


def _real_videos(media: Path) -> list[Path]:
    videos = sorted(p for p in (media / "videos").iterdir() if p.suffix in (".mp4", ".webm"))
    assert videos, "the real-media folder holds no videos"
    return videos


@pytest.mark.media
def test_every_real_clip_samples_eight_frames_within_its_duration(test_media_dir: Path) -> None:
    for path in _real_videos(test_media_dir):
        info, frames = sample_frames(path, k=8)
        _assert_well_formed(info, frames, 8)
        assert info.duration_s > 0.5
        assert info.codec in ("h264", "vp8", "vp9")
        if path.stem.endswith("no_audio"):
            assert not info.has_audio


@pytest.mark.media
def test_real_clip_timings_seek_versus_decode(test_media_dir: Path) -> None:
    """Prints the per-strategy timing (run with -s); asserts only that the frames agree."""
    data = (test_media_dir / "videos" / "squirrel.mp4").read_bytes()
    results = {}
    for strategy in ("seek", "decode", "auto"):
        best = float("inf")
        for _ in range(2):
            started = time.perf_counter()
            info, frames = sample_frames(data, k=8, strategy=strategy)  # type: ignore[arg-type]
            best = min(best, time.perf_counter() - started)
        results[strategy] = (best, [f.timestamp_s for f in frames])
    print(
        f"\nsquirrel.mp4 {info.width}x{info.height} {info.duration_s:.1f}s "
        f"keyframes every {info.keyframe_interval_s:.2f}s, 8 frames, best of 2: "
        + ", ".join(f"{name} {1000 * best:.0f} ms" for name, (best, _) in results.items())
    )
    assert results["seek"][1] == results["decode"][1] == results["auto"][1]
