"""``mediarec index --prune``: remove the stored items of a folder whose files are gone.

An item belongs to a folder when its stored source (the absolute path the indexer sent) lies
under the folder. Pruning is refused, unless forced, when it looks like a mistake rather than
housekeeping: the folder itself is missing (an unmounted disk), or more than a fifth of its
items would go.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Container, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Protocol

logger = logging.getLogger(__name__)

# Above this share of a folder's items, a prune needs --force.
MAX_PRUNE_SHARE = 0.2


class SourcedStore(Protocol):
    """Where a folder's items are stored, as pruning sees it."""

    def sourced(self, prefix: str) -> Sequence[tuple[str, str]]:
        """(media_id, source) of every stored item whose source starts with ``prefix``."""
        ...

    def delete(self, media_id: str, source: str) -> bool:
        """Delete one item if its stored source is still ``source``; False when it is not
        (deleted already, or another file took the id)."""
        ...


@dataclass(frozen=True)
class PrunePlan:
    folder: Path  # absolute
    held: int  # stored items whose source lies under the folder
    gone: tuple[tuple[str, str], ...]  # (media_id, source) of those whose file is missing

    @property
    def share(self) -> float:
        return len(self.gone) / self.held if self.held else 0.0

    def with_new_items(self, created: int) -> PrunePlan:
        """The plan once this run has stored ``created`` new items of the folder: the share
        that would go is taken over everything the folder then holds."""
        return replace(self, held=self.held + created)

    def needs_force(self) -> str | None:
        """Why this prune needs --force (a clause); None when it may go ahead."""
        if not self.gone:
            return None
        if not self.folder.is_dir():
            return f"the folder is missing and all {len(self.gone)} of its items would go"
        if self.share > MAX_PRUNE_SHARE:
            return (
                f"{len(self.gone)} of the folder's {self.held} items would go "
                f"({self.share:.0%}, over {MAX_PRUNE_SHARE:.0%})"
            )
        return None


def plan_prune(folder: Path, store: SourcedStore) -> PrunePlan:
    """The folder's stored items whose files no longer exist."""
    # resolve() follows the links that exist, as the indexer did when it stored the sources,
    # so a folder reached through a symlink (or an unmounted disk's mount point) still matches.
    root = folder.resolve()
    held = 0
    gone: list[tuple[str, str]] = []
    for media_id, source in store.sourced(str(root) + os.sep):
        held += 1
        if not os.path.exists(source):
            gone.append((media_id, source))
    return PrunePlan(root, held, tuple(sorted(gone)))


def prune(
    plan: PrunePlan,
    store: SourcedStore,
    removed: list[str],
    *,
    keep: Container[str] = (),
    stop: threading.Event | None = None,
) -> None:
    """Delete the plan's items whose files are still gone, appending each removed id to
    ``removed`` as it goes (so an interruption loses no record). Ids in ``keep`` (indexed by
    this run) and items whose source changed since the plan are left alone."""
    for media_id, source in plan.gone:
        if stop is not None and stop.is_set():
            return
        if media_id in keep or os.path.exists(source):
            continue  # the file came back, or its id was indexed again, after the plan
        if store.delete(media_id, source):
            logger.info("pruned %s (%s is gone)", media_id, source)
            removed.append(media_id)
