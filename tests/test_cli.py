"""``mediarec index`` and ``mediarec search`` through ``mediarec.server.cli.main``, end to end
in-process.

One module fixture indexes a small sample folder into an embedded store with the CLI; the
search tests then query that store in-process, or through a real server on 127.0.0.1:0.
"""

from __future__ import annotations

import json
import shutil
import signal
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from mediarec.encoders.registry import BUNDLED_WEIGHTS_DIR, DEMO_MODEL_ID
from mediarec.encoders.synthetic.sample_folder import SampleItem, write_sample_folder
from mediarec.server.cli import main
from mediarec.server.config import load_settings
from mediarec.server.indexing.report import default_report_path
from mediarec.server.runtime import ServiceState, open_deps


@dataclass(frozen=True)
class Indexed:
    folder: Path
    items: list[SampleItem]
    flags: list[str]  # model and store flags every local command needs

    def media_id(self, item: SampleItem) -> str:
        return item.path.relative_to(self.folder).as_posix()


@dataclass(frozen=True)
class Served:
    target: str
    local_flags: list[str]  # flags that would open the server's store in-process


@pytest.fixture(scope="module")
def model_id() -> str:
    if not (BUNDLED_WEIGHTS_DIR / DEMO_MODEL_ID / "open_clip_model.safetensors").is_file():
        pytest.skip("the bundled demo model's weights are missing")
    return DEMO_MODEL_ID


@pytest.fixture(scope="module")
def indexed(model_id: str, tmp_path_factory: pytest.TempPathFactory) -> Indexed:
    folder = tmp_path_factory.mktemp("media")
    items = write_sample_folder(folder, n_photos=6)
    data_dir = tmp_path_factory.mktemp("data")
    flags = ["--model-id", model_id, "--data-dir", str(data_dir)]
    no_topics = ["--topics-top-k", "0"]  # embedding the topic vocabulary costs seconds
    assert main(["index", str(folder), "--no-progress", *no_topics, *flags]) == 0
    return Indexed(folder, items, flags)


def test_index_writes_a_report_naming_every_file(indexed: Indexed) -> None:
    data_dir = Path(indexed.flags[indexed.flags.index("--data-dir") + 1])
    report = json.loads(default_report_path(data_dir, indexed.folder).read_text())
    assert report["counts"]["created"] == len(indexed.items)
    assert report["counts"]["failed"] == 0
    assert sorted(r["media_id"] for r in report["results"]) == sorted(
        indexed.media_id(i) for i in indexed.items
    )


def test_index_of_a_missing_folder_exits_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["index", str(tmp_path / "nope"), "--data-dir", str(tmp_path / "d")]) == 2
    assert "not a folder" in capsys.readouterr().err


def _table_ids(out: str) -> list[str]:
    lines = out.strip().splitlines()
    assert lines[0].split()[:4] == ["rank", "score", "type", "media_id"]
    return [line.split()[3] for line in lines[1:]]


def test_search_text_prints_a_ranked_table(
    indexed: Indexed, capsys: pytest.CaptureFixture[str]
) -> None:
    video = next(i for i in indexed.items if i.kind == "video")
    assert main(["search", video.caption, "-k", "3", *indexed.flags]) == 0
    ids = _table_ids(capsys.readouterr().out)
    assert len(ids) == 3
    assert set(ids) <= {indexed.media_id(i) for i in indexed.items}


@pytest.mark.parametrize("through", ["local", "server"])
def test_search_filters_by_type_and_prints_json(
    indexed: Indexed, server: Served, through: str, capsys: pytest.CaptureFixture[str]
) -> None:
    video = next(i for i in indexed.items if i.kind == "video")
    # the indexed store itself is free; the server holds its own copy
    where = [*indexed.flags] if through == "local" else ["--server", server.target]
    args = ["search", video.caption, "-k", "20", "--type", "video", "--json", *where]
    assert main(args) == 0
    rows = json.loads(capsys.readouterr().out)
    assert rows and all(row["media_type"] == "video" for row in rows)
    assert {"score", "media_id", "media_type", "frame_s", "caption"} == set(rows[0])
    args = ["search", video.caption, "-k", "20", "--type", "image", "--json", *where]
    assert main(args) == 0
    assert all(row["media_type"] == "image" for row in json.loads(capsys.readouterr().out))


@pytest.mark.parametrize("match", ["captions", "pixels", "hybrid"])
def test_search_match_gives_the_same_answer_locally_and_through_a_server(
    indexed: Indexed, server: Served, match: str, capsys: pytest.CaptureFixture[str]
) -> None:
    photo = next(i for i in indexed.items if i.kind == "image" and i.caption)
    answers = []
    for where in (indexed.flags, ["--server", server.target]):
        args = ["search", photo.caption, "-k", "4", "--match", match, "--json", *where]
        assert main(args) == 0
        answers.append(json.loads(capsys.readouterr().out))
    local, served = answers
    assert [r["media_id"] for r in local] == [r["media_id"] for r in served]
    if match == "captions":  # its own caption, word for word, is the closest caption
        assert local[0]["media_id"] == indexed.media_id(photo)


def test_match_with_an_image_query_is_refused(
    indexed: Indexed, capsys: pytest.CaptureFixture[str]
) -> None:
    photo = next(i for i in indexed.items if i.kind == "image")
    args = ["search", "--image", str(photo.path), "--match", "captions", *indexed.flags]
    assert main(args) == 2
    assert "--match applies to text queries only" in capsys.readouterr().err


def test_search_for_an_unknown_id_is_one_sentence_and_exit_1(
    indexed: Indexed, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["search", "--similar", "no/such.jpg", *indexed.flags]) == 1
    captured = capsys.readouterr()
    assert "no/such.jpg" in captured.err and captured.out == ""
    assert len(captured.err.strip().splitlines()) == 1


@pytest.fixture(scope="module")
def server(indexed: Indexed, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    """A real server on 127.0.0.1:0 over a copy of the indexed store, which it holds locked."""
    from mediarec.server.app import build_server

    model_id = indexed.flags[1]
    data_dir = tmp_path_factory.mktemp("served") / "data"
    shutil.copytree(indexed.flags[3], data_dir)
    overrides = {"model_id": model_id, "data_dir": str(data_dir), "host": "127.0.0.1", "port": 0}
    settings = load_settings(overrides, {}, None)
    running = build_server(settings, ServiceState(open_deps(settings)))
    try:
        local_flags = ["--model-id", model_id, "--data-dir", str(data_dir)]
        yield Served(f"127.0.0.1:{running.port}", local_flags)
    finally:
        running.stop(0)


def test_search_by_image_through_a_server_finds_that_image_first(
    indexed: Indexed, server: Served, capsys: pytest.CaptureFixture[str]
) -> None:
    photo = indexed.items[2]
    args = ["search", "--image", str(photo.path), "-k", "2", "--server", server.target]
    assert main(args) == 0
    assert _table_ids(capsys.readouterr().out)[0] == indexed.media_id(photo)


def test_search_similar_through_a_server_leaves_the_seed_out(
    indexed: Indexed, server: Served, capsys: pytest.CaptureFixture[str]
) -> None:
    seed = indexed.media_id(indexed.items[0])
    assert main(["search", "--similar", seed, "-k", "4", "--server", server.target]) == 0
    ids = _table_ids(capsys.readouterr().out)
    assert len(ids) == 4 and seed not in ids


def test_server_errors_are_one_sentence_and_exit_1(
    server: Served, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["search", "--similar", "no/such.jpg", "--server", server.target]) == 1
    captured = capsys.readouterr()
    assert "NOT_FOUND" in captured.err and len(captured.err.strip().splitlines()) == 1


def test_local_search_on_a_store_held_by_a_server_says_so(
    server: Served, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["search", "anything", *server.local_flags]) == 2
    err = capsys.readouterr().err
    assert "in use by a running server" in err and "--server" in err


def test_serve_with_a_ranker_of_an_earlier_format_says_to_retrain_and_exits_2(
    model_id: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A model fit under other gates would score differently without a word: refused, clearly."""
    ranker = tmp_path / "ranker.json"
    ranker.write_text(json.dumps({"format": "mediarec-ranker", "version": 1,
                                  "weights": {"content": 1.0}}))
    flags = ["--model-id", model_id, "--data-dir", str(tmp_path / "data"), "--host", "127.0.0.1",
             "--port", "0", "--ranker-path", str(ranker), "--topics-top-k", "0"]
    handlers = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        assert main(["serve", *flags]) == 2
    finally:  # serve() installs its own shutdown handlers
        for sig, handler in handlers.items():
            signal.signal(sig, handler)
    err = capsys.readouterr().err.strip()
    assert err.startswith("mediarec serve:") and "train-ranker" in err
    assert len(err.splitlines()) == 1


def test_serve_on_a_store_another_server_holds_says_so_and_exits_2(
    server: Served, capsys: pytest.CaptureFixture[str]
) -> None:
    handlers = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
    assert main(["serve", *server.local_flags, "--host", "127.0.0.1", "--port", "0"]) == 2
    assert {sig: signal.getsignal(sig) for sig in handlers} == handlers  # serve() restored them
    err = capsys.readouterr().err.strip()
    assert err.startswith("mediarec serve:") and "in use by another process" in err
    assert "--server" not in err and len(err.splitlines()) == 1
