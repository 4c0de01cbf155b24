"""Pure helpers of the candidate sources."""

from __future__ import annotations

import numpy as np
import pytest

from mediarec.server.recommend.profile import EngagementSummary, summarize_events
from mediarec.server.recommend.settings import RecommendSettings
from mediarec.server.recommend.sources import (
    COLD,
    SEED_COENGAGEMENT_WEIGHT,
    QueryVector,
    caption_only,
    fresh_exclusions,
    nearest_in_pool,
    seeded_positives,
    strongest_tastes,
)
from mediarec.server.recommend.types import Event, EventKind
from mediarec.server.store import SearchFilter

V = np.zeros(3)


def query(kind: str, label: str, weight: float) -> QueryVector:
    return QueryVector(kind, label, weight, V)


def labels(queries: list[QueryVector]) -> list[str]:
    return [q.label for q in queries]


def test_fresh_posts_are_looked_for_near_the_strongest_tastes_of_both_kinds() -> None:
    clusters = [query("cluster", f"c{i}", w) for i, w in enumerate((0.5, 0.2, 0.3))]
    texts = [query("search", "s", 0.7), query("declared", "d", 1.0)]
    seed = [query("seed", "x", 1.0)]
    assert labels(strongest_tastes(clusters + texts + seed, 4)) == ["c0", "c2", "d", "s"]
    assert labels(strongest_tastes(clusters + texts, 3)) == ["c0", "c2", "d"]
    # A group with fewer queries leaves its share to the other; the seed never counts.
    assert labels(strongest_tastes(clusters + seed, 4)) == ["c0", "c2", "c1"]
    assert labels(strongest_tastes(texts + seed, 4)) == ["d", "s"]
    assert strongest_tastes(seed, 4) == []


def test_fresh_search_excludes_only_media_seen_since_the_window_opened() -> None:
    day = 86_400.0
    now = 100 * day
    events = [
        Event("e1", "u", EventKind.VIEW, now - 30 * day, media_id="old-post"),
        Event("e2", "u", EventKind.LIKE, now - 1 * day, media_id="fresh-post"),
        Event("e3", "u", EventKind.VIEW, now - 40 * day, media_id="seen-twice"),
        Event("e4", "u", EventKind.SKIP, now - 2 * day, media_id="seen-twice"),
    ]
    summary = summarize_events(events, RecommendSettings(), now)
    assert summary.recent_seen == ("fresh-post", "seen-twice", "old-post")
    excluded = ["fresh-post", "seen-twice", "old-post", "shown-too-often", "seed"]
    # Seen in the window: may be a fresh post. Seen only before it: an old post the window
    # leaves out anyway. Never seen (fatigue, the seed): always excluded.
    assert fresh_exclusions(summary, excluded, now - 3 * day) == (
        "fresh-post", "seen-twice", "shown-too-often", "seed"
    )
    assert fresh_exclusions(summary, excluded, now - 50 * day) == tuple(excluded)
    assert fresh_exclusions(summary, excluded, now) == ("shown-too-often", "seed")
    # Seen at the very moment the window opens: still possibly a fresh post.
    assert "fresh-post" in fresh_exclusions(summary, excluded, now - 1 * day)


def test_a_summary_whose_seen_media_and_times_do_not_pair_up_is_refused() -> None:
    with pytest.raises(ValueError, match="must pair up"):
        EngagementSummary(recent_seen=("a", "b"), recent_seen_at=(1.0,))


def test_a_seed_post_weighs_twice_the_strongest_positive_in_co_engagement() -> None:
    assert SEED_COENGAGEMENT_WEIGHT == 2.0  # docs/recommend.md says "twice"
    likes = {"a": 1.0, "b": 2.5}
    assert seeded_positives(likes, "") == likes
    assert seeded_positives(likes, "s") == {"a": 1.0, "b": 2.5, "s": 5.0}
    assert seeded_positives(likes, "a")["a"] == 1.0 + 5.0
    assert seeded_positives({}, "s") == {"s": 2.0}  # no positives: the strongest counts as 1
    assert likes == {"a": 1.0, "b": 2.5}  # the profile's own mapping is left alone


@pytest.mark.parametrize(
    ("media_types", "expected"),
    [((), ("text",)), (("image", "text"), ("text",)), (("video",), None)],
    ids=["any", "includes-text", "videos-only"],
)
def test_taste_vectors_search_captions_only_of_caption_only_posts(
    media_types: tuple[str, ...], expected: tuple[str, ...] | None
) -> None:
    narrowed = caption_only(SearchFilter(media_types=media_types, tags=("cats",)))
    if expected is None:
        assert narrowed is None
        return
    assert narrowed is not None
    assert narrowed.media_types == expected and narrowed.tags == ("cats",)


@pytest.mark.parametrize(
    ("queries", "budget", "expected"),
    [
        ([[1.0, 0.0]], 2, {"a", "b", "c", "d", "e"}),  # at least 5 per query
        ([[1.0, 0.0]], 5, {"a", "b", "c", "d", "e"}),
        ([[1.0, 0.0], [0.0, 1.0]], 10, {"a", "b", "c", "d", "e", "f"}),
        ([[1.0, 0.0, 0.0]], 10, set()),  # another dimension finds nothing
        ([[1.0, 0.0]], 0, set()),
        ([], 10, set()),
    ],
    ids=["minimum-share", "one-query", "two-queries-share", "wrong-dimension", "no-budget",
         "no-query"],
)
def test_the_cold_pool_is_searched_per_query_by_dot_product(
    queries: list[list[float]], budget: int, expected: set[str]
) -> None:
    ids = ["a", "b", "c", "d", "e", "f"]
    angles = np.linspace(0.0, np.pi / 2, len(ids))  # a is (1, 0), f is (0, 1)
    vectors = np.stack([np.cos(angles), np.sin(angles)], axis=1).astype(np.float32)
    found = nearest_in_pool(ids, vectors, [np.array(q, np.float32) for q in queries], budget)
    assert {p.media_id for p in found} == expected
    assert all(p.source == COLD for p in found)
    for p in found:  # each proposal is scored by its query's dot product
        row = vectors[ids.index(p.media_id)]
        assert any(np.isclose(p.score, row @ np.array(q)) for q in queries)


def test_an_empty_cold_pool_proposes_nothing() -> None:
    assert nearest_in_pool([], np.zeros((0, 0), np.float32), [np.ones(2)], 10) == []
