"""How many RPC handlers are running right now, so shutdown knows whether its grace sufficed."""

from __future__ import annotations

import threading
from types import TracebackType


class InFlight:
    """A thread-safe count of running handlers; ``with inflight:`` counts one."""

    def __init__(self) -> None:
        self._count = 0
        self._idle = threading.Condition()

    @property
    def count(self) -> int:
        with self._idle:
            return self._count

    def __enter__(self) -> InFlight:
        with self._idle:
            self._count += 1
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        with self._idle:
            self._count -= 1
            if self._count == 0:
                self._idle.notify_all()

    def wait_idle(self, timeout_s: float) -> bool:
        """Wait until no handler runs; False when some still do after ``timeout_s``."""
        with self._idle:
            return self._idle.wait_for(lambda: self._count == 0, timeout=timeout_s)
