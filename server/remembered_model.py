"""The model a data dir was last served or indexed with (``DATA_DIR/model.json``), so commands
that name no model use the one whose vectors the store holds."""

from __future__ import annotations

import json
import logging
import os
import tempfile
from pathlib import Path

logger = logging.getLogger(__name__)

MODEL_FILE = "model.json"


class RememberedModelError(ValueError):
    """``model.json`` exists but cannot be read; the message names the file."""


def remembered_model(data_dir: Path) -> str | None:
    """The model id recorded in ``data_dir``; None when nothing is recorded there."""
    path = data_dir / MODEL_FILE
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise RememberedModelError(f"cannot read {path}: {exc.strerror}") from exc
    try:
        model_id = json.loads(text).get("model_id")
    except (json.JSONDecodeError, AttributeError) as exc:
        raise RememberedModelError(f"{path} is not a JSON object with a model_id") from exc
    if not isinstance(model_id, str) or not model_id:
        raise RememberedModelError(f"{path} names no model_id")
    return model_id


def remember_model(data_dir: Path, model_id: str) -> None:
    """Record ``model_id`` as the data dir's model (atomically; unchanged files are left)."""
    path = data_dir / MODEL_FILE
    try:
        if remembered_model(data_dir) == model_id:
            return
    except RememberedModelError:
        pass  # overwritten below with what is true now
    # A private temporary name: two processes (sharing a Qdrant server) may write at once.
    handle, partial = tempfile.mkstemp(prefix=f".{MODEL_FILE}.", dir=data_dir)
    with os.fdopen(handle, "w", encoding="utf-8") as out:
        out.write(json.dumps({"model_id": model_id}) + "\n")
    os.replace(partial, path)
    logger.info("recorded %s as the model of %s", model_id, data_dir)
