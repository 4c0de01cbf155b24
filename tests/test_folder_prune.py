"""``mediarec index --prune``: items whose files are gone leave the store, listed first with
``--dry-run``, and refused without ``--force`` when the folder is missing or too much would go.
Through the real CLI into the embedded store, and through a real server (ListMedia)."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from mediarec.client import MediarecClient
from mediarec.encoders.registry import BUNDLED_WEIGHTS_DIR, DEMO_MODEL_ID
from mediarec.encoders.synthetic.world import WorldGenerator
from mediarec.server.cli import main
from tests.servers import serve_demo

PHOTOS = 10


@pytest.fixture(scope="module", autouse=True)
def _demo_model() -> None:
    if not (BUNDLED_WEIGHTS_DIR / DEMO_MODEL_ID / "open_clip_model.safetensors").is_file():
        pytest.skip("the bundled demo model's weights are missing")


def album(folder: Path, seed: int = 0) -> Path:
    folder.mkdir(parents=True)
    for i in range(PHOTOS):
        picture = WorldGenerator(seed * 100 + i, image_size=64).post().image
        picture.save(folder / f"p{i}.jpg", quality=90)
    return folder


@pytest.fixture
def library(tmp_path: Path) -> Path:
    return album(tmp_path / "library")


class Cli:
    """``mediarec index`` against one store: embedded (local flags) or a running server."""

    def __init__(self, where: list[str], capsys: pytest.CaptureFixture[str]) -> None:
        self._where = where
        self._capsys = capsys

    def index(self, folder: Path, *extra: str) -> tuple[int, str, str]:
        args = ["index", str(folder), "--no-progress", "--topics-top-k", "0", *self._where]
        code = main([*args, *extra])
        captured = self._capsys.readouterr()
        return code, captured.out, captured.err


@pytest.fixture
def served(tmp_path: Path) -> Iterator[str]:
    running = serve_demo(tmp_path / "served", topics_top_k=0)
    try:
        yield f"127.0.0.1:{running.port}"
    finally:
        running.stop(0)


@pytest.fixture(params=["local", "server"])
def cli(
    request: pytest.FixtureRequest, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> Cli:
    reports = ["--data-dir", str(tmp_path / "data")]
    if request.param == "local":
        return Cli(["--model-id", DEMO_MODEL_ID, *reports], capsys)
    return Cli(["--server", request.getfixturevalue("served"), *reports], capsys)


def test_dry_run_lists_then_prune_removes_only_what_is_gone(
    cli: Cli, library: Path, tmp_path: Path
) -> None:
    assert cli.index(library)[0] == 0
    (library / "p3.jpg").unlink()
    code, out, _ = cli.index(library, "--prune", "--dry-run")
    assert code == 0
    assert "would remove 1 of the 10 items" in out and "p3.jpg" in out
    code, out, _ = cli.index(library, "--prune", "--dry-run")  # the dry run changed nothing
    assert "would remove 1 of the 10 items" in out
    code, out, _ = cli.index(library, "--prune")
    assert code == 0 and "pruned 1 item whose files are gone" in out
    code, out, _ = cli.index(library, "--prune", "--dry-run")
    assert "would remove 0 of the 9 items" in out


def test_pruning_over_a_fifth_or_a_missing_folder_needs_force(
    cli: Cli, library: Path, tmp_path: Path
) -> None:
    assert cli.index(library)[0] == 0
    for i in range(3):
        (library / f"p{i}.jpg").unlink()
    code, out, err = cli.index(library, "--prune")
    assert code == 1 and "pruned" not in out
    assert "--prune left everything in place: 3 of the folder's 10 items would go (30%, " \
        "over 20%)" in err and "--force" in err  # fmt: skip
    dry = cli.index(library, "--prune", "--dry-run")[1]
    assert "would remove 3 of the 10 items" in dry and "without --force" in dry
    code, out, _ = cli.index(library, "--prune", "--force")
    assert code == 0 and "pruned 3 items" in out

    moved = tmp_path / "unmounted"
    shutil.move(library, moved)
    code, _, err = cli.index(library, "--prune")
    assert code == 2 and "is not a folder: the folder is missing" in err and "--force" in err
    code, _, err = cli.index(library)  # without --prune a missing folder is simply an error
    assert code == 2 and "is not a folder" in err
    code, out, _ = cli.index(library, "--prune", "--force")
    assert code == 0 and "pruned 7 items" in out


def test_the_share_that_would_go_counts_the_files_this_run_adds(
    cli: Cli, tmp_path: Path
) -> None:
    """4 stored, 1 deleted and 6 added: 1 of 10 goes, under a fifth, so no --force."""
    small = tmp_path / "small"
    small.mkdir()
    album(tmp_path / "source", seed=3)
    for i in range(4):
        shutil.copy(tmp_path / "source" / f"p{i}.jpg", small / f"p{i}.jpg")
    assert cli.index(small)[0] == 0
    (small / "p0.jpg").unlink()
    for i in range(4, 10):
        shutil.copy(tmp_path / "source" / f"p{i}.jpg", small / f"p{i}.jpg")
    code, out, _ = cli.index(small, "--prune")
    assert code == 0 and "6 new" in out and "pruned 1 item whose" in out


def test_prune_of_a_mistyped_path_is_refused(cli: Cli, tmp_path: Path) -> None:
    code, _, err = cli.index(tmp_path / "no-such-folder", "--prune", "--force")
    assert code == 2 and "no stored item comes from it" in err


def test_prune_leaves_other_folders_alone_even_with_a_common_prefix(
    cli: Cli, tmp_path: Path
) -> None:
    """``/x/library`` must not claim the items of ``/x/library2``."""
    first = album(tmp_path / "library", seed=1)
    second = album(tmp_path / "library2", seed=2)
    assert cli.index(first)[0] == 0
    assert cli.index(second, "--id-prefix", "second/")[0] == 0
    (second / "p0.jpg").unlink()
    code, out, _ = cli.index(first, "--prune", "--dry-run")
    assert code == 0 and "would remove 0 of the 10 items" in out


def test_dry_run_without_prune_is_refused(
    library: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["index", str(library), "--dry-run", "--data-dir", str(tmp_path / "d")]) == 2
    assert "add --prune" in capsys.readouterr().err


def test_list_media_streams_every_source_under_a_prefix(
    served: str, library: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cli = Cli(["--server", served, "--data-dir", str(tmp_path / "data")], capsys)
    assert cli.index(library)[0] == 0
    with MediarecClient(served) as client:
        listed = list(client.list_media(source_prefix=str(library.resolve()) + "/"))
        assert sorted(i.media_id for i in listed) == sorted(f"p{i}.jpg" for i in range(PHOTOS))
        assert all(i.source == str(library.resolve() / i.media_id) for i in listed)
        assert all(len(i.content_sha256) == 64 for i in listed)
        assert list(client.list_media(source_prefix="/nowhere/")) == []
        assert len(list(client.list_media())) == PHOTOS


class ListedStore:
    """A pure-logic SourcedStore: what prune() does with a plan, whatever the engine."""

    def __init__(self, items: dict[str, str]) -> None:
        self.items = dict(items)

    def sourced(self, prefix: str) -> list[tuple[str, str]]:
        return [(m, s) for m, s in self.items.items() if s.startswith(prefix)]

    def delete(self, media_id: str, source: str) -> bool:
        if self.items.get(media_id) != source:
            return False
        del self.items[media_id]
        return True


def test_prune_rechecks_each_file_and_id_before_deleting(tmp_path: Path) -> None:
    import threading

    from mediarec.server.indexing.prune import plan_prune, prune

    folder = tmp_path / "f"
    folder.mkdir()
    store = ListedStore({f"m{i}": str(folder / f"{i}.jpg") for i in range(5)})
    plan = plan_prune(folder, store)
    assert (plan.held, len(plan.gone)) == (5, 5) and plan.needs_force() is not None
    (folder / "0.jpg").write_bytes(b"back")  # the file came back after the plan
    store.items["m1"] = str(folder / "other.jpg")  # another file took the id since
    removed: list[str] = []
    prune(plan, store, removed, keep={"m2"})  # m2 was indexed by this run
    assert removed == ["m3", "m4"]
    assert sorted(store.items) == ["m0", "m1", "m2"]
    stopped: list[str] = []
    stop = threading.Event()
    stop.set()
    prune(plan, ListedStore(dict(store.items)), stopped, stop=stop)
    assert stopped == []
