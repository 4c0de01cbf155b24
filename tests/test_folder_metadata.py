"""Where a folder's metadata comes from, end to end through ``mediarec index``: manifests
(JSON, JSONL, CSV, and the real ``images.json``), sidecars over manifests, EXIF time and place,
the mtime fallback, and what the run reports about files it did not read.

Each test runs the real CLI with the bundled demo model into a real embedded store, then reads
the stored items back through the service's own search layer.
"""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime
from pathlib import Path

import pytest
from PIL import ExifTags, Image
from PIL.TiffImagePlugin import IFDRational

from mediarec.encoders.registry import BUNDLED_WEIGHTS_DIR, DEMO_MODEL_ID
from mediarec.encoders.synthetic.world import WorldGenerator
from mediarec.server.cli import main
from mediarec.server.config import load_settings
from mediarec.server.indexing.report import default_report_path
from mediarec.server.media import Location, StoredItem
from mediarec.server.runtime import open_deps

MTIME = 1_600_000_000
TAKEN = datetime(2019, 7, 14, 16, 30, 5, tzinfo=UTC)


@pytest.fixture(scope="module", autouse=True)
def _demo_model() -> None:
    if not (BUNDLED_WEIGHTS_DIR / DEMO_MODEL_ID / "open_clip_model.safetensors").is_file():
        pytest.skip("the bundled demo model's weights are missing")


def index(folder: Path, data_dir: Path, *extra: str) -> int:
    flags = ["--model-id", DEMO_MODEL_ID, "--data-dir", str(data_dir), "--topics-top-k", "0"]
    return main(["index", str(folder), "--no-progress", *flags, *extra])


def stored(data_dir: Path) -> dict[str, StoredItem]:
    """Every stored item by media id, read through the service's search layer."""
    settings = load_settings(
        {"model_id": DEMO_MODEL_ID, "data_dir": str(data_dir), "topics_top_k": 0}, {}, None
    )
    deps = open_deps(settings)
    try:
        return {media_id: deps.search.get(media_id) for media_id in deps.store.iter_ids()}
    finally:
        deps.close()


def photo(path: Path, seed: int, exif: Image.Exif | None = None) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    picture = WorldGenerator(seed, image_size=64).post().image
    picture.save(path, quality=90, **({"exif": exif} if exif is not None else {}))


def camera_exif() -> Image.Exif:
    """What a phone writes: local time with its offset, and GPS in degrees/minutes/seconds."""
    exif = Image.Exif()
    details = exif.get_ifd(ExifTags.IFD.Exif)
    details[0x9003] = "2019:07:14 18:30:05"  # DateTimeOriginal, local time
    details[0x9011] = "+02:00"  # OffsetTimeOriginal
    gps = exif.get_ifd(ExifTags.IFD.GPSInfo)
    gps[1], gps[3] = "N", "W"
    gps[2] = (IFDRational(40), IFDRational(26), IFDRational(4620, 100))  # 40.4462 N
    gps[4] = (IFDRational(3), IFDRational(42), IFDRational(3960, 100))  # 3.7110 W
    return exif


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    root = tmp_path / "library"
    for seed, name in enumerate(("a.jpg", "b.jpg", "sub/c.jpg", "e.jpg")):
        photo(root / name, seed)
    photo(root / "d.jpg", 9, camera_exif())
    (root / "manifest.jsonl").write_text(
        "\n".join(
            json.dumps(record)
            for record in (
                {"path": "a.jpg", "caption": "from the jsonl", "tags": ["x", "y"],
                 "creator": "ann", "created_at": "2020-01-02T03:04:05Z"},
                {"file": "b.jpg", "caption": "jsonl says b", "creator": "bob"},
                {"path": "gone.jpg", "caption": "deleted since"},
            )
        )  # fmt: skip
        + "\n"
    )
    (root / "sub" / "list.csv").write_text(
        "path,caption,tags,creator,created_at,region,latitude,longitude\n"
        'c.jpg,"a caption, with a comma","one,two",cy,1500000000,Lisbon,38.72,-9.14\n'
    )
    (root / "b.json").write_text('{"caption": "the sidecar wins"}')
    (root / "notes.pdf").write_bytes(b"%PDF")
    os.utime(root / "e.jpg", (MTIME, MTIME))
    return root


def test_manifests_sidecars_exif_and_mtime_each_fill_what_they_know(
    folder: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data_dir = tmp_path / "data"
    csv_manifest = folder / "sub" / "list.csv"  # not at the top: named with --manifest
    assert index(folder, data_dir, "--manifest", str(csv_manifest)) == 0
    out = capsys.readouterr().out
    assert "metadata from 2 manifest(s)" in out
    assert "manifest record without a file: gone.jpg: no such media file" in out
    assert "skipped 1 file by extension (1 .pdf)" in out

    items = stored(data_dir)
    assert sorted(items) == ["a.jpg", "b.jpg", "d.jpg", "e.jpg", "sub/c.jpg"]
    a, b, c, d, e = (items[m] for m in ("a.jpg", "b.jpg", "sub/c.jpg", "d.jpg", "e.jpg"))
    assert a and b and c and d and e
    assert (a.metadata.caption, a.metadata.tags, a.metadata.creator_id) == (
        "from the jsonl", ("x", "y"), "ann",
    )  # fmt: skip
    assert a.metadata.created_at == int(datetime(2020, 1, 2, 3, 4, 5, tzinfo=UTC).timestamp())
    # The sidecar overrides the manifest's caption; the manifest's other fields stay.
    assert (b.metadata.caption, b.metadata.creator_id) == ("the sidecar wins", "bob")
    assert (c.metadata.caption, c.metadata.tags) == ("a caption, with a comma", ("one", "two"))
    assert c.metadata.created_at == 1_500_000_000
    assert c.metadata.location == Location("Lisbon", 38.72, -9.14)
    # EXIF: the moment it was taken (with its UTC offset) and a coarse place.
    assert d.metadata.created_at == int(TAKEN.timestamp())
    assert d.metadata.location == Location("", 40.45, -3.71)
    assert e.metadata.created_at == MTIME  # nothing else said when: the file's mtime

    report = json.loads(default_report_path(data_dir, folder).read_text())
    assert report["skipped_by_extension"] == {".pdf": 1}
    assert report["unmatched_manifest_records"] == ["gone.jpg: no such media file"]
    assert len(report["manifests"]) == 2


def test_a_named_manifest_wins_over_a_found_one_and_symlinks_keep_their_names(
    tmp_path: Path,
) -> None:
    root = tmp_path / "library"
    photo(root / "a.jpg", 1)
    photo(tmp_path / "elsewhere" / "real.jpg", 2)
    (root / "link.jpg").symlink_to(tmp_path / "elsewhere" / "real.jpg")
    (root / "found.jsonl").write_text(
        '{"path": "a.jpg", "caption": "found", "tags": ["kept"]}\n'
        '{"path": "link.jpg", "caption": "through the link"}\n'
    )
    named = tmp_path / "named.csv"
    named.write_text("path,caption\nlibrary/a.jpg,named\n")
    data_dir = tmp_path / "data"
    assert index(root, data_dir, "--manifest", str(named)) == 0
    items = stored(data_dir)
    assert items["a.jpg"].metadata.caption == "named"  # the later, named manifest wins
    assert items["link.jpg"].metadata.caption == "through the link"


def test_a_found_file_that_is_not_a_usable_manifest_is_skipped_with_a_warning(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = tmp_path / "library"
    photo(root / "a.jpg", 1)
    (root / "list.jsonl").write_text('{"path": "a.jpg", "caption": "ok"}\n{"path": 3}\n')
    assert index(root, tmp_path / "data") == 0
    assert "skipping list.jsonl, not a usable manifest" in capsys.readouterr().err
    assert stored(tmp_path / "data")["a.jpg"].metadata.caption == ""


@pytest.mark.parametrize(
    ("name", "content", "named"),
    [
        ("m.jsonl", '{"path": "a.jpg"}\n{"path": "b.jpg", "tags": 7}\n', "m.jsonl line 2"),
        ("m.json", '[{"path": "a.jpg", "created_at": "soon"}]', "m.json entry 1"),
        ("m.csv", "path,latitude\na.jpg,north\n", "m.csv line 2"),
        ("m.jsonl", '{"path": "a.jpg"}\n{"caption": "which file?"}\n', "m.jsonl line 2"),
    ],
)
def test_a_bad_manifest_stops_the_run_with_one_line_naming_the_record(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], name: str, content: str, named: str
) -> None:
    root = tmp_path / "library"
    photo(root / "a.jpg", 1)
    (root / name).write_text(content)
    assert index(root, tmp_path / "data", "--manifest", str(root / name)) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and named in err
    assert not (tmp_path / "data").exists()  # refused before the store was opened


def test_a_missing_manifest_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    photo(tmp_path / "lib" / "a.jpg", 1)
    assert index(tmp_path / "lib", tmp_path / "data", "--manifest", str(tmp_path / "no.csv")) == 2
    assert "no.csv does not exist" in capsys.readouterr().err


def test_a_folder_without_media_says_what_it_skipped_and_what_it_reads(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = tmp_path / "docs"
    root.mkdir()
    (root / "readme.txt").write_text("no pictures here")
    (root / "scan.heic").write_bytes(b"\0")
    assert index(root, tmp_path / "data") == 0
    out = capsys.readouterr().out
    assert "0 of 0 files" in out
    assert "skipped 2 files by extension (1 .heic, 1 .txt); reads .bmp" in out
    assert ".jpg" in out and ".mp4" in out


def test_the_real_images_json_gives_every_photo_its_first_caption(
    test_media_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data_dir = tmp_path / "data"
    assert index(test_media_dir, data_dir) == 0
    out = capsys.readouterr().out
    assert "metadata from 1 manifest(s)" in out and "images.json" in out
    entries = json.loads((test_media_dir / "images.json").read_text())
    items = stored(data_dir)
    for entry in entries:
        item = items.get(entry["file"])
        assert item is not None, entry["file"]
        assert item.metadata.caption == entry["captions"][0]
    assert not any(test_media_dir.glob(".mediarec*")), "nothing is written into the folder"
