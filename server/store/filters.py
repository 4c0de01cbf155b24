"""A :class:`SearchFilter` planned into engine-neutral conditions.

Both adapters translate the same plan, condition by condition, so a filter means exactly the
same thing on Qdrant Edge and on a Qdrant server.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

from mediarec.server.store import schema
from mediarec.server.store.base import SearchFilter


@dataclass(frozen=True)
class AnyOf:
    """The payload field ``key`` (a keyword or a keyword list) holds one of ``values``."""

    key: str
    values: tuple[str, ...]


@dataclass(frozen=True)
class IdIn:
    """The point id is one of ``point_ids``."""

    point_ids: tuple[str, ...]


@dataclass(frozen=True)
class IntRange:
    """The integer payload field ``key`` lies in ``[gte, lte]`` (an open side is None)."""

    key: str
    gte: int | None
    lte: int | None


Condition = AnyOf | IdIn | IntRange
EngineCondition = TypeVar("EngineCondition")


@dataclass(frozen=True)
class FilterPlan:
    must: tuple[Condition, ...]
    must_not: tuple[Condition, ...]


def plan_filter(search_filter: SearchFilter | None) -> FilterPlan | None:
    """The conditions of ``search_filter``, or None when it constrains nothing."""
    if search_filter is None:
        return None
    f = search_filter
    must: list[Condition] = [
        AnyOf(key, values)
        for key, values in (
            (schema.MEDIA_TYPE, f.media_types),
            (schema.CREATOR_ID, f.creator_ids),
            (schema.TAGS, f.tags),
            (schema.TOPICS, f.topics),
            (schema.CONTENT_HASH, f.content_hashes),
        )
        if values
    ]
    if f.media_ids:
        must.append(IdIn(tuple(schema.media_point_id(m) for m in f.media_ids)))
    if f.created_at_from is not None or f.created_at_to is not None:
        must.append(IntRange(schema.CREATED_AT, f.created_at_from, f.created_at_to))
    must_not: list[Condition] = []
    if f.exclude_media_ids:
        must_not.append(IdIn(tuple(schema.media_point_id(m) for m in f.exclude_media_ids)))
    if f.exclude_creator_ids:
        must_not.append(AnyOf(schema.CREATOR_ID, f.exclude_creator_ids))
    if not must and not must_not:
        return None
    return FilterPlan(tuple(must), tuple(must_not))


def translated(
    plan: FilterPlan, condition: Callable[[Condition], EngineCondition]
) -> tuple[list[EngineCondition] | None, list[EngineCondition] | None]:
    """The plan's must and must-not conditions in an engine's types, None for an empty side
    (what both engines' filters take)."""
    return [condition(c) for c in plan.must] or None, [condition(c) for c in plan.must_not] or None
