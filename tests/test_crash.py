"""``kill -9`` of ``mediarec serve`` in the middle of event logging and of a folder index, then a
restart: no acknowledged write is lost, and resuming stores nothing twice.

Each test runs real server processes (torch and the model load each time), so they are
``slow`` and run by ``.ci/run`` after ``make test``.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from mediarec.client import Event, EventKind, EventStatus, MediarecClient, MediarecError
from mediarec.encoders.synthetic.world import WorldGenerator
from mediarec.server.config import Settings, load_settings
from tests.test_persistence import MODEL_ID, _serve_process, _stop_child

BATCH = 500
FILES = 40


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return load_settings(
        {"model_id": MODEL_ID, "data_dir": str(tmp_path / "data"), "port": 0}, {}, None
    )


def _batch(n: int) -> list[Event]:
    return [Event(event_id=f"b{n}-{i}", user_id=f"u{i % 40}", kind=EventKind.VIEW,
                  timestamp=1.0e9 + n * BATCH + i, media_id=f"m{i % 97}")
            for i in range(BATCH)]  # fmt: skip


def _wait_for(condition: object, timeout_s: float = 60.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():  # type: ignore[operator]
        if time.monotonic() > deadline:
            raise AssertionError("timed out waiting for the server to make progress")
        time.sleep(0.05)


@pytest.mark.slow
def test_kill_9_while_logging_events_loses_no_acknowledged_batch(settings: Settings) -> None:
    child, address = _serve_process(settings)
    acknowledged: list[int] = []
    sent: list[int] = []
    stop = threading.Event()

    def log_until_it_fails() -> None:
        with MediarecClient(address) as client:
            for n in range(10_000):
                if stop.is_set():
                    return
                sent.append(n)
                try:
                    client.log_events(_batch(n))
                except MediarecError:
                    return  # the server died under this batch
                acknowledged.append(n)

    logger = threading.Thread(target=log_until_it_fails)
    try:
        with MediarecClient(address) as client:
            client.wait_until_serving(timeout_s=60)
        logger.start()
        _wait_for(lambda: len(acknowledged) >= 5)
    finally:
        _stop_child(child, signal.SIGKILL)  # mid-batch: the logger never pauses
        stop.set()
        logger.join(timeout=60)
    assert len(acknowledged) >= 5

    child, address = _serve_process(settings)  # from the killed process's files
    try:
        with MediarecClient(address) as client:
            client.wait_until_serving(timeout_s=60)
            for n in sent:  # resume: send every batch again
                statuses = {r.status for r in client.log_events(_batch(n)).results}
                if n in acknowledged:
                    assert statuses == {EventStatus.DUPLICATE}, f"batch {n} was lost"
                else:  # the batch the kill interrupted: all in, or none
                    assert len(statuses) == 1, f"batch {n} was stored in part"
            assert client.refresh().events_included == len(sent) * BATCH  # nothing twice
    finally:
        _stop_child(child, signal.SIGTERM)


def _index(folder: Path, address: str, report: Path | None = None) -> subprocess.Popen[str]:
    report = report or folder.parent / "report.json"
    return subprocess.Popen(
        [sys.executable, "-m", "mediarec.server.cli", "index", str(folder), "--server", address,
         "--no-progress", "--report", str(report)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, text=True,
        cwd=Path(__file__).resolve().parent.parent,
    )  # fmt: skip


@pytest.mark.slow
def test_kill_9_during_a_folder_index_keeps_what_was_stored_and_resumes_without_copies(
    settings: Settings, tmp_path: Path
) -> None:
    folder = tmp_path / "photos"
    folder.mkdir()
    for i, post in enumerate(WorldGenerator(41, image_size=160).posts(FILES)):
        post.image.save(folder / f"photo_{i:03d}.jpg", quality=90)
        (folder / f"photo_{i:03d}.txt").write_text(post.caption)

    child, address = _serve_process(settings)
    indexer = None
    report_path = tmp_path / "first-run.json"
    try:
        with MediarecClient(address) as client:
            client.wait_until_serving(timeout_s=60)
            indexer = _index(folder, address, report_path)
            _wait_for(lambda: client.server_info().media_count >= 5)
            stored_before = client.server_info().media_count
    finally:
        _stop_child(child, signal.SIGKILL)
        if indexer is not None:
            indexer.wait(timeout=120)
    assert stored_before < FILES, "the index finished before the kill; nothing was tested"

    # The cut-short run's report accounts for everything the server stored: each stored file
    # was acknowledged (created) or still in flight (unknown), never "not processed".
    counts = json.loads(report_path.read_text())["counts"]
    child, address = _serve_process(settings)
    try:
        with MediarecClient(address) as client:
            client.wait_until_serving(timeout_s=60)
            stored = client.server_info().media_count
            assert stored >= stored_before  # nothing stored was lost
            assert counts["created"] <= stored <= counts["created"] + counts["unknown"]
            assert _index(folder, address).wait(timeout=300) == 0  # resume
            info = client.server_info()
            assert info.media_count == FILES  # every file once: no copies under other ids
    finally:
        _stop_child(child, signal.SIGTERM)
