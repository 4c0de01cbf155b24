"""Sample K upright frames spread over a video with PyAV, reaching each the cheapest way.

Reading a frame means decoding from the keyframe before it. When keyframes are dense, seeking
to that keyframe skips most of the video; when they are sparse, consecutive targets share a
keyframe and decoding straight through is cheaper. A demux pass (no decoding, a few ms for a
10 s clip) finds every keyframe, and :func:`plan_seeks` decides per target.
"""

from __future__ import annotations

import bisect
import io
import logging
import math
import os
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from fractions import Fraction
from functools import partial
from typing import Literal

import av
from PIL import Image

from mediarec.encoders.images import check_dimensions, sniff_format
from mediarec.encoders.media_errors import DecodeFailure, MediaDecodeError

logger = logging.getLogger(__name__)

Strategy = Literal["auto", "seek", "decode"]
VideoSource = bytes | str | os.PathLike[str]

DEFAULT_FRAME_COUNT = 8
# 8K UHD: the largest frames any mainstream camera or platform produces.
DEFAULT_VIDEO_MAX_PIXELS = 7680 * 4320
# The timeline scan holds one entry per packet, so its memory and time follow the frame count:
# 500,000 frames is over 4.5 hours at 30 fps. The duration cap stops a file whose few frames
# claim to span days (the samples would all fall in one frame anyway).
DEFAULT_VIDEO_MAX_FRAMES = 500_000
DEFAULT_VIDEO_MAX_DURATION_S = 4 * 3600.0
# What one seek costs beyond the frames it decodes, in frame decodes: demuxer repositioning
# plus refilling the frame-threaded decoder pipeline. It varies with the clip and with how
# busy the cores are; the plan rarely changes across that range, so one middle value serves.
SEEK_OVERHEAD_FRAMES = 8.0
# Corrupt packets tolerated per read before the video counts as corrupt; decoders conceal
# isolated damage, so a few bad packets should not cost the whole video.
_MAX_BAD_PACKETS = 16
_TIME_EPS = 1e-6
_IMAGE_DEMUXERS = ("image2", "_pipe", "gif", "apng", "webp")


@dataclass(frozen=True)
class SampledFrame:
    """One upright RGB frame and its presentation time in seconds from the video's start."""

    timestamp_s: float
    image: Image.Image


@dataclass(frozen=True)
class VideoInfo:
    """What sampling learned about a video. Sizes are as displayed (after rotation)."""

    duration_s: float
    width: int
    height: int
    fps: float
    codec: str
    rotation_deg: int  # counter-clockwise turn applied to make frames upright: 0, 90, 180, 270
    keyframe_interval_s: float | None  # mean keyframe spacing; None with a single keyframe
    has_audio: bool


@dataclass(frozen=True)
class _Timeline:
    """The video track as the demuxer sees it, in seconds relative to its first frame."""

    start_pts: int
    time_base: Fraction
    duration_s: float
    frame_interval_s: float
    keyframe_times: tuple[float, ...]


def sample_frames(
    source: VideoSource,
    k: int = DEFAULT_FRAME_COUNT,
    *,
    max_pixels: int = DEFAULT_VIDEO_MAX_PIXELS,
    strategy: Strategy = "auto",
    max_frames: int = DEFAULT_VIDEO_MAX_FRAMES,
    max_duration_s: float = DEFAULT_VIDEO_MAX_DURATION_S,
) -> tuple[VideoInfo, list[SampledFrame]]:
    """``k`` upright frames nearest to the times ``(i + 0.5) * duration / k``, in order.

    ``source`` is the encoded bytes or a file path. ``strategy`` "seek" seeks before every
    frame, "decode" decodes straight through, "auto" picks per frame via :func:`plan_seeks`;
    all three return the same frames. Bad media raises :class:`MediaDecodeError`; a missing
    or unreadable file raises the usual ``OSError``.
    """
    if k < 1:
        raise ValueError(f"k must be at least 1, got {k}")
    if strategy not in ("auto", "seek", "decode"):
        raise ValueError(f"strategy must be 'auto', 'seek' or 'decode', got {strategy!r}")
    open_container = _container_opener(source)
    with open_container() as container:
        stream = _video_stream(container)
        _check_frame_size(stream, max_pixels)
        timeline = _scan_timeline(container, stream, max_frames, max_duration_s)
        codec = stream.codec_context.name
        has_audio = bool(container.streams.audio)
    targets = sample_times(timeline.duration_s, k)
    seeks = plan_seeks(timeline.keyframe_times, targets, timeline.frame_interval_s, strategy)
    logger.debug("sampling %d frames with %d seeks (strategy %s)", k, sum(seeks), strategy)
    with open_container() as container:
        rotation, frames = _read_frames(container, timeline, targets, seeks)
    width, height = frames[0].image.size
    info = VideoInfo(
        duration_s=timeline.duration_s,
        width=width,
        height=height,
        fps=1.0 / timeline.frame_interval_s,
        codec=codec,
        rotation_deg=rotation,
        keyframe_interval_s=_mean_spacing(timeline.keyframe_times),
        has_audio=has_audio,
    )
    return info, frames


def sample_times(duration_s: float, k: int) -> tuple[float, ...]:
    """The centres of ``k`` equal slices of ``[0, duration_s]``."""
    return tuple((i + 0.5) * duration_s / k for i in range(k))


def plan_seeks(
    keyframe_times: Sequence[float],
    targets: Sequence[float],
    frame_interval_s: float,
    strategy: Strategy = "auto",
    seek_overhead_frames: float = SEEK_OVERHEAD_FRAMES,
) -> tuple[bool, ...]:
    """For each ascending target time, whether to seek to its keyframe before reading it.

    "auto" compares, per target, the frames decoded by carrying on from the previous target
    with those decoded after seeking to the keyframe at or before the target, plus the seek's
    overhead. Each choice ends at the same place (the target), so choosing per target is
    optimal for this cost model. Dense keyframes give all seeks; one keyframe gives none.
    """
    if strategy == "seek":
        return (True,) * len(targets)
    if strategy == "decode":
        return (False,) * len(targets)
    plan = []
    position = -frame_interval_s  # nothing decoded yet: the next frame is the first one
    for target in targets:
        index = bisect.bisect_right(keyframe_times, target + _TIME_EPS) - 1
        keyframe = keyframe_times[index] if index >= 0 else 0.0
        carry_on_cost = (target - position) / frame_interval_s
        seek_cost = seek_overhead_frames + (target - keyframe) / frame_interval_s
        plan.append(keyframe > position + _TIME_EPS and seek_cost < carry_on_cost)
        position = max(position, target)
    return tuple(plan)


def _read_frames(
    container: av.container.InputContainer,
    timeline: _Timeline,
    targets: Sequence[float],
    seeks: Sequence[bool],
) -> tuple[int, list[SampledFrame]]:
    """The frame nearest each target, upright, and the rotation that made it so."""
    stream = container.streams.video[0]
    stream.codec_context.thread_type = "AUTO"
    reader = _FrameReader(container, stream, timeline)
    picked = [reader.nearest(t, seek) for t, seek in zip(targets, seeks, strict=True)]
    rotation = _normalise_rotation(picked[0][1].rotation)
    frames = [
        SampledFrame(
            timestamp_s=min(max(time, 0.0), timeline.duration_s),
            image=_upright_image(frame, rotation),
        )
        for time, frame in picked
    ]
    return rotation, frames


class _FrameReader:
    """Walks decoded frames forward, seeking on request; keeps the last two frames seen."""

    def __init__(
        self,
        container: av.container.InputContainer,
        stream: av.VideoStream,
        timeline: _Timeline,
    ) -> None:
        self._container = container
        self._stream = stream
        self._timeline = timeline
        self._frames: Iterator[av.VideoFrame] = self._decode()
        self._previous: tuple[float, av.VideoFrame] | None = None
        self._current: tuple[float, av.VideoFrame] | None = None
        self._exhausted = False

    def nearest(self, target: float, seek: bool) -> tuple[float, av.VideoFrame]:
        """The decoded frame whose time is closest to ``target`` (ties to the earlier one)."""
        if seek:
            self._seek_before(target)
        while not self._exhausted and (self._current is None or self._current[0] < target):
            frame = next(self._frames, None)
            if frame is None:
                self._exhausted = True
                break
            self._previous, self._current = self._current, (self._time_of(frame), frame)
        if self._current is None:
            raise MediaDecodeError(
                DecodeFailure.CORRUPT, "the video stream yielded no decodable frames"
            )
        if self._previous is not None and (target - self._previous[0] <= self._current[0] - target):
            return self._previous
        return self._current

    def _seek_before(self, target: float) -> None:
        keyframes = self._timeline.keyframe_times
        index = bisect.bisect_right(keyframes, target + _TIME_EPS) - 1
        keyframe = keyframes[index] if index >= 0 else 0.0
        offset = self._timeline.start_pts + round(keyframe / self._timeline.time_base)
        try:
            self._container.seek(offset, stream=self._stream, backward=True)
        except av.FFmpegError as exc:
            raise MediaDecodeError(DecodeFailure.CORRUPT, f"seeking failed: {exc}") from exc
        self._frames = self._decode()
        self._previous = self._current = None
        self._exhausted = False

    def _decode(self) -> Iterator[av.VideoFrame]:
        bad_packets = 0
        packets = self._container.demux(self._stream)
        while True:
            try:
                packet = next(packets)
            except StopIteration:
                return
            except av.FFmpegError as exc:
                # The demuxer cannot resume after an error: treat it as the end of the data.
                logger.debug("demuxing stopped early: %s", exc)
                return
            try:
                frames = packet.decode()
            except av.FFmpegError as exc:
                bad_packets += 1
                if bad_packets > _MAX_BAD_PACKETS:
                    raise MediaDecodeError(
                        DecodeFailure.CORRUPT, f"too many undecodable packets: {exc}"
                    ) from exc
                continue
            yield from frames

    def _time_of(self, frame: av.VideoFrame) -> float:
        pts = frame.pts if frame.pts is not None else frame.dts
        if pts is None:
            # Only seen in broken streams; such frames go to the far end so they are never picked
            # ahead of properly timed ones.
            return self._timeline.duration_s
        return float((pts - self._timeline.start_pts) * self._timeline.time_base)


def _container_opener(source: VideoSource) -> Callable[[], av.container.InputContainer]:
    """Check the source's leading bytes, then return a function that opens it afresh."""
    target: Callable[[], io.BytesIO | str]
    if isinstance(source, bytes | bytearray | memoryview):
        data = bytes(source)
        head = data[:64]
        target = partial(io.BytesIO, data)  # a fresh reader per open
    else:
        path = os.fspath(source)
        with open(path, "rb") as handle:
            head = handle.read(64)
        target = partial(str, path)
    if not head:
        raise MediaDecodeError(DecodeFailure.EMPTY, "the video is empty (0 bytes)")
    fmt = sniff_format(head)
    if fmt is not None and fmt not in ("mp4", "matroska", "avi"):
        raise MediaDecodeError(
            DecodeFailure.UNSUPPORTED_FORMAT, f"the bytes are a {fmt} image, not a video"
        )

    def open_container() -> av.container.InputContainer:
        try:
            # Damaged metadata is not worth failing over: its text is replaced, not decoded.
            return av.open(target(), mode="r", metadata_errors="replace")
        except (av.FFmpegError, UnicodeDecodeError) as exc:
            # Bytes we recognised as a video container are damaged; anything else is unknown.
            reason = DecodeFailure.CORRUPT if fmt else DecodeFailure.UNKNOWN_FORMAT
            raise MediaDecodeError(reason, f"the video could not be opened: {exc}") from exc

    return open_container


def _video_stream(container: av.container.InputContainer) -> av.VideoStream:
    if any(name in container.format.name for name in _IMAGE_DEMUXERS):
        raise MediaDecodeError(
            DecodeFailure.UNSUPPORTED_FORMAT,
            f"the bytes are an image ({container.format.name}), not a video",
        )
    if not container.streams:
        # Seen with a container header cut off before its stream table: damaged, not audio.
        raise MediaDecodeError(DecodeFailure.CORRUPT, "the container declares no streams")
    if not container.streams.video:
        raise MediaDecodeError(DecodeFailure.NO_VIDEO_STREAM, "the file has no video stream")
    return container.streams.video[0]


def _check_frame_size(stream: av.VideoStream, max_pixels: int) -> None:
    context = stream.codec_context
    if context is None:  # a codec id FFmpeg has no decoder for (seen in damaged headers)
        raise MediaDecodeError(DecodeFailure.CORRUPT, "the video stream's codec is unknown")
    width, height = context.width, context.height
    if width <= 0 or height <= 0:
        raise MediaDecodeError(DecodeFailure.CORRUPT, "the video stream declares no frame size")
    check_dimensions((width, height), max_pixels, what="each video frame")


def _scan_timeline(
    container: av.container.InputContainer,
    stream: av.VideoStream,
    max_frames: int = DEFAULT_VIDEO_MAX_FRAMES,
    max_duration_s: float = DEFAULT_VIDEO_MAX_DURATION_S,
) -> _Timeline:
    """Demux the video track without decoding: keyframe times, start, duration, frame rate.

    The duration is the track's own span (last frame end minus first frame start), which is
    exact even when metadata is missing or covers a longer audio track. A track of more than
    ``max_frames`` frames stops the scan at once; one that spans more than ``max_duration_s``,
    or nothing at all, is refused after it.
    """
    time_base = stream.time_base
    if time_base is None:
        raise MediaDecodeError(DecodeFailure.CORRUPT, "the video stream has no time base")
    pts_values: list[int] = []
    keyframe_pts: list[int] = []
    end_pts: int | None = None
    try:
        for packet in container.demux(stream):
            # Discarded packets (before an edit list's start) never become displayed frames.
            if packet.pts is None or packet.size == 0 or packet.is_discard:
                continue
            pts_values.append(packet.pts)
            if len(pts_values) > max_frames:
                raise MediaDecodeError(
                    DecodeFailure.TOO_LONG,
                    f"the video has more than {max_frames} frames, over the limit",
                )
            if packet.is_keyframe:
                keyframe_pts.append(packet.pts)
            packet_end = packet.pts + (packet.duration or 0)
            end_pts = packet_end if end_pts is None else max(end_pts, packet_end)
    except av.FFmpegError as exc:
        logger.debug("demux scan stopped early: %s", exc)
    if not pts_values or end_pts is None:
        raise MediaDecodeError(DecodeFailure.CORRUPT, "the video stream holds no frames")
    start_pts = min(pts_values)
    frame_interval = _frame_interval(stream, pts_values, time_base)
    span = float((end_pts - start_pts) * time_base)
    if end_pts == max(pts_values):
        span += frame_interval  # packets carried no durations: the last frame lasts one interval
    if not math.isfinite(span) or span <= 0:
        raise MediaDecodeError(DecodeFailure.CORRUPT, "the video stream has no duration")
    if span > max_duration_s:
        raise MediaDecodeError(
            DecodeFailure.TOO_LONG,
            f"the video lasts {span / 3600:.1f} hours, over the limit of "
            f"{max_duration_s / 3600:.1f} hours",
        )
    return _Timeline(
        start_pts=start_pts,
        time_base=time_base,
        duration_s=span,
        frame_interval_s=frame_interval,
        keyframe_times=tuple(sorted(float((p - start_pts) * time_base) for p in keyframe_pts)),
    )


def _frame_interval(stream: av.VideoStream, pts_values: list[int], time_base: Fraction) -> float:
    rate = stream.average_rate or stream.guessed_rate
    if rate:
        return float(1 / rate)
    if len(pts_values) > 1:
        span = float((max(pts_values) - min(pts_values)) * time_base)
        if span > 0:
            return span / (len(pts_values) - 1)
    return 1 / 25  # a single frame with no rate: any positive interval will do


def _normalise_rotation(rotation: float) -> int:
    """Display-matrix angle (counter-clockwise, -180..180) to one of 0, 90, 180, 270."""
    return int(round(rotation / 90.0)) * 90 % 360


_UPRIGHT_TRANSPOSE = {
    90: Image.Transpose.ROTATE_90,
    180: Image.Transpose.ROTATE_180,
    270: Image.Transpose.ROTATE_270,
}


def _upright_image(frame: av.VideoFrame, rotation: int) -> Image.Image:
    # to_ndarray + fromarray gives the same pixels as frame.to_image() without its slower
    # per-pixel conversion path.
    image = Image.fromarray(frame.to_ndarray(format="rgb24"))
    fix = _UPRIGHT_TRANSPOSE.get(rotation)
    return image.transpose(fix) if fix is not None else image


def _mean_spacing(times: tuple[float, ...]) -> float | None:
    if len(times) < 2:
        return None
    return (times[-1] - times[0]) / (len(times) - 1)
