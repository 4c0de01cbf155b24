"""The embedded engagement store: SQLite in WAL mode with ``synchronous=FULL``.

A write returns only after its transaction is committed and the WAL is fsynced, so an event
that ``log_events`` acknowledged survives a crash of the process or the machine.

One connection serves writes and short reads under a lock (``check_same_thread=False``).
Long scans (``iter_events``, ``iter_served``) open their own read connection, so a caller may
use the store while iterating and a scan never blocks writers: in WAL mode the scan reads a
consistent snapshot.
"""

from __future__ import annotations

import json
import logging
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from mediarec.server.engagement.schema import USER_TABLES, migrate
from mediarec.server.engagement.validation import EventLimits, event_error
from mediarec.server.recommend.types import (
    Context,
    Event,
    EventKind,
    EventResult,
    ForgetReport,
    ServedItem,
)

logger = logging.getLogger(__name__)

DATABASE_NAME = "engagement.sqlite3"
BUSY_TIMEOUT_MS = 10_000
SCAN_BATCH_ROWS = 2_000
# Older declarations carry little signal once a user has restated their interests many times.
MAX_INTERESTS_PER_USER = 50

_EVENT_COLUMNS = (
    "event_id, user_id, kind, ts, media_id, creator_id, dwell_ms, watch_fraction, query, "
    "hashtag, device, local_hour, location, request_id"
)
_SERVED_COLUMNS = (
    "request_id, position, user_id, media_id, score, propensity, sources, features, ts"
)


class SqliteEngagementStore:
    """``EngagementStore`` over one SQLite file; safe to share between threads."""

    def __init__(
        self,
        path: Path,
        *,
        clock: Callable[[], float] = time.time,
        limits: EventLimits | None = None,
    ) -> None:
        self._path = Path(path)
        self._clock = clock
        self._limits = limits or EventLimits()
        self._lock = threading.RLock()
        self._path.parent.mkdir(parents=True, exist_ok=True)
        self._db = _connect(self._path)
        try:
            mode = self._db.execute("PRAGMA journal_mode = WAL").fetchone()[0]
            if str(mode).lower() != "wal":
                raise RuntimeError(f"{self._path}: SQLite refused WAL mode (got {mode!r})")
            migrate(self._db)
        except BaseException:
            self._db.close()
            raise
        self._closed = False
        logger.info("engagement store open at %s", self._path)

    @property
    def path(self) -> Path:
        return self._path

    # -- events ----------------------------------------------------------------------------

    def log_events(self, events: Sequence[Event]) -> list[EventResult]:
        """Store new, valid events in one durable transaction; one result per event, in order.

        Invalid events are rejected with a one-sentence error and duplicates (an event_id
        stored before, or repeated in this batch) are reported; neither affects the others.
        """
        now = self._clock()
        results: list[EventResult] = []
        with self._transaction() as db:
            for event in events:
                error = event_error(event, now, self._limits)
                if error:
                    results.append(EventResult(_event_id(event), accepted=False, error=error))
                    continue
                cursor = db.execute(
                    f"INSERT OR IGNORE INTO events ({_EVENT_COLUMNS}, received_at) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (*_event_row(event), now),
                )
                if cursor.rowcount == 0:
                    results.append(EventResult(event.event_id, accepted=False, duplicate=True))
                    continue
                if event.kind in (EventKind.FOLLOW, EventKind.UNFOLLOW):
                    _apply_follow(db, event)
                results.append(EventResult(event.event_id, accepted=True))
        return results

    def user_events(
        self, user_id: str, *, since: float | None = None, kinds: Sequence[EventKind] = ()
    ) -> list[Event]:
        """A user's events with ``ts >= since`` (all if None), oldest first."""
        sql = f"SELECT {_EVENT_COLUMNS} FROM events WHERE user_id = ?"
        params: list[Any] = [user_id]
        if since is not None:
            sql += " AND ts >= ?"
            params.append(since)
        if kinds:
            sql += f" AND kind IN ({', '.join('?' * len(kinds))})"
            params.extend(EventKind(k).value for k in kinds)
        sql += " ORDER BY ts, seq"
        with self._lock:
            rows = self._db.execute(sql, params).fetchall()
        return [_event_from_row(row) for row in rows]

    def recent_events(self, user_id: str, limit: int) -> tuple[list[Event], int]:
        """The user's ``limit`` newest events, newest first, and how many they have."""
        with self._lock:
            rows = self._db.execute(
                f"SELECT {_EVENT_COLUMNS} FROM events WHERE user_id = ? "
                "ORDER BY ts DESC, seq DESC LIMIT ?",
                (user_id, max(0, limit)),
            ).fetchall()
            total = self._db.execute(
                "SELECT count(*) FROM events WHERE user_id = ?", (user_id,)
            ).fetchone()[0]
        return [_event_from_row(row) for row in rows], int(total)

    def iter_events(self, *, since: float | None = None) -> Iterator[Event]:
        """Every event with ``ts >= since`` (all if None), oldest first, from one snapshot."""
        sql = f"SELECT {_EVENT_COLUMNS} FROM events"
        params: tuple[Any, ...] = ()
        if since is not None:
            sql += " WHERE ts >= ?"
            params = (since,)
        sql += " ORDER BY ts, seq"
        for row in self._scan(sql, params):
            yield _event_from_row(row)

    def event_count(self) -> int:
        """Number of stored events (cheap change detection for derived state)."""
        with self._lock:
            return int(self._db.execute("SELECT count(*) FROM events").fetchone()[0])

    # -- follows and interests -------------------------------------------------------------

    def follows(self, user_id: str) -> set[str]:
        """Creators the user follows now (the latest follow/unfollow event per creator wins)."""
        with self._lock:
            rows = self._db.execute(
                "SELECT creator_id FROM follows WHERE user_id = ? AND following = 1", (user_id,)
            ).fetchall()
        return {row[0] for row in rows}

    def followers(self, creator_id: str) -> set[str]:
        """Users who follow ``creator_id`` now."""
        with self._lock:
            rows = self._db.execute(
                "SELECT user_id FROM follows WHERE creator_id = ? AND following = 1",
                (creator_id,),
            ).fetchall()
        return {row[0] for row in rows}

    def set_interests(self, user_id: str, text: str, timestamp: float) -> None:
        """Record a declaration of interests; the oldest beyond a cap are dropped.

        Declaring the same text again moves it to the newest, rather than adding a second
        copy: each declaration counts half as much as the next, so a copy would push every
        declaration between the two down once more."""
        with self._transaction() as db:
            db.execute("DELETE FROM interests WHERE user_id = ? AND text = ?", (user_id, text))
            db.execute(
                "INSERT INTO interests (user_id, text, ts) VALUES (?, ?, ?)",
                (user_id, text, timestamp),
            )
            db.execute(
                "DELETE FROM interests WHERE user_id = ? AND seq NOT IN "
                "(SELECT seq FROM interests WHERE user_id = ? ORDER BY seq DESC LIMIT ?)",
                (user_id, user_id, MAX_INTERESTS_PER_USER),
            )

    def interests(self, user_id: str) -> list[tuple[str, float]]:
        """(text, timestamp) of the user's declarations, oldest first."""
        with self._lock:
            rows = self._db.execute(
                "SELECT text, ts FROM interests WHERE user_id = ? ORDER BY seq", (user_id,)
            ).fetchall()
        return [(row[0], float(row[1])) for row in rows]

    # -- served impressions ----------------------------------------------------------------

    def log_served(self, items: Sequence[ServedItem]) -> None:
        """Log the items of a Recommend response; a (request_id, position) logged before is kept."""
        rows = [
            (
                item.request_id,
                item.position,
                item.user_id,
                item.media_id,
                float(item.score),
                float(item.propensity),
                json.dumps(list(item.sources)),
                json.dumps({k: float(v) for k, v in item.features.items()}, sort_keys=True),
                float(item.timestamp),
            )
            for item in items
        ]
        with self._transaction() as db:
            db.executemany(
                f"INSERT OR IGNORE INTO served ({_SERVED_COLUMNS}) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                rows,
            )

    def iter_served(
        self, *, since: float | None = None, until: float | None = None
    ) -> Iterator[ServedItem]:
        """Every logged impression with ``since <= ts <= until`` (either open when None),
        oldest first."""
        conditions = [c for c, v in (("ts >= ?", since), ("ts <= ?", until)) if v is not None]
        params = tuple(v for v in (since, until) if v is not None)
        sql = f"SELECT {_SERVED_COLUMNS} FROM served"
        if conditions:
            sql += " WHERE " + " AND ".join(conditions)
        sql += " ORDER BY ts, request_id, position"
        for row in self._scan(sql, params):
            yield _served_from_row(row)

    def trim_served(self, before: float) -> int:
        """Delete logged impressions with ``ts < before`` (bounded history); returns how many."""
        with self._transaction() as db:
            return db.execute("DELETE FROM served WHERE ts < ?", (before,)).rowcount

    # -- cached rankings (page cursors) ----------------------------------------------------

    def save_ranking(
        self, ranking_id: str, user_id: str, payload: str, *, now: float, ttl_s: float
    ) -> None:
        """Keep a ranking for ``ttl_s`` seconds so later pages continue it; expired ones go."""
        with self._transaction() as db:
            db.execute("DELETE FROM rankings WHERE expires_at < ?", (now,))
            db.execute(
                "INSERT OR REPLACE INTO rankings (ranking_id, user_id, payload, created_at, "
                "expires_at) VALUES (?, ?, ?, ?, ?)",
                (ranking_id, user_id, payload, now, now + ttl_s),
            )

    def load_ranking(self, ranking_id: str, user_id: str, *, now: float) -> str | None:
        """The payload of an unexpired ranking of ``user_id``, or None."""
        with self._lock:
            row = self._db.execute(
                "SELECT payload FROM rankings WHERE ranking_id = ? AND user_id = ? "
                "AND expires_at >= ?",
                (ranking_id, user_id, now),
            ).fetchone()
        return None if row is None else str(row[0])

    # -- privacy ---------------------------------------------------------------------------

    def forget_user(self, user_id: str) -> ForgetReport:
        """Delete every row of ``user_id`` and report the counts per kind of data.

        ``secure_delete`` overwrites the freed content, and a truncating checkpoint drops the
        old page images from the WAL, so the id is gone from the files too, not just the tables.
        """
        counts: dict[str, int] = {}
        with self._transaction() as db:
            for table in USER_TABLES:
                cursor = db.execute(f"DELETE FROM {table} WHERE user_id = ?", (user_id,))
                counts[table] = max(cursor.rowcount, 0)
        with self._lock:
            self._db.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
        logger.info("forgot a user: %s", counts)  # no user id at INFO
        logger.debug("forgot user %s", user_id)
        return ForgetReport(
            events=counts["events"],
            impressions=counts["served"],
            follows=counts["follows"],
            interests=counts["interests"],
            other=counts["rankings"],
        )

    # -- life-cycle ------------------------------------------------------------------------

    def close(self) -> None:
        """Checkpoint the WAL and close; idempotent."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            try:
                self._db.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
            except sqlite3.Error as error:  # a busy reader; the WAL is replayed on next open
                logger.warning("checkpoint on close failed: %s", error)
            self._db.close()

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        """One write transaction under the lock; committed (and fsynced) on success."""
        with self._lock:
            if self._closed:
                raise RuntimeError(f"engagement store {self._path} is closed")
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
            except BaseException:
                # SQLite rolls back by itself on some errors (a full disk): a second ROLLBACK
                # would raise and hide the error that matters.
                if self._db.in_transaction:
                    self._db.execute("ROLLBACK")
                raise
            try:
                self._db.execute("COMMIT")
            except BaseException:
                if self._db.in_transaction:
                    self._db.execute("ROLLBACK")
                raise

    def _scan(self, sql: str, params: tuple[Any, ...]) -> Iterator[tuple[Any, ...]]:
        """Rows of a read-only query on a private connection, fetched in batches."""
        db = _connect(self._path, read_only=True)
        try:
            cursor = db.execute(sql, params)
            while rows := cursor.fetchmany(SCAN_BATCH_ROWS):
                yield from rows
        finally:
            db.close()


def open_engagement_store(
    data_dir: Path,
    *,
    clock: Callable[[], float] = time.time,
    limits: EventLimits | None = None,
) -> SqliteEngagementStore:
    """The embedded store at ``data_dir/engagement.sqlite3``, created on first use."""
    return SqliteEngagementStore(Path(data_dir) / DATABASE_NAME, clock=clock, limits=limits)


def _connect(path: Path, *, read_only: bool = False) -> sqlite3.Connection:
    if read_only:
        db = sqlite3.connect(
            f"file:{path}?mode=ro", uri=True, isolation_level=None, check_same_thread=False
        )
    else:
        db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    db.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
    if not read_only:
        # FULL: a commit fsyncs the WAL, so an acknowledged write survives power loss.
        db.execute("PRAGMA synchronous = FULL")
        db.execute("PRAGMA secure_delete = ON")
        db.execute("PRAGMA foreign_keys = ON")
    return db


def _event_id(event: Event) -> str:
    return event.event_id if isinstance(event.event_id, str) else ""


def _event_row(event: Event) -> tuple[Any, ...]:
    ctx = event.context
    return (
        event.event_id,
        event.user_id,
        EventKind(event.kind).value,
        float(event.timestamp),
        event.media_id,
        event.creator_id,
        int(event.dwell_ms),
        float(event.watch_fraction),
        event.query,
        event.hashtag,
        ctx.device,
        ctx.local_hour,
        ctx.location,
        event.request_id,
    )


def _event_from_row(row: tuple[Any, ...]) -> Event:
    return Event(
        event_id=row[0],
        user_id=row[1],
        kind=EventKind(row[2]),
        timestamp=float(row[3]),
        media_id=row[4],
        creator_id=row[5],
        dwell_ms=int(row[6]),
        watch_fraction=float(row[7]),
        query=row[8],
        hashtag=row[9],
        context=Context(device=row[10], local_hour=row[11], location=row[12]),
        request_id=row[13],
    )


def _served_from_row(row: tuple[Any, ...]) -> ServedItem:
    return ServedItem(
        request_id=row[0],
        position=int(row[1]),
        user_id=row[2],
        media_id=row[3],
        score=float(row[4]),
        propensity=float(row[5]),
        sources=tuple(json.loads(row[6])),
        features=json.loads(row[7]),
        timestamp=float(row[8]),
    )


def _apply_follow(db: sqlite3.Connection, event: Event) -> None:
    """Upsert the follow edge unless a later follow/unfollow of the same creator is stored."""
    following = 1 if EventKind(event.kind) is EventKind.FOLLOW else 0
    db.execute(
        "INSERT INTO follows (user_id, creator_id, following, ts) VALUES (?, ?, ?, ?) "
        "ON CONFLICT (user_id, creator_id) DO UPDATE SET following = excluded.following, "
        "ts = excluded.ts WHERE excluded.ts >= follows.ts",
        (event.user_id, event.creator_id, following, float(event.timestamp)),
    )
