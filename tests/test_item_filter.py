"""The in-memory twin of the store's filtering, one condition at a time (pure logic)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from mediarec.server.recommend.items import ItemInfo, item_filter
from mediarec.server.store import SearchFilter


def item(**changes: Any) -> ItemInfo:
    fields: dict[str, Any] = {
        "media_id": "m", "creator_id": "alice", "media_type": "image", "tags": ("cake",),
        "topics": ("food",), "created_at": 100, "duplicate_root": "m",
        "vector16": np.zeros(2, np.float16), "caption16": None,
    }  # fmt: skip
    return ItemInfo(**(fields | changes))


@pytest.mark.parametrize(
    ("search_filter", "changes", "passes"),
    [
        (SearchFilter(), {}, True),
        (SearchFilter(media_types=("image",)), {}, True),
        (SearchFilter(media_types=("video",)), {}, False),
        (SearchFilter(creator_ids=("alice", "bob")), {}, True),
        (SearchFilter(creator_ids=("bob",)), {}, False),
        (SearchFilter(exclude_creator_ids=("alice",)), {}, False),
        (SearchFilter(exclude_creator_ids=("bob",)), {}, True),
        (SearchFilter(exclude_creator_ids=("alice",)), {"creator_id": ""}, True),
        (SearchFilter(tags=("cake", "tea")), {}, True),
        (SearchFilter(tags=("tea",)), {}, False),
        (SearchFilter(topics=("food",)), {}, True),
        (SearchFilter(topics=("travel",)), {}, False),
        (SearchFilter(created_at_from=100), {}, True),
        (SearchFilter(created_at_from=101), {}, False),
        (SearchFilter(created_at_to=100), {}, True),
        (SearchFilter(created_at_to=99), {}, False),
        (SearchFilter(created_at_from=0), {"created_at": None}, False),
        (SearchFilter(created_at_to=200), {"created_at": None}, False),
        (SearchFilter(media_types=("image",), exclude_creator_ids=("bob",), tags=("cake",)),
         {}, True),  # fmt: skip
        (SearchFilter(media_types=("image",), exclude_creator_ids=("alice",), tags=("cake",)),
         {}, False),  # fmt: skip
    ],
)
def test_an_item_passes_when_every_condition_the_filter_sets_holds(
    search_filter: SearchFilter, changes: dict[str, Any], passes: bool
) -> None:
    assert item_filter(search_filter)(item(**changes)) is passes
