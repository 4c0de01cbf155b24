"""The image tower as an ONNX Runtime int8 model, built from the loaded torch weights.

Dynamic quantization stores the weights as int8 and quantizes activations per batch at run time;
on CPUs with VNNI its integer matmuls beat even bf16. The model is exported and quantized once
per set of weights and kept in a cache folder under a hash of those weights, so a restart loads
it in a second. Needs the optional packages ``onnx`` and ``onnxruntime``.
"""

from __future__ import annotations

import hashlib
import logging
import os
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from mediarec.encoders.base import WeightsUnavailableError

logger = logging.getLogger(__name__)

FORMAT_VERSION = "1"  # bump when the export or quantization recipe changes
OPSET = 17


def default_cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "mediarec" / "onnx"


class OnnxInt8ImageTower:
    """Preprocessed pixels in, unnormalised image features out, through ONNX Runtime."""

    def __init__(self, session: Any) -> None:
        self._session = session

    @classmethod
    def load_or_build(
        cls, visual: nn.Module, size: int, cache_dir: Path, threads: int | None
    ) -> OnnxInt8ImageTower:
        """The cached int8 model of ``visual``, exported and quantized first if missing.

        A cached file that ONNX Runtime cannot open is deleted and rebuilt once."""
        _require_onnx()
        threads = threads or _usable_cores()
        path = cache_dir / f"visual-int8-{weights_key(visual, size)}.onnx"
        if not path.is_file():
            build_int8(visual, size, path)
        try:
            return cls(_session(path, threads))
        except Exception as exc:  # a truncated or corrupt cache entry: rebuild it once
            logger.warning("rebuilding unreadable int8 model %s (%s)", path, exc)
            path.unlink(missing_ok=True)
            build_int8(visual, size, path)
            return cls(_session(path, threads))

    def __call__(self, pixels: torch.Tensor) -> torch.Tensor:
        batch = np.ascontiguousarray(pixels.float().cpu().numpy())
        return torch.from_numpy(self._session.run(None, {"pixels": batch})[0])


def weights_key(visual: nn.Module, size: int) -> str:
    """A hash of the tower's weights, its input size and the toolchain that builds the model."""
    import onnxruntime

    digest = hashlib.sha256()
    meta = f"{FORMAT_VERSION}|{size}|{torch.__version__}|{onnxruntime.__version__}"
    digest.update(meta.encode())
    for name, tensor in visual.state_dict().items():
        digest.update(name.encode())
        digest.update(str(tuple(tensor.shape)).encode())
        digest.update(tensor.detach().float().contiguous().numpy().tobytes())
    return digest.hexdigest()[:20]


def build_int8(visual: nn.Module, size: int, path: Path) -> None:
    """Export ``visual`` (float32) to ONNX, quantize it dynamically to int8, save to ``path``."""
    _require_onnx()
    from onnxruntime.quantization import QuantType, quantize_dynamic

    path.parent.mkdir(parents=True, exist_ok=True)
    logger.info("building the int8 image model %s (one-off)", path.name)
    with tempfile.TemporaryDirectory(dir=path.parent) as scratch:
        fp32 = Path(scratch) / "visual-fp32.onnx"
        export_fp32(visual, size, fp32)
        partial = Path(scratch) / "visual-int8.onnx"
        quantize_dynamic(str(fp32), str(partial), weight_type=QuantType.QInt8, per_channel=True)
        partial.replace(path)  # atomic: a crash never leaves a half-written cache entry


def export_fp32(visual: nn.Module, size: int, path: Path) -> None:
    """The float32 tower as ONNX with a dynamic batch axis (TorchScript exporter)."""
    import warnings

    # Grad mode on: under no_grad nn.MultiheadAttention takes its fused fast path, which the
    # exporter cannot translate. The TorchScript exporter needs no extra package (the dynamo
    # one needs onnxscript) and its graph quantizes to the same speed here.
    with torch.enable_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # the exporter's own notice
        warnings.simplefilter("ignore", torch.jit.TracerWarning)  # shape checks traced as constants
        torch.onnx.export(
            visual,
            (torch.zeros(1, 3, size, size),),
            str(path),
            input_names=["pixels"],
            output_names=["features"],
            dynamic_axes={"pixels": {0: "batch"}, "features": {0: "batch"}},
            opset_version=OPSET,
            dynamo=False,
        )


def _require_onnx() -> None:
    """One clear error when the optional ``int8`` extra is not installed."""
    try:
        import onnx  # noqa: F401
        import onnxruntime  # noqa: F401
    except ImportError as exc:
        raise WeightsUnavailableError(
            "precision 'int8' needs the packages onnx and onnxruntime: "
            f"pip install 'mediarec[int8]' ({exc})"
        ) from exc


def _usable_cores() -> int:
    # All usable cores, as torch does by default; ONNX Runtime's own default counts physical
    # cores only, which halves the threads on a hyper-threaded machine.
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def _session(path: Path, threads: int) -> Any:
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
