"""One log line and one latency observation per call, each with a request id.

The client may send the id as ``x-request-id`` metadata; otherwise the server makes one. Either
way it goes back in the trailing metadata, on errors too, so a caller can quote it and an
operator can find the call's line. The interceptor sits outside every other one (auth, the
error table), so refused and failed calls are measured with the status they got.

It wraps handlers the way the error table does
(``mediarec.server.grpc.errors.with_behavior``), including
grpc's non-blocking convention, so ``Health/Watch`` and streaming uploads keep working.
"""

from __future__ import annotations

import functools
import logging
import re
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from enum import Enum
from typing import Any

import grpc

from mediarec.server.grpc.errors import handler_behavior, with_behavior
from mediarec.server.observability.metrics import ServerMetrics
from mediarec.server.observability.request_id import CURRENT_REQUEST_ID

logger = logging.getLogger(__name__)

REQUEST_ID_KEY = "x-request-id"
# Printable, no spaces, short: it is echoed into logs and metadata.
_VALID_ID = re.compile(r"^[A-Za-z0-9._:/+=-]{1,128}$")


def request_id_of(metadata: Sequence[tuple[str, Any]] | None) -> str:
    """The client's request id when it sent a usable one, else a new one."""
    for key, value in metadata or ():
        if key == REQUEST_ID_KEY and isinstance(value, str) and _VALID_ID.match(value):
            return value
    return uuid.uuid4().hex


class RequestObserver(grpc.ServerInterceptor):
    """Times every call into ``metrics`` and logs one line when it ends."""

    def __init__(self, metrics: ServerMetrics) -> None:
        self._metrics = metrics

    def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], grpc.RpcMethodHandler | None],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler | None:
        handler = continuation(handler_call_details)
        if handler is None:
            return None
        method = handler_call_details.method
        behavior = handler_behavior(handler)
        if getattr(behavior, "experimental_non_blocking", False):
            observed = self._non_blocking(method, behavior)
        elif handler.response_streaming:
            observed = self._streaming(method, behavior)
        else:
            observed = self._unary(method, behavior)
        return with_behavior(handler, observed)

    def _unary(self, method: str, behavior: Callable[..., Any]) -> Callable[..., Any]:
        def unary(request: Any, context: grpc.ServicerContext) -> Any:
            call = _Call(self._metrics, method, context)
            try:
                response = behavior(request, context)
            except grpc.RpcError:  # reading a request stream the client abandoned
                call.end(ended=Ended.ABANDONED)
                raise
            except BaseException:
                call.end(ended=Ended.RAISED)
                raise
            call.end(ended=Ended.RETURNED, items=_items_of(response))
            return response

        return functools.wraps(behavior)(unary)

    def _streaming(self, method: str, behavior: Callable[..., Any]) -> Callable[..., Any]:
        def streaming(request: Any, context: grpc.ServicerContext) -> Iterator[Any]:
            call = _Call(self._metrics, method, context)
            sent = 0
            try:
                for response in behavior(request, context):
                    sent += 1
                    yield response
            except (GeneratorExit, grpc.RpcError):  # the client went away mid-stream
                call.end(ended=Ended.ABANDONED, items=sent)
                raise
            except BaseException:
                call.end(ended=Ended.RAISED, items=sent)
                raise
            call.end(ended=Ended.RETURNED, items=sent)

        return functools.wraps(behavior)(streaming)

    def _non_blocking(self, method: str, behavior: Callable[..., Any]) -> Callable[..., Any]:
        """grpc's non-blocking convention (Health/Watch): the behavior returns at once and
        sends through a callback for as long as the call lives; the call ends when grpc
        terminates it (the client cancels, its deadline passes, or the server stops)."""

        def non_blocking(
            request: Any, context: grpc.ServicerContext, send: Callable[[Any], None]
        ) -> Any:
            call = _Call(self._metrics, method, context)
            sent = [0]

            def counted(response: Any) -> None:
                if response is not None:
                    sent[0] += 1
                send(response)

            def ended() -> None:
                call.end(ended=Ended.TERMINATED, items=sent[0])

            if not context.add_callback(ended):  # already over
                ended()
            return behavior(request, context, counted)

        non_blocking.experimental_non_blocking = True  # type: ignore[attr-defined]
        return functools.wraps(behavior)(non_blocking)


class Ended(Enum):
    """How a handler finished, which decides its status when no code was set."""

    RETURNED = "returned"  # OK, unless its deadline passed meanwhile
    RAISED = "raised"  # UNKNOWN: an exception no error table mapped
    ABANDONED = "abandoned"  # the client cancelled, or its deadline passed
    TERMINATED = "terminated"  # a non-blocking call's end: likewise


class _Call:
    """One call from its start: its id, its clock, its in-flight count. Measuring a call must
    never fail it, so every step is guarded."""

    def __init__(
        self, metrics: ServerMetrics, method: str, context: grpc.ServicerContext
    ) -> None:
        self._metrics = metrics
        self._method = method
        self._context = context
        self._started = time.perf_counter()
        self._counted = False
        self.request_id = ""
        try:
            self.request_id = request_id_of(context.invocation_metadata())
            CURRENT_REQUEST_ID.set(self.request_id)
            context.set_trailing_metadata(((REQUEST_ID_KEY, self.request_id),))
            metrics.in_flight.labels(method).inc()
            self._counted = True
        except Exception:
            logger.exception("could not start measuring the call %s", method)

    def end(self, *, ended: Ended, items: int | None = None) -> None:
        try:
            self._record(ended, items)
        except Exception:
            logger.exception("could not record the call %s", self._method)

    def _record(self, ended: Ended, items: int | None) -> None:
        seconds = time.perf_counter() - self._started
        code = _code_of(self._context, ended)
        if self._counted:
            self._counted = False  # a call ends once, however grpc reports it
            self._metrics.in_flight.labels(self._method).dec()
        self._metrics.rpc_seconds.labels(self._method, code.name).observe(seconds)
        unexpected = code in (grpc.StatusCode.INTERNAL, grpc.StatusCode.UNKNOWN)
        logger.log(
            logging.WARNING if unexpected else logging.INFO,
            "rpc %s %s %.1f ms id=%s items=%s",
            self._method, code.name, seconds * 1000.0, self.request_id,
            "-" if items is None else items,
            extra={
                "rpc_method": self._method, "code": code.name,
                "duration_ms": round(seconds * 1000.0, 3), "request_id": self.request_id,
                "items": items,
            },
        )  # fmt: skip


def _code_of(context: grpc.ServicerContext, ended: Ended) -> grpc.StatusCode:
    """The call's status: what a handler or an abort set, else what its ending implies."""
    code = context.code()  # type: ignore[attr-defined]
    if isinstance(code, grpc.StatusCode):
        return code
    remaining = context.time_remaining()
    expired = remaining is not None and remaining <= 0
    if ended in (Ended.ABANDONED, Ended.TERMINATED):
        return grpc.StatusCode.DEADLINE_EXCEEDED if expired else grpc.StatusCode.CANCELLED
    if ended is Ended.RAISED:
        return grpc.StatusCode.UNKNOWN
    return grpc.StatusCode.DEADLINE_EXCEEDED if expired else grpc.StatusCode.OK


# Fields that hold a response's results; others (an import's rejected rows) are not its items.
ITEM_FIELDS = ("results", "items")


def _items_of(response: Any) -> int | None:
    """How many results a unary response carries, when it has a list of them."""
    for name in ITEM_FIELDS:
        values = getattr(response, name, None)
        if values is not None and not isinstance(values, (str, bytes)):
            try:
                return len(values)
            except TypeError:
                continue
    return None
