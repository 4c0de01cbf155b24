"""Model identifiers parse to specs; bad ones fail with one sentence naming the valid forms."""

from __future__ import annotations

from pathlib import Path

import pytest

from mediarec.encoders import (
    DEFAULT_MODEL_ID,
    DEMO_MODEL_ID,
    REGISTRY,
    Backend,
    ModelIdError,
    parse_model_id,
)
from mediarec.encoders.registry import EXTERNAL_CARD, WeightsKind

REPO = Path(__file__).resolve().parents[1]


def test_default_model_is_openclip_vit_b_32_laion2b() -> None:
    spec = parse_model_id(DEFAULT_MODEL_ID)
    assert spec.backend is Backend.OPENCLIP
    assert spec.architecture == "ViT-B-32"
    assert spec.weights.kind is WeightsKind.PRETRAINED_TAG
    assert spec.weights.location == "laion2b_s34b_b79k"
    assert spec.dim == 512 and spec.preprocess is not None and spec.preprocess.size == 224


def test_hub_transformers_id_parses() -> None:
    spec = parse_model_id("hf:openai/clip-vit-base-patch32")
    assert spec.backend is Backend.HF and spec.weights.location == "openai/clip-vit-base-patch32"
    other = parse_model_id("hf:someone/clip-small")
    assert other.dim is None and other.model_id == "hf:someone/clip-small"


def test_demo_model_points_at_bundled_folder() -> None:
    spec = parse_model_id(DEMO_MODEL_ID)
    assert spec.weights.kind is WeightsKind.LOCAL_DIR
    assert Path(spec.weights.location).name == "mediarec-demo"
    assert parse_model_id(spec.weights.location) == spec  # the folder path names the same model


def test_unregistered_openclip_tag_parses_without_network() -> None:
    spec = parse_model_id("openclip:ViT-L-14/datacomp_xl_s13b_b90k")
    assert spec.architecture == "ViT-L-14" and spec.dim is None


def test_local_checkpoint_file_needs_existing_file(tmp_path: Path) -> None:
    ckpt = tmp_path / "weights.safetensors"
    ckpt.write_bytes(b"x")
    spec = parse_model_id(f"openclip:ViT-B-32@{ckpt}")
    assert spec.weights.kind is WeightsKind.LOCAL_FILE
    assert spec.weights.location == str(ckpt.resolve())
    with pytest.raises(ModelIdError, match="does not exist"):
        parse_model_id(f"openclip:ViT-B-32@{tmp_path / 'missing.pt'}")


def test_local_folders_are_detected_by_their_config(tmp_path: Path) -> None:
    hf_dir = tmp_path / "hf"
    hf_dir.mkdir()
    (hf_dir / "config.json").write_text("{}")
    oc_dir = tmp_path / "oc"
    oc_dir.mkdir()
    (oc_dir / "open_clip_config.json").write_text("{}")
    assert parse_model_id(str(hf_dir)).backend is Backend.HF
    assert parse_model_id(str(oc_dir)).backend is Backend.OPENCLIP
    assert parse_model_id(f"hf-dir:{hf_dir}").model_id == f"hf-dir:{hf_dir.resolve()}"


def test_external_vectors_only() -> None:
    spec = parse_model_id("external:768")
    assert spec.backend is Backend.EXTERNAL and spec.dim == 768


@pytest.mark.parametrize(
    "bad",
    [
        "",
        "   ",
        "clip",
        "openclip:",
        "openclip:ViT-B-32",
        "openclip:/laion",
        "openclip:ViT-B-32@weights.txt",
        "hf:no-slash",
        "hf:a/b/c",
        "external:0",
        "external:abc",
        "external:99999",
        "onnx:model",
    ],
)
def test_bad_identifiers_name_the_valid_forms(bad: str) -> None:
    with pytest.raises(ModelIdError) as info:
        parse_model_id(bad)
    message = str(info.value)
    assert "valid forms are" in message and "openclip:ARCH/TAG" in message
    assert message.count(".") >= 1 and "\n" not in message


def test_every_registry_entry_has_a_model_card() -> None:
    cards = [spec.card for spec in REGISTRY.values()] + [EXTERNAL_CARD]
    for card in cards:
        assert card is not None
        path = REPO / "model_cards" / card
        assert path.is_file(), f"missing model card {path}"
        text = path.read_text()
        for heading in ("Source", "Licence", "Intended use", "Preprocessing", "Offline"):
            assert heading.lower() in text.lower(), f"{card} lacks a {heading!r} section"


@pytest.mark.parametrize(
    ("source", "model_id", "labels"),
    [
        ("auto", "mediarec-demo", None),  # its world's vocabulary fits no real photo
        ("auto", DEFAULT_MODEL_ID, "everyday"),
        ("auto", "hf:openai/clip-vit-base-patch32", "everyday"),
        ("auto", "openclip:ViT-L-14/some-tag", "everyday"),  # outside the registry: real CLIP
        ("demo-world", "mediarec-demo", "demo-world"),  # asked for by name: used
        ("everyday", "mediarec-demo", "everyday"),
    ],
)
def test_auto_topics_are_the_vocabulary_the_model_declares(
    source: str, model_id: str, labels: str | None
) -> None:
    from mediarec.server.topics import demo_world_prompts, everyday_prompts, vocabulary_prompts

    expected = {None: None, "everyday": everyday_prompts(), "demo-world": demo_world_prompts()}
    assert vocabulary_prompts(source, model_id) == expected[labels]
