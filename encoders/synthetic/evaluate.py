"""Held-out check of the bundled demo model on fresh pictures from the synthetic world.

``python -m mediarec.encoders.synthetic.evaluate`` (``make eval-demo-model``) generates 1,000
posts from a seed that training never uses, embeds them through
:func:`mediarec.encoders.load_encoder` (the same code path the service uses) and prints one
JSON object as its last line:

* random negatives: each post's caption against the captions of 99 other posts (posts whose
  attributes are identical are skipped, because their captions are just as true), top-1 in both
  directions (text -> image and image -> text);
* hard negatives: each picture's canonical caption against one canonical caption per attribute
  family that differs from it in exactly that family; top-1 over those six captions;
* single-attribute search: for every value of every family, a query that names only it
  ("circles", "red shapes", "shapes on a sandy beach") ranks all ``n`` pictures; precision@10,
  averaged per family, and its minimum over the 30 values.
"""

from __future__ import annotations

import argparse
import json
import logging
import random
import sys
from collections.abc import Sequence
from typing import Protocol

import numpy as np
from PIL import Image

from mediarec.encoders.synthetic.world import (
    ATTRIBUTE_FAMILIES,
    WorldGenerator,
    canonical_caption,
    hard_negative_captions,
    partial_caption,
)

logger = logging.getLogger(__name__)

# Never used for training: mediarec.encoders.synthetic.train refuses any seed in EVALUATION_SEEDS.
EVAL_SEED = 20_250_917
# Training's own progress checks use this one, so the reported evaluation stays untouched.
VALIDATION_SEED = 7_777
EVALUATION_SEEDS = frozenset({EVAL_SEED, EVAL_SEED + 1})  # + 1: the hard-negative draws
DISTRACTORS = 99


class TextImageEncoder(Protocol):
    def embed_images(self, images: Sequence[Image.Image]) -> np.ndarray: ...

    def embed_texts(self, texts: Sequence[str]) -> np.ndarray: ...


def evaluate(
    encoder: TextImageEncoder,
    n: int = 1000,
    seed: int = EVAL_SEED,
    distractors: int = DISTRACTORS,
    image_size: int = 128,
) -> dict[str, float | int]:
    """Retrieval accuracies of ``encoder`` on ``n`` fresh posts of world ``seed``.

    Returns ``text_to_image_top1``, ``image_to_text_top1``, ``hard_negative_top1``, ``n`` and,
    per family, ``hard_negative_pairwise/<family>``: how often the true caption beats the one
    that is wrong in that family alone.
    """
    if n <= distractors:
        raise ValueError(f"n must exceed the number of distractors ({distractors}), got {n}")
    posts = WorldGenerator(seed, image_size=image_size).posts(n)
    image_vectors = encoder.embed_images([p.image for p in posts])
    caption_vectors = encoder.embed_texts([p.caption for p in posts])
    rng = random.Random(seed + 1)
    t2i, i2t = _random_negative_top1(posts, image_vectors, caption_vectors, rng, distractors)

    families = tuple(ATTRIBUTE_FAMILIES)
    texts: list[str] = []
    for post in posts:
        negatives = hard_negative_captions(post.attributes, rng)
        texts.append(canonical_caption(post.attributes))
        texts.extend(negatives[f] for f in families)
    hard = encoder.embed_texts(texts).reshape(n, 1 + len(families), -1)
    scores = np.einsum("nd,nkd->nk", image_vectors, hard)
    result: dict[str, float | int] = {
        "text_to_image_top1": t2i,
        "image_to_text_top1": i2t,
        "hard_negative_top1": float(np.mean(scores[:, 0] > scores[:, 1:].max(axis=1))),
        "n": n,
    }
    for k, family in enumerate(families, start=1):
        result[f"hard_negative_pairwise/{family}"] = float(np.mean(scores[:, 0] > scores[:, k]))
    result.update(_single_attribute_precision(encoder, posts, image_vectors))
    return result


def _single_attribute_precision(
    encoder: TextImageEncoder, posts: Sequence, image_vectors: np.ndarray, k: int = 10
) -> dict[str, float]:
    """Precision@k of one query per attribute value over all pictures, per family and minimum."""
    template = posts[0].attributes
    queries = [
        (family, value, partial_caption(template.replace(family, value), [family]))
        for family, values in ATTRIBUTE_FAMILIES.items()
        for value in values
    ]
    scores = encoder.embed_texts([q for _, _, q in queries]) @ image_vectors.T
    precision: dict[str, list[float]] = {family: [] for family in ATTRIBUTE_FAMILIES}
    for (family, value, _), row in zip(queries, scores, strict=True):
        top = np.argsort(-row)[:k]
        hits = sum(getattr(posts[i].attributes, family) == value for i in top)
        precision[family].append(hits / k)
    result = {f"single_attribute_p10/{f}": float(np.mean(p)) for f, p in precision.items()}
    result["single_attribute_p10_min"] = float(min(min(p) for p in precision.values()))
    return result


def _random_negative_top1(
    posts: Sequence, images: np.ndarray, captions: np.ndarray, rng: random.Random, k: int
) -> tuple[float, float]:
    """Top-1 of each true pair among itself and ``k`` other posts with different attributes.

    A tie counts as a miss: the true item must score strictly highest.
    """
    similarity = images @ captions.T  # [image, caption]
    t2i_hits = i2t_hits = 0
    for i, post in enumerate(posts):
        pool: list[int] = []
        while len(pool) < k:
            j = rng.randrange(len(posts))
            if j != i and j not in pool and posts[j].attributes != post.attributes:
                pool.append(j)
        t2i_hits += bool(similarity[i, i] > similarity[pool, i].max())
        i2t_hits += bool(similarity[i, i] > similarity[i, pool].max())
    return t2i_hits / len(posts), i2t_hits / len(posts)


def headline(result: dict[str, float | int]) -> dict[str, float | int]:
    """The four keys ``make eval-demo-model`` promises on its last line."""
    keys = ("text_to_image_top1", "image_to_text_top1", "hard_negative_top1", "n")
    return {key: result[key] for key in keys}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="mediarec-demo", help="model identifier to evaluate")
    parser.add_argument("-n", type=int, default=1000, help="number of fresh posts")
    parser.add_argument("--seed", type=int, default=EVAL_SEED, help="world seed of the posts")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")

    from mediarec.encoders import load_encoder  # deferred: loads torch and open_clip

    encoder = load_encoder(args.model)
    result = evaluate(encoder, n=args.n, seed=args.seed)
    for key, value in result.items():
        if "/" in key or key.endswith("_min"):
            print(f"{key:38s} {value:.3f}")
    print(json.dumps(headline(result)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
