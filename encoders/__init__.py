"""Pure ML for mediarec: bytes, frames and text in; float32 unit vectors out.

This package never imports grpc or qdrant.
"""

from __future__ import annotations

from mediarec.encoders.base import (
    EmbeddingUnsupportedError,
    Encoder,
    EncoderError,
    ModelIdError,
    VideoEmbedding,
    WeightsUnavailableError,
    l2_normalize,
)
from mediarec.encoders.options import EncoderOptions
from mediarec.encoders.registry import (
    DEFAULT_MODEL_ID,
    DEMO_MODEL_ID,
    REGISTRY,
    Backend,
    ModelSpec,
    PreprocessSpec,
    parse_model_id,
)

__all__ = [
    "DEFAULT_MODEL_ID",
    "DEMO_MODEL_ID",
    "REGISTRY",
    "Backend",
    "EmbeddingUnsupportedError",
    "Encoder",
    "EncoderError",
    "EncoderOptions",
    "ModelIdError",
    "ModelSpec",
    "PreprocessSpec",
    "VideoEmbedding",
    "WeightsUnavailableError",
    "create_encoder",
    "l2_normalize",
    "load_encoder",
    "parse_model_id",
]


def create_encoder(model_id: str, options: EncoderOptions | None = None) -> Encoder:
    """An encoder for ``model_id`` that loads its weights lazily, on first use or ``load()``."""
    spec = parse_model_id(model_id)
    options = options or EncoderOptions()
    if spec.backend is Backend.EXTERNAL:
        from mediarec.encoders.backends.external import ExternalVectorsEncoder

        return ExternalVectorsEncoder(spec)
    if spec.backend is Backend.HF:
        from mediarec.encoders.backends.hf_backend import HfClipEncoder

        return HfClipEncoder(spec, options)
    from mediarec.encoders.backends.openclip_backend import OpenClipEncoder

    return OpenClipEncoder(spec, options)


def load_encoder(model_id: str, options: EncoderOptions | None = None) -> Encoder:
    """Like :func:`create_encoder`, but loads the weights now (what a server does at startup)."""
    encoder = create_encoder(model_id, options)
    encoder.load()
    return encoder
