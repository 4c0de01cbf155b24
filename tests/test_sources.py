"""Pure helpers of the candidate sources."""

from __future__ import annotations

import numpy as np

from server.recommend.sources import QueryVector, strongest_tastes

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
