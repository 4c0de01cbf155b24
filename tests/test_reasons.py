"""Reason phrases: a hashtag the user wrote keeps its "#", a topic the model gave does not."""

from __future__ import annotations

import pytest

from mediarec.server.recommend import blend as b
from mediarec.server.recommend.profile import HASHTAG, SEARCH
from mediarec.server.recommend.reasons import ReasonInfo, reasons_for


@pytest.mark.parametrize(
    ("contributions", "info", "expected"),
    [
        ({b.CONTENT: 0.5}, ReasonInfo(cluster_size=3, topic="street food"),
         ("similar to 3 posts you liked", "because you like street food")),
        ({b.INTEREST: 0.5}, ReasonInfo(query_kind=HASHTAG, query_text="beach"),
         ("because you like #beach",)),
        ({b.INTEREST: 0.5}, ReasonInfo(query_kind=HASHTAG, query_text="night sky", topic="red"),
         ("because you like #nightsky", "because you like red")),
        # The user's hashtag and the item's topic of one name: said once, as the hashtag.
        ({b.INTEREST: 0.5}, ReasonInfo(query_kind=HASHTAG, query_text="Night Sky",
                                       topic="night sky"),
         ("because you like #NightSky",)),
        ({b.INTEREST: 0.5}, ReasonInfo(query_kind=SEARCH, query_text="cats"),
         ('because you searched for "cats"',)),
        ({b.CONTENT: 0.01}, ReasonInfo(topic="red"), ("picked for variety",)),  # too small
        ({}, ReasonInfo(explored=True, new_creator=True), ("exploring a new creator",)),
    ],
)  # fmt: skip
def test_reasons_name_what_made_the_score(
    contributions: dict[str, float], info: ReasonInfo, expected: tuple[str, ...]
) -> None:
    assert reasons_for(contributions, info) == expected
