"""`make bench-speed` refuses a section's summary keys it does not know, but only once the
section has run (minutes later): the latency section's keys are checked here instead."""

from __future__ import annotations


def test_the_latency_sections_summary_keys_are_all_known() -> None:
    from bench.speed import SUMMARY_KEYS
    from bench.speed_latency import SizeResult, summary
    from bench.speed_latency_world import WorldInfo

    world = WorldInfo("v", 0, 0, "m", 0.0, 0.0, 0, 0.0, 0.0, 0)
    keys = set(summary(SizeResult(0, world), 50.0))
    assert keys <= set(SUMMARY_KEYS), sorted(keys - set(SUMMARY_KEYS))
    assert "recommend_warm_in_process_ms_100k_learned" in keys
