"""Media ids of folder files: stable, prefixed on request, and never taken over by a different
file, through the real CLI into the embedded store and through a real server."""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from mediarec.client import MediarecClient
from mediarec.encoders.registry import BUNDLED_WEIGHTS_DIR, DEMO_MODEL_ID
from mediarec.encoders.synthetic.world import WorldGenerator
from mediarec.server.cli import main
from mediarec.server.indexing.report import default_report_path
from tests.servers import serve_demo


@pytest.fixture(scope="module", autouse=True)
def _demo_model() -> None:
    if not (BUNDLED_WEIGHTS_DIR / DEMO_MODEL_ID / "open_clip_model.safetensors").is_file():
        pytest.skip("the bundled demo model's weights are missing")


def photo(path: Path, seed: int) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    WorldGenerator(seed, image_size=64).post().image.save(path, quality=90)
    return path


@pytest.fixture
def albums(tmp_path: Path) -> tuple[Path, Path]:
    """Two cameras' folders whose files share names but not pictures."""
    a, b = tmp_path / "colA", tmp_path / "colB"
    for i in range(2):
        photo(a / f"IMG_000{i}.jpg", i)
        photo(b / f"IMG_000{i}.jpg", 10 + i)
    return a, b


def index(folder: Path, *where: str) -> dict[str, dict[str, str]]:
    """Run ``mediarec index`` and return its report's results by path (exit code under "")."""
    code = main(["index", str(folder), "--no-progress", "--topics-top-k", "0", *where])
    if "--server" in where:  # through a server, reports go to this user's state folder
        reports = Path(os.environ["XDG_STATE_HOME"]) / "mediarec"
    else:
        reports = Path(where[where.index("--data-dir") + 1])
    report = json.loads(default_report_path(reports, folder).read_text())
    return {"": {"code": str(code)}} | {r["path"]: r for r in report["results"]}


def status(results: dict[str, dict[str, str]]) -> dict[str, str]:
    return {path: r["status"] for path, r in results.items() if path}


def test_another_folders_file_never_takes_over_an_id(
    albums: tuple[Path, Path], tmp_path: Path
) -> None:
    a, b = albums
    local = ["--model-id", DEMO_MODEL_ID, "--data-dir", str(tmp_path / "data")]
    assert status(index(a, *local)) == {"IMG_0000.jpg": "created", "IMG_0001.jpg": "created"}
    for _ in range(2):  # refused in this run and in any later one
        results = index(b, *local, "--strict")
        assert results[""]["code"] == "1"
        assert status(results) == {"IMG_0000.jpg": "failed", "IMG_0001.jpg": "failed"}
        reason = results["IMG_0000.jpg"]["reason"]
        assert str(a / "IMG_0000.jpg") in reason and "--id-prefix" in reason
    # colA's items are untouched: a run over it changes nothing.
    assert set(status(index(a, *local)).values()) == {"unchanged"}
    prefixed = index(b, *local, "--id-prefix", "colB/")
    assert {r["media_id"] for p, r in prefixed.items() if p} == {
        "colB/IMG_0000.jpg",
        "colB/IMG_0001.jpg",
    }
    assert set(status(prefixed).values()) == {"created"}


def test_a_moved_file_keeps_its_id_and_records_its_new_place(
    albums: tuple[Path, Path], tmp_path: Path
) -> None:
    a, _ = albums
    local = ["--model-id", DEMO_MODEL_ID, "--data-dir", str(tmp_path / "data")]
    index(a, *local)
    moved = tmp_path / "renamed"
    shutil.move(a, moved)
    assert status(index(moved, *local)) == {"IMG_0000.jpg": "updated", "IMG_0001.jpg": "updated"}
    assert set(status(index(moved, *local)).values()) == {"unchanged"}


def test_an_identical_copy_elsewhere_is_another_item_not_a_move(
    albums: tuple[Path, Path], tmp_path: Path
) -> None:
    """Two copies of one photo in two folders stay two items; the second needs its own ids."""
    a, _ = albums
    copy = tmp_path / "copy"
    shutil.copytree(a, copy)
    local = ["--model-id", DEMO_MODEL_ID, "--data-dir", str(tmp_path / "data")]
    index(a, *local)
    assert set(status(index(copy, *local)).values()) == {"failed"}
    assert set(status(index(a, *local)).values()) == {"unchanged"}  # the original kept its id


@pytest.fixture
def server(tmp_path: Path) -> Iterator[str]:
    running = serve_demo(tmp_path / "served", topics_top_k=0)
    try:
        yield f"127.0.0.1:{running.port}"
    finally:
        running.stop(0)


def test_through_a_server_ids_are_guarded_and_sources_are_returned(
    albums: tuple[Path, Path], tmp_path: Path, server: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    a, b = albums
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    remote = ["--server", server]
    assert set(status(index(a, *remote)).values()) == {"created"}
    results = index(b, *remote)
    assert set(status(results).values()) == {"failed"}
    assert "already holds" in results["IMG_0001.jpg"]["reason"]
    with MediarecClient(server) as client:
        item = client.get_media("IMG_0001.jpg")
        assert item.metadata.source == str((a / "IMG_0001.jpg").resolve())


def test_an_invalid_id_prefix_is_one_line_and_exit_2(
    albums: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    args = ["index", str(albums[0]), "--id-prefix", "../up", "--data-dir", str(tmp_path / "d")]
    assert main(args) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "--id-prefix" in err
