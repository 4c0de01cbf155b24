"""``external:DIM``: no model at all. The deployment sends its own vectors of width DIM."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from PIL import Image

from mediarec.encoders.base import EmbeddingUnsupportedError
from mediarec.encoders.registry import ModelSpec


class ExternalVectorsEncoder:
    def __init__(self, spec: ModelSpec) -> None:
        assert spec.dim is not None
        self._spec = spec

    @property
    def spec(self) -> ModelSpec:
        return self._spec

    @property
    def model_id(self) -> str:
        return self._spec.model_id

    @property
    def dim(self) -> int:
        assert self._spec.dim is not None
        return self._spec.dim

    def load(self) -> None:
        """Nothing to load."""

    def embed_images(self, images: Sequence[Image.Image]) -> np.ndarray:
        raise EmbeddingUnsupportedError(self._refusal("images"))

    def embed_texts(self, texts: Sequence[str]) -> np.ndarray:
        raise EmbeddingUnsupportedError(self._refusal("texts"))

    def _refusal(self, what: str) -> str:
        return (
            f"Model {self.model_id!r} is vectors-only and cannot embed {what}; "
            "send precomputed embeddings or configure a CLIP model."
        )
