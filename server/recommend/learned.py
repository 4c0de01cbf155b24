"""The learned ranker: a LightGBM lambdarank model over ``ltr_features.FEATURES``, kept as JSON.

The file is one JSON document: format, version, the feature list the model was trained on, what
training measured (``info``), and LightGBM's own text model. A file whose feature list differs
from this server's is refused with the reason, never scored with shifted columns. Requests are
scored by the model's trees compiled to native code (``compiled_forest``), built when a model
is loaded or trained.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import lightgbm as lgb
import numpy as np

from mediarec.server.recommend.compiled_forest import CompiledForest, ForestCompileError
from mediarec.server.recommend.ltr_features import FEATURES
from mediarec.server.recommend.ranker import save_json_atomically
from mediarec.server.recommend.tree_paths import PathTable, path_table

logger = logging.getLogger(__name__)

FORMAT = "mediarec-learned-ranker"
FORMAT_VERSION = 1
LEARNED_RANKER_FILE = "learned_ranker.json"  # default name under the data dir


class LearnedRankerFileError(ValueError):
    """A learned-ranker file is unreadable, of another format, or of other features."""


@dataclass(frozen=True)
class LearnedRanker:
    booster: lgb.Booster
    features: tuple[str, ...] = FEATURES
    info: Mapping[str, Any] = field(default_factory=dict)
    # Both built from the booster: the per-leaf attribution table and the compiled trees.
    paths: PathTable = field(init=False, repr=False, compare=False)
    compiled: CompiledForest = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        trees = self.booster.dump_model()["tree_info"]
        object.__setattr__(self, "paths", path_table(trees, len(self.features)))
        object.__setattr__(self, "compiled", CompiledForest(self.booster, trees))

    def score(self, x: np.ndarray) -> np.ndarray:
        return self.compiled.predict(x)

    def contributions(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Per-feature contributions ``(n, F)`` (path attributions, ``tree_paths``) and the
        base value per row; a row's contributions plus its base value are its score."""
        if x.shape[0] == 0:
            return np.zeros((0, len(self.features))), np.zeros(0)
        leaves = np.asarray(self.booster.predict(x, pred_leaf=True, num_threads=1))
        return self.paths.attribute(leaves.reshape(x.shape[0], -1))

    def to_json(self) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "version": FORMAT_VERSION,
            "features": list(self.features),
            "info": dict(self.info),
            "model": self.booster.model_to_string(),
        }


@dataclass(frozen=True)
class PopularityRanker:
    """Ranks by the core's all-time popularity: what the learned ranker defers to for a user
    with no positive yet, whose empty history it never saw in training (on bench-real's
    validation split it ranked such users well below popularity)."""

    features: tuple[str, ...] = FEATURES

    def score(self, x: np.ndarray) -> np.ndarray:
        return np.asarray(x[:, FEATURES.index("popularity")], dtype=np.float64)

    def contributions(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        out = np.zeros((x.shape[0], len(FEATURES)))
        out[:, FEATURES.index("popularity")] = self.score(x)
        return out, np.zeros(x.shape[0])


def save_learned_ranker(model: LearnedRanker, path: str | Path) -> None:
    save_json_atomically(model.to_json(), path)


def load_learned_ranker(path: str | Path) -> LearnedRanker:
    """Read a model file; FileNotFoundError when absent, LearnedRankerFileError when wrong."""
    path = Path(path)
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise
    except (OSError, ValueError) as exc:
        raise LearnedRankerFileError(f"{path}: not a readable learned-ranker file ({exc})") from exc
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        raise LearnedRankerFileError(f"{path}: not a {FORMAT} file")
    if doc.get("version") != FORMAT_VERSION:
        raise LearnedRankerFileError(
            f"{path}: format version {doc.get('version')!r}, this server reads "
            f"{FORMAT_VERSION}; train it again with `mediarec train-ranker`"
        )
    features = doc.get("features")
    if features != list(FEATURES):
        missing = sorted(set(FEATURES) - set(features or ()))
        extra = sorted(set(features or ()) - set(FEATURES))
        raise LearnedRankerFileError(
            f"{path}: trained on other features (missing {missing}, unknown {extra}, or in "
            "another order); train it again with `mediarec train-ranker`"
        )
    try:
        booster = lgb.Booster(model_str=str(doc["model"]))
    except (KeyError, lgb.basic.LightGBMError) as exc:
        raise LearnedRankerFileError(f"{path}: the LightGBM model does not load ({exc})") from exc
    if booster.num_feature() != len(FEATURES):
        raise LearnedRankerFileError(
            f"{path}: the model reads {booster.num_feature()} features, the file lists "
            f"{len(FEATURES)}"
        )
    try:
        return LearnedRanker(booster, FEATURES, dict(doc.get("info", {})))
    except ForestCompileError as exc:
        raise LearnedRankerFileError(f"{path}: the model cannot be served ({exc})") from exc


def load_learned_or_none(path: str | Path | None) -> LearnedRanker | None:
    """The model at ``path`` when it exists, else None (the blend serves). A file that exists
    but is wrong is an error, not a silent fallback."""
    if not path:
        return None
    try:
        model = load_learned_ranker(path)
    except FileNotFoundError:
        logger.info("no learned ranker at %s; the blend ranks until one is trained", path)
        return None
    logger.info("loaded learned ranker from %s (%s)", path, model.info.get("trained_at", "?"))
    return model
