"""A call whose deadline passed while it waited for a worker is refused, never started.

The error-mapping wrapper is pure logic over grpc's handler and context interfaces, so the
context here is a stand-in that records the status the wrapper aborts with.
"""

from __future__ import annotations

from typing import Any

import grpc
import pytest

from mediarec.server.grpc.errors import wrap_handler


class Aborted(Exception):
    pass


class Context:
    def __init__(self, remaining: float | None) -> None:
        self.remaining = remaining
        self.status: tuple[grpc.StatusCode, str] | None = None

    def time_remaining(self) -> float | None:
        return self.remaining

    def abort(self, code: grpc.StatusCode, message: str) -> None:
        self.status = (code, message)
        raise Aborted

    def code(self) -> grpc.StatusCode | None:
        return self.status[0] if self.status else None

    def is_active(self) -> bool:
        return self.status is None


@pytest.mark.parametrize(
    ("remaining", "runs", "status"),
    [(None, True, None), (5.0, True, None), (0.0, False, grpc.StatusCode.DEADLINE_EXCEEDED)],
)
def test_only_calls_with_time_left_run(remaining, runs, status) -> None:
    ran: list[Any] = []
    handler = wrap_handler(grpc.unary_unary_rpc_method_handler(lambda r, c: ran.append(r) or r))
    context = Context(remaining)
    if status is None:
        assert handler.unary_unary("req", context) == "req"
    else:
        with pytest.raises(Aborted):
            handler.unary_unary("req", context)
        assert context.status is not None and context.status[0] is status
        assert "deadline passed" in context.status[1]
    assert bool(ran) is runs
