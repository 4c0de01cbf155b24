"""docs/benchmarks.md is generated from the fragments under docs/bench/ and never drifts."""

from __future__ import annotations


def test_benchmarks_page_is_assembled_from_its_fragments() -> None:
    """docs/benchmarks.md is generated: `make bench-report` after editing a fragment."""
    from bench.docs import BENCHMARKS_MD, ORDER, render

    page = render()
    assert BENCHMARKS_MD.read_text(encoding="utf-8") == page, "run `make bench-report`"
    assert page.index("## What limits each number") < page.index("## Recommendation quality")
    assert ORDER[0] == "limits"
