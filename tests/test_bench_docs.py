"""docs/benchmarks.md is generated from the fragments under docs/bench/ and never drifts."""

from __future__ import annotations

from pathlib import Path


def test_benchmarks_page_is_assembled_from_its_fragments() -> None:
    """docs/benchmarks.md is generated: `make bench-report` after editing a fragment."""
    from bench.docs import BENCHMARKS_MD, ORDER, render

    page = render()
    assert BENCHMARKS_MD.read_text(encoding="utf-8") == page, "run `make bench-report`"
    assert page.index("## What limits each number") < page.index("## Recommendation quality")
    assert ORDER[0] == "limits"


def test_fragments_are_put_in_order_and_a_rewritten_one_replaces_its_section(
    tmp_path: Path,
) -> None:
    from bench.docs import assemble_beside

    fragments = tmp_path / "bench"
    fragments.mkdir()
    (fragments / "real.md").write_text("## Real\n\nold text\n")
    (fragments / "limits.md").write_text("## What limits each number\n\nhand\n")
    (fragments / "notes.md").write_text("## Not a fragment\n")  # not in ORDER: left out
    page = assemble_beside(fragments)
    assert page == tmp_path / "benchmarks.md"
    text = page.read_text()
    assert text.index("## What limits") < text.index("## Real") and "Not a fragment" not in text
    (fragments / "real.md").write_text("## Real\n\nsecond\n")
    text = assemble_beside(fragments).read_text()
    assert text.count("## Real") == 1 and "second" in text and "old text" not in text
