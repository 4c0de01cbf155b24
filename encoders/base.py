"""The boundary every encoder backend satisfies: images, texts and frames in, unit vectors out.

Contract (tested for every backend): outputs are ``numpy.float32`` arrays of shape ``(n, dim)``
whose rows have unit L2 norm.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import numpy as np
from PIL import Image


class EncoderError(Exception):
    """Base class of every error raised by :mod:`encoders`."""


class ModelIdError(EncoderError, ValueError):
    """A model identifier could not be parsed or names no known model."""


class WeightsUnavailableError(EncoderError):
    """The weights for a model could not be loaded (offline, missing file, corrupt checkpoint)."""


class EmbeddingUnsupportedError(EncoderError):
    """The encoder cannot embed this modality (e.g. a vectors-only ``external:`` model)."""


@dataclass(frozen=True)
class VideoEmbedding:
    """Per-frame vectors of a sampled video plus their mean, renormalised."""

    frame_vectors: np.ndarray  # (k, dim) float32, unit rows
    timestamps_s: tuple[float, ...]  # one per frame, seconds from the start
    pooled: np.ndarray  # (dim,) float32, unit norm


@runtime_checkable
class Encoder(Protocol):
    """What the service needs from a CLIP-style model."""

    @property
    def model_id(self) -> str: ...

    @property
    def dim(self) -> int: ...

    def load(self) -> None:
        """Load weights now (idempotent, thread-safe). Embedding calls load lazily otherwise."""
        ...

    def embed_images(self, images: Sequence[Image.Image]) -> np.ndarray: ...

    def embed_texts(self, texts: Sequence[str]) -> np.ndarray: ...


def l2_normalize(vectors: np.ndarray) -> np.ndarray:
    """Row-wise unit norm in float32; zero rows stay zero rather than becoming NaN."""
    vectors = np.asarray(vectors, dtype=np.float32)
    norms = np.linalg.norm(vectors, axis=-1, keepdims=True)
    return (vectors / np.maximum(norms, 1e-12)).astype(np.float32, copy=False)
