"""Keeps a request that was in flight while its user was forgotten from storing anything.

``forget_user`` deletes a user's rows and drops their in-memory state, but a Recommend call
that started before it ended may have ranked on the data being deleted. Without a fence it
would then log the page as served and keep the ranking for paging, and the forgotten user
would have stored data again. A request takes a ticket when it starts and stores only inside
:meth:`ForgetFence.storing`, which says whether its user's forget began since (or is under
way). ``forget_user`` runs inside :meth:`ForgetFence.forgetting`, which first waits for the
user's requests already storing, so the served-log flush that follows sees what they stored.
"""

from __future__ import annotations

import threading
from collections import Counter, OrderedDict
from collections.abc import Iterator
from contextlib import contextmanager

# A tombstone is needed only while requests that started before it are in flight; keeping the
# latest few thousand bounds the memory. A request older than every kept tombstone cannot tell
# and stores nothing (it would take that many forgets during one request).
DEFAULT_MAX_TOMBSTONES = 4096


class ForgetFence:
    """Tickets for requests and tombstones for forgotten users, under one condition."""

    def __init__(self, max_tombstones: int = DEFAULT_MAX_TOMBSTONES) -> None:
        self._changed = threading.Condition()
        self._epoch = 0
        self._forgotten: OrderedDict[str, int] = OrderedDict()  # user -> epoch its forget ended
        self._floor = 0  # the epoch of the newest tombstone dropped for room
        self._max = max(1, max_tombstones)
        self._forgetting: Counter[str] = Counter()  # users whose forget is under way
        self._storing: Counter[str] = Counter()  # users with a request inside storing()

    def ticket(self) -> int:
        """Taken when a request starts: only forgets that end later can fence it."""
        with self._changed:
            return self._epoch

    @contextmanager
    def forgetting(self, user_id: str) -> Iterator[None]:
        """Around the deletes of a forget: no request of ``user_id`` stores meanwhile, those
        storing when it starts have finished, and when it ends every request that started
        before is fenced."""
        with self._changed:
            self._forgetting[user_id] += 1
        try:
            with self._changed:
                self._changed.wait_for(lambda: self._storing[user_id] == 0)
            yield
        finally:  # an interrupted wait too: a marker left behind would fence the user for good
            with self._changed:
                self._epoch += 1
                self._forgotten.pop(user_id, None)
                self._forgotten[user_id] = self._epoch
                while len(self._forgotten) > self._max:
                    _, self._floor = self._forgotten.popitem(last=False)
                self._forgetting[user_id] -= 1
                if not self._forgetting[user_id]:
                    del self._forgetting[user_id]

    @contextmanager
    def storing(self, user_id: str, ticket: int) -> Iterator[bool]:
        """Whether a request holding ``ticket`` may store data of ``user_id``; a forget of
        the user that starts meanwhile waits for the block to end."""
        with self._changed:
            allowed = (
                user_id not in self._forgetting
                and ticket >= self._floor
                and self._forgotten.get(user_id, 0) <= ticket
            )
            if allowed:
                self._storing[user_id] += 1
        try:
            yield allowed
        finally:
            if allowed:
                with self._changed:
                    self._storing[user_id] -= 1
                    if not self._storing[user_id]:
                        del self._storing[user_id]
                        self._changed.notify_all()
