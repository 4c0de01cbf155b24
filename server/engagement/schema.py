"""The SQLite schema of the engagement store, versioned with ``PRAGMA user_version``."""

from __future__ import annotations

import sqlite3

SCHEMA_VERSION = 1

# Every table holding per-user rows; ForgetUser deletes from each (column user_id).
USER_TABLES = ("events", "served", "follows", "interests", "rankings")

_SCHEMA_V1 = """
CREATE TABLE events (
    seq            INTEGER PRIMARY KEY AUTOINCREMENT,  -- arrival order
    event_id       TEXT NOT NULL UNIQUE,               -- idempotence key
    user_id        TEXT NOT NULL,
    kind           TEXT NOT NULL,
    ts             REAL NOT NULL,                      -- unix seconds, when it happened
    media_id       TEXT NOT NULL DEFAULT '',
    creator_id     TEXT NOT NULL DEFAULT '',
    dwell_ms       INTEGER NOT NULL DEFAULT 0,
    watch_fraction REAL NOT NULL DEFAULT 0,
    query          TEXT NOT NULL DEFAULT '',
    hashtag        TEXT NOT NULL DEFAULT '',
    device         TEXT NOT NULL DEFAULT '',
    local_hour     INTEGER,                            -- NULL when unknown
    location       TEXT NOT NULL DEFAULT '',
    request_id     TEXT NOT NULL DEFAULT '',
    received_at    REAL NOT NULL
);
CREATE INDEX events_user_ts ON events (user_id, ts);
CREATE INDEX events_media ON events (media_id) WHERE media_id != '';
CREATE INDEX events_ts ON events (ts);

-- One row per logged impression of a Recommend response: the anchor of a training label.
CREATE TABLE served (
    request_id  TEXT NOT NULL,
    position    INTEGER NOT NULL,
    user_id     TEXT NOT NULL,
    media_id    TEXT NOT NULL,
    score       REAL NOT NULL,
    propensity  REAL NOT NULL,
    sources     TEXT NOT NULL,   -- JSON array of source names
    features    TEXT NOT NULL,   -- JSON object feature -> value
    ts          REAL NOT NULL,
    PRIMARY KEY (request_id, position)
);
CREATE INDEX served_user_ts ON served (user_id, ts);
CREATE INDEX served_media ON served (media_id);
CREATE INDEX served_ts ON served (ts);

-- The follow graph, derived from follow/unfollow events: the latest event (by ts) wins, and an
-- unfollow keeps its row (following = 0) so an older follow arriving late cannot resurrect it.
CREATE TABLE follows (
    user_id    TEXT NOT NULL,
    creator_id TEXT NOT NULL,
    following  INTEGER NOT NULL,
    ts         REAL NOT NULL,
    PRIMARY KEY (user_id, creator_id)
);
CREATE INDEX follows_creator ON follows (creator_id) WHERE following = 1;

-- Declared interests (SetInterests), newest last.
CREATE TABLE interests (
    seq     INTEGER PRIMARY KEY AUTOINCREMENT,
    user_id TEXT NOT NULL,
    text    TEXT NOT NULL,
    ts      REAL NOT NULL
);
CREATE INDEX interests_user ON interests (user_id, seq);

-- Short-lived cached rankings behind Recommend page cursors.
CREATE TABLE rankings (
    ranking_id TEXT PRIMARY KEY,
    user_id    TEXT NOT NULL,
    payload    TEXT NOT NULL,
    created_at REAL NOT NULL,
    expires_at REAL NOT NULL
);
CREATE INDEX rankings_user ON rankings (user_id);
CREATE INDEX rankings_expiry ON rankings (expires_at);
"""


class SchemaVersionError(RuntimeError):
    """The database was written by a newer mediarec whose schema this version can't read."""


def migrate(connection: sqlite3.Connection) -> int:
    """Create or upgrade the schema in one transaction; returns the version now in place.

    ``connection`` must be in autocommit mode (``isolation_level=None``): the transaction is
    explicit, so a crash mid-migration leaves the previous version intact.
    """
    version = int(connection.execute("PRAGMA user_version").fetchone()[0])
    if version > SCHEMA_VERSION:
        raise SchemaVersionError(
            f"engagement database has schema version {version}, newer than this server's "
            f"{SCHEMA_VERSION}; upgrade mediarec or point it at another data dir"
        )
    if version == SCHEMA_VERSION:
        return version
    connection.execute("BEGIN IMMEDIATE")
    try:
        if version == 0:
            for statement in _statements(_SCHEMA_V1):
                connection.execute(statement)
        connection.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
    except BaseException:
        connection.execute("ROLLBACK")
        raise
    connection.execute("COMMIT")
    return SCHEMA_VERSION


def _statements(script: str) -> list[str]:
    lines = [line.split("--", 1)[0] for line in script.splitlines()]
    return [s.strip() for s in "\n".join(lines).split(";") if s.strip()]
