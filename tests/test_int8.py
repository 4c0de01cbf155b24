"""precision="int8": the image tower runs as an ONNX Runtime int8 model built from the weights."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from mediarec.encoders import EncoderOptions, create_encoder, load_encoder
from mediarec.encoders.backends import onnx_int8

pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")

TINY_CFG = {
    "embed_dim": 32,
    "vision_cfg": {"image_size": 32, "layers": 2, "width": 64, "patch_size": 8, "head_width": 32},
    "text_cfg": {"context_length": 77, "vocab_size": 49408, "width": 32, "heads": 2, "layers": 1},
}


def _images(n: int) -> list[Image.Image]:
    rng = np.random.default_rng(3)
    return [Image.fromarray(rng.integers(0, 256, (48, 40, 3), dtype=np.uint8)) for _ in range(n)]


@pytest.fixture(scope="module")
def tiny_model_id(tmp_path_factory: pytest.TempPathFactory) -> str:
    import open_clip
    from safetensors.torch import save_file

    torch.manual_seed(0)
    model = open_clip.model.CLIP(**TINY_CFG)  # type: ignore[arg-type]
    folder = tmp_path_factory.mktemp("tiny-int8")
    (folder / "open_clip_config.json").write_text(json.dumps({"model_cfg": TINY_CFG}))
    state = {k: v.contiguous() for k, v in model.state_dict().items()}
    save_file(state, str(folder / "open_clip_model.safetensors"))
    return f"openclip-dir:{folder}"


def test_int8_images_stay_close_to_fp32_and_texts_are_unchanged(
    tiny_model_id: str, tmp_path: Path
) -> None:
    fp32 = load_encoder(tiny_model_id)
    int8 = load_encoder(tiny_model_id, EncoderOptions(precision="int8", onnx_cache_dir=tmp_path))
    images = _images(5)
    vectors = int8.embed_images(images)
    assert vectors.dtype == np.float32 and vectors.shape == (5, 32)
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    cosines = np.sum(vectors * fp32.embed_images(images), axis=1)
    assert float(cosines.min()) > 0.99
    assert not np.allclose(vectors, fp32.embed_images(images), atol=1e-7)  # really quantized
    texts = ["a dog", "two red circles on a beach"]
    np.testing.assert_allclose(int8.embed_texts(texts), fp32.embed_texts(texts), atol=1e-6)


def test_int8_model_is_built_once_then_loaded_from_the_cache(
    tiny_model_id: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    builds: list[Path] = []
    real_build = onnx_int8.build_int8

    def counting_build(visual: torch.nn.Module, size: int, path: Path) -> None:
        builds.append(path)
        real_build(visual, size, path)

    monkeypatch.setattr(onnx_int8, "build_int8", counting_build)
    options = EncoderOptions(precision="int8", onnx_cache_dir=tmp_path)
    first = load_encoder(tiny_model_id, options).embed_images(_images(2))
    second = load_encoder(tiny_model_id, options).embed_images(_images(2))
    assert len(builds) == 1 and [p.name for p in tmp_path.iterdir()] == [builds[0].name]
    np.testing.assert_array_equal(first, second)


def test_corrupt_cached_int8_model_is_rebuilt(tiny_model_id: str, tmp_path: Path) -> None:
    options = EncoderOptions(precision="int8", onnx_cache_dir=tmp_path)
    expected = load_encoder(tiny_model_id, options).embed_images(_images(2))
    (cached,) = tmp_path.glob("*.onnx")
    cached.write_bytes(b"not an onnx model")
    again = load_encoder(tiny_model_id, options).embed_images(_images(2))
    np.testing.assert_allclose(again, expected, atol=1e-6)


def test_int8_needs_the_cpu_and_an_open_clip_model() -> None:
    with pytest.raises(ValueError, match="int8"):
        EncoderOptions(precision="int8", device="cuda")
    with pytest.raises(ValueError, match="int8"):
        create_encoder("hf:openai/clip-vit-base-patch32", EncoderOptions(precision="int8"))


@pytest.mark.slow
def test_demo_model_retrieval_survives_int8(tmp_path: Path) -> None:
    from mediarec.encoders.synthetic.evaluate import evaluate

    fp32 = evaluate(load_encoder("mediarec-demo"), n=300)
    options = EncoderOptions(precision="int8", onnx_cache_dir=tmp_path)
    int8 = evaluate(load_encoder("mediarec-demo", options), n=300)
    assert int8["text_to_image_top1"] >= fp32["text_to_image_top1"] - 0.01


def test_a_missing_onnxruntime_is_one_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    import sys

    from mediarec.encoders.base import WeightsUnavailableError

    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # import fails as if not installed
    with pytest.raises(WeightsUnavailableError, match="mediarec\\[int8\\]"):
        onnx_int8._require_onnx()
