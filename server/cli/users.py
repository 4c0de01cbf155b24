"""``mediarec recommend``, ``interests`` and ``forget``: one user's side of a running server.

They always go through a server (``--server``, the local default port unless told otherwise):
a running server holds the store's lock, and recommendations need its live state anyway.
``recommend`` previews with ``dry_run`` unless ``--commit`` is given, so looking at a user's
page does not count as showing it to them.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, TextIO, TypeVar

from mediarec.server.cli.common import server_error

if TYPE_CHECKING:
    from mediarec.client import MediarecClient, Recommendation

DEFAULT_SERVER = "127.0.0.1:50051"
EXIT_OK, EXIT_FAILED = 0, 1
SURFACES = ("feed", "explore", "reels")
BREAKDOWN_TERMS = 4  # signals shown per item with --explain

T = TypeVar("T")


def _call(
    command: str, server: str, api_key: str | None, work: Callable[[MediarecClient], T]
) -> T | None:
    """Run ``work`` against the server; print one line and return None when it fails."""
    from mediarec.client import MediarecClient, MediarecError, Unavailable

    try:
        with MediarecClient(server, api_key=api_key) as client:
            return work(client)
    except Unavailable as exc:
        print(f"mediarec {command}: no server answered at {server} ({exc}); start one with "
              "`mediarec serve`, or name it with --server HOST:PORT", file=sys.stderr)  # fmt: skip
    except MediarecError as exc:
        print(f"mediarec {command}: {server}: {server_error(exc, api_key)}", file=sys.stderr)
    return None


def run_recommend(
    user_id: str,
    *,
    server: str = DEFAULT_SERVER,
    api_key: str | None = None,
    surface: str = "feed",
    k: int = 10,
    explain: bool = False,
    commit: bool = False,
    as_json: bool = False,
    out: TextIO | None = None,
) -> int:
    from mediarec.client import Surface

    out = out or sys.stdout
    page = _call(
        "recommend", server, api_key,
        lambda c: c.recommend(user_id, k=k, surface=Surface[surface.upper()], dry_run=not commit),
    )  # fmt: skip
    if page is None:
        return EXIT_FAILED
    if as_json:
        json.dump([_as_dict(r) for r in page.items], out, indent=2)
        print(file=out)
    else:
        print_recommendations(page.items, out, explain=explain)
    return EXIT_OK


def print_recommendations(
    items: Sequence[Recommendation], out: TextIO, *, explain: bool = False
) -> None:
    """rank, score, media id, type and the reasons; with ``explain``, the largest terms of
    each score's breakdown under it."""
    if not items:
        print("no recommendations (an empty catalogue, or everything is filtered out)", file=out)
        return
    id_width = max(8, *(len(r.media_id) for r in items))
    print(f"{'rank':>4}  {'score':>7}  {'media_id':<{id_width}}  {'type':<5}  reasons", file=out)
    for rank, r in enumerate(items, start=1):
        kind = r.item.metadata.media_type.name.lower()
        reasons = "; ".join(r.reasons) + (" (exploring)" if r.explored else "")
        print(f"{rank:>4}  {r.score:>7.3f}  {r.media_id:<{id_width}}  {kind:<5}  {reasons}",
              file=out)  # fmt: skip
        if explain and r.score_breakdown:
            terms = "  ".join(f"{name} {value:+.3f}"
                              for name, value in r.score_breakdown[:BREAKDOWN_TERMS])  # fmt: skip
            print(f"{'':>4}  {'':>7}  {terms}", file=out)


def _as_dict(r: Recommendation) -> dict[str, Any]:
    return {
        "media_id": r.media_id,
        "score": r.score,
        "media_type": r.item.metadata.media_type.name.lower(),
        "caption": r.item.metadata.caption,
        "reasons": list(r.reasons),
        "score_breakdown": dict(r.score_breakdown),
        "sources": list(r.sources),
        "explored": r.explored,
    }


def run_interests(
    user_id: str,
    text: str,
    *,
    server: str = DEFAULT_SERVER,
    api_key: str | None = None,
    out: TextIO | None = None,
) -> int:
    out = out or sys.stdout
    parsed = _call("interests", server, api_key, lambda c: c.set_interests(user_id, text))
    if parsed is None:
        return EXIT_FAILED
    print(f"{user_id}'s interests: {', '.join(parsed) if parsed else '(none)'}", file=out)
    return EXIT_OK


def run_forget(
    user_id: str,
    *,
    server: str = DEFAULT_SERVER,
    api_key: str | None = None,
    out: TextIO | None = None,
) -> int:
    out = out or sys.stdout
    report = _call("forget", server, api_key, lambda c: c.forget_user(user_id))
    if report is None:
        return EXIT_FAILED
    print(
        f"forgot {user_id}: {report.events_deleted} events, {report.impressions_deleted} "
        f"impressions, {report.follows_deleted} follows, {report.interests_deleted} interests, "
        f"{report.other_deleted} other records",
        file=out,
    )
    return EXIT_OK
