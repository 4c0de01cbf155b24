"""`mediarec recommend`, `interests` and `forget` against a real server on 127.0.0.1:0."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from mediarec.client import Embeddings, Event, EventKind, MediaMetadata, MediarecClient, MediaType
from mediarec.server.cli import main
from tests.servers import serve_demo

ITEMS = 8


@pytest.fixture(scope="module")
def address(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    server = serve_demo(tmp_path_factory.mktemp("users") / "data")
    address = f"127.0.0.1:{server.port}"
    rng = np.random.default_rng(0)
    try:
        with MediarecClient(address) as client:
            info = client.server_info()
            for i in range(ITEMS):
                vector = rng.normal(size=info.dims)
                client.index_embeddings(
                    MediaMetadata(media_id=f"p{i}", caption=f"post {i}", creator_id=f"c{i}",
                                  media_type=MediaType.TEXT),
                    Embeddings(model_id=info.model_id,
                               caption=(vector / np.linalg.norm(vector)).tolist()),
                )  # fmt: skip
            client.log_events([
                Event(event_id=f"e{i}", user_id=f"u{i % 3}", kind=EventKind.LIKE,
                      timestamp=1.0e9 + i, media_id=f"p{i}")
                for i in range(ITEMS)
            ])  # fmt: skip
            client.refresh()
        yield address
    finally:
        server.stop(0)


def test_recommend_prints_a_table_with_reasons_and_the_breakdown(
    address: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["recommend", "u0", "--server", address, "-k", "3", "--explain"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split()[:4] == ["rank", "score", "media_id", "type"]
    rows = [line for line in lines[1:] if line.split()[0].isdigit()]
    assert len(rows) == 3
    assert all(line.split()[2].startswith("p") for line in rows)
    breakdowns = [line for line in lines[1:] if not line.split()[0].isdigit()]
    assert len(breakdowns) == 3 and all("+" in b or "-" in b for b in breakdowns)


def test_recommend_is_a_dry_run_unless_committed(
    address: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["recommend", "u1", "--server", address, "-k", "4", "--json"]) == 0
    first = json.loads(capsys.readouterr().out)
    assert main(["recommend", "u1", "--server", address, "-k", "4", "--json"]) == 0
    again = json.loads(capsys.readouterr().out)
    assert [r["media_id"] for r in first] == [r["media_id"] for r in again]  # nothing logged
    assert {"media_id", "score", "reasons", "score_breakdown"} <= set(first[0])


def test_interests_and_forget_report_what_they_did(
    address: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["interests", "u2", "hiking, street food", "--server", address]) == 0
    assert "hiking" in capsys.readouterr().out
    assert main(["forget", "u2", "--server", address]) == 0
    out = capsys.readouterr().out
    assert out.startswith("forgot u2: ") and " events" in out and "1 interests" in out


def test_no_server_is_one_line_that_says_how_to_start_one(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["recommend", "u0", "--server", "127.0.0.1:1"]) == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert "no server answered at 127.0.0.1:1" in err and "mediarec serve" in err


def test_mediarec_without_arguments_prints_its_help(capsys: pytest.CaptureFixture[str]) -> None:
    assert main([]) == 0
    out = capsys.readouterr().out
    assert out.startswith("usage: mediarec")
    for command in ("serve", "index", "search", "events", "recommend", "interests", "forget"):
        assert command in out


def test_a_missing_or_wrong_key_names_the_flag_that_fixes_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("MEDIAREC_API_KEY", raising=False)
    server = serve_demo(tmp_path / "data", api_keys=["right-key"])
    try:
        target = ["--server", f"127.0.0.1:{server.port}"]
        assert main(["recommend", "u0", *target]) == 1
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and "--api-key KEY" in err and "MEDIAREC_API_KEY" in err
        assert main(["forget", "u0", *target, "--api-key", "wrong"]) == 1
        assert "refused this API key" in capsys.readouterr().err
        assert main(["forget", "u0", *target, "--api-key", "right-key"]) == 0
    finally:
        server.stop(0)


def test_output_cut_short_by_its_reader_is_no_error(
    address: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    import os
    import sys

    read, write = os.pipe()
    os.close(read)  # `| head` that has read enough
    out = os.fdopen(os.dup(write), "w")
    os.close(write)
    monkeypatch.setattr(sys, "stdout", out)
    saved = os.dup(1)
    os.dup2(out.fileno(), 1)
    try:
        assert main(["recommend", "u0", "--server", address, "--json"]) == 0
    finally:
        os.dup2(saved, 1)
        os.close(saved)
