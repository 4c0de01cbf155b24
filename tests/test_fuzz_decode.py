"""A fuzz target for the decode path: mutated images and videos either decode within the
limits or fail with MediaDecodeError, never another exception and never slowly.

Hypothesis mutates small valid files of every format the indexer reads (bytes flipped,
inserted, cut). ``make test`` runs a few dozen examples; ``make fuzz`` runs thousands
(``MEDIAREC_FUZZ_EXAMPLES``). A failure prints the smallest input that breaks the property.
"""

from __future__ import annotations

import contextlib
import io
import os
from collections.abc import Callable
from functools import cache
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from mediarec.encoders.images import decode_image
from mediarec.encoders.media_errors import MediaDecodeError
from mediarec.encoders.synthetic_video import moving_shapes_frames, write_video
from mediarec.encoders.video import sample_frames

EXAMPLES = int(os.environ.get("MEDIAREC_FUZZ_EXAMPLES", "40"))
MAX_PIXELS = 4_000_000
FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=5000,  # ms per example: a slow decode is a failure too
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    derandomize=os.environ.get("MEDIAREC_FUZZ_EXAMPLES") is None,  # make test: reproducible
)


def _image(fmt: str, **options: object) -> bytes:
    rng = np.random.default_rng(0)
    picture = Image.fromarray(rng.integers(0, 255, (24, 32, 3), dtype=np.uint8))
    buffer = io.BytesIO()
    picture.save(buffer, fmt, **options)
    return buffer.getvalue()


IMAGE_SEEDS = {
    "jpeg": _image("JPEG", quality=80),
    "progressive-jpeg": _image("JPEG", progressive=True),
    "png": _image("PNG"),
    "gif": _image("GIF"),
    "webp": _image("WEBP"),
    "bmp": _image("BMP"),
    "tiff": _image("TIFF"),
}


@cache
def _video_seed(tmp: str) -> bytes:
    path = write_video(Path(tmp) / "seed.mp4", moving_shapes_frames(6, (48, 32), seed=1), 6,
                       gop=3)  # fmt: skip
    return path.read_bytes()


@st.composite
def mutated(draw: st.DrawFn, seed: bytes) -> bytes:
    """``seed`` with a few bytes flipped, a run inserted, and perhaps its tail cut off."""
    data = bytearray(seed)
    for _ in range(draw(st.integers(0, 8))):
        at = draw(st.integers(0, len(data) - 1))
        data[at] = draw(st.integers(0, 255))
    if draw(st.booleans()):
        at = draw(st.integers(0, len(data)))
        data[at:at] = draw(st.binary(min_size=1, max_size=64))
    if draw(st.booleans()):
        data = data[: draw(st.integers(0, len(data)))]
    return bytes(data)


def _holds(decode: Callable[[], object]) -> None:
    with contextlib.suppress(MediaDecodeError):  # refused with a reason: what bad input must get
        decode()


@pytest.mark.parametrize("fmt", sorted(IMAGE_SEEDS))
def test_mutated_images_decode_or_are_refused(fmt: str) -> None:
    @FUZZ
    @given(mutated(IMAGE_SEEDS[fmt]))
    def check(data: bytes) -> None:
        def decode() -> None:
            image = decode_image(data, max_pixels=MAX_PIXELS)
            assert image.mode == "RGB"
            assert image.width * image.height <= MAX_PIXELS

        _holds(decode)

    check()


def test_random_bytes_are_refused_not_crashed() -> None:
    @FUZZ
    @given(st.binary(max_size=4096))
    def check(data: bytes) -> None:
        _holds(lambda: decode_image(data, max_pixels=MAX_PIXELS))

    check()


def test_mutated_videos_decode_or_are_refused(tmp_path_factory: pytest.TempPathFactory) -> None:
    seed = _video_seed(str(tmp_path_factory.mktemp("fuzz")))

    @FUZZ
    @given(mutated(seed))
    def check(data: bytes) -> None:
        def decode() -> None:
            info, frames = sample_frames(data, k=2)
            assert len(frames) == 2 and info.duration_s > 0

        _holds(decode)

    check()
