"""The one error type that image and video decoding raise for bad media, with a reason code."""

from __future__ import annotations

from enum import StrEnum

from mediarec.encoders.base import EncoderError


class DecodeFailure(StrEnum):
    """Why a piece of media could not be decoded (a ``str``, so it compares equal to its value)."""

    EMPTY = "empty"
    UNKNOWN_FORMAT = "unknown_format"
    UNSUPPORTED_FORMAT = "unsupported_format"
    CORRUPT = "corrupt"
    TRUNCATED = "truncated"
    TOO_MANY_PIXELS = "too_many_pixels"
    EXTREME_ASPECT_RATIO = "extreme_aspect_ratio"
    NO_VIDEO_STREAM = "no_video_stream"
    TOO_LONG = "too_long"  # a video over the frame-count or duration limit


class MediaDecodeError(EncoderError, ValueError):
    """Bytes or a file that are not decodable media; ``reason`` says why in machine terms."""

    def __init__(self, reason: DecodeFailure, message: str) -> None:
        super().__init__(message)
        self.reason = reason

    def __reduce__(self) -> tuple[type[MediaDecodeError], tuple[DecodeFailure, str]]:
        # Keep the reason when the error crosses a process boundary (decode worker pools).
        return (type(self), (self.reason, str(self)))
