"""Engagement history: events, the follow graph, declared interests and served impressions.

``open_engagement_store(data_dir)`` opens the embedded SQLite default; anything satisfying
``mediarec.server.recommend.types.EngagementStore`` (e.g. a future PostgreSQL store) can replace it.
"""

from mediarec.server.engagement.schema import SCHEMA_VERSION, SchemaVersionError
from mediarec.server.engagement.sqlite_store import (
    DATABASE_NAME,
    SqliteEngagementStore,
    open_engagement_store,
)
from mediarec.server.engagement.validation import EventLimits, event_error

__all__ = [
    "DATABASE_NAME",
    "SCHEMA_VERSION",
    "EventLimits",
    "SchemaVersionError",
    "SqliteEngagementStore",
    "event_error",
    "open_engagement_store",
]
