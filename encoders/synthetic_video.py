"""Write small, deterministic videos with PyAV, for tests and the offline demo.

Each frame from :func:`moving_shapes_frames` carries a progress bar along its bottom edge whose
filled width is proportional to the frame index, so a reader can tell which frame it decoded.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
from PIL import Image

PROGRESS_BAR_HEIGHT = 16

# Encoder settings chosen for speed: test clips are tiny and must build in well under a second.
_CODEC_OPTIONS: dict[str, dict[str, str]] = {
    "libx264": {"preset": "veryfast", "crf": "23"},
    "libvpx": {"deadline": "realtime", "cpu-used": "8", "crf": "10", "b": "1M"},
    "libvpx-vp9": {"deadline": "realtime", "cpu-used": "8", "crf": "32", "b": "0"},
}
_AUDIO_CODEC_BY_SUFFIX = {".webm": "libopus"}
_AUDIO_SAMPLE_RATE = 48_000


def write_video(
    path: str | os.PathLike[str],
    frames: Iterable[np.ndarray | Image.Image],
    fps: int = 25,
    codec: str = "libx264",
    gop: int | None = None,
    rotation_deg: int = 0,
    *,
    with_audio: bool = False,
) -> Path:
    """Encode upright RGB ``frames`` (HxWx3 uint8 arrays or PIL images) into ``path``.

    The container follows the suffix (.mp4, .mov, .mkv, .webm). ``gop`` fixes the keyframe
    interval in frames (scene-cut keyframes off); ``None`` keeps the encoder default.
    ``rotation_deg`` (a multiple of 90, counter-clockwise) stores the pixels turned the other
    way and records a display matrix, like a phone held sideways: a player that honours the
    matrix shows the original frames upright. ``with_audio`` adds a quiet 440 Hz tone track.
    """
    if rotation_deg % 90:
        raise ValueError(f"rotation_deg must be a multiple of 90, got {rotation_deg}")
    if gop is not None and gop < 1:
        raise ValueError(f"gop must be at least 1, got {gop}")
    path = Path(path)
    turns = (-rotation_deg // 90) % 4
    with av.open(str(path), mode="w") as container:
        video = None
        audio = None
        count = 0
        for count, frame in enumerate(frames, start=1):
            pixels = np.rot90(_as_rgb_array(frame), k=turns)
            if video is None:
                video = _add_video_stream(container, codec, fps, gop, rotation_deg, pixels.shape)
                if with_audio:
                    audio = _add_audio_stream(container, path.suffix.lower())
            if pixels.shape[:2] != (video.height, video.width):
                raise ValueError(
                    f"frame {count - 1} is {pixels.shape[1]}x{pixels.shape[0]}, "
                    f"the first was {video.width}x{video.height}"
                )
            out = av.VideoFrame.from_ndarray(np.ascontiguousarray(pixels), format="rgb24")
            out.pts = count - 1
            container.mux(video.encode(out))
        if video is None:
            raise ValueError("write_video needs at least one frame")
        container.mux(video.encode(None))
        if audio is not None:
            _write_tone(container, audio, seconds=count / fps)
    return path


def moving_shapes_frames(
    n: int, size: tuple[int, int] = (320, 240), seed: int = 0
) -> Iterator[np.ndarray]:
    """``n`` deterministic RGB frames (height x width x 3) of shapes gliding over a gradient.

    ``size`` is (width, height). The bottom :data:`PROGRESS_BAR_HEIGHT` rows hold a white bar
    on black, filled to ``(index + 1) / n`` of the width; see :func:`frame_index_from_bar`.
    """
    width, height = size
    if n < 1 or width < 16 or height < 2 * PROGRESS_BAR_HEIGHT:
        raise ValueError(f"need n >= 1 and a size of at least 16x32, got n={n}, size={size}")
    rng = np.random.default_rng(seed)
    scene_h = height - PROGRESS_BAR_HEIGHT
    ys, xs = np.mgrid[0:scene_h, 0:width]
    base = rng.integers(0, 256, size=3)
    background = np.stack(
        [(base[c] + 96 * xs / width + 64 * ys / scene_h) % 256 for c in range(3)], axis=-1
    )
    shapes = [_random_shape(rng, width, scene_h) for _ in range(3)]
    for index in range(n):
        frame = np.empty((height, width, 3), dtype=np.uint8)
        scene = background.copy()
        for shape in shapes:
            cx, cy = _bounce(shape.start + index * shape.velocity, (width, scene_h))
            r = shape.radius
            if shape.round:
                mask = (xs - cx) ** 2 + (ys - cy) ** 2 <= r * r
            else:
                mask = (np.abs(xs - cx) <= r) & (np.abs(ys - cy) <= r)
            scene[mask] = shape.colour
        frame[:scene_h] = scene.astype(np.uint8)
        frame[scene_h:] = 0
        frame[scene_h:, : _bar_width(index, n, width)] = 255
        yield frame


def frame_index_from_bar(image: Image.Image | np.ndarray, n: int) -> int:
    """Recover the frame index from the progress bar of an upright decoded frame."""
    pixels = np.asarray(image.convert("L") if isinstance(image, Image.Image) else image)
    if pixels.ndim == 3:
        pixels = pixels.mean(axis=-1)
    # The middle row of the bar is furthest from compression ringing at its edges.
    row = pixels[-PROGRESS_BAR_HEIGHT // 2]
    filled = int((row > 128).sum())
    width = row.shape[0]
    return int(np.argmin([abs(_bar_width(i, n, width) - filled) for i in range(n)]))


@dataclass(frozen=True)
class _Shape:
    colour: np.ndarray
    radius: int
    start: np.ndarray
    velocity: np.ndarray  # pixels per frame
    round: bool


def _random_shape(rng: np.random.Generator, width: int, height: int) -> _Shape:
    extent = np.array([width, height], dtype=np.float64)
    return _Shape(
        colour=rng.integers(0, 256, size=3),
        radius=int(rng.integers(max(4, height // 12), max(5, height // 5))),
        start=rng.random(2) * extent,
        velocity=(rng.random(2) - 0.5) * extent / 20,
        round=bool(rng.integers(0, 2)),
    )


def _bar_width(index: int, n: int, width: int) -> int:
    return round((index + 1) * width / n)


def _bounce(position: np.ndarray, bounds: tuple[int, int]) -> tuple[float, float]:
    """Reflect a free-flying position back into ``[0, bound]`` on each axis."""
    out = []
    for value, bound in zip(position, bounds, strict=True):
        value = abs(float(value)) % (2 * bound)
        out.append(2 * bound - value if value > bound else value)
    return out[0], out[1]


def _as_rgb_array(frame: np.ndarray | Image.Image) -> np.ndarray:
    if isinstance(frame, Image.Image):
        return np.asarray(frame.convert("RGB"))
    pixels = np.asarray(frame)
    if pixels.dtype != np.uint8 or pixels.ndim != 3 or pixels.shape[2] != 3:
        raise ValueError(f"frames must be HxWx3 uint8 arrays, got {pixels.dtype} {pixels.shape}")
    return pixels


def _add_video_stream(
    container: av.container.OutputContainer,
    codec: str,
    fps: int,
    gop: int | None,
    rotation_deg: int,
    shape: tuple[int, ...],
) -> av.VideoStream:
    height, width = shape[:2]
    if width % 2 or height % 2:
        raise ValueError(f"yuv420p needs even frame sides, got {width}x{height}")
    options = dict(_CODEC_OPTIONS.get(codec, {}))
    if gop is not None:
        options["g"] = str(gop)
        options["keyint_min"] = str(gop)
        options["sc_threshold"] = "0"  # no extra keyframes at scene cuts: the GOP stays exact
        if codec == "libx264":
            options["x264-params"] = f"keyint={gop}:min-keyint={gop}:scenecut=0"
    stream = container.add_stream(codec, rate=fps, options=options)
    if not isinstance(stream, av.VideoStream):
        raise ValueError(f"{codec} is not a video codec")
    stream.width = width
    stream.height = height
    stream.pix_fmt = "yuv420p"
    stream.time_base = Fraction(1, fps)
    # One thread: for clips this small, libvpx's worker threads cost far more than they
    # save, above all on busy cores.
    stream.codec_context.thread_count = 1
    if rotation_deg % 360:
        stream.set_display_rotation(rotation_deg)
    return stream


def _add_audio_stream(container: av.container.OutputContainer, suffix: str) -> av.AudioStream:
    # WebM allows only Opus or Vorbis audio; AAC suits MP4, MOV and Matroska alike.
    stream = container.add_stream(
        _AUDIO_CODEC_BY_SUFFIX.get(suffix, "aac"), rate=_AUDIO_SAMPLE_RATE
    )
    assert isinstance(stream, av.AudioStream)  # both codec names are audio codecs
    return stream


def _write_tone(
    container: av.container.OutputContainer, stream: av.AudioStream, seconds: float
) -> None:
    samples = int(seconds * _AUDIO_SAMPLE_RATE)
    t = np.arange(samples, dtype=np.float32) / _AUDIO_SAMPLE_RATE
    tone = (0.1 * np.sin(2 * np.pi * 440.0 * t)).astype(np.float32)
    chunk = 1024
    for start in range(0, samples, chunk):
        piece = tone[start : start + chunk].reshape(1, -1)
        frame = av.AudioFrame.from_ndarray(piece, format="fltp", layout="mono")
        frame.sample_rate = _AUDIO_SAMPLE_RATE
        frame.pts = start
        container.mux(stream.encode(frame))
    container.mux(stream.encode(None))


def write_sparse_video(path: str | os.PathLike[str], gap_s: float, size: tuple[int, int] = (64, 48)
                       ) -> Path:  # fmt: skip
    """Two black frames ``gap_s`` seconds apart: a few kilobytes that claim a long duration
    (for the limits on a video's length)."""
    path = Path(path)
    width, height = size
    with av.open(str(path), mode="w") as container:
        stream = container.add_stream("mpeg4", rate=1)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.time_base = Fraction(1, 1000)
        for pts in (0, int(gap_s * 1000)):
            frame = av.VideoFrame.from_ndarray(np.zeros((height, width, 3), np.uint8),
                                               format="rgb24")  # fmt: skip
            frame.pts = pts
            frame.time_base = Fraction(1, 1000)
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
    return path

