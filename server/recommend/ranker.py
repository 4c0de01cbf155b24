"""The ranking model: weights over the blend's gated features plus a bias, stored as JSON.

Without a trained file the ranker is the default blend (``blend.DEFAULT_WEIGHTS``, bias 0).
``mediarec train-ranker`` fits a logistic model over the same gated features and writes it
here; the server loads it at start and on ``Recommender.reload_ranker()``.
"""

from __future__ import annotations

import json
import logging
import math
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from mediarec.server.recommend import blend as b
from mediarec.server.recommend.types import Surface

logger = logging.getLogger(__name__)

FORMAT = "mediarec-ranker"
# Bumped whenever the gates change (blend.gates): a model's weights were fit on the gated
# features, so under other gates it would score differently without a word. 2: popularity
# backed by item confidence, content standing in as far as the user is known.
FORMAT_VERSION = 2
RANKER_FILE = "ranker.json"  # default name under the data dir


class RankerFileError(ValueError):
    """A ranker file is unreadable, of another format, or names unknown features."""


@dataclass(frozen=True)
class RankerModel:
    weights: Mapping[str, float] = field(default_factory=lambda: dict(b.DEFAULT_WEIGHTS))
    bias: float = 0.0
    trained: bool = False
    info: Mapping[str, Any] = field(default_factory=dict)  # training window, metrics, ...

    def __post_init__(self) -> None:
        unknown = set(self.weights) - set(b.FEATURES)
        if unknown:
            raise RankerFileError(f"unknown ranker features {sorted(unknown)}")
        if not all(math.isfinite(float(w)) for w in self.weights.values()):
            raise RankerFileError("ranker weights must be finite numbers")
        if not math.isfinite(self.bias):
            raise RankerFileError("the ranker bias must be a finite number")
        object.__setattr__(self, "_vector", b.weight_vector(self.weights))

    @property
    def vector(self) -> np.ndarray:
        return self.__dict__["_vector"]  # type: ignore[no-any-return]

    def score(
        self, x: np.ndarray, user_conf: float, item_conf: np.ndarray, surface: Surface
    ) -> tuple[np.ndarray, np.ndarray]:
        """Scores and per-feature contributions (the bias is reported separately)."""
        return b.blend_matrix(x, user_conf, item_conf, self.vector, self.bias, surface)

    def to_json(self) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "version": FORMAT_VERSION,
            "features": list(b.FEATURES),
            "weights": {name: float(self.weights.get(name, 0.0)) for name in b.FEATURES},
            "bias": float(self.bias),
            "info": dict(self.info),
        }


DEFAULT_RANKER = RankerModel()


def load_ranker(path: str | Path) -> RankerModel:
    """Read a ranker file; raises RankerFileError (FileNotFoundError when it is absent)."""
    path = Path(path)
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise
    except (OSError, ValueError) as exc:  # ValueError: bad JSON, not UTF-8
        raise RankerFileError(f"{path}: not a readable ranker file ({exc})") from exc
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        raise RankerFileError(f"{path}: not a {FORMAT} file")
    if doc.get("version") != FORMAT_VERSION:
        raise RankerFileError(
            f"{path}: ranker format version {doc.get('version')!r}; this server reads "
            f"version {FORMAT_VERSION}; train it again with `mediarec train-ranker`"
        )
    weights = doc.get("weights")
    if not isinstance(weights, dict):
        raise RankerFileError(f"{path}: 'weights' must be an object of feature -> number")
    try:
        return RankerModel(
            weights={str(k): float(v) for k, v in weights.items()},
            bias=float(doc.get("bias", 0.0)),
            trained=True,
            info=dict(doc.get("info", {})),
        )
    except (TypeError, ValueError, OverflowError) as exc:  # OverflowError: a huge integer
        raise RankerFileError(f"{path}: {exc}") from exc


def save_ranker(model: RankerModel, path: str | Path) -> None:
    save_json_atomically(model.to_json(), path, indent=2, sort_keys=True)


def save_json_atomically(doc: Mapping[str, Any], path: str | Path, **dump: Any) -> None:
    """Write a model file atomically (temp file, fsync, rename) so a reader never sees half
    of it; ``dump`` goes to ``json.dump``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w", encoding="utf-8") as fh:
        json.dump(doc, fh, **dump)
        fh.write("\n")
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


def load_or_default(path: str | Path | None) -> RankerModel:
    """The trained model at ``path`` when it exists, else the default blend weights.

    A file that exists but is broken is an error, not a silent fallback.
    """
    if not path:
        return DEFAULT_RANKER
    try:
        model = load_ranker(path)
    except FileNotFoundError:
        logger.info("no trained ranker at %s; using the default blend weights", path)
        return DEFAULT_RANKER
    logger.info("loaded trained ranker from %s (%s)", path, model.info.get("trained_at", "?"))
    return model
