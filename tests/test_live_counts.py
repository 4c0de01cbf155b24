"""Pure helpers that read derived counts for a request's candidates, and the live counters."""

from __future__ import annotations

import gc
import time

import numpy as np

from mediarec.server.recommend.features import _popular_in
from mediarec.server.recommend.settings import RecommendSettings
from mediarec.server.recommend.state import DerivedState, LiveCounters, _plus_deltas
from mediarec.server.recommend.types import ServedItem


def test_counts_add_every_delta_whichever_side_is_walked() -> None:
    short = {"a": 0.5, "elsewhere": 3.0}  # shorter than the ids: walked by its items
    long = {f"x{i}": 1.0 for i in range(10)} | {"b": 1.0}  # longer: walked by the ids
    ids = ["a", "b", "c", "x3"]
    expected = [1.5, 3.0, 0.0, 1.0]
    base = np.array([1.0, 2.0, 0.0, 0.0])  # ids' counts in the snapshot
    assert _plus_deltas(base, (short, long, {}), ids).tolist() == expected
    assert _plus_deltas(base, (), ids).tolist() == [1.0, 2.0, 0.0, 0.0]
    assert _plus_deltas(np.zeros(0), (short,), []).shape == (0,)
    assert base.tolist() == [1.0, 2.0, 0.0, 0.0]  # left as it was


def test_an_items_counts_are_the_snapshots_by_row_plus_the_live_ones() -> None:
    state = DerivedState(item_engagements={"a": 2.0, "b": 1.0}, item_impressions={"a": 5, "c": 1})
    live = LiveCounters(RecommendSettings())
    ids = ["c", "a", "unknown", "b"]
    assert live.engagements(state, ids, state.rows_of(ids)).tolist() == [0.0, 2.0, 0.0, 1.0]
    assert live.impressions(state, ids, state.rows_of(ids)).tolist() == [1.0, 5.0, 0.0, 0.0]
    live.add_served([_served("u", "c", "r1"), _served("u", "unknown", "r1")])
    assert live.impressions(state, ids, state.rows_of(ids)).tolist() == [2.0, 5.0, 1.0, 0.0]


def test_popular_in_names_the_most_specific_context_that_applies() -> None:
    levels = {
        "global": np.array([0.9, 0.0, 0.3, 0.1]),
        "device": np.array([0.5, 0.0, 0.0, 0.1]),
        "location_hour": np.array([0.0, 0.0, 0.25, 0.1]),
    }
    assert _popular_in(levels, 4) == ["device", "", "location_hour", ""]


def _served(user: str, media: str, request: str, ts: float = 1.0) -> ServedItem:
    return ServedItem(request, user, media, 0, 1.0, 1.0, (), {}, ts)


def test_live_served_impressions_are_dropped_once_a_rebuild_has_read_them() -> None:
    live = LiveCounters(RecommendSettings())
    live.add_served([_served("u", "m1", "r1"), _served("u", "m2", "r1")])
    empty = DerivedState()
    assert live.served_keys(empty, "u") == {"m1": {"request:r1"}, "m2": {"request:r1"}}
    live.start_rebuild()
    live.add_served([_served("u", "m1", "r2")])  # during the rebuild: kept after it
    assert live.served_keys(empty, "u")["m1"] == {"request:r1", "request:r2"}
    live.finish_rebuild(True, 0.0)
    assert live.served_keys(empty, "u") == {"m1": {"request:r2"}}  # the rest is in the state


def test_a_failed_rebuild_keeps_the_live_served_impressions() -> None:
    live = LiveCounters(RecommendSettings())
    live.add_served([_served("u", "m1", "r1")])
    live.start_rebuild()
    live.finish_rebuild(False, 0.0)
    assert live.served_keys(DerivedState(), "u") == {"m1": {"request:r1"}}


def test_a_read_on_the_replaced_snapshot_keeps_what_it_lacks_and_the_new_one_counts_once() -> (
    None
):
    live = LiveCounters(RecommendSettings())
    old = DerivedState(served={"gone": {"x": frozenset({"request:r0"})}})
    live.forget_user("gone", old)  # before the rebuild: the new snapshot will lack them
    live.add_served([_served("u", "a", "r1")])
    live.start_rebuild()
    live.add_served([_served("u", "a", "r2")])  # during the rebuild: not in the new snapshot
    new = DerivedState(item_impressions={"a": 1}, served={"u": {"a": frozenset({"request:r1"})}})
    live.finish_rebuild(True, time.monotonic() + 1.0, replaced=old)
    both = {"a": {"request:r1", "request:r2"}}
    # A request that read the old snapshot just before the swap, and its counts just after.
    assert live.impressions(old, ["a"], old.rows_of(["a"])).tolist() == [2.0]
    assert live.served_keys(old, "u") == both
    assert live.served_keys(old, "gone") == {}  # still masked on the old snapshot
    # Requests on the new snapshot: the taken-over counts are in it, and added once.
    assert live.impressions(new, ["a"], new.rows_of(["a"])).tolist() == [2.0]
    assert live.served_keys(new, "u") == both
    del old
    gc.collect()
    live.served_keys(new, "u")
    assert live._retired == []  # nobody holds the old snapshot: its complement is dropped


def test_a_request_held_across_two_rebuilds_keeps_every_count_and_mask() -> None:
    live = LiveCounters(RecommendSettings())
    s0 = DerivedState(served={"gone": {"x": frozenset({"request:r0"})}})
    live.forget_user("gone", s0)
    live.add_served([_served("u", "a", "r1")])
    live.start_rebuild()
    s1 = DerivedState(item_impressions={"a": 1}, served={"u": {"a": frozenset({"request:r1"})}})
    live.finish_rebuild(True, time.monotonic() + 1.0, replaced=s0)
    live.add_served([_served("u", "a", "r2")])
    live.start_rebuild()  # a second rebuild takes r2 over while a request still holds s0
    both = {"a": {"request:r1", "request:r2"}}
    assert live.served_keys(s0, "u") == both
    assert live.impressions(s0, ["a"], s0.rows_of(["a"])).tolist() == [2.0]
    assert live.served_keys(s1, "u") == both
    s2 = DerivedState(item_impressions={"a": 2}, served={"u": both})
    live.finish_rebuild(True, time.monotonic() + 2.0, replaced=s1)
    for state in (s0, s1, s2):
        assert live.served_keys(state, "u") == both
        assert live.impressions(state, ["a"], state.rows_of(["a"])).tolist() == [2.0]
    assert live.served_keys(s0, "gone") == {}  # masked on s0 by the first rebuild's complement
    del s1  # nobody holds the snapshot in between: s0 still needs what it lacks
    gc.collect()
    assert live.served_keys(s0, "u") == both
    assert live.impressions(s0, ["a"], s0.rows_of(["a"])).tolist() == [2.0]
    assert live.served_keys(s0, "gone") == {}
    del s0
    gc.collect()
    assert live.served_keys(s2, "u") == both
    assert live._retired == []  # nobody holds a replaced snapshot: every complement is gone
