"""The bundled demo CLIP: small, loadable by open_clip itself, and genuinely meaningful."""

from __future__ import annotations

import json

import numpy as np
import pytest

from mediarec.encoders.synthetic.evaluate import EVAL_SEED, evaluate
from mediarec.encoders.synthetic.train import DEFAULT_OUT_DIR, MODEL_CFG
from mediarec.encoders.synthetic.world import Attributes, WorldGenerator, canonical_caption

WEIGHTS_DIR = DEFAULT_OUT_DIR


@pytest.fixture(scope="module")
def demo_encoder():
    from mediarec.encoders import load_encoder

    return load_encoder("mediarec-demo")


def test_bundled_weights_fit_the_size_budget() -> None:
    files = list(WEIGHTS_DIR.iterdir())
    assert {f.name for f in files} >= {"open_clip_config.json", "open_clip_model.safetensors"}
    assert sum(f.stat().st_size for f in files) <= 10 * 1024 * 1024


def test_config_carries_the_preprocessing_with_the_weights() -> None:
    config = json.loads((WEIGHTS_DIR / "open_clip_config.json").read_text())
    assert config["model_cfg"] == MODEL_CFG
    assert config["preprocess_cfg"]["size"] == MODEL_CFG["vision_cfg"]["image_size"]
    assert config["preprocess_cfg"]["interpolation"] == "bicubic"


def test_open_clip_loads_the_checkpoint_through_its_local_dir_schema() -> None:
    import open_clip
    import torch

    name = f"local-dir:{WEIGHTS_DIR}"
    model, _, preprocess = open_clip.create_model_and_transforms(name)
    tokenizer = open_clip.get_tokenizer(name)
    attrs = Attributes("heart", "red", "one", "beach", "solid")
    image = preprocess(WorldGenerator(seed=EVAL_SEED).render(attrs)).unsqueeze(0)
    texts = tokenizer([canonical_caption(attrs), "four outlined blue squares in a forest"])
    with torch.inference_mode():
        image_vec = model.encode_image(image, normalize=True)
        text_vecs = model.encode_text(texts, normalize=True)
    assert image_vec.shape == (1, MODEL_CFG["embed_dim"])
    scores = (image_vec @ text_vecs.T)[0]
    assert scores[0] > scores[1]


def test_encoder_returns_unit_float32_rows(demo_encoder) -> None:
    vectors = demo_encoder.embed_texts(["two red circles on a sandy beach", "a forest"])
    assert vectors.dtype == np.float32
    assert vectors.shape == (2, 128)
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)


def test_held_out_retrieval_is_far_above_chance(demo_encoder) -> None:
    # Chance is 0.01 for text->image among 100 and about 0.17 for the six hard-negative captions.
    result = evaluate(demo_encoder, n=200, seed=EVAL_SEED)
    assert result["text_to_image_top1"] >= 0.6, result
    assert result["hard_negative_top1"] >= 0.4, result
