"""Preprocessing matches torchvision's resize-then-crop and its work is bounded for any shape."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import numpy as np
import pytest
import torch
from PIL import Image
from torchvision import transforms

from mediarec.encoders.preprocess import resize_and_crop
from mediarec.encoders.registry import PreprocessSpec

SPEC = PreprocessSpec(size=64, mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5), interpolation="bicubic")


def _noise(width: int, height: int, seed: int = 0) -> Image.Image:
    pixels = np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)
    return Image.fromarray(pixels)


@pytest.mark.parametrize(
    "size", [(640, 480), (480, 640), (64, 64), (64, 90), (17, 23), (100, 50), (2048, 64)]
)
def test_ordinary_shapes_equal_torchvision_resize_then_centre_crop(size: tuple[int, int]) -> None:
    image = _noise(*size)
    reference = transforms.Compose(
        [
            transforms.Resize(SPEC.size, interpolation=transforms.InterpolationMode.BICUBIC),
            transforms.CenterCrop(SPEC.size),
        ]
    )(image)
    assert np.array_equal(np.asarray(resize_and_crop(image, SPEC)), np.asarray(reference))


@pytest.mark.parametrize("size", [(2200, 64), (64, 2200), (8000, 30)])
def test_extreme_shapes_resample_only_the_crop_and_stay_close_to_the_full_resize(
    size: tuple[int, int],
) -> None:
    image = _noise(*size, seed=1)
    short = min(size)
    new_long = int(SPEC.size * max(size) / short)
    resized = (SPEC.size, new_long) if size[0] <= size[1] else (new_long, SPEC.size)
    full = image.resize(resized, Image.Resampling.BICUBIC)
    left, top = round((resized[0] - SPEC.size) / 2), round((resized[1] - SPEC.size) / 2)
    expected = np.asarray(full.crop((left, top, left + SPEC.size, top + SPEC.size)), dtype=int)
    got = np.asarray(resize_and_crop(image, SPEC), dtype=int)
    assert got.shape == (SPEC.size, SPEC.size, 3)
    assert np.abs(got - expected).mean() < 1.0


def test_a_million_by_two_picture_preprocesses_within_a_small_memory_limit() -> None:
    # Resize-then-crop would build a 112,000,000x224 intermediate (about 75 GB) first. The child
    # gets 1.5 GiB of address space beyond what importing torch needs.
    script = textwrap.dedent(
        """
        import resource
        import torch  # noqa: F401  (loaded before the limit: its libraries map a lot)
        from PIL import Image
        from mediarec.encoders.preprocess import resize_and_crop
        from mediarec.encoders.registry import PreprocessSpec

        with open("/proc/self/statm") as statm:
            mapped = int(statm.read().split()[0]) * resource.getpagesize()
        limit = mapped + 1536 * 2**20
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
        spec = PreprocessSpec(size=224, mean=(0.5,) * 3, std=(0.5,) * 3, interpolation="bicubic")
        out = resize_and_crop(Image.new("RGB", (1_000_000, 2), (9, 99, 199)), spec)
        print(out.size, out.getpixel((100, 100)))
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.split("\n")[0] == "(224, 224) (9, 99, 199)"


def test_preprocessed_batch_is_normalised_float32() -> None:
    from mediarec.encoders.preprocess import images_to_tensor

    batch = images_to_tensor([_noise(90, 70), _noise(3000, 95)], SPEC)
    assert batch.dtype == torch.float32 and batch.shape == (2, 3, SPEC.size, SPEC.size)
