"""``mediarec events import``: reading CSV, JSONL and Parquet rows, locally and via --server."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from mediarec.client import EventKind
from mediarec.client.eventfile import (
    BadRow,
    EventFileError,
    Row,
    event_from_record,
    file_format,
    parse_timestamp,
    read_events,
)
from mediarec.server.app import build_server
from mediarec.server.cli import main
from mediarec.server.config import load_settings
from mediarec.server.engagement import DATABASE_NAME
from mediarec.server.runtime import ServiceState, open_deps

MODEL_ID = "mediarec-demo"
T0 = 1_700_000_000.0


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (T0, T0),
        (800_000_000, 800_000_000.0),
        ("1700000000.5", T0 + 0.5),
        ("2023-11-14T22:13:20Z", T0),
        ("2023-11-14T22:13:20", T0),  # naive: UTC
        ("2023-11-14T23:13:20+01:00", T0),
        (datetime(2023, 11, 14, 22, 13, 20, tzinfo=UTC), T0),
    ],
)
def test_timestamps_are_unix_seconds_or_iso_times(value: object, expected: float) -> None:
    assert parse_timestamp(value) == pytest.approx(expected)


@pytest.mark.parametrize("value", ["yesterday", "", float("nan"), "2023-13-40"])
def test_unreadable_timestamps_raise_one_sentence(value: object) -> None:
    with pytest.raises(ValueError, match=r"\.$"):
        parse_timestamp(value)


@pytest.mark.parametrize(
    ("record", "error"),
    [
        ({"user_id": "u", "kind": "like", "timestamp": T0}, "event_id"),
        ({"event_id": "e", "user_id": "u", "kind": "poke", "timestamp": T0}, "unknown"),
        ({"event_id": "e", "user_id": "u", "kind": "view", "timestamp": T0, "dwell_ms": "x"},
         "dwell_ms"),
        ({"event_id": "e", "user_id": "u", "kind": "view", "timestamp": T0, "local_hour": 2.5},
         "whole number"),
    ],
    ids=["no-event-id", "unknown-kind", "bad-dwell", "fractional-hour"],
)
def test_unreadable_rows_name_the_problem(record: dict[str, object], error: str) -> None:
    with pytest.raises(ValueError, match=error):
        event_from_record(record)


def test_a_full_row_keeps_every_field() -> None:
    event = event_from_record(
        {
            "event_id": "e1", "user_id": "u1", "kind": "Profile-Visit", "timestamp": "1700000000",
            "creator_id": "c1", "dwell_ms": "1200", "watch_fraction": "0.5", "device": "ios",
            "local_hour": "21", "region": "FR", "request_id": "r1", "media_id": "",
        }
    )  # fmt: skip
    assert event.kind is EventKind.PROFILE_VISIT and event.creator_id == "c1"
    assert (event.dwell_ms, event.watch_fraction, event.request_id) == (1200, 0.5, "r1")
    assert event.context is not None and event.context.local_hour == 21
    assert event.context.location is not None and event.context.location.region == "FR"


def test_the_format_comes_from_the_suffix_or_is_named() -> None:
    assert file_format(Path("a.CSV")) == "csv"
    assert file_format(Path("a.ndjson")) == "jsonl"
    assert file_format(Path("a.txt"), "parquet") == "parquet"
    with pytest.raises(EventFileError, match="--format"):
        file_format(Path("a.txt"))


CSV = """event_id,user_id,kind,timestamp,media_id,creator_id
e1,u1,like,1700000000,m1,
e2,u1,view,2023-11-14T22:13:20Z,m2,
e3,u2,follow,1700000100,,c9
e4,u2,like,last tuesday,m1,
e5,u2,like,1700000200,,
"""


def _stored(data_dir: Path) -> list[tuple[str, str]]:
    with sqlite3.connect(data_dir / DATABASE_NAME) as db:
        return db.execute("SELECT event_id, kind FROM events ORDER BY event_id").fetchall()


def test_a_csv_imports_locally_and_reports_bad_rows_by_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "history.csv"
    path.write_text(CSV)
    data_dir, report = tmp_path / "data", tmp_path / "rejected.csv"
    args = ["events", "import", str(path), "--model-id", MODEL_ID, "--data-dir", str(data_dir)]
    assert main([*args, "--report", str(report)]) == 1  # two rows are rejected
    out, err = capsys.readouterr()
    assert "3 stored, 0 duplicates, 2 rejected" in out
    assert "line 5 (e4)" in err and "line 6 (e5)" in err  # the header is line 1
    reported = [line.split(",")[:2] for line in report.read_text().splitlines()]
    assert reported == [["line", "event_id"], ["5", "e4"], ["6", "e5"]]
    assert [row[0] for row in _stored(data_dir)] == ["e1", "e2", "e3"]
    assert main(args) == 1  # again: the good rows are duplicates, nothing is stored twice
    assert "0 stored, 3 duplicates, 2 rejected" in capsys.readouterr().out
    assert len(_stored(data_dir)) == 3


@pytest.fixture
def server(tmp_path: Path) -> Iterator[str]:
    settings = load_settings(
        {"model_id": MODEL_ID, "data_dir": str(tmp_path / "served"), "port": 0}, {}, None
    )
    deps = open_deps(settings)
    running = build_server(settings, ServiceState(deps))
    try:
        yield f"127.0.0.1:{running.port}"
    finally:
        running.stop(0)


def test_jsonl_and_parquet_import_through_a_server(
    server: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    rows = [
        {"event_id": f"j{i}", "user_id": "u1", "kind": "like", "timestamp": T0 + i,
         "media_id": f"m{i}"}
        for i in range(7)
    ]  # fmt: skip
    jsonl = tmp_path / "events.jsonl"
    jsonl.write_text("\n".join(json.dumps(r) for r in rows) + "\nnot json\n")
    assert main(["events", "import", str(jsonl), "--server", server]) == 1
    out, err = capsys.readouterr()
    assert "7 stored, 0 duplicates, 1 rejected" in out and "line 8" in err

    parquet = tmp_path / "events.parquet"
    pq.write_table(pa.Table.from_pylist([{**r, "event_id": f"p{r['event_id']}"} for r in rows]),
                   parquet)  # fmt: skip
    assert main(["events", "import", str(parquet), "--server", server]) == 0
    assert "7 stored, 0 duplicates, 0 rejected" in capsys.readouterr().out


def test_reading_is_lazy_and_keeps_file_order(tmp_path: Path) -> None:
    path = tmp_path / "h.csv"
    path.write_text(CSV)
    rows = read_events(path)
    first = next(rows)
    assert isinstance(first, Row) and first.line == 2
    rest = list(rows)
    assert [type(r) for r in rest] == [Row, Row, BadRow, Row]
    # e5 is readable (a like without media_id is the server's rule to refuse), e4 is not
    assert isinstance(rest[2], BadRow) and rest[2].line == 5


def test_a_file_that_cannot_be_read_fails_before_anything_is_sent(
    server: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    unknown = tmp_path / "events.txt"
    unknown.write_text(CSV)
    assert main(["events", "import", str(unknown), "--server", server]) == 1
    assert "--format" in capsys.readouterr().err
    headerless = tmp_path / "empty.csv"
    headerless.write_text("")
    assert main(["events", "import", str(headerless), "--server", server]) == 1
    assert "no header" in capsys.readouterr().err


def test_an_error_while_reading_events_cancels_the_import_and_is_raised(server: str) -> None:
    from mediarec.client import Event, MediarecClient

    def events() -> Iterator[Event]:
        yield Event("g1", "u1", EventKind.LIKE, T0, "m1")
        raise EventFileError("events.parquet cannot be read past row 1")

    with MediarecClient(server) as client, pytest.raises(EventFileError, match="past row 1"):
        client.import_events(events(), chunk_events=1)
