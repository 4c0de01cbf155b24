"""open_clip_torch backend: pretrained tags, local checkpoint files and open_clip folders."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import torch

from mediarec.encoders.backends.openclip_text import TrimmedTextTower
from mediarec.encoders.backends.torch_base import TorchClipEncoder
from mediarec.encoders.hub import is_cached
from mediarec.encoders.registry import PreprocessSpec, WeightsKind

if TYPE_CHECKING:
    from mediarec.encoders.backends.onnx_int8 import OnnxInt8ImageTower

logger = logging.getLogger(__name__)


class OpenClipEncoder(TorchClipEncoder):
    def _weights_cached(self) -> bool:
        source = self._spec.weights
        if source.kind is not WeightsKind.PRETRAINED_TAG:
            return True
        from open_clip.pretrained import get_pretrained_cfg

        hub = get_pretrained_cfg(self._spec.architecture, source.location).get("hf_hub", "")
        if not hub:
            return True  # a URL download: open_clip's own cache decides
        cache_dir = str(self._options.cache_dir) if self._options.cache_dir else None
        org, repo, *rest = hub.split("/")
        # "org/repo/" reads safetensors where the repo has them, else the pickled checkpoint;
        # "org/repo/file" names its file.
        names = [f for f in rest if f] or [
            "open_clip_model.safetensors",
            "open_clip_pytorch_model.bin",
        ]
        return any(is_cached(f"{org}/{repo}", name, cache_dir) for name in names)

    def _build(self) -> tuple[int, PreprocessSpec]:
        import open_clip  # heavy import, deferred to load time

        source = self._spec.weights
        precision = "pure_bf16" if self._options.precision == "bf16" else "fp32"  # int8: fp32
        cache_dir = str(self._options.cache_dir) if self._options.cache_dir else None
        if source.kind is WeightsKind.LOCAL_DIR:
            name = f"local-dir:{source.location}"
            pretrained = None
        else:
            name = self._spec.architecture
            pretrained = source.location
        model = open_clip.create_model(
            name,
            pretrained=pretrained,
            precision=precision,
            device=self._device,
            cache_dir=cache_dir,
            require_pretrained=True,  # never run with random weights by accident
        )
        model.eval()
        self._model = model
        preprocess = _preprocess_from_model(model)
        self._int8_images = self._int8_tower(model, preprocess.size)
        if self._int8_images is not None:
            # Images run through ONNX Runtime from now on: free the float tower instead of
            # keeping an unused copy of its weights.
            model.visual = torch.nn.Identity()
        self._tokenizer = open_clip.get_tokenizer(name, cache_dir=cache_dir)
        self._trimmed_text = TrimmedTextTower.of(model)
        if self._trimmed_text is None:
            logger.info("%s: text tower is not causal; texts run at full context", self.model_id)
        with torch.inference_mode():  # the text tower's output width is the embedding dim
            dim = int(self._text_features(self._tokenize(["probe"])[0]).shape[1])
        return dim, preprocess

    def _int8_tower(self, model: Any, size: int) -> OnnxInt8ImageTower | None:
        if self._options.precision != "int8":
            return None
        from mediarec.encoders.backends.onnx_int8 import OnnxInt8ImageTower, default_cache_dir

        cache = self._options.onnx_cache_dir or default_cache_dir()
        threads = self._options.torch_threads
        return OnnxInt8ImageTower.load_or_build(model.visual, size, cache, threads)

    def _image_features(self, pixels: torch.Tensor) -> torch.Tensor:
        if self._int8_images is not None:
            return self._int8_images(pixels)
        return self._model.encode_image(pixels)

    def _tokenize(self, texts: Sequence[str]) -> tuple[list[torch.Tensor], list[int]]:
        tokens = self._tokenizer(list(texts))  # padded to the full context
        if self._trimmed_text is None:  # every text costs the full context anyway
            return list(tokens), [tokens.shape[1]] * len(texts)
        return list(tokens), self._trimmed_text.lengths(tokens).tolist()

    def _text_features(self, tokens: Sequence[torch.Tensor]) -> torch.Tensor:
        batch = torch.stack(list(tokens)).to(self._device)
        if self._trimmed_text is None:
            return self._model.encode_text(batch)
        return self._trimmed_text(batch)  # cut after the batch's last pooled position


def _preprocess_from_model(model: torch.nn.Module) -> PreprocessSpec:
    cfg = getattr(model.visual, "preprocess_cfg", {}) or {}
    size = cfg.get("size", 224)
    size = int(size[0] if isinstance(size, list | tuple) else size)
    if cfg.get("resize_mode", "shortest") != "shortest":
        raise ValueError("only 'shortest' resize mode is supported by mediarec's preprocessing")
    return PreprocessSpec(
        size=size,
        mean=tuple(cfg.get("mean", PreprocessSpec.mean)),  # type: ignore[arg-type]
        std=tuple(cfg.get("std", PreprocessSpec.std)),  # type: ignore[arg-type]
        interpolation=str(cfg.get("interpolation", "bicubic")),
    )
