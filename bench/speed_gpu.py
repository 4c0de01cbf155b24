"""The speed bench's embedding half on a GPU: raw forward and `mediarec index` from JPEG files.

Run on a machine with CUDA (never in CI or the tests)::

    python -m bench.speed_gpu --media $MEDIAREC_TEST_MEDIA --out bench-gpu

It reuses the CPU section's parts (bench/speed_index.py): the same random ViT-B-32 checkpoint,
the same per-file decode code and the real ``python -m mediarec.server.cli index`` command, run with
``--device cuda``. On a GPU the model is no longer the bottleneck, so besides the model's
rate it measures the CPU side's own ceiling: the same read + decode + resize + tensor steps
on a pool of ``cores`` threads, with no model. ``e2e / min(forward, decode pool)`` says how
close the indexer comes to the slower of the two.

Folders: the CPU bench's mix (1080p and 12 MP, 2:1), 1080p only, and 640-px web photos (the
size clip-retrieval's ~2,500 img/s per A100 anchor is quoted for). Files are built in parallel
from the real photos, each with its own grain so no two are byte-equal.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import subprocess
import time
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from pathlib import Path

import numpy as np

from bench.speed_index import (
    FULL_HD,
    TWELVE_MP,
    _decode_stages,
    _interleaved,
    index_folder_cli,
    photo_sources,
    random_vit_checkpoint,
    write_grained_photo,
)

logger = logging.getLogger(__name__)

WEB = (640, 480)
FORWARD_BATCHES = (32, 256, 1024)
INDEX_BATCH = 256  # the indexer's batch on the GPU (model.batch_size)
FORWARD_REPEATS = 10


def _write_photo(job: tuple[Path, tuple[int, int], int, Path]) -> None:
    source, (width, height), seed, target = job  # each file its own grain: built in parallel
    write_grained_photo(source, width, height, np.random.default_rng(seed), target)


def build_folder(
    sources: Sequence[Path], root: Path, name: str, sizes: Sequence[tuple[int, int]], workers: int
) -> Path:
    """A folder of JPEGs of the given sizes (one per entry), built by ``workers`` processes."""
    folder = root / name
    folder.mkdir(parents=True, exist_ok=True)
    jobs = [
        (sources[i % len(sources)], size, i, folder / f"photo-{i:05d}-{size[0]}x{size[1]}.jpg")
        for i, size in enumerate(sizes)
    ]
    with ProcessPoolExecutor(workers) as pool:
        list(pool.map(_write_photo, jobs, chunksize=8))
    return folder


def forward_rates(
    model_id: str,
    photos: Sequence[Path],
    precision: str,
    device: str,
    batches: Sequence[int] = FORWARD_BATCHES,
    repeats: int = FORWARD_REPEATS,
) -> dict[int, float]:
    """img/s of ``embed_pixels`` (host tensor in, unit vectors out) at each batch size; the
    median of ``repeats`` timed calls after three warm-ups."""
    import torch

    from mediarec.encoders import create_encoder
    from mediarec.encoders.backends.torch_base import TorchClipEncoder
    from mediarec.encoders.images import decode_image
    from mediarec.encoders.options import EncoderOptions
    from mediarec.encoders.preprocess import images_to_tensor

    encoder = create_encoder(
        model_id, EncoderOptions(device=device, batch_size=max(batches), precision=precision)
    )
    assert isinstance(encoder, TorchClipEncoder)  # an openclip-dir model
    encoder.load()
    spec = encoder.preprocess_spec
    base = images_to_tensor([decode_image(p.read_bytes()) for p in photos], spec)
    rates = {}
    for batch in batches:
        pixels = base.repeat((batch + len(base) - 1) // len(base), 1, 1, 1)[:batch].contiguous()
        for _ in range(3):
            encoder.embed_pixels(pixels)
        times = []
        for _ in range(repeats):
            started = time.perf_counter()
            encoder.embed_pixels(pixels)  # returns numpy: the GPU work is done
            times.append(time.perf_counter() - started)
        rates[batch] = batch / float(np.median(times))
        logger.info("forward %s batch %d: %.0f img/s", precision, batch, rates[batch])
    del encoder
    if device.startswith("cuda"):
        torch.cuda.empty_cache()
    return rates


def decode_pool_rate(files: Sequence[Path], model_id: str, workers: int) -> dict[str, float]:
    """The CPU side alone: the indexer's per-file steps on ``workers`` threads, no model."""
    from mediarec.encoders import create_encoder
    from mediarec.encoders.backends.torch_base import TorchClipEncoder
    from mediarec.encoders.options import EncoderOptions

    encoder = create_encoder(model_id, EncoderOptions())  # only its preprocessing is used
    assert isinstance(encoder, TorchClipEncoder)
    encoder.load()
    with ThreadPoolExecutor(workers) as pool:
        list(pool.map(lambda p: _decode_stages(p, encoder), files[: 2 * workers]))  # warm
        started = time.perf_counter()
        stages = list(pool.map(lambda p: _decode_stages(p, encoder), files))
        wall = time.perf_counter() - started
    per_file = float(np.mean([sum(s.values()) for s in stages]))
    return {"pool_img_s": len(files) / wall, "thread_cpu_s_per_file": per_file}


def environment() -> dict[str, str | int]:
    import torch

    cpu = "unknown"
    try:
        lscpu = subprocess.run(["lscpu"], capture_output=True, text=True, check=False).stdout
        cpu = next(
            line.split(":", 1)[1].strip() for line in lscpu.splitlines() if "Model name" in line
        )
    except (OSError, StopIteration):
        pass
    return {
        "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else "none",
        "cpu": cpu,
        "cores": os.cpu_count() or 1,
        "torch": torch.__version__,
        "cuda": str(torch.version.cuda),
        "python": platform.python_version(),
        "date": time.strftime("%Y-%m-%d"),
    }


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--media", type=Path, default=os.environ.get("MEDIAREC_TEST_MEDIA"))
    parser.add_argument("--work-dir", type=Path, default=Path("/tmp/mediarec-bench-gpu"))
    parser.add_argument("--out", type=Path, default=Path("bench-gpu"))
    parser.add_argument("--files", type=int, default=3072, help="files in each one-size folder")
    parser.add_argument("--precision", default="bf16", choices=("fp32", "bf16"))
    parser.add_argument("--device", default="cuda", help="cpu only for a smoke run of the script")
    parser.add_argument("--repeats", type=int, default=FORWARD_REPEATS)
    parser.add_argument("--batches", type=int, nargs="+", default=list(FORWARD_BATCHES))
    parser.add_argument(
        "--decode-workers", type=int, nargs="+", default=[0], help="indexer decode threads to try"
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    import torch

    if args.device.startswith("cuda") and not torch.cuda.is_available():
        parser.error("no CUDA device: this bench runs on a GPU machine only")
    cores = os.cpu_count() or 1
    args.work_dir.mkdir(parents=True, exist_ok=True)
    args.out.mkdir(parents=True, exist_ok=True)
    result: dict[str, object] = {"environment": environment(), "index_batch": INDEX_BATCH}
    model_id = f"openclip-dir:{random_vit_checkpoint(args.work_dir)}"
    sources = photo_sources(args.media)

    result["forward_img_s"] = {
        p: forward_rates(model_id, sources, p, args.device, args.batches, args.repeats)
        for p in ("fp32", "bf16")
    }

    mixed_sizes = [(TWELVE_MP if i < 128 else FULL_HD) for i in _interleaved(256, 128)]
    folders = {
        "mixed 1080p+12MP (CPU bench's folder)": ("mixed", mixed_sizes),
        "1080p": ("full-hd", [FULL_HD] * args.files),
        "640x480": ("web", [WEB] * args.files),
    }
    rates = result["forward_img_s"][args.precision]  # type: ignore[index]
    forward = rates[max(args.batches)]
    rows = {}
    for label, (name, sizes) in folders.items():
        started = time.perf_counter()
        folder = build_folder(sources, args.work_dir, name, sizes, cores)
        took = time.perf_counter() - started
        logger.info("built %s (%d files) in %.0f s", name, len(sizes), took)
        files = sorted(folder.glob("*.jpg"))
        decode = decode_pool_rate(files, model_id, cores)
        ceiling = min(forward, decode["pool_img_s"])
        # The thread sweep runs on the one-size folders; the CPU bench's folder keeps the default.
        for workers in args.decode_workers if name != "mixed" else [0]:
            extra = ["--device", args.device, "--batch-size", str(INDEX_BATCH)]
            runs = [
                index_folder_cli(
                    folder, model_id, args.precision, args.work_dir / f"e2e-{name}",
                    [*extra, "--decode-workers", str(workers)],
                )
                for _ in range(2)
            ]  # fmt: skip
            best = max(run.img_s for run in runs)  # the first pays CUDA's warm-up in its clock
            key = f"{label}, {workers or cores} decode threads"
            rows[key] = {
                "files": len(files),
                "decode_workers": workers or cores,
                "e2e_img_s": [round(run.img_s, 1) for run in runs],
                "decode_pool_img_s": round(decode["pool_img_s"], 1),
                "decode_cpu_ms_per_file": round(1000 * decode["thread_cpu_s_per_file"], 2),
                "e2e_over_ceiling": round(best / ceiling, 3),
            }
            logger.info("%s: %s", key, rows[key])
    result["index"] = rows
    (args.out / "gpu_bench.json").write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
