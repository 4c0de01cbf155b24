"""Benchmarks of mediarec. ``python -m bench.quality`` measures recommendation quality on a
synthetic world whose engagement never depends on mediarec's own outputs."""
