"""transformers backend: ``CLIPModel`` with its tokenizer, from the Hub or a saved folder."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from mediarec.encoders.backends.torch_base import TorchClipEncoder
from mediarec.encoders.hub import is_cached
from mediarec.encoders.options import EncoderOptions
from mediarec.encoders.registry import ModelSpec, PreprocessSpec, WeightsKind


class HfClipEncoder(TorchClipEncoder):
    def __init__(self, spec: ModelSpec, options: EncoderOptions) -> None:
        if options.precision == "int8":
            raise ValueError(
                f"precision 'int8' is available for open_clip models only, not {spec.model_id!r}"
            )
        super().__init__(spec, options)

    def _weights_cached(self) -> bool:
        if self._spec.weights.kind is not WeightsKind.HF_REPO:
            return True
        repo = self._spec.weights.location
        cache_dir = str(self._options.cache_dir) if self._options.cache_dir else None
        weights = ("model.safetensors", "pytorch_model.bin")
        return is_cached(repo, "config.json", cache_dir) and any(
            is_cached(repo, name, cache_dir) for name in weights
        )

    def _build(self) -> tuple[int, PreprocessSpec]:
        from transformers import AutoTokenizer, CLIPModel

        location = self._spec.weights.location
        cache_dir = str(self._options.cache_dir) if self._options.cache_dir else None
        model: Any = CLIPModel.from_pretrained(location, cache_dir=cache_dir, dtype=self._dtype)
        model = model.to(self._device).eval()
        self._model = model
        self._tokenizer = AutoTokenizer.from_pretrained(location, cache_dir=cache_dir)
        config: Any = model.config
        self._max_length = int(config.text_config.max_position_embeddings)
        return int(config.projection_dim), self._preprocess(location, cache_dir)

    def _preprocess(self, location: str, cache_dir: str | None) -> PreprocessSpec:
        """Read the checkpoint's own image-processor settings; CLIP defaults if it has none."""
        config_path = Path(location) / "preprocessor_config.json"
        if not config_path.is_file():
            try:
                from huggingface_hub import hf_hub_download

                config_path = Path(
                    hf_hub_download(location, "preprocessor_config.json", cache_dir=cache_dir)
                )
            except Exception:  # a checkpoint without a processor config uses CLIP's defaults
                return self._spec.preprocess or PreprocessSpec(
                    size=int(self._model.config.vision_config.image_size)
                )
        cfg = json.loads(config_path.read_text())
        crop = cfg.get("crop_size", cfg.get("size", 224))
        if isinstance(crop, dict):
            crop = crop.get("height", crop.get("shortest_edge", 224))
        size = crop
        resample = {2: "bilinear", 3: "bicubic", 0: "nearest", 1: "lanczos"}
        return PreprocessSpec(
            size=int(size),
            mean=tuple(cfg.get("image_mean", PreprocessSpec.mean)),  # type: ignore[arg-type]
            std=tuple(cfg.get("image_std", PreprocessSpec.std)),  # type: ignore[arg-type]
            interpolation=resample.get(int(cfg.get("resample", 3)), "bicubic"),
        )

    def _image_features(self, pixels: torch.Tensor) -> torch.Tensor:
        return _pooled(self._model.get_image_features(pixel_values=pixels))

    def _tokenize(self, texts: Sequence[str]) -> tuple[list[list[int]], list[int]]:
        ids = self._tokenizer(list(texts), truncation=True, max_length=self._max_length)
        rows = [list(row) for row in ids["input_ids"]]
        return rows, [len(row) for row in rows]

    def _text_features(self, tokens: Sequence[list[int]]) -> torch.Tensor:
        # Padding to the batch's longest text is exact: CLIP's causal mask keeps the pooled
        # end-of-text token from seeing the padding after it.
        batch = self._tokenizer.pad({"input_ids": list(tokens)}, return_tensors="pt")
        return _pooled(self._model.get_text_features(**batch.to(self._device)))


def _pooled(output: object) -> torch.Tensor:
    """transformers 5 returns a model output whose pooler_output is the projected vector."""
    if isinstance(output, torch.Tensor):
        return output
    return output.pooler_output  # type: ignore[attr-defined]
