"""Starting up with the right model settings: the data dir remembers its model, the registry's
near-duplicate threshold applies, hub weights fail fast offline, "serving" means ready, and a
port in use is one line. Real CLI processes and real servers throughout."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from mediarec.client import MediaMetadata, MediarecClient
from mediarec.encoders import EncoderOptions, create_encoder
from mediarec.encoders.base import WeightsUnavailableError
from mediarec.encoders.registry import (
    BUNDLED_WEIGHTS_DIR,
    DEFAULT_MODEL_ID,
    DEFAULT_NEAR_DUPLICATE_COSINE,
    DEMO_MODEL_ID,
    near_duplicate_cosine_of,
)
from mediarec.server.cli import main
from mediarec.server.config import ConfigError, load_settings
from mediarec.server.remembered_model import MODEL_FILE
from tests.servers import serve_demo

ROOT = Path(__file__).resolve().parent.parent
# A hub that refuses connections at once: the test never depends on this machine's network.
CLOSED_HUB = "http://127.0.0.1:9"


@pytest.fixture(scope="module", autouse=True)
def _demo_model() -> None:
    if not (BUNDLED_WEIGHTS_DIR / DEMO_MODEL_ID / "open_clip_model.safetensors").is_file():
        pytest.skip("the bundled demo model's weights are missing")


def run_cli(*args: str, env: dict[str, str] | None = None, timeout: float = 120) -> tuple[
    int, str, str, float
]:
    started = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-m", "mediarec.server.cli", *args],
        capture_output=True, text=True, cwd=ROOT, timeout=timeout,
        env={**os.environ, **(env or {})},
    )  # fmt: skip
    return done.returncode, done.stdout, done.stderr, time.monotonic() - started


def test_commands_use_the_model_the_data_dir_recorded(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data_dir = tmp_path / "data"
    folder = tmp_path / "photos"
    folder.mkdir()
    from mediarec.encoders.synthetic.world import WorldGenerator

    WorldGenerator(3, image_size=64).post().image.save(folder / "a.jpg")
    flags = ["--data-dir", str(data_dir), "--no-progress", "--topics-top-k", "0"]
    assert main(["index", str(folder), "--model-id", DEMO_MODEL_ID, *flags]) == 0
    assert json.loads((data_dir / MODEL_FILE).read_text()) == {"model_id": DEMO_MODEL_ID}
    # No --model-id: the recorded one, not the default hub model (which would need a network).
    assert load_settings({"data_dir": str(data_dir)}, {}, None).model.id == DEMO_MODEL_ID
    capsys.readouterr()
    assert main(["search", "shapes", "--data-dir", str(data_dir), "--json"]) == 0
    assert [row["media_id"] for row in json.loads(capsys.readouterr().out)] == ["a.jpg"]
    # Naming a model anywhere (flag, environment, file) overrides the record.
    named = load_settings({"data_dir": str(data_dir)}, {"MEDIAREC_MODEL_ID": "external:16"}, None)
    assert named.model.id == "external:16"
    (data_dir / MODEL_FILE).write_text("{not json")
    with pytest.raises(ConfigError, match="model.json"):
        load_settings({"data_dir": str(data_dir)}, {}, None)
    assert main(["search", "shapes", "--data-dir", str(data_dir)]) == 2
    assert "--model-id" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("model_id", "expected"),
    [
        (DEMO_MODEL_ID, 0.985),  # its card measured reposts and distinct posts
        (DEFAULT_MODEL_ID, DEFAULT_NEAR_DUPLICATE_COSINE),
        ("external:16", DEFAULT_NEAR_DUPLICATE_COSINE),
        ("not a model id", DEFAULT_NEAR_DUPLICATE_COSINE),
    ],
)
def test_near_duplicate_threshold_comes_from_the_models_registry_entry(
    model_id: str, expected: float
) -> None:
    assert near_duplicate_cosine_of(model_id) == expected


def test_serve_applies_the_models_threshold_unless_configured(
    test_media_dir: Path, tmp_path: Path
) -> None:
    """Real photos with the demo model: 0.95 calls unrelated photos reposts; 0.985 does not."""
    photos = sorted((test_media_dir / "images").glob("*.jpg"))[:40]

    def near_duplicates(**overrides: object) -> int:
        running = serve_demo(tmp_path / f"data-{len(overrides)}", topics_top_k=0, **overrides)
        try:
            with MediarecClient(f"127.0.0.1:{running.port}") as client:
                results = [
                    client.index_file(p, MediaMetadata(media_id=p.name)) for p in photos
                ]
        finally:
            running.stop(0)
        return sum(1 for r in results if r.near_duplicate_of)

    assert near_duplicates(near_duplicate_cosine=0.95) > 0  # the threshold of real CLIP models
    assert near_duplicates() == 0  # the demo model's own 0.985


def test_hub_weights_fail_within_5_s_offline_in_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "ENDPOINT", CLOSED_HUB)
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)  # whatever the machine sets
    encoder = create_encoder(DEFAULT_MODEL_ID, EncoderOptions(cache_dir=tmp_path / "empty-cache"))
    started = time.monotonic()
    with pytest.raises(WeightsUnavailableError) as failure:
        encoder.load()
    assert time.monotonic() - started < 5
    message = str(failure.value)
    assert "\n" not in message and "unreachable" in message
    assert "mediarec-demo" in message and "openclip-dir:DIR" in message
    assert constants.HF_HUB_OFFLINE is False  # restored for whatever loads next


def test_serve_with_unreachable_hub_exits_with_one_line(tmp_path: Path) -> None:
    env = {"HF_ENDPOINT": CLOSED_HUB, "HF_HOME": str(tmp_path / "hf"), "HF_HUB_OFFLINE": "0"}
    args = ["serve", "--model-id", DEFAULT_MODEL_ID, "--data-dir", str(tmp_path / "d"),
            "--port", "0", "--log-level", "ERROR"]  # fmt: skip
    code, _, err, elapsed = run_cli(*args, env=env)
    assert code == 1
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("mediarec serve: Could not load weights")
    assert elapsed < 60  # torch's import included; the hub's own retries took a minute more


def test_serving_is_logged_only_once_the_model_is_ready(tmp_path: Path) -> None:
    args = [sys.executable, "-m", "mediarec.server.cli", "serve", "--model-id", DEMO_MODEL_ID,
            "--data-dir", str(tmp_path / "d"), "--port", "0", "--topics-top-k", "0"]  # fmt: skip
    child = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                             cwd=ROOT)  # fmt: skip
    assert child.stdout is not None
    lines: list[str] = []
    watchdog = threading.Timer(180, child.kill)  # a child that never serves fails, not hangs
    watchdog.start()
    try:
        for line in child.stdout:
            lines.append(line)
            if line.startswith("mediarec serving on "):
                break
    finally:
        watchdog.cancel()
        child.send_signal(signal.SIGTERM)
        child.wait(timeout=60)
    text = "".join(lines)

    def at(fragment: str) -> int:
        assert fragment in text, text
        return text.index(fragment)

    loaded = at(f"encoder {DEMO_MODEL_ID} ready")
    assert at("health is NOT_SERVING until") < loaded
    assert loaded < at(f"model {DEMO_MODEL_ID} and the store are ready")


def test_a_port_in_use_is_one_line_and_exit_2(tmp_path: Path) -> None:
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        code, _, err, _ = run_cli(
            "serve", "--model-id", DEMO_MODEL_ID, "--data-dir", str(tmp_path / "d"),
            "--host", "127.0.0.1", "--port", str(port), "--log-level", "ERROR",
        )  # fmt: skip
    assert code == 2
    assert err.strip() == (
        f"mediarec serve: port {port} on 127.0.0.1 is in use (another mediarec serve?); "
        "stop that process, or choose another --port"
    )
