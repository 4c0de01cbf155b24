"""bench-speed section "embed": raw forward passes, bf16 fidelity, text trimming, int8 runtime.

Two models, each through :func:`encoders.load_encoder` (the service's code path):

* ViT-B-32 with seeded random weights (the checkpoint the index section also uses), the
  architecture every target is stated for;
* the bundled demo model, reported beside it.

Raw forward = ``embed_pixels`` on preprocessed tensors (no decode), fp32 weights and weights cast
to bf16 (not autocast). Text: the naive path is open_clip's own ``encode_text`` at the model's
full context, in caller order; the trimmed path is ``embed_texts`` (grouped by token length, each
batch cut to its longest text). int8: the encoder's ``precision="int8"`` (ONNX Runtime dynamic
int8 image tower); the demo model's held-out text->image top-1 says whether it is good enough.
"""

from __future__ import annotations

import itertools
import json
import logging
import os
import shutil
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from PIL import Image

from bench.speed import SectionResult, SpeedConfig

if TYPE_CHECKING:
    import torch

    from mediarec.encoders.backends.torch_base import TorchClipEncoder

logger = logging.getLogger(__name__)

VIT = "ViT-B-32"
DEMO = "mediarec-demo"
TEXT_BATCH = 32
INT8_BATCH_SIZES = (1, 32)
INT8_TOP1_TOLERANCE = 0.01
# Short texts as a search box receives them; captions come from images.json.
QUERIES = (
    "dog", "a cat", "pizza", "kitchen", "a red car", "surfing", "birthday cake", "a bus",
    "people at a table", "city street at night", "a man riding a horse", "snow", "beach",
    "a plate of food", "two giraffes", "a train station", "bathroom sink", "a laptop on a desk",
    "children playing football", "sunset over the sea", "an elephant", "a bowl of fruit",
    "skateboarder", "a small boat", "traffic light", "a teddy bear", "bedroom", "airplane",
    "a black and white photo", "flowers in a vase", "tennis player", "a clock tower",
)  # fmt: skip


@dataclass(frozen=True)
class Plan:
    """How big the run is; ``quick`` is a smoke run, not a result."""

    batch_sizes: tuple[int, ...]  # raw forward batch sizes
    min_seconds: float  # one timed window of a throughput cell
    repeats: int  # windows per cell; the best counts
    captions: int | None  # captions of images.json to embed; None: all
    eval_posts: int  # held-out synthetic posts for the int8 quality check


FULL = Plan(batch_sizes=(1, 8, 32), min_seconds=1.5, repeats=3, captions=None, eval_posts=1000)
QUICK = Plan(batch_sizes=(1, 32), min_seconds=0.3, repeats=1, captions=64, eval_posts=200)


# -- measuring --------------------------------------------------------------------------------


def throughput(
    step: Callable[[], object],
    items: int,
    plan: Plan,
    warm_up: bool = True,
) -> float:
    """Items per second of ``step``: the best of ``plan.repeats`` windows of at least
    ``plan.min_seconds`` each (the window least disturbed by other work on a shared machine),
    after one warm-up call (oneDNN builds its kernels for a new shape on the first call)."""
    if warm_up:
        step()
    best = 0.0
    for _ in range(plan.repeats):
        done, started = 0, time.perf_counter()
        while True:
            step()
            done += items
            elapsed = time.perf_counter() - started
            if elapsed >= plan.min_seconds:
                break
        best = max(best, done / elapsed)
    return best


def min_cosine(a: np.ndarray, b: np.ndarray) -> float:
    """The smallest row-wise cosine of two matrices of unit rows."""
    return float(np.min(np.sum(a * b, axis=1)))


def raw_forward(
    encoder: TorchClipEncoder, batch_sizes: Sequence[int], plan: Plan
) -> dict[int, float]:
    """img/s of the forward pass alone, per batch size, on random preprocessed pixels."""
    import torch

    size = encoder.preprocess_spec.size
    generator = torch.Generator().manual_seed(0)
    result = {}
    for batch in batch_sizes:
        pixels = torch.randn(batch, 3, size, size, generator=generator)
        result[batch] = throughput(partial(encoder.embed_pixels, pixels), batch, plan)
    return result


# -- inputs -----------------------------------------------------------------------------------


def load_photos(media_dir: Path) -> list[Image.Image]:
    """The real photos, decoded exactly as the indexer decodes them."""
    from mediarec.encoders.images import decode_image

    return [decode_image(p.read_bytes()) for p in sorted((media_dir / "images").glob("*.jpg"))]


def load_captions(media_dir: Path, limit: int | None) -> list[str]:
    records = json.loads((media_dir / "images.json").read_text())
    captions = [str(caption) for record in records for caption in record["captions"]]
    return captions[:limit] if limit else captions


def vit_model_dir(work_dir: Path) -> Path:
    # The index section's checkpoint: the same random ViT-B-32, saved once, shared by both.
    from bench.speed_index import random_vit_checkpoint

    return random_vit_checkpoint(work_dir)


def reference_model(model_dir: Path) -> tuple[torch.nn.Module, Callable[[list[str]], Any]]:
    """open_clip's own fp32 model and tokenizer for an open_clip folder: the naive baseline."""
    import open_clip

    name = f"local-dir:{model_dir}"
    return open_clip.create_model(name).eval(), open_clip.get_tokenizer(name)


# -- text -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class TextSpeed:
    path: str
    captions_s: float  # texts/s over the caption corpus, batches of TEXT_BATCH
    queries_s: float  # texts/s over QUERIES, one batch
    query_ms: float  # one query alone, as a search request embeds it
    min_cosine: float  # against the naive path, over the captions


def naive_embedder(model: Any, tokenizer: Callable) -> Callable[[Sequence[str]], Any]:
    """Full-context ``encode_text`` in caller order, TEXT_BATCH texts a call."""
    import torch

    from mediarec.encoders import l2_normalize

    def embed(texts: Sequence[str]) -> np.ndarray:
        parts = []
        with torch.inference_mode():
            for start in range(0, len(texts), TEXT_BATCH):
                tokens = tokenizer(list(texts[start : start + TEXT_BATCH]))
                parts.append(model.encode_text(tokens).float().numpy())
        return l2_normalize(np.concatenate(parts))

    return embed


def text_speed(
    path: str,
    embed: Callable[[Sequence[str]], np.ndarray],
    captions: Sequence[str],
    reference: np.ndarray | None,
    plan: Plan,
) -> tuple[TextSpeed, np.ndarray]:
    """Speeds of one text path, and its caption vectors (``reference`` None: it is the naive
    path itself)."""
    vectors = embed(captions)  # also the warm-up of the caption shapes
    queries = itertools.cycle(QUERIES)
    one_query = throughput(lambda: embed([next(queries)]), 1, plan)
    speed = TextSpeed(
        path=path,
        captions_s=throughput(partial(embed, captions), len(captions), plan, warm_up=False),
        queries_s=throughput(partial(embed, QUERIES), len(QUERIES), plan),
        query_ms=1000.0 / one_query,
        min_cosine=1.0 if reference is None else min_cosine(vectors, reference),
    )
    return speed, vectors


def text_speeds(
    encoders: dict[str, TorchClipEncoder],
    baseline: tuple[torch.nn.Module, Callable],
    captions: Sequence[str],
    plan: Plan,
) -> list[TextSpeed]:
    naive = naive_embedder(*baseline)
    row, naive_vectors = text_speed("naive, full context, fp32", naive, captions, None, plan)
    rows = [row]
    for precision, encoder in encoders.items():
        label = f"trimmed + grouped, {precision}"
        rows.append(text_speed(label, encoder.embed_texts, captions, naive_vectors, plan)[0])
    return rows


# -- int8 (ONNX Runtime) ----------------------------------------------------------------------


@dataclass(frozen=True)
class Int8Result:
    model: str
    img_s: dict[int, float]  # per batch size
    first_load_s: float  # load with an empty cache: torch weights, export, quantization
    cached_load_s: float  # load again, the int8 model read from the cache
    photo_min_cosine: float | None  # int8 vs fp32 image vectors of the real photos
    top1_fp32: float | None  # held-out text->image top-1 (demo model only)
    top1_int8: float | None


def int8_result(
    label: str,
    model_id: str,
    fp32: TorchClipEncoder,
    config: SpeedConfig,
    plan: Plan,
    photos: tuple[Sequence[Image.Image], np.ndarray] | None,  # the photos and their fp32 vectors
    held_out: bool,
) -> Int8Result:
    """The encoder's own ``precision="int8"``: ONNX Runtime int8 image tower, fp32 texts."""
    from mediarec.encoders import EncoderOptions, load_encoder

    cache = config.work_dir / "onnx-int8" / label.split()[0]
    shutil.rmtree(cache, ignore_errors=True)  # the one-off build is part of the result
    options = EncoderOptions(precision="int8", onnx_cache_dir=cache, torch_threads=config.cores)
    started = time.perf_counter()
    load_encoder(model_id, options)
    first_load_s = time.perf_counter() - started
    started = time.perf_counter()
    int8: Any = load_encoder(model_id, options)
    cached_load_s = time.perf_counter() - started
    img_s = raw_forward(int8, INT8_BATCH_SIZES, plan)
    cosine = min_cosine(int8.embed_images(photos[0]), photos[1]) if photos else None
    top1_fp32 = top1_int8 = None
    if held_out:
        from mediarec.encoders.synthetic.evaluate import evaluate

        top1_fp32 = float(evaluate(fp32, n=plan.eval_posts)["text_to_image_top1"])
        top1_int8 = float(evaluate(int8, n=plan.eval_posts)["text_to_image_top1"])
    return Int8Result(label, img_s, first_load_s, cached_load_s, cosine, top1_fp32, top1_int8)


# -- the section ------------------------------------------------------------------------------


@dataclass(frozen=True)
class ModelResult:
    label: str
    forward: dict[str, dict[int, float]]  # precision -> batch size -> img/s
    bf16_min_cosine: float | None  # over the real photos
    bf16_mean_cosine: float | None
    text: list[TextSpeed]
    int8: Int8Result


def measure_model(
    label: str,
    model_id: str,
    model_dir: Path,
    config: SpeedConfig,
    plan: Plan,
    photos: Sequence[Image.Image],
    captions: Sequence[str],
    held_out: bool,
) -> ModelResult:
    from mediarec.encoders import EncoderOptions, load_encoder

    logger.info("embed: %s", label)
    encoders: dict[str, Any] = {
        p: load_encoder(model_id, EncoderOptions(precision=p, batch_size=TEXT_BATCH))
        for p in ("fp32", "bf16")
    }
    forward = {p: raw_forward(e, plan.batch_sizes, plan) for p, e in encoders.items()}
    cosines, fp32_photos = None, None
    if photos:
        a, b = (encoders[p].embed_images(photos) for p in ("fp32", "bf16"))
        cosines, fp32_photos = np.sum(a * b, axis=1), (photos, a)
    reference = reference_model(model_dir)
    text = text_speeds(encoders, reference, captions, plan) if captions else []
    del reference
    int8 = int8_result(label, model_id, encoders["fp32"], config, plan, fp32_photos, held_out)
    return ModelResult(
        label=label,
        forward=forward,
        bf16_min_cosine=float(cosines.min()) if cosines is not None else None,
        bf16_mean_cosine=float(cosines.mean()) if cosines is not None else None,
        text=text,
        int8=int8,
    )


def run(config: SpeedConfig) -> SectionResult:
    import torch

    from mediarec.encoders import parse_model_id

    plan = QUICK if config.quick else FULL
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())  # 1, 5, 15 min: was the box idle?
    torch.set_num_threads(config.cores)
    media = config.media_dir
    photos = load_photos(media) if media else []
    captions = load_captions(media, plan.captions) if media else []
    vit_dir = vit_model_dir(config.work_dir).resolve()
    demo_dir = Path(parse_model_id(DEMO).weights.location)
    vit = measure_model(
        f"{VIT} (random weights)", f"openclip-dir:{vit_dir}", vit_dir, config, plan, photos,
        captions, held_out=False,
    )  # fmt: skip
    demo = measure_model(DEMO, DEMO, demo_dir, config, plan, photos, captions, held_out=True)
    return SectionResult(
        metrics=summary(vit),
        report=markdown(config, plan, [vit, demo], bool(media), load),
        extra={"models": [asdict(vit), asdict(demo)], "plan": asdict(plan), "load": load},
    )


def summary(vit: ModelResult) -> dict[str, float | None]:
    naive = next((t for t in vit.text if t.path.startswith("naive")), None)
    trimmed = next((t for t in vit.text if t.path == "trimmed + grouped, fp32"), None)
    speedup = trimmed.captions_s / naive.captions_s if naive and trimmed else None
    return {
        "raw_forward_img_s_fp32": _round(max(vit.forward["fp32"].values()), 2),
        "raw_forward_img_s_bf16": _round(max(vit.forward["bf16"].values()), 2),
        "bf16_min_cosine": _round(vit.bf16_min_cosine, 5),
        "text_trim_speedup": _round(speedup, 2),
        "text_trim_min_cosine": _round(trimmed.min_cosine if trimmed else None, 6),
        "int8_img_s": _round(max(vit.int8.img_s.values()), 2),
    }


def _round(value: float | None, digits: int) -> float | None:
    return None if value is None else round(value, digits)


# -- report -----------------------------------------------------------------------------------


def markdown(
    config: SpeedConfig, plan: Plan, models: Sequence[ModelResult], media: bool, load: str
) -> str:
    lines = ["### Embedding throughput", "", f"Load average when the section started: {load}.", ""]
    lines += _forward_table(config, plan, models)
    lines += _fidelity_table(models) if media else ["bf16 fidelity: skipped (no media).", ""]
    lines += _text_table(plan, models) if media else ["Text: skipped (no captions).", ""]
    lines += _int8_table(config, plan, models)
    return "\n".join(lines)


def _forward_table(config: SpeedConfig, plan: Plan, models: Sequence[ModelResult]) -> list[str]:
    sizes = plan.batch_sizes
    lines = [
        f"Raw forward, img/s: `embed_pixels` on preprocessed random pixels (no decode), "
        f"{config.cores} torch threads; every rate in this section is the best of {plan.repeats} "
        f"timed window(s) of at least {plan.min_seconds:g} s after one warm-up call. bf16 = "
        "weights cast to bf16 (not autocast).",
        "",
        "| model | precision | " + " | ".join(f"batch {b}" for b in sizes) + " |",
        "|---|---|" + "---|" * len(sizes),
    ]
    for m in models:
        for precision, by_batch in m.forward.items():
            cells = " | ".join(f"{by_batch[b]:.1f}" for b in sizes)
            lines.append(f"| {m.label} | {precision} | {cells} |")
    return [*lines, ""]


def _fidelity_table(models: Sequence[ModelResult]) -> list[str]:
    lines = [
        "bf16 fidelity: cosine between bf16-weight and fp32 image embeddings of the real photos "
        "(`$MEDIAREC_TEST_MEDIA/images`, decoded and preprocessed by `encoders`).",
        "",
        "| model | min cosine | mean cosine |",
        "|---|---|---|",
    ]
    for m in models:
        lines.append(f"| {m.label} | {m.bf16_min_cosine:.5f} | {m.bf16_mean_cosine:.5f} |")
    return [*lines, ""]


def _text_table(plan: Plan, models: Sequence[ModelResult]) -> list[str]:
    corpus = "all" if plan.captions is None else f"the first {plan.captions}"
    lines = [
        f"Text, texts/s: {corpus} captions of `images.json` in batches of {TEXT_BATCH}; "
        f"{len(QUERIES)} short queries as one batch, and one query alone (ms). Naive = "
        "open_clip's `encode_text` at the model's full context (77 tokens for ViT-B-32, 24 for "
        "the demo model), in caller order; trimmed = `embed_texts`: batches grouped by token "
        "length, each cut to its longest text. Cosine against the naive path, over the captions.",
        "",
        "| model | path | captions/s | queries/s | one query ms | speedup (captions) "
        "| min cosine |",
        "|---|---|---|---|---|---|---|",
    ]
    for m in models:
        base = m.text[0].captions_s
        for t in m.text:
            lines.append(
                f"| {m.label} | {t.path} | {t.captions_s:.1f} | {t.queries_s:.1f} "
                f"| {t.query_ms:.1f} | {t.captions_s / base:.2f}x | {t.min_cosine:.6f} |"
            )
    return [*lines, ""]


def _int8_table(config: SpeedConfig, plan: Plan, models: Sequence[ModelResult]) -> list[str]:
    sizes = INT8_BATCH_SIZES
    lines = [
        "int8: `precision=\"int8\"` of the encoder: the visual tower exported to ONNX "
        "(TorchScript exporter, opset 17) and quantized by ONNX Runtime `quantize_dynamic` "
        "(int8 weights per channel, activations quantized per batch at run time), "
        f"{config.cores} intra-op threads; texts stay fp32 torch. img/s = `embed_pixels` as "
        "above. First load = empty cache (torch weights + export + quantization); cached = the "
        "int8 model read back. Cosine against fp32 over the real photos; top-1 = held-out "
        f"text->image top-1 of `mediarec.encoders.synthetic.evaluate` on {plan.eval_posts} posts.",
        "",
        "| model | " + " | ".join(f"img/s batch {b}" for b in sizes)
        + " | first load s | cached load s | min cosine vs fp32 | top-1 fp32 | top-1 int8 |",
        "|---|" + "---|" * (len(sizes) + 5),
    ]  # fmt: skip
    for m in models:
        r = m.int8
        cells = " | ".join(f"{r.img_s[b]:.1f}" for b in sizes)
        lines.append(
            f"| {m.label} | {cells} | {r.first_load_s:.1f} | {r.cached_load_s:.1f} "
            f"| {_fmt(r.photo_min_cosine, 5)} | {_fmt(r.top1_fp32, 3)} | {_fmt(r.top1_int8, 3)} |"
        )
    return [*lines, "", int8_verdict(models), ""]


def int8_verdict(models: Sequence[ModelResult]) -> str:
    held_out = [m.int8 for m in models if m.int8.top1_fp32 is not None]
    if not held_out:
        return "int8 quality: not checked."
    r = held_out[0]
    assert r.top1_fp32 is not None and r.top1_int8 is not None
    drop = r.top1_fp32 - r.top1_int8
    ok = drop <= INT8_TOP1_TOLERANCE
    return (
        f"int8 quality on {r.model}: top-1 {r.top1_fp32:.3f} -> {r.top1_int8:.3f} "
        f"(drop {drop:+.3f}; the bar is {INT8_TOP1_TOLERANCE}): "
        + ("within the bar: int8 is offered as a precision." if ok else "outside the bar.")
    )


def _fmt(value: float | None, digits: int) -> str:
    return "-" if value is None else f"{value:.{digits}f}"
