"""What the torch CLIP backends share: lazy thread-safe loading, batching, the output contract."""

from __future__ import annotations

import contextlib
import logging
import threading
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch
from PIL import Image

from mediarec.encoders.base import (
    EncoderError,
    VideoEmbedding,
    WeightsUnavailableError,
    l2_normalize,
)
from mediarec.encoders.hub import cache_only_when_offline, hub_endpoint, is_cache_miss
from mediarec.encoders.options import EncoderOptions
from mediarec.encoders.preprocess import images_to_tensor
from mediarec.encoders.registry import ModelSpec, PreprocessSpec, WeightsKind, with_loaded_facts

logger = logging.getLogger(__name__)

OFFLINE_HINT = (
    "To run offline, point the model id at a local checkpoint ('openclip:ARCH@FILE', "
    "'openclip-dir:DIR', 'hf-dir:DIR'), pre-populate the Hugging Face cache (HF_HOME) on a "
    "machine with network access, or use the bundled demo model 'mediarec-demo'."
)


class TorchClipEncoder(ABC):
    """Base of the torch backends. Subclasses build the model and run the two towers."""

    def __init__(self, spec: ModelSpec, options: EncoderOptions) -> None:
        self._spec = spec
        self._options = options
        self._lock = threading.Lock()
        self._loaded = False
        self._dtype = torch.bfloat16 if options.precision == "bf16" else torch.float32
        self._device = torch.device(options.device)

    # -- identity ---------------------------------------------------------------------------
    @property
    def spec(self) -> ModelSpec:
        return self._spec

    @property
    def model_id(self) -> str:
        return self._spec.model_id

    @property
    def dim(self) -> int:
        if self._spec.dim is None:
            self.load()
        assert self._spec.dim is not None
        return self._spec.dim

    @property
    def preprocess_spec(self) -> PreprocessSpec:
        self.load()
        assert self._spec.preprocess is not None
        return self._spec.preprocess

    @property
    def options(self) -> EncoderOptions:
        return self._options

    # -- life-cycle -------------------------------------------------------------------------
    def load(self) -> None:
        """Build the model once; concurrent callers wait for the first one."""
        if self._loaded:
            return
        with self._lock:
            if self._loaded:
                return
            if self._options.torch_threads:
                torch.set_num_threads(self._options.torch_threads)
            logger.info("loading encoder %s (%s)", self.model_id, self._options.precision)
            remote = self._spec.weights.kind in (WeightsKind.PRETRAINED_TAG, WeightsKind.HF_REPO)
            hub = cache_only_when_offline() if remote else contextlib.nullcontext(False)
            offline = False
            try:
                with hub as offline:
                    if offline and not self._weights_cached():
                        # Fail now, in one line, rather than through the loader's retries.
                        raise WeightsUnavailableError(self._explain_load_failure(None, offline))
                    dim, preprocess = self._build()
            except EncoderError:
                raise
            except Exception as exc:  # every loader failure becomes one typed, explained error
                raise WeightsUnavailableError(self._explain_load_failure(exc, offline)) from exc
            self._spec = with_loaded_facts(self._spec, dim, preprocess)
            self._loaded = True
            logger.info("encoder %s ready: dim=%d", self.model_id, dim)

    def _weights_cached(self) -> bool:
        """Whether hub weights are in the local cache (backends that download override it)."""
        return True

    def _explain_load_failure(self, exc: Exception | None, offline: bool = False) -> str:
        """One line: what failed and, for hub weights, how to run without the hub."""
        source = self._spec.weights
        if offline and (exc is None or is_cache_miss(exc)):
            return (
                f"Could not load weights for {self.model_id!r}: the model hub "
                f"({hub_endpoint()}) is unreachable and they are not in the local cache. "
                f"{OFFLINE_HINT}"
            )
        remote = source.kind in (WeightsKind.PRETRAINED_TAG, WeightsKind.HF_REPO)
        detail = " ".join(str(exc).split())  # one line, whatever the loader's message
        what = f"Could not load weights for {self.model_id!r} ({type(exc).__name__}: {detail})."
        return f"{what} {OFFLINE_HINT}" if remote else what

    @abstractmethod
    def _build(self) -> tuple[int, PreprocessSpec]:
        """Load weights; return the embedding dim and the preprocessing that belongs to them."""

    @abstractmethod
    def _image_features(self, pixels: torch.Tensor) -> torch.Tensor: ...

    @abstractmethod
    def _tokenize(self, texts: Sequence[str]) -> tuple[list[Any], list[int]]:
        """Each text's tokens, in the form :meth:`_text_features` takes, and how many of them
        the model must run (the cost :meth:`embed_texts` groups batches by)."""

    @abstractmethod
    def _text_features(self, tokens: Sequence[Any]) -> torch.Tensor:
        """Unnormalised vectors of tokenized texts; a batch runs only to its longest text."""

    # -- embedding --------------------------------------------------------------------------
    def embed_images(self, images: Sequence[Image.Image]) -> np.ndarray:
        self.load()
        spec = self.preprocess_spec

        def run(chunk: Sequence[Image.Image]) -> torch.Tensor:
            pixels = images_to_tensor(chunk, spec).to(self._device, self._dtype)
            return self._image_features(pixels)

        return self._batched(images, run)

    def embed_pixels(self, pixels: torch.Tensor) -> np.ndarray:
        """Embed an already preprocessed ``(n, 3, size, size)`` batch (decode-free hot path)."""
        self.load()
        with torch.inference_mode():
            out = self._image_features(pixels.to(self._device, self._dtype))
        return l2_normalize(out.float().cpu().numpy())

    def embed_texts(self, texts: Sequence[str]) -> np.ndarray:
        """Texts are batched in order of token length, so a short query is never padded to a
        long caption; the rows come back in the caller's order."""
        self.load()
        tokens, lengths = self._tokenize([str(t) for t in texts])
        order = np.argsort(np.asarray(lengths, dtype=np.int64), kind="stable")
        vectors = self._batched([tokens[i] for i in order], self._text_features)
        restored = np.empty_like(vectors)
        restored[order] = vectors
        return restored

    def embed_video_frames(
        self, frames: Sequence[Image.Image], timestamps_s: Sequence[float]
    ) -> VideoEmbedding:
        if len(frames) != len(timestamps_s) or not frames:
            raise ValueError("a video needs at least one frame and one timestamp per frame")
        vectors = self.embed_images(frames)
        return VideoEmbedding(vectors, tuple(float(t) for t in timestamps_s), pool(vectors))

    def _batched(self, items: Sequence[Any], run: Callable[[Any], torch.Tensor]) -> np.ndarray:
        if len(items) == 0:
            return np.zeros((0, self.dim), dtype=np.float32)
        size = self._options.batch_size
        parts = []
        with torch.inference_mode():
            for start in range(0, len(items), size):
                parts.append(run(items[start : start + size]).float().cpu().numpy())
        return l2_normalize(np.concatenate(parts, axis=0))


def pool(frame_vectors: np.ndarray) -> np.ndarray:
    """The video-level vector: mean of the unit frame vectors, renormalised."""
    return l2_normalize(np.asarray(frame_vectors, dtype=np.float32).mean(axis=0, keepdims=True))[0]
