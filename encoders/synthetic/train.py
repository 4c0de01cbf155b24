"""Train the bundled demo CLIP (``mediarec-demo``) on the synthetic world, from scratch, on CPU.

``python -m mediarec.encoders.synthetic.train`` (``make train-demo-model``) writes an open_clip
"local-dir" checkpoint: ``open_clip_config.json`` plus fp16 ``open_clip_model.safetensors``,
loadable with ``open_clip.create_model_and_transforms('local-dir:' + out_dir)``.

Recipe: every step draws a fresh batch of posts from a seeded world (no picture is seen twice).
Each picture gets its full caption and a partial one naming one to three families ("red
shapes", "a photo of stars"); a multi-positive CLIP contrastive loss treats every caption as
true of every batch picture with the values it names, so pictures that also fit "red shapes"
are never pushed away from it. Each caption meets hard negatives that are wrong in exactly one
named family (NegCLIP-style, worded in the same template and synonyms as the true caption so
that only the attribute word tells them apart). Small linear attribute heads on both towers add
direct supervision; they are dropped when saving, so the checkpoint is a plain open_clip CLIP.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import random
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch import nn

from mediarec.encoders.synthetic.evaluate import EVALUATION_SEEDS, VALIDATION_SEED, evaluate
from mediarec.encoders.synthetic.world import (
    ATTRIBUTE_FAMILIES,
    Attributes,
    WorldGenerator,
    format_caption,
    hard_negative_attributes,
    partial_caption,
    partial_hard_negative_captions,
    random_caption_style,
)

if TYPE_CHECKING:
    from open_clip.model import CLIP

logger = logging.getLogger(__name__)

DEFAULT_OUT_DIR = Path(__file__).resolve().parent.parent / "weights" / "mediarec-demo"

MODEL_CFG: dict = {
    "embed_dim": 128,
    # Mean-pooled patch tokens (not a CLS token): counting objects becomes nearly linear.
    "vision_cfg": {
        "image_size": 64,
        "layers": 4,
        "width": 128,
        "patch_size": 8,
        "head_width": 32,
        "pool_type": "avg",
    },
    "text_cfg": {"context_length": 24, "vocab_size": 49408, "width": 64, "heads": 4, "layers": 4},
}
PREPROCESS_CFG: dict = {
    "size": 64,
    "mean": [0.48145466, 0.4578275, 0.40821073],
    "std": [0.26862954, 0.26130258, 0.27577711],
    "interpolation": "bicubic",
    "resize_mode": "shortest",
}
RENDER_SIZE = 128  # what the world draws; resized to the model's 64 px exactly as at inference


@dataclass(frozen=True)
class TrainConfig:
    out_dir: Path = DEFAULT_OUT_DIR
    steps: int = 1600
    batch_size: int = 96
    lr: float = 2e-3
    warmup_steps: int = 50
    weight_decay: float = 0.1
    aux_weight: float = 0.5
    # Shape is the family the model learns last (still improving when training ends): its
    # linear probe weighs this much more than the other families' in the auxiliary loss.
    shape_aux_weight: float = 3.0
    # Full-caption hard negatives per picture: the shape one plus one other family at random
    # (all five cost a third more text-tower time per step, paid for by fewer steps).
    full_negatives: int = 2
    seed: int = 1
    threads: int = 2
    validate_every: int = 200
    validate_n: int = 300


@dataclass
class Batch:
    pixels: torch.Tensor  # (B, 3, 64, 64) normalised
    texts: torch.Tensor  # (T, context) tokens: B full captions, B partial ones, then negatives
    constraints: torch.Tensor  # (T, families) value index each text names, UNCONSTRAINED if none
    labels: torch.Tensor  # (B, families) value index per family of each picture

    @property
    def anchors(self) -> int:
        """How many leading texts are true captions (full, then partial) of the pictures."""
        return 2 * self.pixels.shape[0]

    def matches(self) -> torch.Tensor:
        """(B, T) bool: picture i satisfies every family that text j names."""
        named = self.constraints[None, :, :]
        return ((named == UNCONSTRAINED) | (named == self.labels[:, None, :])).all(dim=-1)


UNCONSTRAINED = -1
# How many families a partial caption names: mostly one, as in search queries.
PARTIAL_FAMILY_COUNTS = (1, 1, 1, 2, 2, 3)


class BatchMaker:
    """Fresh posts, their paraphrased full and partial captions and same-style hard negatives."""

    def __init__(self, seed: int, batch_size: int, full_negatives: int = 5) -> None:
        from open_clip.tokenizer import SimpleTokenizer

        self._full_negatives = full_negatives
        self._world = WorldGenerator(seed, image_size=RENDER_SIZE)
        self._rng = random.Random(seed + 1)
        self._batch_size = batch_size
        self._tokenizer = SimpleTokenizer(context_length=MODEL_CFG["text_cfg"]["context_length"])
        self._mean = torch.tensor(PREPROCESS_CFG["mean"]).view(1, 3, 1, 1)
        self._std = torch.tensor(PREPROCESS_CFG["std"]).view(1, 3, 1, 1)

    def next(self) -> Batch:
        attrs = [self._world.sample_attributes() for _ in range(self._batch_size)]
        images = [self._world.render(a) for a in attrs]
        full: list[tuple[str, list[int]]] = []
        partial: list[tuple[str, list[int]]] = []
        negatives: list[tuple[str, list[int]]] = []
        for a in attrs:
            style = random_caption_style(self._rng)
            full.append((format_caption(a, style), _value_indices(a)))
            by_family = hard_negative_attributes(a, self._rng)
            others = self._rng.sample(
                [f for f in by_family if f != "shape"], max(0, self._full_negatives - 1)
            )
            for family in ["shape", *others][: self._full_negatives]:
                negative = by_family[family]
                negatives.append((format_caption(negative, style), _value_indices(negative)))
            families = self._rng.sample(
                list(ATTRIBUTE_FAMILIES), self._rng.choice(PARTIAL_FAMILY_COUNTS)
            )
            partial.append((partial_caption(a, families, style), _value_indices(a, families)))
            for caption, negative in partial_hard_negative_captions(
                a, families, self._rng, style
            ).values():
                negatives.append((caption, _value_indices(negative, families)))
        texts = full + partial + negatives
        return Batch(
            pixels=self.pixels(images),
            texts=self._tokenizer([t for t, _ in texts]),
            constraints=torch.tensor([c for _, c in texts]),
            labels=torch.tensor([_value_indices(a) for a in attrs]),
        )

    def pixels(self, images: Sequence[Image.Image]) -> torch.Tensor:
        size = PREPROCESS_CFG["size"]
        arrays = np.stack(
            [np.asarray(img.resize((size, size), Image.Resampling.BICUBIC)) for img in images]
        )
        batch = torch.from_numpy(arrays).permute(0, 3, 1, 2).float().div_(255.0)
        return (batch - self._mean) / self._std

    def tokenize(self, texts: Sequence[str]) -> torch.Tensor:
        return self._tokenizer(list(texts))


class _BatchStream(torch.utils.data.IterableDataset):
    """Endless batches made in a worker process, so drawing overlaps the optimiser step."""

    def __init__(self, seed: int, batch_size: int, full_negatives: int) -> None:
        super().__init__()
        self._seed = seed
        self._batch_size = batch_size
        self._full_negatives = full_negatives

    def __iter__(self):  # type: ignore[no-untyped-def]
        maker = BatchMaker(self._seed, self._batch_size, self._full_negatives)
        while True:
            yield maker.next()


def batch_stream(
    seed: int, batch_size: int, full_negatives: int = 5
) -> torch.utils.data.DataLoader:
    # One worker keeps the batch order, and so the run, deterministic.
    return torch.utils.data.DataLoader(
        _BatchStream(seed, batch_size, full_negatives),
        batch_size=None,
        num_workers=1,
        prefetch_factor=4,
    )


def _value_indices(attrs: Attributes, named: Sequence[str] | None = None) -> list[int]:
    """Per family, the value index of ``attrs``, or UNCONSTRAINED where ``named`` omits it."""
    return [
        values.index(getattr(attrs, f)) if named is None or f in named else UNCONSTRAINED
        for f, values in ATTRIBUTE_FAMILIES.items()
    ]


class AttributeHeads(nn.Module):
    """Linear probes from an embedding to every family's values (training aid only)."""

    weights: torch.Tensor  # per family, summing to 1 (a buffer)

    def __init__(self, dim: int, shape_weight: float = 1.0) -> None:
        super().__init__()
        self.heads = nn.ModuleList(nn.Linear(dim, len(v)) for v in ATTRIBUTE_FAMILIES.values())
        weights = [shape_weight if f == "shape" else 1.0 for f in ATTRIBUTE_FAMILIES]
        self.register_buffer("weights", torch.tensor(weights) / sum(weights), persistent=False)

    def loss(self, features: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        losses = [F.cross_entropy(h(features), labels[:, k]) for k, h in enumerate(self.heads)]
        return (torch.stack(losses) * self.weights).sum()


def multi_positive_loss(logits: torch.Tensor, positive: torch.Tensor) -> torch.Tensor:
    """InfoNCE in which every positive of a row competes only with that row's negatives.

    A partial caption such as "red shapes" is true of every red picture in the batch, so those
    pictures must not be pushed away as negatives; with one positive per row this is exactly
    the CLIP cross-entropy.
    """
    # A large finite fill instead of -inf keeps rows without negatives free of NaN gradients.
    negatives_lse = torch.logsumexp(logits.masked_fill(positive, -1e4), dim=1, keepdim=True)
    per_pair = F.softplus(negatives_lse - logits) * positive
    per_row = per_pair.sum(dim=1) / positive.sum(dim=1).clamp(min=1)
    return per_row[positive.any(dim=1)].mean()


def contrastive_loss(
    images: torch.Tensor,
    texts: torch.Tensor,
    matches: torch.Tensor,
    anchors: int,
    scale: torch.Tensor,
) -> torch.Tensor:
    """CLIP loss over full, partial and hard-negative captions, with every true pair positive.

    Image -> text ranks all texts (hard negatives included); text -> image uses only the
    ``anchors`` leading texts, the true full and partial captions.
    """
    similarity = scale * images @ texts.T
    image_to_text = multi_positive_loss(similarity, matches)
    text_to_image = multi_positive_loss(similarity[:, :anchors].T, matches[:, :anchors].T)
    return (image_to_text + text_to_image) / 2


class InMemoryEncoder:
    """The model under training behind the evaluation's encoder protocol."""

    def __init__(self, model: CLIP, batches: BatchMaker) -> None:
        self._model = model
        self._batches = batches

    @torch.inference_mode()
    def embed_images(self, images: Sequence[Image.Image]) -> np.ndarray:
        features = self._model.encode_image(self._batches.pixels(images), normalize=True)
        return features.numpy()

    @torch.inference_mode()
    def embed_texts(self, texts: Sequence[str]) -> np.ndarray:
        features = self._model.encode_text(self._batches.tokenize(texts), normalize=True)
        return features.numpy()


def build_model(seed: int) -> CLIP:
    import open_clip

    torch.manual_seed(seed)
    return open_clip.model.CLIP(**MODEL_CFG)


def _param_groups(modules: Sequence[nn.Module], weight_decay: float) -> list[dict]:
    # Gains, biases and the temperature are not decayed (as in open_clip's own training).
    decay: list[nn.Parameter] = []
    no_decay: list[nn.Parameter] = []
    for module in modules:
        for name, p in module.named_parameters():
            no_wd = p.ndim < 2 or "logit_scale" in name or "positional_embedding" in name
            (no_decay if no_wd else decay).append(p)
    return [
        {"params": decay, "weight_decay": weight_decay},
        {"params": no_decay, "weight_decay": 0.0},
    ]


def _lr_at(step: int, cfg: TrainConfig) -> float:
    if step < cfg.warmup_steps:
        return cfg.lr * (step + 1) / cfg.warmup_steps
    progress = (step - cfg.warmup_steps) / max(1, cfg.steps - cfg.warmup_steps)
    return cfg.lr * 0.5 * (1 + math.cos(math.pi * progress))


def train(cfg: TrainConfig) -> dict[str, float | int]:
    """Train, save the checkpoint into ``cfg.out_dir`` and return the final validation result."""
    used = {cfg.seed, cfg.seed + 1}
    if used & (EVALUATION_SEEDS | {VALIDATION_SEED, VALIDATION_SEED + 1}):
        raise ValueError(f"training seed {cfg.seed} collides with an evaluation or validation seed")
    torch.set_num_threads(cfg.threads)
    model = build_model(cfg.seed)
    image_heads = AttributeHeads(MODEL_CFG["embed_dim"], cfg.shape_aux_weight)
    text_heads = AttributeHeads(MODEL_CFG["embed_dim"], cfg.shape_aux_weight)
    optimizer = torch.optim.AdamW(
        _param_groups([model, image_heads, text_heads], cfg.weight_decay),
        lr=cfg.lr,
        betas=(0.9, 0.98),
        eps=1e-6,
    )
    validation_batches = BatchMaker(cfg.seed, 1)  # only its pixels()/tokenize() are used
    started = time.perf_counter()
    cpu_started = time.process_time()  # with the wall time, shows how contended the run was
    result: dict[str, float | int] = {}
    stream = iter(batch_stream(cfg.seed, cfg.batch_size, cfg.full_negatives))
    for step in range(cfg.steps):
        for group in optimizer.param_groups:
            group["lr"] = _lr_at(step, cfg)
        batch = next(stream)
        model.train()
        images = model.encode_image(batch.pixels)
        texts = model.encode_text(batch.texts)
        scale = model.logit_scale.exp().clamp(max=100)
        clip = contrastive_loss(
            F.normalize(images, dim=-1),
            F.normalize(texts, dim=-1),
            batch.matches(),
            batch.anchors,
            scale,
        )
        full_captions = texts[: batch.pixels.shape[0]]
        aux = image_heads.loss(images, batch.labels) + text_heads.loss(full_captions, batch.labels)
        loss = clip + cfg.aux_weight * aux
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        if step % 25 == 0 or step == cfg.steps - 1:
            elapsed = time.perf_counter() - started
            logger.info(
                "step %d/%d loss %.3f (clip %.3f aux %.3f) scale %.1f lr %.2e %.0fs (cpu %.0fs)",
                step,
                cfg.steps,
                loss.item(),
                clip.item(),
                aux.item(),
                scale.item(),
                _lr_at(step, cfg),
                elapsed,
                time.process_time() - cpu_started,
            )
        last = step == cfg.steps - 1
        if last or (cfg.validate_every and (step + 1) % cfg.validate_every == 0):
            model.eval()
            result = evaluate(
                InMemoryEncoder(model, validation_batches), n=cfg.validate_n, seed=VALIDATION_SEED
            )
            logger.info("validation after %d steps: %s", step + 1, json.dumps(result))
    wall = time.perf_counter() - started
    cpu = time.process_time() - cpu_started
    save_checkpoint(model, cfg.out_dir)
    logger.info(
        "trained %d steps in %.0f s wall, %.0f s cpu; saved to %s",
        cfg.steps,
        wall,
        cpu,
        cfg.out_dir,
    )
    return {**result, "wall_s": round(wall, 1), "cpu_s": round(cpu, 1)}


def save_checkpoint(model: CLIP, out_dir: Path) -> None:
    """fp16 safetensors + open_clip_config.json: an open_clip ``local-dir:`` checkpoint."""
    from safetensors.torch import save_file

    out_dir.mkdir(parents=True, exist_ok=True)
    state = {
        k: (v.detach().to(torch.float16) if v.is_floating_point() else v.detach()).contiguous()
        for k, v in model.state_dict().items()
    }
    save_file(state, str(out_dir / "open_clip_model.safetensors"))
    config = {"model_cfg": MODEL_CFG, "preprocess_cfg": PREPROCESS_CFG}
    (out_dir / "open_clip_config.json").write_text(json.dumps(config, indent=2) + "\n")


def main(argv: Sequence[str] | None = None) -> int:
    defaults = TrainConfig()
    parser = argparse.ArgumentParser(description="Train the bundled mediarec-demo CLIP model.")
    parser.add_argument("--out-dir", type=Path, default=defaults.out_dir)
    parser.add_argument("--steps", type=int, default=defaults.steps)
    parser.add_argument("--batch-size", type=int, default=defaults.batch_size)
    parser.add_argument("--lr", type=float, default=defaults.lr)
    parser.add_argument("--warmup-steps", type=int, default=defaults.warmup_steps)
    parser.add_argument("--aux-weight", type=float, default=defaults.aux_weight)
    parser.add_argument("--shape-aux-weight", type=float, default=defaults.shape_aux_weight)
    parser.add_argument("--full-negatives", type=int, default=defaults.full_negatives)
    parser.add_argument("--seed", type=int, default=defaults.seed)
    parser.add_argument("--threads", type=int, default=defaults.threads)
    parser.add_argument("--validate-every", type=int, default=defaults.validate_every)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    cfg = TrainConfig(
        out_dir=args.out_dir,
        steps=args.steps,
        batch_size=args.batch_size,
        lr=args.lr,
        warmup_steps=args.warmup_steps,
        aux_weight=args.aux_weight,
        shape_aux_weight=args.shape_aux_weight,
        full_negatives=args.full_negatives,
        seed=args.seed,
        threads=args.threads,
        validate_every=args.validate_every,
    )
    logger.info("config: %s", {k: str(v) for k, v in asdict(cfg).items()})
    result = train(cfg)
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
