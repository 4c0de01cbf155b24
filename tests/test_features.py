"""The blend's feature extractor, one feature column at a time (pure: no stores, no server)."""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np
import pytest

from mediarec.server.recommend import blend as b
from mediarec.server.recommend.features import Candidates, compute_features
from mediarec.server.recommend.items import ItemInfo
from mediarec.server.recommend.profile import EngagementSummary, InterestCluster, UserProfile
from mediarec.server.recommend.settings import RecommendSettings
from mediarec.server.recommend.sources import QueryVector
from mediarec.server.recommend.state import CoScores, DerivedState
from mediarec.server.recommend.types import Context

NOW = 1_000_000.0
HALF_LIFE = RecommendSettings().freshness_half_life_s
AXES = np.eye(3, dtype=np.float32)


def item(i: int, *, creator: str = "", created_at: float | None = NOW) -> ItemInfo:
    """Item ``i`` points along axis ``i``: its cosine with another item's axis is 0."""
    return ItemInfo(
        media_id=f"m{i}", creator_id=creator, media_type="image", tags=(), topics=(),
        created_at=None if created_at is None else int(created_at), duplicate_root=f"m{i}",
        vector16=AXES[i].astype(np.float16), caption16=None,
    )  # fmt: skip


def profile(**changes: Any) -> UserProfile:
    empty = UserProfile(
        user_id="u", summary=EngagementSummary(), clusters=(), interests=(),
        follows=frozenset(), negative_vectors=np.zeros((0, 3)), negative_weights=np.zeros(0),
        positive_vectors={}, liked_topics={}, liked_tags={}, engaged_creators=frozenset(),
        confidence=0.0, taste=None, built_at=NOW,
    )  # fmt: skip
    return dataclasses.replace(empty, **changes)


NO_COSCORES = CoScores(np.zeros(0, dtype=np.int64), np.zeros(0), np.zeros(0))


def features(
    items: list[ItemInfo] | None = None,
    user: UserProfile | None = None,
    *,
    queries: tuple[QueryVector, ...] = (),
    seed: np.ndarray | None = None,
    user_impressions: np.ndarray | None = None,
    social: dict[str, float] | None = None,
) -> np.ndarray:
    items = items if items is not None else [item(0), item(1), item(2)]
    cands = Candidates.build(items, [{} for _ in items], 3)
    n = len(items)
    table = compute_features(
        cands, user or profile(), queries, seed, NO_COSCORES, DerivedState(),
        rows=np.full(n, -1), engagements=np.zeros(n), impressions=np.zeros(n),
        user_impressions=np.zeros(n) if user_impressions is None else user_impressions,
        social_counts=social or {}, context=Context(), settings=RecommendSettings(), now=NOW,
    )  # fmt: skip
    return table.x


def column(x: np.ndarray, feature: str) -> list[float]:
    return [round(float(v), 6) for v in x[:, b.FEATURE_INDEX[feature]]]


MAX_IMPRESSIONS = RecommendSettings().max_impressions


@pytest.mark.parametrize(
    ("case", "feature", "expected"),
    [
        ("no history", b.CONTENT, [0.0, 0.0, 0.0]),
        ("no history", b.INTEREST, [0.0, 0.0, 0.0]),
        ("no history", b.SEED, [0.0, 0.0, 0.0]),
        ("no history", b.COENGAGEMENT, [0.0, 0.0, 0.0]),
        ("one cluster on item 0", b.CONTENT, [1.0, 0.0, 0.0]),
        ("seed on item 1", b.SEED, [0.0, 1.0, 0.0]),
        ("interest on item 2", b.INTEREST, [0.0, 0.0, 1.0]),
        ("ages now, one half-life, unknown", b.FRESHNESS, [1.0, 0.5, 0.0]),
        ("follows c0", b.FOLLOWING, [1.0, 0.0, 0.0]),
        ("affinity 1 and 3", b.CREATOR_AFFINITY, [0.5, 0.75, 0.0]),
        ("shares 2 and 1", b.SOCIAL, [1.0, 0.5, 0.0]),
        ("shown 0, half the cap, twice the cap", b.FATIGUE, [0.0, 0.5, 1.0]),
        ("hid item 2's look-alike", b.NEGATIVE, [0.0, 0.0, 1.0]),
    ],
)
def test_each_feature_reads_its_own_signal(case: str, feature: str, expected: list[float]) -> None:
    cases: dict[str, dict[str, Any]] = {
        "no history": {},
        "one cluster on item 0": {
            "user": profile(clusters=(InterestCluster(AXES[0], 1.0, ("x",)),), taste=AXES[0]),
        },
        "seed on item 1": {"seed": AXES[1]},
        "interest on item 2": {"queries": (QueryVector("declared", "cats", 1.0, AXES[2]),)},
        "ages now, one half-life, unknown": {
            "items": [item(0), item(1, created_at=NOW - HALF_LIFE), item(2, created_at=None)],
        },
        "follows c0": {
            "items": [item(0, creator="c0"), item(1, creator="c1"), item(2)],
            "user": profile(follows=frozenset({"c0"})),
        },
        "affinity 1 and 3": {
            "items": [item(0, creator="c0"), item(1, creator="c1"), item(2, creator="c2")],
            "user": profile(summary=EngagementSummary(creator_affinity={"c0": 1.0, "c1": 3.0})),
        },
        "shares 2 and 1": {"social": {"m0": 2.0, "m1": 1.0}},
        "shown 0, half the cap, twice the cap": {
            "user_impressions": np.array([0.0, MAX_IMPRESSIONS / 2, 2 * MAX_IMPRESSIONS]),
        },
        "hid item 2's look-alike": {
            "user": profile(negative_vectors=AXES[2:3], negative_weights=np.array([1.0])),
        },
    }
    assert column(features(**cases[case]), feature) == expected


def test_an_empty_candidate_list_gives_an_empty_table() -> None:
    assert features(items=[]).shape == (0, len(b.FEATURES))
