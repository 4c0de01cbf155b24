"""Texts run on tokens cut to the batch's longest text, grouped by length, and lose nothing.

The reference is open_clip's own ``encode_text`` at the model's full context: trimming is exact
under the causal mask, so the vectors must agree to float noise.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from test_backends import hf_checkpoint as hf_checkpoint  # the tiny HF CLIP fixture

from mediarec.encoders import EncoderOptions, load_encoder, parse_model_id
from mediarec.encoders.backends.openclip_text import TrimmedTextTower

TEXTS = [
    "a much longer caption about a busy city street at night with cars, lights and people",
    "dog",
    "two red circles on a sandy beach",
    "x",
    "a photo of a kitchen with a white refrigerator, a stove and wooden cabinets",
    "red",
    "shapes on a beach",
]

TINY_CFG = {
    "embed_dim": 32,
    "vision_cfg": {"image_size": 32, "layers": 1, "width": 32, "patch_size": 16, "head_width": 16},
    "text_cfg": {"context_length": 77, "vocab_size": 49408, "width": 32, "heads": 2, "layers": 2},
}


def _full_context(model: torch.nn.Module, tokenizer, texts: list[str]) -> np.ndarray:
    with torch.inference_mode():
        return model.encode_text(tokenizer(texts), normalize=True).numpy()


def _min_cosine(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.min(np.sum(a * b, axis=1)))


def _transformer_lengths(encoder) -> list[int]:
    """Records the sequence length every text-transformer call of ``encoder`` sees."""
    seen: list[int] = []
    transformer = encoder._model.transformer
    transformer.register_forward_pre_hook(lambda _m, args: seen.append(args[0].shape[1]))
    return seen


@pytest.fixture(scope="module")
def tiny_openclip(tmp_path_factory: pytest.TempPathFactory):
    """A random-weight open_clip CLIP with CLIP's 77-token context, saved as an open_clip folder."""
    import open_clip
    from safetensors.torch import save_file

    torch.manual_seed(0)
    model = open_clip.model.CLIP(**TINY_CFG).eval()  # type: ignore[arg-type]
    folder = tmp_path_factory.mktemp("tiny-openclip")
    (folder / "open_clip_config.json").write_text(json.dumps({"model_cfg": TINY_CFG}))
    state = {k: v.contiguous() for k, v in model.state_dict().items()}
    save_file(state, str(folder / "open_clip_model.safetensors"))
    return model, open_clip.get_tokenizer("ViT-B-32"), folder


def test_trimmed_texts_match_full_context_on_random_weights(tiny_openclip) -> None:
    model, tokenizer, folder = tiny_openclip
    encoder = load_encoder(f"openclip-dir:{folder}", EncoderOptions(batch_size=3))
    lengths = _transformer_lengths(encoder)
    vectors = encoder.embed_texts(TEXTS)
    assert _min_cosine(vectors, _full_context(model, tokenizer, TEXTS)) >= 0.9999
    assert max(lengths) < 77  # the padding really was cut


def test_trimmed_texts_match_full_context_on_the_demo_model() -> None:
    import open_clip

    location = parse_model_id("mediarec-demo").weights.location
    reference = open_clip.create_model(f"local-dir:{location}").eval()
    tokenizer = open_clip.get_tokenizer(f"local-dir:{location}")
    encoder = load_encoder("mediarec-demo", EncoderOptions(batch_size=4))
    vectors = encoder.embed_texts(TEXTS)
    assert _min_cosine(vectors, _full_context(reference, tokenizer, TEXTS)) >= 0.9999


def test_short_texts_are_batched_apart_from_long_ones(tiny_openclip) -> None:
    _, tokenizer, folder = tiny_openclip
    caption = "a much longer caption about a city at night and its lights"
    caption_tokens = int(tokenizer([caption])[0].argmax()) + 1  # up to its end-of-text token
    encoder = load_encoder(f"openclip-dir:{folder}", EncoderOptions(batch_size=2))
    lengths = _transformer_lengths(encoder)
    encoder.embed_texts(["x", caption, "y"])
    # "x" and "y" share a batch (start, letter, end: 3 tokens); the caption runs alone
    assert sorted(lengths) == [3, caption_tokens] and caption_tokens > 3


def test_grouping_keeps_the_callers_order(tiny_openclip) -> None:
    _, _, folder = tiny_openclip
    encoder = load_encoder(f"openclip-dir:{folder}", EncoderOptions(batch_size=2))
    grouped = encoder.embed_texts(TEXTS)
    single = np.concatenate([encoder.embed_texts([text]) for text in TEXTS])
    np.testing.assert_allclose(grouped, single, atol=1e-5)
    reversed_ = encoder.embed_texts(TEXTS[::-1])
    np.testing.assert_allclose(reversed_[::-1], grouped, atol=1e-5)


def test_grouped_path_equals_the_ungrouped_path(tiny_openclip) -> None:
    from mediarec.encoders import l2_normalize

    _, _, folder = tiny_openclip
    encoder = load_encoder(f"openclip-dir:{folder}", EncoderOptions(batch_size=3))
    grouped = encoder.embed_texts(TEXTS)
    with torch.inference_mode():
        tokens, _ = encoder._tokenize(TEXTS)
        ungrouped = [encoder._text_features(tokens[i : i + 3]) for i in range(0, len(TEXTS), 3)]
    expected = l2_normalize(torch.cat(ungrouped).numpy())
    np.testing.assert_allclose(grouped, expected, atol=1e-5)


def test_no_texts_give_an_empty_matrix(tiny_openclip) -> None:
    _, _, folder = tiny_openclip
    encoder = load_encoder(f"openclip-dir:{folder}")
    empty = encoder.embed_texts([])
    assert empty.shape == (0, 32) and empty.dtype == np.float32


def test_bidirectional_text_towers_are_not_trimmed() -> None:
    from open_clip.transformer import TextTransformer

    causal = TextTransformer(context_length=16, vocab_size=100, width=16, heads=2, layers=1)
    bidirectional = TextTransformer(
        context_length=16, vocab_size=100, width=16, heads=2, layers=1, no_causal_mask=True
    )
    last_pooled = TextTransformer(
        context_length=16, vocab_size=100, width=16, heads=2, layers=1, pool_type="last"
    )

    class Custom(torch.nn.Module):
        def __init__(self, text: torch.nn.Module) -> None:
            super().__init__()
            self.text = text

    assert TrimmedTextTower.of(Custom(causal)) is not None
    assert TrimmedTextTower.of(Custom(bidirectional)) is None
    assert TrimmedTextTower.of(Custom(last_pooled)) is None


def test_custom_text_tower_trimmed_matches_its_own_forward() -> None:
    from open_clip.transformer import TextTransformer

    torch.manual_seed(1)
    text = TextTransformer(context_length=16, vocab_size=100, width=16, heads=2, layers=2).eval()
    tokens = torch.zeros(3, 16, dtype=torch.long)
    for row, length in enumerate((3, 7, 5)):  # the end token (99) holds the highest id
        tokens[row, :length] = torch.randint(1, 99, (length,))
        tokens[row, length - 1] = 99

    class Custom(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.text = text

    tower = TrimmedTextTower.of(Custom())
    assert tower is not None
    assert tower.lengths(tokens).tolist() == [3, 7, 5]
    with torch.inference_mode():
        torch.testing.assert_close(tower(tokens), text(tokens), atol=1e-5, rtol=1e-5)


def test_real_captions_trim_exactly(test_media_dir: Path, tiny_openclip) -> None:
    model, tokenizer, folder = tiny_openclip
    records = json.loads((test_media_dir / "images.json").read_text())
    captions = [caption for record in records for caption in record["captions"]][:64]
    encoder = load_encoder(f"openclip-dir:{folder}", EncoderOptions(batch_size=32))
    vectors = encoder.embed_texts(captions)
    assert _min_cosine(vectors, _full_context(model, tokenizer, captions)) >= 0.9999


# -- transformers: padding to the batch's longest text, grouped by length ----------------------


def test_hf_texts_are_padded_to_their_batch_and_grouped(hf_checkpoint) -> None:
    _, tokenizer, saved = hf_checkpoint
    encoder = load_encoder(f"hf-dir:{saved}", EncoderOptions(batch_size=2))
    widths: list[int] = []

    def record(_module, args, kwargs) -> None:
        ids = kwargs["input_ids"] if "input_ids" in kwargs else args[0]
        widths.append(int(ids.shape[1]))

    encoder._model.text_model.register_forward_pre_hook(record, with_kwargs=True)
    caption = "a much longer caption about a city at night"
    vectors = encoder.embed_texts(["x", caption, "y"])
    caption_tokens = len(tokenizer(caption)["input_ids"])
    assert sorted(widths) == [3, caption_tokens] and caption_tokens > 3
    single = np.concatenate([encoder.embed_texts([t]) for t in ["x", caption, "y"]])
    np.testing.assert_allclose(vectors, single, atol=1e-5)
