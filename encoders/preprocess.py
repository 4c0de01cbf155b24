"""Pixels to model input, exactly as open_clip's eval transform does it (resize shortest side,
centre crop, scale, normalise), so every backend sees identical tensors for identical images."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from PIL import Image

from encoders.registry import PreprocessSpec

_INTERPOLATIONS = {
    "bicubic": Image.Resampling.BICUBIC,
    "bilinear": Image.Resampling.BILINEAR,
    "nearest": Image.Resampling.NEAREST,
    "lanczos": Image.Resampling.LANCZOS,
}


def resize_and_crop(image: Image.Image, spec: PreprocessSpec) -> Image.Image:
    """Shortest side to ``spec.size`` then a centred square crop (torchvision's arithmetic)."""
    image = image.convert("RGB") if image.mode != "RGB" else image
    width, height = image.size
    short, long = (width, height) if width <= height else (height, width)
    if short != spec.size:
        new_long = int(spec.size * long / short)
        new_size = (spec.size, new_long) if width <= height else (new_long, spec.size)
        image = image.resize(new_size, _INTERPOLATIONS[spec.interpolation])
    width, height = image.size
    top = int(round((height - spec.size) / 2.0))
    left = int(round((width - spec.size) / 2.0))
    if (width, height) != (spec.size, spec.size):
        image = image.crop((left, top, left + spec.size, top + spec.size))
    return image


def images_to_tensor(images: Sequence[Image.Image], spec: PreprocessSpec) -> torch.Tensor:
    """A normalised ``(n, 3, size, size)`` float32 batch."""
    arrays = np.stack([np.asarray(resize_and_crop(img, spec), dtype=np.uint8) for img in images])
    batch = torch.from_numpy(arrays).permute(0, 3, 1, 2).float().div_(255.0)
    mean = torch.tensor(spec.mean, dtype=torch.float32).view(1, 3, 1, 1)
    std = torch.tensor(spec.std, dtype=torch.float32).view(1, 3, 1, 1)
    return batch.sub_(mean).div_(std)
