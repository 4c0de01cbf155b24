"""Runtime options of an encoder: where and how it runs, not which weights it uses."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

PRECISIONS = ("fp32", "bf16", "int8")


@dataclass(frozen=True)
class EncoderOptions:
    device: str = "cpu"
    torch_threads: int | None = None  # None leaves torch's default (all cores)
    batch_size: int = 32
    # "bf16" casts the weights (bf16 autocast is slower on CPU); "int8" runs the image tower
    # through ONNX Runtime with dynamic int8 quantization (open_clip models; texts stay fp32)
    precision: str = "fp32"
    cache_dir: Path | None = None  # Hub cache; None uses the library default (HF_HOME)
    onnx_cache_dir: Path | None = None  # int8 models built from the weights; None: ~/.cache

    def __post_init__(self) -> None:
        if self.precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {PRECISIONS}, got {self.precision!r}.")
        if self.precision == "int8" and self.device != "cpu":
            raise ValueError(f"precision 'int8' runs on the CPU only, got device {self.device!r}.")
        if self.batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, got {self.batch_size}.")
        if self.torch_threads is not None and self.torch_threads < 1:
            raise ValueError(f"torch_threads must be at least 1, got {self.torch_threads}.")
