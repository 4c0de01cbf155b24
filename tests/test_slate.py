"""A slate explains (learned-ranker contributions) only the positions a page builds, in one
call per page (pure logic: the explanation is a stand-in that records what it was asked)."""

from __future__ import annotations

import numpy as np

from mediarec.server.recommend import blend as b
from mediarec.server.recommend.slate import ReasonProfile, Slate, SlateItem
from mediarec.server.recommend.types import RecRequest

N = 50
F = len(b.FEATURES)


def slate(asked: list[list[int]]) -> Slate:
    def explain(rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        asked.append(rows.tolist())
        contributions = np.zeros((rows.size, F))
        contributions[:, 0] = rows  # position n's first feature contributes n
        return contributions, np.full(rows.size, 0.5)

    items = [SlateItem(f"m{n}", "", (), None, False) for n in range(N)]
    profile = ReasonProfile(frozenset(), frozenset(), {}, (), {}, frozenset(), 0.0)
    return Slate(
        items=items, sources=[{} for _ in items], x=np.zeros((N, F), np.float32),
        contributions=np.zeros((N, F)), scores=np.arange(N, dtype=float) + 0.5,
        item_conf=np.zeros(N), best_cluster=np.full(N, -1), best_query=np.full(N, -1),
        coeng_counts=np.zeros(N), popular_in=[""] * N, propensity=np.ones(N),
        explored=np.zeros(N, bool), folded=[()] * N, profile=profile,
        request=RecRequest("u"), now=0.0, bias=0.0, fresh_window_s=1.0, texts=(),
        explain=explain,
    )  # fmt: skip


def test_a_page_is_explained_in_one_call_and_nothing_twice() -> None:
    asked: list[list[int]] = []
    s = slate(asked)
    page = s[0:20]
    assert asked == [list(range(20))]
    assert s[5] is page[5] and asked == [list(range(20))]  # built and explained once
    s[18:24]
    assert asked[1:] == [[20, 21, 22, 23]]  # only the positions not explained yet
    s[40]
    assert asked[2:] == [[40]]


def test_an_explained_entry_breaks_its_score_down_with_the_base_value() -> None:
    s = slate([])
    entry = s[7]
    assert entry.item.breakdown[b.FEATURES[0]] == 7.0
    assert sum(entry.item.breakdown.values()) == 7.5  # the base value 0.5 is in the breakdown
