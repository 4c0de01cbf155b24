"""Pixels to model input, exactly as open_clip's eval transform does it (resize shortest side,
centre crop, scale, normalise), so every backend sees identical tensors for identical images."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from PIL import Image

from mediarec.encoders.images import MAX_ASPECT_RATIO
from mediarec.encoders.registry import PreprocessSpec

_INTERPOLATIONS = {
    "bicubic": Image.Resampling.BICUBIC,
    "bilinear": Image.Resampling.BILINEAR,
    "nearest": Image.Resampling.NEAREST,
    "lanczos": Image.Resampling.LANCZOS,
}


# Past this aspect ratio the full-size intermediate of resize-then-crop would be unbounded (a
# 1,000,000x2 picture resizes to 112,000,000x224), so only the cropped region is resampled.
# Decoding already refuses such shapes (mediarec.encoders.images.MAX_ASPECT_RATIO); this bound keeps
# the function safe for any caller.
_MAX_INTERMEDIATE_ASPECT = MAX_ASPECT_RATIO


def resize_and_crop(image: Image.Image, spec: PreprocessSpec) -> Image.Image:
    """Shortest side to ``spec.size`` then a centred square crop (torchvision's arithmetic).

    The intermediate image stays within ``spec.size`` squared times
    ``_MAX_INTERMEDIATE_ASPECT`` pixels whatever the input's shape (the input itself is
    bounded by decoding's pixel cap).
    """
    image = image.convert("RGB") if image.mode != "RGB" else image
    width, height = image.size
    short, long = (width, height) if width <= height else (height, width)
    size = spec.size
    new_long = int(size * long / short) if short != size else long
    resized = (size, new_long) if width <= height else (new_long, size)
    top = int(round((resized[1] - size) / 2.0))
    left = int(round((resized[0] - size) / 2.0))
    resample = _INTERPOLATIONS[spec.interpolation]
    if new_long > _MAX_INTERMEDIATE_ASPECT * size:
        # Pillow's box resamples just the crop at the full resize's scale and pixel centres;
        # it can differ from resize-then-crop by rounding, so ordinary shapes keep the exact path.
        scale_x, scale_y = width / resized[0], height / resized[1]
        box = (left * scale_x, top * scale_y, (left + size) * scale_x, (top + size) * scale_y)
        return image.resize((size, size), resample, box=box)
    if resized != image.size:
        image = image.resize(resized, resample)
    if resized != (size, size):
        image = image.crop((left, top, left + size, top + size))
    return image


def images_to_tensor(images: Sequence[Image.Image], spec: PreprocessSpec) -> torch.Tensor:
    """A normalised ``(n, 3, size, size)`` float32 batch."""
    arrays = np.stack([np.asarray(resize_and_crop(img, spec), dtype=np.uint8) for img in images])
    batch = torch.from_numpy(arrays).permute(0, 3, 1, 2).float().div_(255.0)
    mean = torch.tensor(spec.mean, dtype=torch.float32).view(1, 3, 1, 1)
    std = torch.tensor(spec.std, dtype=torch.float32).view(1, 3, 1, 1)
    return batch.sub_(mean).div_(std)
