"""One log line and one latency observation per call, each with a request id.

The client may send the id as ``x-request-id`` metadata; otherwise the server makes one. Either
way it goes back in the trailing metadata, on errors too, so a caller can quote it and an
operator can find the call's line. The interceptor sits outside every other one (auth, the
error table), so refused and failed calls are measured with the status they got.

It wraps handlers the way the error table does (``server.errors.with_behavior``), including
grpc's non-blocking convention, so ``Health/Watch`` and streaming uploads keep working.
"""

from __future__ import annotations

import functools
import logging
import re
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import grpc

from server.errors import handler_behavior, with_behavior
from server.observability.metrics import ServerMetrics

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
            return handler  # Health/Watch returns at once and streams for as long as it likes
        observed = (self._streaming if handler.response_streaming else self._unary)(
            method, behavior
        )
        return with_behavior(handler, observed)

    def _unary(self, method: str, behavior: Callable[..., Any]) -> Callable[..., Any]:
        def unary(request: Any, context: grpc.ServicerContext) -> Any:
            call = _Call(self._metrics, method, context)
            try:
                response = behavior(request, context)
            except BaseException:
                call.end(failed=True, items=None)
                raise
            call.end(failed=False, response=response)
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
            except BaseException:
                call.end(failed=True, items=sent)
                raise
            call.end(failed=False, items=sent)

        return functools.wraps(behavior)(streaming)


class _Call:
    """One call from its start: its id, its clock, its in-flight count."""

    def __init__(self, metrics: ServerMetrics, method: str, context: grpc.ServicerContext):
        self._metrics = metrics
        self._method = method
        self._context = context
        self._started = time.perf_counter()
        self.request_id = request_id_of(context.invocation_metadata())
        context.set_trailing_metadata(((REQUEST_ID_KEY, self.request_id),))
        metrics.in_flight.labels(method).inc()

    def end(self, *, failed: bool, items: int | None = None, response: Any = None) -> None:
        """Record the call; ``items``: responses streamed, else counted in ``response``."""
        try:
            self._record(failed, items if response is None else _items_of(response))
        except Exception:  # measuring a call must never fail it
            logger.exception("could not record the call %s", self._method)

    def _record(self, failed: bool, items: int | None) -> None:
        seconds = time.perf_counter() - self._started
        code = _code_of(self._context, failed)
        self._metrics.in_flight.labels(self._method).dec()
        self._metrics.rpc_seconds.labels(self._method, code.name).observe(seconds)
        level = logging.INFO if code is not grpc.StatusCode.INTERNAL else logging.WARNING
        logger.log(
            level, "rpc %s %s %.1f ms id=%s items=%s",
            self._method, code.name, seconds * 1000.0, self.request_id,
            "-" if items is None else items,
        )  # fmt: skip


def _code_of(context: grpc.ServicerContext, failed: bool) -> grpc.StatusCode:
    """The call's status: what a handler or an abort set, else OK (or UNKNOWN on a raise)."""
    code = context.code()  # type: ignore[attr-defined]
    if isinstance(code, grpc.StatusCode):
        return code
    return grpc.StatusCode.UNKNOWN if failed else grpc.StatusCode.OK


def _items_of(response: Any) -> int | None:
    """How many results a unary response carries: its longest repeated field, if any."""
    fields = getattr(response, "ListFields", None)
    if fields is None:
        return None
    lengths = [len(value) for descriptor, value in fields() if descriptor.is_repeated]
    return max(lengths) if lengths else 0
