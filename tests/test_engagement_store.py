"""The SQLite engagement store: idempotence, validation, follows, privacy and durability.

Every test uses a real SQLite file under tmp_path; the crash test kills a real child process.
"""

from __future__ import annotations

import math
import signal
import sqlite3
import subprocess
import sys
import textwrap
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from mediarec.server.engagement import (
    DATABASE_NAME,
    SCHEMA_VERSION,
    SchemaVersionError,
    SqliteEngagementStore,
    open_engagement_store,
)
from mediarec.server.recommend.types import Context, Event, EventKind, ServedItem

NOW = 1_790_000_000.0  # a fixed "now" (2026-09) so tests never depend on the wall clock
REPO = Path(__file__).resolve().parent.parent


@pytest.fixture
def store(tmp_path: Path) -> Iterator[SqliteEngagementStore]:
    opened = open_engagement_store(tmp_path, clock=lambda: NOW)
    yield opened
    opened.close()


def like(event_id: str, user: str = "u1", media: str = "m1", ts: float = NOW - 60) -> Event:
    return Event(event_id=event_id, user_id=user, kind=EventKind.LIKE, timestamp=ts, media_id=media)


def follow(event_id: str, creator: str, ts: float, *, on: bool = True, user: str = "u1") -> Event:
    kind = EventKind.FOLLOW if on else EventKind.UNFOLLOW
    return Event(event_id=event_id, user_id=user, kind=kind, timestamp=ts, creator_id=creator)


def served(request_id: str, position: int, user: str = "u1", media: str = "m1") -> ServedItem:
    return ServedItem(
        request_id=request_id,
        user_id=user,
        media_id=media,
        position=position,
        score=0.5,
        propensity=0.25,
        sources=("content", "fresh"),
        features={"content": 0.4, "fresh": 0.1},
        timestamp=NOW - 30,
    )


# -- idempotence -----------------------------------------------------------------------------


def test_repeated_event_ids_are_reported_as_duplicates_and_stored_once(
    store: SqliteEngagementStore,
) -> None:
    first = store.log_events([like("e1"), like("e2"), like("e1")])
    assert [(r.event_id, r.accepted, r.duplicate) for r in first] == [
        ("e1", True, False),
        ("e2", True, False),
        ("e1", False, True),
    ]
    again = store.log_events([like("e2"), like("e3")])
    assert [(r.accepted, r.duplicate) for r in again] == [(False, True), (True, False)]
    assert [e.event_id for e in store.user_events("u1")] == ["e1", "e2", "e3"]
    assert store.event_count() == 3


def test_a_duplicate_follow_does_not_reapply_an_old_state(store: SqliteEngagementStore) -> None:
    store.log_events([follow("f1", "c1", NOW - 100), follow("f2", "c1", NOW - 50, on=False)])
    store.log_events([follow("f1", "c1", NOW - 100)])  # a client retry of the old follow
    assert store.follows("u1") == set()


# -- validation ------------------------------------------------------------------------------

BAD_EVENTS = {
    "missing event_id": Event("", "u1", EventKind.LIKE, NOW, media_id="m1"),
    "blank user_id": Event("b", "  ", EventKind.LIKE, NOW, media_id="m1"),
    "unknown kind": Event("b", "u1", "teleport", NOW, media_id="m1"),  # type: ignore[arg-type]
    "like without media_id": Event("b", "u1", EventKind.LIKE, NOW),
    "impression without media_id": Event("b", "u1", EventKind.IMPRESSION, NOW),
    "follow without creator_id": Event("b", "u1", EventKind.FOLLOW, NOW),
    "profile visit without creator_id": Event("b", "u1", EventKind.PROFILE_VISIT, NOW),
    "hide without target": Event("b", "u1", EventKind.HIDE, NOW),
    "search without query or hashtag": Event("b", "u1", EventKind.SEARCH, NOW, query="  "),
    "negative dwell": Event("b", "u1", EventKind.VIEW, NOW, media_id="m1", dwell_ms=-5),
    "NaN watch fraction": Event(
        "b", "u1", EventKind.VIEW, NOW, media_id="m1", watch_fraction=math.nan
    ),
    "negative watch fraction": Event(
        "b", "u1", EventKind.VIEW, NOW, media_id="m1", watch_fraction=-0.5
    ),
    "local hour 24": Event(
        "b", "u1", EventKind.LIKE, NOW, media_id="m1", context=Context(local_hour=24)
    ),
    "missing timestamp": Event("b", "u1", EventKind.LIKE, 0.0, media_id="m1"),
    "timestamp in milliseconds": Event("b", "u1", EventKind.LIKE, NOW * 1000, media_id="m1"),
    "timestamp before 1970": Event("b", "u1", EventKind.LIKE, -86_400.0, media_id="m1"),
    "infinite timestamp": Event("b", "u1", EventKind.LIKE, math.inf, media_id="m1"),
    "id over the length cap": Event("b" * 300, "u1", EventKind.LIKE, NOW, media_id="m1"),
}


@pytest.mark.parametrize("case", sorted(BAD_EVENTS))
def test_a_bad_event_gets_one_error_sentence_and_the_rest_of_the_batch_is_stored(
    store: SqliteEngagementStore, case: str
) -> None:
    results = store.log_events([like("good-1"), BAD_EVENTS[case], like("good-2")])
    bad = results[1]
    assert not bad.accepted and not bad.duplicate
    assert bad.error.endswith(".") and "\n" not in bad.error
    assert [r.accepted for r in (results[0], results[2])] == [True, True]
    assert [e.event_id for e in store.user_events("u1")] == ["good-1", "good-2"]


def test_valid_edge_cases_are_accepted(store: SqliteEngagementStore) -> None:
    events = [
        Event("v1", "u1", EventKind.VIEW, NOW, media_id="m1", dwell_ms=0, watch_fraction=2.5),
        Event("v2", "u1", EventKind.HIDE, NOW, creator_id="c9"),  # hide a whole creator
        Event("v3", "u1", EventKind.SEARCH, NOW, hashtag="cats"),
        Event("v4", "u1", EventKind.LIKE, NOW + 3600, media_id="m1"),  # small clock skew
        Event("v5", "u1", EventKind.LIKE, NOW, media_id="m1", context=Context(local_hour=0)),
        Event("v6", "u1", EventKind.LIKE, 800_000_000.0, media_id="m2"),  # 1995: old archives
        Event("v7", "u1", EventKind.VIEW, 1.0, media_id="m3"),  # the first second of 1970
    ]
    assert all(r.accepted for r in store.log_events(events))
    stored = {e.event_id: e for e in store.user_events("u1")}
    assert stored["v1"].watch_fraction == 2.5
    assert stored["v5"].context.local_hour == 0


# -- follows ---------------------------------------------------------------------------------


def test_follows_take_the_latest_event_by_timestamp_even_when_it_arrives_first(
    store: SqliteEngagementStore,
) -> None:
    store.log_events([follow("f1", "c1", NOW - 300), follow("f2", "c2", NOW - 300)])
    assert store.follows("u1") == {"c1", "c2"}
    store.log_events([follow("f3", "c1", NOW - 200, on=False)])
    assert store.follows("u1") == {"c2"}
    # A late-arriving older unfollow of c2 must not undo the newer follow.
    store.log_events([follow("f4", "c2", NOW - 400, on=False)])
    assert store.follows("u1") == {"c2"}
    store.log_events([follow("f5", "c1", NOW - 100)])
    assert store.follows("u1") == {"c1", "c2"}
    assert store.followers("c1") == {"u1"}
    assert store.follows("someone-else") == set()


# -- interests, served, rankings -------------------------------------------------------------


def test_interests_are_kept_in_order(store: SqliteEngagementStore) -> None:
    store.set_interests("u1", "hiking, cats", NOW - 10)
    store.set_interests("u1", "street food", NOW)
    assert store.interests("u1") == [("hiking, cats", NOW - 10), ("street food", NOW)]
    assert store.interests("u2") == []


def test_declaring_the_same_interests_again_moves_them_to_the_newest(
    store: SqliteEngagementStore,
) -> None:
    store.set_interests("u1", "cats", NOW - 20)
    store.set_interests("u1", "hiking", NOW - 10)
    store.set_interests("u1", "cats", NOW)
    store.set_interests("u2", "cats", NOW)
    assert store.interests("u1") == [("hiking", NOW - 10), ("cats", NOW)]
    assert store.interests("u2") == [("cats", NOW)]


def test_served_items_round_trip_and_relogging_is_a_no_op(store: SqliteEngagementStore) -> None:
    items = [served("r1", 0, media="m1"), served("r1", 1, media="m2")]
    store.log_served(items)
    store.log_served(items[:1])
    assert list(store.iter_served()) == items
    assert list(store.iter_served(since=NOW)) == []
    ts = items[0].timestamp
    assert list(store.iter_served(since=ts, until=ts)) == items
    assert list(store.iter_served(until=ts - 1)) == []


def test_trimming_deletes_only_served_items_older_than_the_cut(
    store: SqliteEngagementStore,
) -> None:
    old = served("r1", 0, media="m1")
    store.log_served([old])
    recent = [item for item in store.iter_served()]
    assert store.trim_served(before=recent[0].timestamp) == 0  # not older than itself
    assert store.trim_served(before=recent[0].timestamp + 1) == 1
    assert list(store.iter_served()) == []


def test_rankings_expire(store: SqliteEngagementStore) -> None:
    store.save_ranking("rk1", "u1", '["m1","m2"]', now=NOW, ttl_s=60)
    assert store.load_ranking("rk1", "u1", now=NOW + 30) == '["m1","m2"]'
    assert store.load_ranking("rk1", "u2", now=NOW + 30) is None  # another user's cursor
    assert store.load_ranking("rk1", "u1", now=NOW + 61) is None


def test_user_events_filter_by_time_and_kind(store: SqliteEngagementStore) -> None:
    store.log_events(
        [
            like("old", ts=NOW - 1000),
            like("new", ts=NOW - 10),
            Event("skip", "u1", EventKind.SKIP, NOW - 5, media_id="m2"),
            like("other-user", user="u2"),
        ]
    )
    assert [e.event_id for e in store.user_events("u1", since=NOW - 100)] == ["new", "skip"]
    assert [e.event_id for e in store.user_events("u1", kinds=[EventKind.SKIP])] == ["skip"]
    assert [e.event_id for e in store.iter_events(since=NOW - 100)] == [
        "other-user",
        "new",
        "skip",
    ]


def test_a_scan_in_progress_does_not_block_writes(store: SqliteEngagementStore) -> None:
    store.log_events([like(f"e{i}", media=f"m{i}") for i in range(5000)])
    scan = store.iter_events()
    first = next(scan)
    assert store.log_events([like("during-scan")])[0].accepted
    rest = list(scan)
    assert 1 + len(rest) == 5000  # the scan reads the snapshot it started on
    assert first.event_id == "e0"


def test_concurrent_writers_lose_nothing(store: SqliteEngagementStore) -> None:
    def write(worker: int) -> None:
        for batch in range(10):
            store.log_events([like(f"w{worker}-{batch}-{i}") for i in range(20)])

    threads = [threading.Thread(target=write, args=(w,)) for w in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert store.event_count() == 4 * 10 * 20


# -- privacy ---------------------------------------------------------------------------------


def test_forget_user_leaves_no_trace_in_any_table_or_file(tmp_path: Path) -> None:
    store = open_engagement_store(tmp_path, clock=lambda: NOW)
    forgotten = "user-forget-me-7c1e"
    store.log_events(
        [
            like("x1", user=forgotten),
            like("x2", user=forgotten, media="m2"),
            follow("x3", "c1", NOW - 5, user=forgotten),
            Event("x4", forgotten, EventKind.SEARCH, NOW, query="cats"),
            like("keep", user="u-stays"),
        ]
    )
    store.set_interests(forgotten, "hiking", NOW)
    store.log_served([served("req-1", 0, user=forgotten), served("req-2", 0, user="u-stays")])
    store.save_ranking("rk", forgotten, "[]", now=NOW, ttl_s=60)

    report = store.forget_user(forgotten)

    assert (report.events, report.follows, report.interests, report.impressions, report.other) == (
        4,
        1,
        1,
        1,
        1,
    )
    assert store.user_events(forgotten) == [] and store.follows(forgotten) == set()
    assert [e.event_id for e in store.iter_events()] == ["keep"]
    assert store.forget_user(forgotten).events == 0  # idempotent
    store.close()
    database = tmp_path / DATABASE_NAME
    with sqlite3.connect(database) as db:
        tables = [row[0] for row in db.execute("SELECT name FROM sqlite_master WHERE type='table'")]
        assert {"events", "served", "follows", "interests", "rankings"} <= set(tables)
        for table in tables:
            for row in db.execute(f"SELECT * FROM {table}"):
                assert not any(forgotten in str(cell) for cell in row), (table, row)
    for path in tmp_path.iterdir():  # the main file, and any WAL/SHM left behind
        assert forgotten.encode() not in path.read_bytes(), path.name


# -- durability ------------------------------------------------------------------------------


def test_everything_survives_close_and_reopen(tmp_path: Path) -> None:
    store = open_engagement_store(tmp_path, clock=lambda: NOW)
    store.log_events([like("e1"), follow("f1", "c1", NOW - 5)])
    store.set_interests("u1", "cats", NOW)
    store.log_served([served("r1", 0)])
    store.close()
    store.close()  # idempotent

    reopened = open_engagement_store(tmp_path, clock=lambda: NOW)
    try:
        assert [e.event_id for e in reopened.user_events("u1")] == ["e1", "f1"]
        assert reopened.follows("u1") == {"c1"}
        assert reopened.interests("u1") == [("cats", NOW)]
        assert len(list(reopened.iter_served())) == 1
        assert reopened.log_events([like("e1")])[0].duplicate  # idempotence persists too
    finally:
        reopened.close()


def test_the_database_is_wal_fully_synced_and_versioned(tmp_path: Path) -> None:
    store = open_engagement_store(tmp_path)
    store.close()
    with sqlite3.connect(tmp_path / DATABASE_NAME) as db:
        assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert db.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
        query = "SELECT name FROM sqlite_master WHERE type = 'index'"
        indexes = {row[0] for row in db.execute(query)}
    assert {"events_user_ts", "events_media", "events_ts", "served_user_ts"} <= indexes
    store = open_engagement_store(tmp_path)
    try:
        synchronous = store._db.execute("PRAGMA synchronous").fetchone()[0]  # noqa: SLF001
        assert synchronous == 2  # FULL
    finally:
        store.close()


def test_a_database_from_a_newer_version_is_refused(tmp_path: Path) -> None:
    with sqlite3.connect(tmp_path / DATABASE_NAME) as db:
        db.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    with pytest.raises(SchemaVersionError):
        open_engagement_store(tmp_path)


_CRASH_CHILD = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path
    from mediarec.server.engagement import open_engagement_store
    from mediarec.server.recommend.types import Event, EventKind

    store = open_engagement_store(Path(sys.argv[1]))
    batch = 0
    while True:
        events = [
            Event(f"b{batch}-{i}", f"u{i % 7}", EventKind.LIKE, time.time(), media_id=f"m{i}")
            for i in range(50)
        ]
        results = store.log_events(events)
        assert all(r.accepted for r in results)
        print(batch, flush=True)  # acknowledged: log_events returned
        batch += 1
    """
)


def test_acknowledged_events_survive_sigkill(tmp_path: Path) -> None:
    child = subprocess.Popen(
        [sys.executable, "-c", _CRASH_CHILD, str(tmp_path)],
        cwd=REPO,
        stdout=subprocess.PIPE,
        text=True,
    )
    acknowledged = -1
    try:
        assert child.stdout is not None
        for line in child.stdout:
            acknowledged = int(line)
            if acknowledged >= 20:
                break
        child.send_signal(signal.SIGKILL)  # mid-write of a later batch, no cleanup
        child.wait(timeout=30)
    finally:
        if child.poll() is None:
            child.kill()
    assert acknowledged >= 20, "the child never acknowledged 20 batches"

    store = open_engagement_store(tmp_path)
    try:
        ids = {e.event_id for e in store.iter_events()}
    finally:
        store.close()
    batches: dict[str, int] = {}
    for event_id in ids:
        prefix = event_id.split("-")[0]
        batches[prefix] = batches.get(prefix, 0) + 1
    for batch in range(acknowledged + 1):
        assert batches.get(f"b{batch}") == 50, f"acknowledged batch {batch} lost events"
    # A transaction is all or nothing: no batch is partly stored.
    assert all(count == 50 for count in batches.values())
