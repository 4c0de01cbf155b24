"""The import's bookkeeping (server/recommend/importer.py): counts, row numbers, rebuilds."""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import pytest

from mediarec.server.recommend.importer import ImportSummary, import_events
from mediarec.server.recommend.types import Event, EventKind, EventResult, StateInfo

OK, DUP = EventResult("a", accepted=True), EventResult("d", accepted=False, duplicate=True)


def bad(event_id: str) -> EventResult:
    return EventResult(event_id, accepted=False, error="no.")


@pytest.mark.parametrize(
    ("chunks", "max_errors", "errors", "truncated", "counts"),
    [
        ([[OK, bad("x"), DUP]], 10, [(1, "x")], False, (1, 1, 1)),
        ([[OK, OK], [bad("x")], [DUP, bad("y")]], 10, [(2, "x"), (4, "y")], False, (2, 1, 2)),
        ([[bad("x"), bad("y")], [bad("z")]], 2, [(0, "x"), (1, "y")], True, (0, 0, 3)),
        ([[], [OK]], 0, [], False, (1, 0, 0)),
    ],
    ids=["one-chunk", "rows-number-across-chunks", "truncated", "empty-chunk"],
)
def test_summary_numbers_rows_across_chunks_and_keeps_the_first_errors(
    chunks: list[list[EventResult]],
    max_errors: int,
    errors: list[tuple[int, str]],
    truncated: bool,
    counts: tuple[int, int, int],
) -> None:
    summary = ImportSummary(max_errors=max_errors)
    for chunk in chunks:
        summary.add(chunk)
    assert [(e.row, e.event_id) for e in summary.errors] == errors
    assert summary.errors_truncated is truncated
    assert (summary.accepted, summary.duplicates, summary.rejected) == counts


class Store:
    """Stores events once by id (the idempotence the real stores have)."""

    def __init__(self) -> None:
        self.ids: set[str] = set()

    def log_events(self, events: Sequence[Event]) -> list[EventResult]:
        results = []
        for e in events:
            new = e.event_id not in self.ids
            self.ids.add(e.event_id)
            results.append(EventResult(e.event_id, accepted=new, duplicate=not new))
        return results


class Target:
    def __init__(self) -> None:
        self.rebuilds = 0
        self.background = 0
        self.seen: list[str] = []

    def on_events(self, events: Sequence[Event], *, schedule_rebuild: bool = True) -> None:
        assert not schedule_rebuild
        self.seen += [e.event_id for e in events]

    def refresh(self) -> StateInfo:
        self.rebuilds += 1
        return self.state_info()

    def refresh_in_background(self) -> None:
        self.background += 1

    def state_info(self) -> StateInfo:
        return StateInfo(self.rebuilds, len(self.seen), 0, None, 0.0, False)


def like(event_id: str) -> Event:
    return Event(event_id, "u", EventKind.LIKE, 1e9, media_id="m")


def test_an_import_rebuilds_once_at_its_end_and_not_when_nothing_is_new() -> None:
    store, target = Store(), Target()
    first = import_events([[like("a"), like("b")], [like("c")]], store, target, max_errors=5)
    assert (first.summary.accepted, target.rebuilds, target.seen) == (3, 1, ["a", "b", "c"])
    again = import_events([[like("a"), like("b")]], store, target, max_errors=5)
    assert again.summary.duplicates == 2 and target.rebuilds == 1  # nothing new: no rebuild
    empty = import_events([], store, target, max_errors=5)
    assert empty.summary.rows == 0 and target.rebuilds == 1


def test_an_import_that_fails_part_way_keeps_its_rows_and_rebuilds_in_the_background() -> None:
    store, target = Store(), Target()

    def chunks() -> Iterator[list[Event | EventResult]]:
        yield [like("a")]
        raise ConnectionError("the client went away")

    with pytest.raises(ConnectionError):
        import_events(chunks(), store, target, max_errors=5)
    assert store.ids == {"a"} and target.background == 1 and target.rebuilds == 0
