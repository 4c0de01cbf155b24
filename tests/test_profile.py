"""The user profile: event summaries, PinnerSage-style interest clusters, interest parsing."""

from __future__ import annotations

import numpy as np
import pytest

from mediarec.server.recommend.profile import (
    HASHTAG,
    LONG_VIEW_WEIGHT,
    POSITIVE_WEIGHTS,
    SEARCH,
    cluster_interests,
    decay,
    summarize_events,
)
from mediarec.server.recommend.settings import DAY_S, RecommendSettings
from mediarec.server.recommend.texts import parse_interests
from mediarec.server.recommend.types import Event, EventKind

NOW = 1_750_000_000.0
SETTINGS = RecommendSettings()


def ev(n: int, kind: EventKind, age_days: float = 0.0, **kw) -> Event:
    return Event(f"e{n}", "u1", kind, NOW - age_days * DAY_S, **kw)


def taste_groups(rng: np.random.Generator, sizes: list[int], dim: int = 32):
    centres = np.linalg.qr(rng.normal(size=(dim, len(sizes))))[0].T  # orthonormal tastes
    ids, vectors, labels = [], [], []
    for g, size in enumerate(sizes):
        for i in range(size):
            v = centres[g] + 0.15 * rng.normal(size=dim)
            vectors.append(v / np.linalg.norm(v))
            ids.append(f"g{g}-{i}")
            labels.append(g)
    return ids, np.array(vectors), labels, centres


def test_three_tastes_become_three_clusters_with_mass_as_importance() -> None:
    rng = np.random.default_rng(0)
    ids, vectors, labels, centres = taste_groups(rng, [8, 4, 2])
    clusters = cluster_interests(ids, vectors, np.ones(len(ids)), 5, SETTINGS.cluster_merge_margin)
    assert len(clusters) == 3
    assert [len(c.media_ids) for c in clusters] == [8, 4, 2]
    assert [c.importance for c in clusters] == pytest.approx([8 / 14, 4 / 14, 2 / 14])
    for g, cluster in enumerate(clusters):
        assert {m.split("-")[0] for m in cluster.media_ids} == {f"g{g}"}
        similarity = centres @ cluster.vector
        assert int(np.argmax(similarity)) == g and similarity[g] > 0.8
        assert np.linalg.norm(cluster.vector) == pytest.approx(1.0)


def test_recent_engagement_outweighs_more_but_older_engagement() -> None:
    rng = np.random.default_rng(1)
    ids, vectors, labels, _ = taste_groups(rng, [6, 3])
    weights = np.array([0.1 if g == 0 else 1.0 for g in labels])
    clusters = cluster_interests(ids, vectors, weights, 5, SETTINGS.cluster_merge_margin)
    assert clusters[0].media_ids[0].startswith("g1")
    assert clusters[0].importance > 0.8


def test_at_most_max_clusters_and_importances_sum_to_one() -> None:
    rng = np.random.default_rng(2)
    ids, vectors, _, _ = taste_groups(rng, [3, 3, 3, 3, 3, 3])
    clusters = cluster_interests(ids, vectors, np.ones(len(ids)), 3, SETTINGS.cluster_merge_margin)
    assert len(clusters) == 3
    assert sum(c.importance for c in clusters) == pytest.approx(1.0)
    assert sum(len(c.media_ids) for c in clusters) == len(ids)


def test_no_positives_no_clusters() -> None:
    margin = SETTINGS.cluster_merge_margin
    assert cluster_interests([], np.zeros((0, 8)), np.zeros(0), 5, margin) == ()


def test_summary_weights_positives_by_kind_and_recency() -> None:
    events = [
        ev(1, EventKind.LIKE, media_id="a"),
        ev(2, EventKind.SHARE, media_id="b"),
        ev(3, EventKind.LIKE, age_days=60, media_id="c"),
        ev(4, EventKind.VIEW, media_id="d", watch_fraction=0.9),
        ev(5, EventKind.VIEW, media_id="e", dwell_ms=500),
    ]
    s = summarize_events(events, SETTINGS, NOW)
    assert s.positives["a"] == pytest.approx(POSITIVE_WEIGHTS[EventKind.LIKE])
    assert s.positives["b"] == pytest.approx(POSITIVE_WEIGHTS[EventKind.SHARE])
    assert s.positives["c"] == pytest.approx(
        POSITIVE_WEIGHTS[EventKind.LIKE] * decay(60 * DAY_S, SETTINGS.positive_half_life_s)
    )
    assert s.positives["d"] == pytest.approx(LONG_VIEW_WEIGHT)
    assert "e" not in s.positives  # a short view is seen, not liked
    assert s.positive_items == 4
    assert s.seen == {"a", "b", "c", "d", "e"}


def test_impressions_add_fatigue_but_never_make_an_item_seen() -> None:
    events = [
        ev(1, EventKind.IMPRESSION, media_id="a", request_id="r1"),
        ev(2, EventKind.IMPRESSION, media_id="a", request_id="r1"),  # same response: once
        ev(3, EventKind.IMPRESSION, media_id="a", request_id="r2"),
        ev(4, EventKind.IMPRESSION, media_id="a"),
    ]
    s = summarize_events(events, SETTINGS, NOW)
    assert s.seen == frozenset()
    assert len(s.impressions["a"]) == 3


def test_skips_and_hides_are_negative_and_decay() -> None:
    events = [
        ev(1, EventKind.SKIP, media_id="a"),
        ev(2, EventKind.HIDE, media_id="b", age_days=14),
        ev(3, EventKind.HIDE, creator_id="spammer"),
    ]
    s = summarize_events(events, SETTINGS, NOW)
    assert s.negatives["a"] == pytest.approx(0.5)
    assert s.negatives["b"] == pytest.approx(0.5)  # a hide, one half-life old
    assert s.hidden_creators == {"spammer"}
    assert s.seen == {"a", "b"}


def test_a_liked_item_is_not_also_negative() -> None:
    events = [ev(1, EventKind.SKIP, media_id="a"), ev(2, EventKind.LIKE, media_id="a")]
    assert "a" not in summarize_events(events, SETTINGS, NOW).negatives


def test_profile_visits_raise_creator_affinity() -> None:
    events = [ev(1, EventKind.PROFILE_VISIT, creator_id="c1")] * 1 + [
        ev(2, EventKind.PROFILE_VISIT, creator_id="c1", age_days=30),
        ev(3, EventKind.PROFILE_VISIT, creator_id="c2"),
    ]
    affinity = summarize_events(events, SETTINGS, NOW).creator_affinity
    assert affinity["c1"] > affinity["c2"] > 0


def test_searches_are_short_lived_interests() -> None:
    events = [
        ev(1, EventKind.SEARCH, query="Red Circles"),
        ev(2, EventKind.SEARCH, hashtag="#beach", age_days=2),
        ev(3, EventKind.SEARCH, query="old news", age_days=30),
    ]
    searches = summarize_events(events, SETTINGS, NOW).searches
    assert (SEARCH, "red circles", 1.0) in searches
    assert any(kind == HASHTAG and text == "beach" and w == pytest.approx(0.5)
               for kind, text, w in searches)
    assert all(text != "old news" for _, text, _ in searches)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("hiking, street food, cats", ["hiking", "street food", "cats"]),
        ("Hiking; #Beach\nstreet   food", ["hiking", "beach", "street food"]),
        ("dogs and cats & birds", ["dogs", "cats", "birds"]),
        ("cats, cats, CATS", ["cats"]),
        (" , ;", []),
        ("", []),
    ],
)
def test_parse_interests(text, expected) -> None:
    assert parse_interests(text, 20) == expected


def test_parse_interests_caps_count_and_length() -> None:
    assert len(parse_interests(", ".join(f"t{i}" for i in range(50)), 20)) == 20
    assert len(parse_interests("x" * 500, 20)[0]) == 100
