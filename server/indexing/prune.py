"""``mediarec index --prune``: remove the stored items of a folder whose files are gone.

An item belongs to a folder when its stored source (the absolute path the indexer sent) lies
under the folder. Pruning is refused, unless forced, when it looks like a mistake rather than
housekeeping: the folder itself is missing (an unmounted disk), or more than a fifth of its
items would go.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

logger = logging.getLogger(__name__)

# Above this share of a folder's items, a prune needs --force.
MAX_PRUNE_SHARE = 0.2


class SourcedStore(Protocol):
    """Where a folder's items are stored, as pruning sees it."""

    def sourced(self, prefix: str) -> Iterator[tuple[str, str]]:
        """(media_id, source) of every stored item whose source starts with ``prefix``."""
        ...

    def delete(self, media_id: str) -> bool:
        """Delete one item; False when it was already gone."""
        ...


@dataclass(frozen=True)
class PrunePlan:
    folder: Path  # absolute
    held: int  # stored items whose source lies under the folder
    gone: tuple[tuple[str, str], ...]  # (media_id, source) of those whose file is missing

    @property
    def share(self) -> float:
        return len(self.gone) / self.held if self.held else 0.0

    def refusal(self) -> str | None:
        """Why this prune needs --force, in one sentence; None when it may go ahead."""
        if not self.gone:
            return None
        if not self.folder.is_dir():
            return (
                f"{self.folder} is not a folder, so --prune would remove all {len(self.gone)} "
                "of its items; check the path (an unmounted disk?), or add --force"
            )
        if self.share > MAX_PRUNE_SHARE:
            return (
                f"--prune would remove {len(self.gone)} of the folder's {self.held} items "
                f"({self.share:.0%}, over {MAX_PRUNE_SHARE:.0%}); list them with --dry-run, "
                "or add --force"
            )
        return None


def plan_prune(folder: Path, store: SourcedStore) -> PrunePlan:
    """The folder's stored items whose files no longer exist."""
    root = Path(os.path.abspath(folder.resolve() if folder.exists() else folder))
    held = 0
    gone: list[tuple[str, str]] = []
    for media_id, source in store.sourced(str(root) + os.sep):
        held += 1
        if not os.path.lexists(source):
            gone.append((media_id, source))
    return PrunePlan(root, held, tuple(sorted(gone)))


def prune(plan: PrunePlan, store: SourcedStore) -> list[str]:
    """Delete the plan's items; the ids actually removed (one already gone is skipped)."""
    removed = []
    for media_id, source in plan.gone:
        if store.delete(media_id):
            logger.info("pruned %s (%s is gone)", media_id, source)
            removed.append(media_id)
    return removed
