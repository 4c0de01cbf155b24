"""Both torch backends load checkpoints the test saves itself and honour the output contract."""

from __future__ import annotations

import json
import os
import string
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from mediarec.encoders import (
    EmbeddingUnsupportedError,
    EncoderOptions,
    ModelIdError,
    create_encoder,
    load_encoder,
)
from mediarec.encoders.backends.openclip_backend import OpenClipEncoder

TEXTS = ["a dog on a beach", "two red circles", "x", "a much longer caption about a city at night"]


def _images(n: int) -> list[Image.Image]:
    rng = np.random.default_rng(7)
    sizes = [(320, 240), (200, 300), (224, 224), (640, 480), (97, 131)]
    return [
        Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8))
        for w, h in (sizes[i % len(sizes)] for i in range(n))
    ]


def assert_contract(vectors: np.ndarray, n: int, dim: int) -> None:
    assert vectors.dtype == np.float32
    assert vectors.shape == (n, dim)
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)


@pytest.fixture(scope="module")
def openclip_checkpoint(tmp_path_factory: pytest.TempPathFactory):
    import open_clip

    torch.manual_seed(0)
    model, _, preprocess = open_clip.create_model_and_transforms("ViT-B-32", pretrained=None)
    model.eval()
    path = tmp_path_factory.mktemp("openclip") / "vit-b-32-random.pt"
    torch.save(model.state_dict(), path)
    return model, preprocess, path


def test_openclip_checkpoint_matches_in_memory_model(openclip_checkpoint) -> None:
    import open_clip

    model, preprocess, path = openclip_checkpoint
    encoder = load_encoder(f"openclip:ViT-B-32@{path}", EncoderOptions(batch_size=3))
    images = _images(5)
    vectors = encoder.embed_images(images)
    assert_contract(vectors, 5, 512)
    with torch.inference_mode():
        # open_clip's own transform: proves our preprocessing is the same arithmetic
        expected = model.encode_image(torch.stack([preprocess(i) for i in images]), normalize=True)
        tokens = open_clip.get_tokenizer("ViT-B-32")(TEXTS)
        expected_text = model.encode_text(tokens, normalize=True)
    np.testing.assert_allclose(vectors, expected.numpy(), atol=1e-5)
    texts = encoder.embed_texts(TEXTS)
    assert_contract(texts, len(TEXTS), 512)
    np.testing.assert_allclose(texts, expected_text.numpy(), atol=1e-5)


def test_openclip_batches_equal_single_items(openclip_checkpoint) -> None:
    _, _, path = openclip_checkpoint
    encoder = load_encoder(f"openclip:ViT-B-32@{path}", EncoderOptions(batch_size=4))
    images = _images(5)
    batch = encoder.embed_images(images)
    single = np.concatenate([encoder.embed_images([img]) for img in images])
    np.testing.assert_allclose(batch, single, atol=1e-5)
    texts = encoder.embed_texts(TEXTS)
    single_texts = np.concatenate([encoder.embed_texts([t]) for t in TEXTS])
    np.testing.assert_allclose(texts, single_texts, atol=1e-5)


def test_openclip_bf16_weights_stay_close_to_fp32(openclip_checkpoint) -> None:
    _, _, path = openclip_checkpoint
    fp32 = load_encoder(f"openclip:ViT-B-32@{path}")
    bf16 = load_encoder(f"openclip:ViT-B-32@{path}", EncoderOptions(precision="bf16"))
    images = _images(3)
    a, b = fp32.embed_images(images), bf16.embed_images(images)
    assert_contract(b, 3, 512)
    assert float(np.min(np.sum(a * b, axis=1))) > 0.98


def test_video_frames_are_pooled_to_one_unit_vector(openclip_checkpoint) -> None:
    _, _, path = openclip_checkpoint
    encoder = load_encoder(f"openclip:ViT-B-32@{path}")
    assert isinstance(encoder, OpenClipEncoder)
    result = encoder.embed_video_frames(_images(3), [0.5, 1.5, 2.5])
    assert_contract(result.frame_vectors, 3, 512)
    assert result.timestamps_s == (0.5, 1.5, 2.5)
    assert result.pooled.shape == (512,) and abs(float(np.linalg.norm(result.pooled)) - 1) < 1e-5


def test_corrupt_checkpoint_is_a_weights_error(tmp_path: Path) -> None:
    from mediarec.encoders import WeightsUnavailableError

    bad = tmp_path / "broken.safetensors"
    bad.write_bytes(b"not a checkpoint")
    with pytest.raises(WeightsUnavailableError, match="broken.safetensors"):
        load_encoder(f"openclip:ViT-B-32@{bad}")


# -- transformers ------------------------------------------------------------------------------


def _tiny_tokenizer_files(folder: Path) -> dict[str, int]:
    """A character-level CLIP BPE vocabulary: enough for a real CLIPTokenizer, no Hub needed."""
    chars = list(string.ascii_lowercase + string.digits + " .,!?-'")
    vocab: dict[str, int] = {}
    for suffix in ("", "</w>"):
        for char in chars:
            vocab.setdefault(char + suffix, len(vocab))
    for special in ("<|startoftext|>", "<|endoftext|>"):
        vocab[special] = len(vocab)
    (folder / "vocab.json").write_text(json.dumps(vocab))
    (folder / "merges.txt").write_text("#version: 0.2\n")
    return vocab


@pytest.fixture(scope="module")
def hf_checkpoint(tmp_path_factory: pytest.TempPathFactory):
    from transformers import CLIPConfig, CLIPImageProcessor, CLIPModel, CLIPTokenizer

    folder = tmp_path_factory.mktemp("hf")
    vocab = _tiny_tokenizer_files(folder)
    eos, bos = vocab["<|endoftext|>"], vocab["<|startoftext|>"]
    config = CLIPConfig(
        text_config={
            "vocab_size": len(vocab),
            "hidden_size": 32,
            "intermediate_size": 64,
            "num_hidden_layers": 2,
            "num_attention_heads": 2,
            "max_position_embeddings": 64,
            "eos_token_id": eos,
            "bos_token_id": bos,
            "pad_token_id": eos,
        },
        vision_config={
            "hidden_size": 32,
            "intermediate_size": 64,
            "num_hidden_layers": 2,
            "num_attention_heads": 2,
            "image_size": 32,
            "patch_size": 8,
        },
        projection_dim=24,
    )
    torch.manual_seed(0)
    model = CLIPModel(config).eval()
    tokenizer = CLIPTokenizer(str(folder / "vocab.json"), str(folder / "merges.txt"))
    saved = folder / "model"
    model.save_pretrained(saved)
    tokenizer.save_pretrained(saved)
    crop = {"height": 32, "width": 32}
    CLIPImageProcessor(size={"shortest_edge": 32}, crop_size=crop).save_pretrained(saved)
    return model, tokenizer, saved


def _features(output: object) -> torch.Tensor:
    tensor = output if isinstance(output, torch.Tensor) else output.pooler_output  # type: ignore[attr-defined]
    return torch.nn.functional.normalize(tensor, dim=-1)


def test_hf_checkpoint_matches_in_memory_model(hf_checkpoint) -> None:
    from mediarec.encoders.preprocess import images_to_tensor

    model, tokenizer, saved = hf_checkpoint
    encoder = load_encoder(f"hf-dir:{saved}", EncoderOptions(batch_size=2))
    assert encoder.dim == 24
    images = _images(5)
    vectors = encoder.embed_images(images)
    assert_contract(vectors, 5, 24)
    texts = encoder.embed_texts(TEXTS)
    assert_contract(texts, len(TEXTS), 24)
    with torch.inference_mode():
        pixels = images_to_tensor(images, encoder.preprocess_spec)  # type: ignore[attr-defined]
        expected = _features(model.get_image_features(pixel_values=pixels))
        batch = tokenizer(TEXTS, padding=True, return_tensors="pt")
        expected_text = _features(model.get_text_features(**batch))
    np.testing.assert_allclose(vectors, expected.numpy(), atol=1e-5)
    np.testing.assert_allclose(texts, expected_text.numpy(), atol=1e-5)


def test_hf_batches_equal_single_items(hf_checkpoint) -> None:
    _, _, saved = hf_checkpoint
    encoder = load_encoder(str(saved), EncoderOptions(batch_size=3))
    images = _images(4)
    single = np.concatenate([encoder.embed_images([img]) for img in images])
    np.testing.assert_allclose(encoder.embed_images(images), single, atol=1e-5)
    single_texts = np.concatenate([encoder.embed_texts([t]) for t in TEXTS])
    np.testing.assert_allclose(encoder.embed_texts(TEXTS), single_texts, atol=1e-5)


# -- life-cycle and errors --------------------------------------------------------------------


def test_lazy_load_happens_once_under_concurrency(hf_checkpoint) -> None:
    _, _, saved = hf_checkpoint
    encoder = create_encoder(f"hf-dir:{saved}")
    builds = []
    original = encoder._build  # type: ignore[attr-defined]

    def counting_build():
        builds.append(threading.get_ident())
        return original()

    encoder._build = counting_build  # type: ignore[attr-defined]
    results: list[np.ndarray] = []
    threads = [
        threading.Thread(target=lambda: results.append(encoder.embed_texts(["hello"])))
        for _ in range(6)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(builds) == 1 and len(results) == 6
    for vector in results[1:]:
        np.testing.assert_allclose(vector, results[0], atol=1e-6)


def test_external_model_refuses_to_embed() -> None:
    encoder = load_encoder("external:64")
    assert encoder.dim == 64
    with pytest.raises(EmbeddingUnsupportedError, match="vectors-only"):
        encoder.embed_texts(["hi"])
    with pytest.raises(EmbeddingUnsupportedError):
        encoder.embed_images(_images(1))


def test_bad_options_are_rejected() -> None:
    with pytest.raises(ValueError, match="precision"):
        EncoderOptions(precision="fp8")
    with pytest.raises(ModelIdError):
        create_encoder("nonsense:thing")


def test_unreachable_hub_names_offline_options(tmp_path: Path) -> None:
    """With no Hub, the default model fails loudly and suggests offline routes; no fallback."""
    code = (
        "from mediarec.encoders import load_encoder, WeightsUnavailableError\n"
        "try:\n"
        "    load_encoder('openclip:ViT-B-32/laion2b_s34b_b79k')\n"
        "except WeightsUnavailableError as exc:\n"
        "    print('ERROR', exc)\n"
    )
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_HOME": str(tmp_path / "hf-home")}
    done = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120
    )
    assert "ERROR" in done.stdout, done.stderr[-2000:]
    assert "mediarec-demo" in done.stdout and "local checkpoint" in done.stdout
