"""Pure helpers that read derived counts for a request's candidates."""

from __future__ import annotations

import numpy as np

from server.recommend.features import _popular_in
from server.recommend.state import _counts


def test_counts_add_every_delta_whichever_side_is_walked() -> None:
    base = {"a": 1.0, "b": 2.0}
    short = {"a": 0.5, "elsewhere": 3.0}  # shorter than the ids: walked by its items
    long = {f"x{i}": 1.0 for i in range(10)} | {"b": 1.0}  # longer: walked by the ids
    ids = ["a", "b", "c", "x3"]
    expected = [1.5, 3.0, 0.0, 1.0]
    assert _counts(base, (short, long, {}), ids).tolist() == expected
    assert _counts(base, (), ids).tolist() == [1.0, 2.0, 0.0, 0.0]
    assert _counts(base, (short,), []).shape == (0,)


def test_popular_in_names_the_most_specific_context_that_applies() -> None:
    levels = {
        "global": np.array([0.9, 0.0, 0.3, 0.1]),
        "device": np.array([0.5, 0.0, 0.0, 0.1]),
        "location_hour": np.array([0.0, 0.0, 0.25, 0.1]),
    }
    assert _popular_in(levels, 4) == ["device", "", "location_hour", ""]
