"""bench-speed section "index": `mediarec index` on a folder of large JPEGs against its ideal.

On a CPU box decoding and the model share the cores, so the honest ceiling is
``ideal = cores / (m + d)`` images/s, with

* ``m``: model core-seconds per image = cores / warm raw forward img/s (batches of 32, tensors
  ready, as many images as the folder back to back);
* ``d``: read + decode + preprocess core-seconds per image, one thread, with exactly the code the
  indexer runs (``decode_image`` in JPEG draft mode, ``resize_and_crop``, ``images_to_tensor``).

End to end is the real command (``python -m mediarec.server.cli index FOLDER``, embedded store in a
fresh data dir) in its own process; its rate is files / the indexer's own clock (the report's
``elapsed_s``: scan to last commit), so process start, model load and store open are excluded.
All three use the same ViT-B-32 (random weights, an ``openclip-dir:`` checkpoint) and precision.
``m`` comes from the forward rate sustained over as many images as the folder, measured again
just before each end-to-end run, and each run is divided by the ideal of its own measurement:
this shared machine's speed drifts by up to a quarter over minutes, and its fastest single
batch runs a few % faster than any run of the folder's length can (the peak, the method of
earlier runs, is reported beside it).
The video part times the real 10 s 720p clip: frame sampling, preprocessing and the forward pass.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from PIL import Image

from bench.speed import SectionResult, SpeedConfig

if TYPE_CHECKING:
    import torch

    from mediarec.encoders.backends.torch_base import TorchClipEncoder

logger = logging.getLogger(__name__)

REPO_ROOT = Path(__file__).resolve().parents[1]
ARCHITECTURE = "ViT-B-32"
MODEL_SEED = 0
BATCH = 32
FULL_HD = (1920, 1080)
TWELVE_MP = (4000, 3000)
JPEG_QUALITY = 90
# Upscaled 640-px photos are smoother than camera output, so they would decode unrealistically
# fast; a little grain brings the entropy (and file size) near a real photo's.
GRAIN = 4
VIDEO_CLIP = "squirrel.mp4"  # 10 s, 1280x720 H.264, with audio
VIDEO_FRAMES = 8


@dataclass(frozen=True)
class Plan:
    """How big the run is; ``quick`` is a smoke run, not a result."""

    full_hd: int  # 1920x1080 JPEGs in the folder
    twelve_mp: int  # 4000x3000 JPEGs
    forward_batches: int  # timed batches of BATCH for the peak rate (the fastest counts)
    decode_passes: int  # timed passes over the folder for d (per file, the fastest counts)
    e2e_runs: int  # end-to-end runs, each on a fresh store; the median counts
    precisions: tuple[str, ...]

    @property
    def files(self) -> int:
        return self.full_hd + self.twelve_mp


FULL = Plan(
    full_hd=256,
    twelve_mp=128,
    forward_batches=4,
    decode_passes=2,
    e2e_runs=3,
    precisions=("fp32", "bf16"),
)
QUICK = Plan(
    full_hd=24, twelve_mp=8, forward_batches=2, decode_passes=1, e2e_runs=1, precisions=("fp32",)
)


# -- the inputs: a folder of JPEGs and a random ViT-B-32 checkpoint ------------------------


def photo_sources(media_dir: Path | None) -> list[Path]:
    if media_dir is None or not (media_dir / "images").is_dir():
        raise RuntimeError("the index section needs $MEDIAREC_TEST_MEDIA/images (real photos)")
    photos = sorted((media_dir / "images").glob("*.jpg"))
    if not photos:
        raise RuntimeError(f"no JPEGs in {media_dir / 'images'}")
    return photos


def build_folder(sources: Sequence[Path], work_dir: Path, plan: Plan) -> Path:
    """1080p and 12 MP JPEGs made from real photos, interleaved 2:1 by name so every batch
    holds both sizes; cached across runs (a marker file says the folder is complete)."""
    folder = work_dir / f"index-folder-{plan.full_hd}x1080p-{plan.twelve_mp}x12mp"
    done = folder.with_suffix(".complete")
    if done.is_file():
        return folder
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    sizes = [TWELVE_MP] * plan.twelve_mp + [FULL_HD] * plan.full_hd
    order = _interleaved(plan.full_hd, plan.twelve_mp)
    started = time.monotonic()
    for i, which in enumerate(order):
        width, height = sizes[which]
        name = f"photo-{i:04d}-{width}x{height}.jpg"
        write_grained_photo(sources[i % len(sources)], width, height, rng, folder / name)
    done.write_text(f"{len(order)} files\n")
    logger.info("built %s in %.0f s", folder, time.monotonic() - started)
    return folder


def write_grained_photo(
    source: Path, width: int, height: int, rng: np.random.Generator, target: Path
) -> None:
    """``source`` scaled to cover width x height, with GRAIN, saved as a JPEG at ``target``."""
    with Image.open(source) as photo:
        picture = _cover(photo.convert("RGB"), width, height)
    grain = rng.integers(-GRAIN, GRAIN + 1, size=(height, width, 3), dtype=np.int16)
    pixels = np.clip(np.asarray(picture, dtype=np.int16) + grain, 0, 255).astype(np.uint8)
    Image.fromarray(pixels).save(target, quality=JPEG_QUALITY)


def _interleaved(full_hd: int, twelve_mp: int) -> list[int]:
    """Indexes into [12 MP..., 1080p...] spreading the 12 MP files evenly through the folder."""
    total = full_hd + twelve_mp
    big = {round(k * total / twelve_mp) for k in range(twelve_mp)} if twelve_mp else set()
    order, next_big, next_small = [], 0, twelve_mp
    for position in range(total):
        if position in big and next_big < twelve_mp:
            order.append(next_big)
            next_big += 1
        else:
            order.append(next_small)
            next_small += 1
    return order


def _cover(photo: Image.Image, width: int, height: int) -> Image.Image:
    """Scale to cover width x height, then crop the centre."""
    scale = max(width / photo.width, height / photo.height)
    resized = photo.resize(
        (max(width, round(photo.width * scale)), max(height, round(photo.height * scale))),
        Image.Resampling.BICUBIC,
    )
    left = (resized.width - width) // 2
    top = (resized.height - height) // 2
    return resized.crop((left, top, left + width, top + height))


def random_vit_checkpoint(work_dir: Path) -> Path:
    """ViT-B-32 with seeded random weights as an open_clip folder (config + fp16 safetensors),
    the same format as the demo model; saved once."""
    out_dir = work_dir / f"vit-b-32-random-seed{MODEL_SEED}"
    weights = out_dir / "open_clip_model.safetensors"
    if weights.is_file() and (out_dir / "open_clip_config.json").is_file():
        return out_dir
    import open_clip
    import torch
    from safetensors.torch import save_file

    torch.manual_seed(MODEL_SEED)
    model = open_clip.create_model(ARCHITECTURE, pretrained=None)
    state = {
        k: (v.detach().to(torch.float16) if v.is_floating_point() else v.detach()).contiguous()
        for k, v in model.state_dict().items()
    }
    out_dir.mkdir(parents=True, exist_ok=True)
    save_file(state, str(out_dir / "weights.partial"))
    config = {
        "model_cfg": open_clip.get_model_config(ARCHITECTURE),
        "preprocess_cfg": {
            "size": 224,
            "mean": list(open_clip.OPENAI_DATASET_MEAN),
            "std": list(open_clip.OPENAI_DATASET_STD),
            "interpolation": "bicubic",
            "resize_mode": "shortest",
        },
    }
    (out_dir / "open_clip_config.json").write_text(json.dumps(config, indent=2) + "\n")
    (out_dir / "weights.partial").replace(weights)
    return out_dir


# -- the three measurements -----------------------------------------------------------------


@dataclass(frozen=True)
class DecodeCost:
    """Single-thread CPU seconds per file, by stage; ``d`` is what the ideal uses."""

    read_s: float
    sha256_s: float
    decode_s: float  # decode_image in draft mode
    resize_s: float  # resize_and_crop to the model's square
    tensor_s: float  # images_to_tensor (the model thread does this in commit)
    by_size: dict[str, float]  # d per source size

    @property
    def d(self) -> float:
        return self.read_s + self.decode_s + self.resize_s + self.tensor_s


def measure_decode(files: Sequence[Path], encoder: TorchClipEncoder, passes: int) -> DecodeCost:
    """CPU time of this thread per stage (torch held to one thread); for each file the fastest
    of ``passes`` passes over the folder counts (other load on the machine only adds time)."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        timings = [[_decode_stages(path, encoder) for path in files] for _ in range(passes)]
    finally:
        torch.set_num_threads(threads)
    # timings[pass][file] -> for each file, its fastest pass
    best = [min(tries, key=lambda st: sum(st.values())) for tries in zip(*timings, strict=True)]
    per_size: dict[str, list[float]] = {}
    for path, stages in zip(files, best, strict=True):
        size = path.stem.rsplit("-", 1)[-1]  # photo-0001-4000x3000
        per_size.setdefault(size, []).append(sum(stages.values()) - stages["sha256"])
    return DecodeCost(
        read_s=statistics.fmean(stages["read"] for stages in best),
        sha256_s=statistics.fmean(stages["sha256"] for stages in best),
        decode_s=statistics.fmean(stages["decode"] for stages in best),
        resize_s=statistics.fmean(stages["resize"] for stages in best),
        tensor_s=statistics.fmean(stages["tensor"] for stages in best),
        by_size={size: statistics.fmean(values) for size, values in per_size.items()},
    )


def _decode_stages(path: Path, encoder: TorchClipEncoder) -> dict[str, float]:
    """Thread CPU seconds of each step the indexer takes for one JPEG, hash included."""
    from mediarec.encoders.images import DEFAULT_MAX_PIXELS, decode_image
    from mediarec.encoders.preprocess import images_to_tensor, resize_and_crop
    from mediarec.server.indexing.indexer import jpeg_draft_size

    spec = encoder.preprocess_spec
    stamps = [time.thread_time()]
    raw = path.read_bytes()
    stamps.append(time.thread_time())
    hashlib.sha256(raw).hexdigest()
    stamps.append(time.thread_time())
    image = decode_image(raw, max_pixels=DEFAULT_MAX_PIXELS, draft_size=jpeg_draft_size(encoder))
    stamps.append(time.thread_time())
    square = resize_and_crop(image, spec)
    stamps.append(time.thread_time())
    images_to_tensor([square], spec)
    stamps.append(time.thread_time())
    names = ("read", "sha256", "decode", "resize", "tensor")
    return {name: float(seconds) for name, seconds in zip(names, np.diff(stamps), strict=True)}


def measure_forward(encoder: TorchClipEncoder, pixels: torch.Tensor, batches: int) -> float:
    """Warm raw forward img/s on one preprocessed batch (``batch_pixels``); the fastest of
    ``batches`` timed passes counts (the machine's peak)."""
    encoder.embed_pixels(pixels)  # warm-up: oneDNN primitives
    fastest = float("inf")
    for _ in range(batches):
        started = time.perf_counter()
        encoder.embed_pixels(pixels)
        fastest = min(fastest, time.perf_counter() - started)
    return len(pixels) / fastest


def measure_sustained_forward(
    encoder: TorchClipEncoder, pixels: torch.Tensor, images: int
) -> float:
    """Warm raw forward img/s over ``images`` images back to back, in batches like ``pixels``:
    the model alone doing as much work as an end-to-end run of the folder, at the pace this
    shared machine holds for that long (its fastest single batch runs a few % faster)."""
    encoder.embed_pixels(pixels)  # warm-up
    batches = max(1, -(-images // len(pixels)))
    started = time.perf_counter()
    for _ in range(batches):
        encoder.embed_pixels(pixels)
    return batches * len(pixels) / (time.perf_counter() - started)


def batch_pixels(encoder: TorchClipEncoder, files: Sequence[Path]) -> torch.Tensor:
    """The first BATCH files (real photos), decoded and preprocessed as the indexer does."""
    from mediarec.encoders.images import decode_image
    from mediarec.encoders.preprocess import images_to_tensor
    from mediarec.server.indexing.indexer import jpeg_draft_size

    draft = jpeg_draft_size(encoder)
    images = [decode_image(p.read_bytes(), draft_size=draft) for p in files[:BATCH]]
    return images_to_tensor(images, encoder.preprocess_spec)


@dataclass(frozen=True)
class EndToEnd:
    files: int
    elapsed_s: float  # the indexer's own clock: scan to last commit
    process_wall_s: float  # the whole command: start, model load, store, indexing, close

    @property
    def img_s(self) -> float:
        return self.files / self.elapsed_s


def index_folder_cli(
    folder: Path, model_id: str, precision: str, scratch: Path, extra_args: Sequence[str] = ()
) -> EndToEnd:
    """``python -m mediarec.server.cli index FOLDER`` into a fresh embedded store; raises if it
    fails."""
    import shutil

    data_dir = scratch / "data"
    shutil.rmtree(data_dir, ignore_errors=True)
    report_path = scratch / "report.json"
    command = [
        sys.executable, "-m", "mediarec.server.cli", "index", str(folder),
        "--model-id", model_id, "--precision", precision,
        "--data-dir", str(data_dir), "--report", str(report_path),
        "--no-progress", "--strict", *extra_args,
    ]  # fmt: skip
    started = time.perf_counter()
    done = subprocess.run(command, cwd=REPO_ROOT, capture_output=True, text=True, check=False)
    wall = time.perf_counter() - started
    if done.returncode != 0:
        raise RuntimeError(f"mediarec index exited {done.returncode}:\n{done.stderr[-3000:]}")
    report = json.loads(report_path.read_text())
    counts = report["counts"]
    indexed = counts["created"] + counts["updated"]
    if indexed != counts["files"]:
        raise RuntimeError(f"mediarec index did not index every file: {counts}")
    return EndToEnd(files=indexed, elapsed_s=report["elapsed_s"], process_wall_s=wall)


@dataclass(frozen=True)
class VideoCost:
    clip: str
    frames: int
    decode_s: float  # sample_frames (keyframe seeks)
    preprocess_s: float  # resize_and_crop + images_to_tensor of the frames
    embed_s: float  # one forward pass over the frames
    index_s: float  # the indexer's clock for a one-clip folder (decode, embed, store)

    @property
    def total_s(self) -> float:
        return self.decode_s + self.preprocess_s + self.embed_s


def measure_video(
    clip: Path, encoder: TorchClipEncoder, repeats: int
) -> tuple[float, float, float]:
    """Median seconds of (decode, preprocess, embed) for one clip, after one warm-up."""
    from mediarec.encoders.preprocess import images_to_tensor
    from mediarec.encoders.video import sample_frames

    spec = encoder.preprocess_spec
    timings: list[tuple[float, float, float]] = []
    for _ in range(repeats + 1):
        t0 = time.perf_counter()
        _, frames = sample_frames(clip, VIDEO_FRAMES)
        t1 = time.perf_counter()
        pixels = images_to_tensor([frame.image for frame in frames], spec)
        t2 = time.perf_counter()
        encoder.embed_pixels(pixels)
        timings.append((t1 - t0, t2 - t1, time.perf_counter() - t2))
    warm = timings[1:]
    decode, preprocess, embed = (statistics.median(t[i] for t in warm) for i in range(3))
    return decode, preprocess, embed


# -- the section ----------------------------------------------------------------------------


@dataclass(frozen=True)
class PrecisionResult:
    precision: str
    peak_forward_img_s: float  # the fastest single batch
    d: float
    e2e: list[EndToEnd]
    # The sustained forward rate (as many images as the folder) just before each run.
    sustained_before_run: list[float]
    cores: int

    @property
    def forward_img_s(self) -> float:
        """The median sustained forward rate: what m and the ideal use."""
        return statistics.median(self.sustained_before_run)

    @property
    def m(self) -> float:
        return self.cores / self.forward_img_s

    @property
    def ideal_img_s(self) -> float:
        return _ideal(self.d, self.forward_img_s, self.cores)

    @property
    def e2e_img_s(self) -> float:
        return statistics.median(run.img_s for run in self.e2e)

    @property
    def over_ideal(self) -> float:
        """Median over the runs of each run's rate over the ideal of the sustained forward rate
        measured just before it: this shared machine's speed drifts over minutes, and pairing
        keeps the drift out of a ratio that is about the pipeline."""
        return statistics.median(
            run.img_s / _ideal(self.d, forward, self.cores)
            for run, forward in zip(self.e2e, self.sustained_before_run, strict=True)
        )

    @property
    def over_peak_ideal(self) -> float:
        """The median rate over the ideal of the fastest single batch (the method before
        session 6, reported beside the headline)."""
        return self.e2e_img_s / _ideal(self.d, self.peak_forward_img_s, self.cores)


def _peak_over_sustained(results: Sequence[PrecisionResult]) -> str:
    return "here " + ", ".join(
        f"{r.precision} {r.peak_forward_img_s / r.forward_img_s:.2f}x the sustained rate"
        for r in results
    )


def _ideal(d: float, forward_img_s: float, cores: int) -> float:
    """cores / (m + d) images/s, with m = cores / the raw forward rate."""
    return cores / (cores / forward_img_s + d)


def measure_precision(
    precision: str,
    model_id: str,
    folder: Path,
    plan: Plan,
    config: SpeedConfig,
    cost: DecodeCost | None,
) -> tuple[PrecisionResult, DecodeCost, TorchClipEncoder]:
    """The peak forward rate, then d (unless already measured: it does not depend on the
    precision), then per end-to-end run the sustained forward rate just before it; the loaded
    encoder is returned for the video part."""
    from mediarec.encoders import create_encoder
    from mediarec.encoders.backends.torch_base import TorchClipEncoder
    from mediarec.encoders.options import EncoderOptions

    encoder = create_encoder(model_id, EncoderOptions(batch_size=BATCH, precision=precision))
    assert isinstance(encoder, TorchClipEncoder)  # an openclip-dir model
    encoder.load()
    files = sorted(folder.glob("*.jpg"))
    pixels = batch_pixels(encoder, files)
    peak = measure_forward(encoder, pixels, plan.forward_batches)
    cost = cost or measure_decode(files, encoder, plan.decode_passes)
    runs, sustained = [], []
    for run in range(plan.e2e_runs):
        sustained.append(measure_sustained_forward(encoder, pixels, len(files)))
        runs.append(index_folder_cli(folder, model_id, precision, config.work_dir / "index-e2e"))
        logger.info("%s e2e run %d (sustained forward %.1f img/s before it): %s",
                    precision, run + 1, sustained[-1], runs[-1])  # fmt: skip
    result = PrecisionResult(precision, peak, cost.d, runs, sustained, config.cores)
    logger.info(
        "%s: sustained forward %.1f img/s (peak batch %.1f), m %.4f, d %.4f, ideal %.1f, e2e "
        "%.1f img/s (%.2f of the paired ideals; %.2f of the peak batch's)", precision,
        result.forward_img_s, peak, result.m, cost.d, result.ideal_img_s, result.e2e_img_s,
        result.over_ideal, result.over_peak_ideal,
    )  # fmt: skip
    return result, cost, encoder


def run(config: SpeedConfig) -> SectionResult:
    plan = QUICK if config.quick else FULL
    load_before = os.getloadavg()[0]
    sources = photo_sources(config.media_dir)
    folder = build_folder(sources, config.work_dir, plan)
    model_dir = random_vit_checkpoint(config.work_dir)
    model_id = f"openclip-dir:{model_dir.resolve()}"
    results: list[PrecisionResult] = []
    cost: DecodeCost | None = None
    video: VideoCost | None = None
    for precision in plan.precisions:
        result, cost, encoder = measure_precision(precision, model_id, folder, plan, config, cost)
        results.append(result)
        if precision == "fp32":
            video = _video(config, encoder, model_id)
        del encoder
    assert cost is not None
    headline = results[0]
    return SectionResult(
        metrics={
            "index_e2e_img_s": round(float(headline.e2e_img_s), 2),
            "index_e2e_over_ideal": round(float(headline.over_ideal), 3),
        },
        report=_markdown(config, plan, results, cost, video, (load_before, os.getloadavg()[0])),
        extra={
            "precisions": [
                {**asdict(r), "forward_img_s": r.forward_img_s, "m": r.m,
                 "ideal_img_s": r.ideal_img_s, "e2e_img_s": r.e2e_img_s,
                 "over_ideal": r.over_ideal, "over_peak_ideal": r.over_peak_ideal}
                for r in results
            ],
            "decode": {**asdict(cost), "d": cost.d},
            "video": asdict(video) if video else None,
        },
    )


def _video(config: SpeedConfig, encoder: TorchClipEncoder, model_id: str) -> VideoCost | None:
    clip = config.media_dir / "videos" / VIDEO_CLIP if config.media_dir else None
    if clip is None or not clip.is_file():
        logger.warning("no %s under $MEDIAREC_TEST_MEDIA/videos: video skipped", VIDEO_CLIP)
        return None
    decode, preprocess, embed = measure_video(clip, encoder, repeats=1 if config.quick else 3)
    one_clip = config.work_dir / "index-video-folder"
    one_clip.mkdir(parents=True, exist_ok=True)
    target = one_clip / VIDEO_CLIP
    if not target.exists():
        target.symlink_to(clip.resolve())
    e2e = index_folder_cli(one_clip, model_id, "fp32", config.work_dir / "index-video-e2e")
    return VideoCost(VIDEO_CLIP, VIDEO_FRAMES, decode, preprocess, embed, e2e.elapsed_s)


def _markdown(
    config: SpeedConfig,
    plan: Plan,
    results: Sequence[PrecisionResult],
    cost: DecodeCost,
    video: VideoCost | None,
    load: tuple[float, float],
) -> str:
    ms = 1000.0
    sizes = ", ".join(
        f"{size}: {value * ms:.1f} ms" for size, value in sorted(cost.by_size.items())
    )
    lines = [
        "### End-to-end folder indexing",
        "",
        f"`mediarec index` on {plan.files} JPEGs ({plan.full_hd} at 1920x1080, {plan.twelve_mp} "
        f"at 4000x3000, quality {JPEG_QUALITY}, made from the real photos), ViT-B-32 with "
        f"random weights, batch {BATCH}, {config.cores} cores, embedded store. "
        "`m` = cores / the warm raw forward rate sustained over as many images as the folder "
        f"(batches of {BATCH} back to back on preprocessed tensors), measured just before each "
        "end-to-end run; `d` = read + draft-mode decode + preprocess, CPU "
        f"seconds per file on one thread (per file the fastest of {plan.decode_passes} "
        "pass(es)); ideal = cores / (m + d). End to end = "
        "`python -m mediarec.server.cli index FOLDER` "
        "(default decode threads and batching), files / the indexer's own clock (scan to last "
        "commit: hashing, decoding, embedding and fsync'd store writes; process start, model "
        f"load and store open excluded), {plan.e2e_runs} run(s), each on a fresh store. "
        "e2e / ideal (the headline) is the median over the runs of each run's rate over the "
        "ideal of the sustained rate measured just before it: this shared machine's speed "
        "drifts over minutes, and pairing keeps that drift out of a ratio that is about the "
        "pipeline. The table's forward rate, m and ideal are the median of the sustained "
        "measurements. Beside it: the peak (the fastest single batch of "
        f"{plan.forward_batches}, the method of earlier runs; "
        f"{_peak_over_sustained(results)}) and the median rate over the ideal the peak gives. "
        f"Load average: {load[0]:.1f} before, {load[1]:.1f} after.",
        "",
        "| precision | sustained forward img/s (before each run) | peak batch img/s "
        "| m (core-ms/img) | d (core-ms/img) | d / (m + d) | ideal img/s "
        "| end-to-end img/s (each run) | e2e / ideal (paired) | e2e / peak ideal "
        "| command wall s (with load) |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        walls = ", ".join(f"{run.process_wall_s:.1f}" for run in r.e2e)
        before = ", ".join(f"{f:.1f}" for f in r.sustained_before_run)
        each = ", ".join(f"{run.img_s:.1f}" for run in r.e2e)
        lines.append(
            f"| {r.precision} | {r.forward_img_s:.1f} ({before}) | {r.peak_forward_img_s:.1f} "
            f"| {r.m * ms:.1f} | {r.d * ms:.1f} | {r.d / (r.m + r.d):.0%} "
            f"| {r.ideal_img_s:.1f} | {r.e2e_img_s:.1f} ({each}) | {r.over_ideal:.2f} "
            f"| {r.over_peak_ideal:.2f} | {walls} |"
        )
    lines += [
        "",
        f"Per file, one thread: read {cost.read_s * ms:.2f} ms, decode {cost.decode_s * ms:.1f} "
        f"ms, resize+crop {cost.resize_s * ms:.1f} ms, to tensor {cost.tensor_s * ms:.2f} ms "
        f"(d by size: {sizes}). The content hash the indexer also takes "
        f"({cost.sha256_s * ms:.1f} ms a file) is not in d: it counts against the ratio, as do "
        "the store writes (about 1 core-ms a file) and the slowdown decoding and the forward "
        "pass cause each other on shared cores; these weigh most where d is a large share of "
        "the work.",
        "",
    ]
    if video is not None:
        lines += [
            "### Video",
            "",
            f"`{video.clip}` (10 s, 1280x720 H.264), {video.frames} frames sampled by keyframe "
            "seeks, ViT-B-32 fp32, median of warm repeats:",
            "",
            "| decode (sample_frames) ms | preprocess ms | embed ms | sum ms "
            "| indexer clock, one-clip folder ms |",
            "|---|---|---|---|---|",
            f"| {video.decode_s * ms:.0f} | {video.preprocess_s * ms:.0f} "
            f"| {video.embed_s * ms:.0f} | {video.total_s * ms:.0f} | {video.index_s * ms:.0f} |",
            "",
        ]
    if config.quick:
        lines.append("_Quick run: a smoke test, not a result._")
    return "\n".join(lines)
