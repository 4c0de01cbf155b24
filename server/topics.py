"""Zero-shot topic labels: a vocabulary embedded once with the CLIP text tower, scored by cosine.

Each topic label has one or more prompt texts; its vector is the renormalised mean of their
embeddings (prompt ensembling, as in CLIP's zero-shot classifier), so a bare word like "beach"
is represented by the kinds of sentences the model was trained on.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from mediarec.encoders import Encoder, l2_normalize
from mediarec.encoders.registry import topic_vocabulary_of

logger = logging.getLogger(__name__)

# A few dozen everyday topics for real CLIP models.
EVERYDAY_TOPICS: tuple[str, ...] = (
    "food", "street food", "coffee", "dessert", "cooking", "pets", "cats", "dogs", "wildlife",
    "birds", "hiking", "mountains", "beach", "ocean", "forest", "snow", "city", "architecture",
    "night", "sunset", "travel", "cars", "bicycles", "trains", "airplanes", "sports", "football",
    "skateboarding", "surfing", "fitness", "fashion", "art", "music", "concert", "books",
    "technology", "gardening", "flowers", "family", "kids", "wedding", "party", "home interior",
    "kitchen",
)
EVERYDAY_TEMPLATES = ("a photo of {}.", "a picture of {}.", "{}")

DEMO_PROMPTS_PER_TOPIC = 12
_DEMO_PROMPT_SEED = 20261125  # fixed so topic vectors (and stored topics) are reproducible


@dataclass(frozen=True)
class Topic:
    label: str
    score: float


class TopicLabeler:
    """Scores unit vectors against the vocabulary; the encoder is used once, at construction."""

    def __init__(self, encoder: Encoder, prompts: Mapping[str, Sequence[str]]) -> None:
        if not prompts:
            raise ValueError("the topic vocabulary is empty")
        self.labels: tuple[str, ...] = tuple(prompts)
        # One call for every prompt: the encoder batches them, instead of a call per label.
        texts = [text for label in self.labels for text in prompts[label]]
        embedded = encoder.embed_texts(texts)
        vectors, start = [], 0
        for label in self.labels:
            count = len(prompts[label])
            vectors.append(embedded[start : start + count].mean(axis=0))
            start += count
        self._matrix = l2_normalize(np.stack(vectors))
        logger.info("topic vocabulary ready: %d labels", len(self.labels))

    def top(self, vector: np.ndarray, k: int) -> list[Topic]:
        """The ``k`` best labels for one unit vector, best first."""
        if k <= 0:
            return []
        scores = self._matrix @ np.asarray(vector, dtype=np.float32)
        order = np.argsort(-scores, kind="stable")[:k]
        return [Topic(self.labels[i], round(float(scores[i]), 6)) for i in order]

    def vector(self, label: str) -> np.ndarray:
        return self._matrix[self.labels.index(label)]


def everyday_prompts(labels: Sequence[str] = EVERYDAY_TOPICS) -> dict[str, list[str]]:
    return {label: [t.format(label) for t in EVERYDAY_TEMPLATES] for label in labels}


def demo_world_prompts(per_topic: int = DEMO_PROMPTS_PER_TOPIC) -> dict[str, list[str]]:
    """The demo world's attribute values as topics, each described by captions that contain it."""
    from mediarec.encoders.synthetic.world import (
        ATTRIBUTE_FAMILIES,
        Attributes,
        attribute_phrases,
        canonical_caption,
    )

    rng = random.Random(_DEMO_PROMPT_SEED)
    phrases = attribute_phrases()
    prompts: dict[str, list[str]] = {}
    for family, values in ATTRIBUTE_FAMILIES.items():
        for value, label in zip(values, phrases[family], strict=True):
            captions = []
            for _ in range(per_topic):
                fields = {f: rng.choice(v) for f, v in ATTRIBUTE_FAMILIES.items()}
                fields[family] = value
                captions.append(canonical_caption(Attributes(**fields)))
            prompts[label] = captions
    return prompts


def vocabulary_prompts(source: str, model_id: str) -> dict[str, list[str]] | None:
    """Resolve the configured vocabulary: 'auto', 'everyday', 'demo-world' or a text file path.

    'auto' is the vocabulary the model's registry entry declares fits its pictures: everyday
    topics for real CLIP models, and None (label nothing) for the demo model, whose world's
    attributes would name any real photo after shapes. A file holds one topic per line (blank
    lines and '#' comments ignored).
    """
    if source == "auto":
        declared = topic_vocabulary_of(model_id)
        if declared is None:
            return None
        source = declared
    if source == "everyday":
        return everyday_prompts()
    if source == "demo-world":
        return demo_world_prompts()
    path = Path(source)
    if not path.is_file():
        raise ValueError(
            f"topic vocabulary {source!r} is not 'auto', 'everyday', 'demo-world' or a file"
        )
    lines = [line.strip() for line in path.read_text(encoding="utf-8").splitlines()]
    return everyday_prompts([line for line in lines if line and not line.startswith("#")])
