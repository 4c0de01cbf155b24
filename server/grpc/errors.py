"""The one table that maps domain errors to gRPC status codes, and the helpers that apply it.

An exception that escapes a servicer method reaches the client as UNKNOWN with no useful
detail. Servicers therefore raise domain errors and let ``maps_errors`` (a method decorator)
or ``ErrorMappingInterceptor`` (server-wide) turn them into ``context.abort(code, message)``;
anything unexpected becomes INTERNAL with a generic one-sentence message and a logged traceback.
"""

from __future__ import annotations

import contextlib
import errno
import functools
import inspect
import logging
import sqlite3
import uuid
from collections.abc import Callable, Iterator, Mapping
from typing import Any, NoReturn, TypeAlias, TypeVar

import grpc
from google.protobuf.message import DecodeError

from mediarec.server.grpc.inflight import InFlight
from mediarec.server.observability.request_id import CURRENT_REQUEST_ID
from mediarec.server.service_errors import (  # re-exported: the status table's keys
    AlreadyExistsError,
    DeadlineExceededError,
    InvalidArgumentError,
    NotFoundError,
    PreconditionError,
    ResourceLimitError,
    UnauthenticatedError,
    UnavailableError,
)

logger = logging.getLogger(__name__)


StatusRule: TypeAlias = grpc.StatusCode | Callable[[BaseException], grpc.StatusCode | None]


def _decode_error_status(error: BaseException) -> grpc.StatusCode:
    # An image over the pixel cap, or a video over the length limits, is over a limit; every
    # other decode failure (an extreme aspect ratio included) is bad input.
    if str(getattr(error, "reason", "")) in ("too_many_pixels", "too_long"):
        return grpc.StatusCode.RESOURCE_EXHAUSTED
    return grpc.StatusCode.INVALID_ARGUMENT


def default_status_table() -> dict[type[BaseException], StatusRule]:
    """Exception type -> status code (or a rule computing it), looked up along the MRO.

    Built on demand, not at import, so this module imports nothing heavy and the table
    can name errors of modules that import this one.
    """
    from mediarec.encoders.base import (
        EmbeddingUnsupportedError,
        ModelIdError,
        WeightsUnavailableError,
    )
    from mediarec.encoders.media_errors import MediaDecodeError

    table: dict[type[BaseException], StatusRule] = {
        InvalidArgumentError: grpc.StatusCode.INVALID_ARGUMENT,
        ResourceLimitError: grpc.StatusCode.RESOURCE_EXHAUSTED,
        NotFoundError: grpc.StatusCode.NOT_FOUND,
        AlreadyExistsError: grpc.StatusCode.ALREADY_EXISTS,
        PreconditionError: grpc.StatusCode.FAILED_PRECONDITION,
        UnauthenticatedError: grpc.StatusCode.UNAUTHENTICATED,
        UnavailableError: grpc.StatusCode.UNAVAILABLE,
        DeadlineExceededError: grpc.StatusCode.DEADLINE_EXCEEDED,
        # Embeddings sent for another model, or a model id that names no model.
        ModelIdError: grpc.StatusCode.INVALID_ARGUMENT,
        # Retrying cannot help until an operator provides the weights.
        WeightsUnavailableError: grpc.StatusCode.FAILED_PRECONDITION,
        # e.g. image bytes sent to a vectors-only (external:) model: send embeddings instead.
        EmbeddingUnsupportedError: grpc.StatusCode.FAILED_PRECONDITION,
        MediaDecodeError: _decode_error_status,
    }
    table.update(_store_status_rules())
    table[OSError] = _disk_full_status
    table[sqlite3.OperationalError] = _disk_full_status
    return table


# errno values of a write that found no room: the disk, the file size limit, the quota.
_NO_ROOM = frozenset({errno.ENOSPC, errno.EFBIG, errno.EDQUOT})
DISK_FULL = (
    "the server's storage is full, so the write did not complete; free space and retry"
)


def _disk_full_status(error: BaseException) -> grpc.StatusCode | None:
    """RESOURCE_EXHAUSTED for a write that found no room; None (an internal error) otherwise.

    SQLite reports a full disk as OperationalError("database or disk is full") and rolls the
    transaction back; the file system's own errors carry an errno."""
    if isinstance(error, OSError) and error.errno in _NO_ROOM:
        return grpc.StatusCode.RESOURCE_EXHAUSTED
    if isinstance(error, sqlite3.OperationalError) and "full" in str(error).lower():
        return grpc.StatusCode.RESOURCE_EXHAUSTED
    return None


def _store_status_rules() -> dict[type[BaseException], StatusRule]:
    from mediarec.server.store.base import (
        CollectionNotReadyError,
        DimensionMismatchError,
        InvalidVectorError,
        StoreLockedError,
    )

    return {
        # The collection was created for a model with another dimension; the message names both.
        DimensionMismatchError: grpc.StatusCode.FAILED_PRECONDITION,
        # A client-sent vector that is not finite or names no collection vector.
        InvalidVectorError: grpc.StatusCode.INVALID_ARGUMENT,
        # The store is still opening; the request may succeed shortly.
        CollectionNotReadyError: grpc.StatusCode.UNAVAILABLE,
        # Another process holds the embedded store; it must be stopped (or used via --server).
        StoreLockedError: grpc.StatusCode.FAILED_PRECONDITION,
    }


def lookup_status(
    error: BaseException, table: Mapping[type[BaseException], StatusRule]
) -> grpc.StatusCode | None:
    """The status code for ``error`` from the most specific type in its MRO, or None."""
    for klass in type(error).__mro__:
        rule = table.get(klass)
        if rule is None:
            continue
        return rule if isinstance(rule, grpc.StatusCode) else rule(error)  # None: not mapped
    return None


def status_for(
    error: BaseException, table: Mapping[type[BaseException], StatusRule] | None = None
) -> tuple[grpc.StatusCode, str]:
    """(code, message) to send for ``error``; unmapped errors get INTERNAL and a log entry."""
    code = lookup_status(error, default_status_table() if table is None else table)
    if code is grpc.StatusCode.RESOURCE_EXHAUSTED and isinstance(
        error, (OSError, sqlite3.OperationalError)
    ):
        logger.error("a write found no room: %s", error)
        return code, DISK_FULL
    if code is not None:
        return code, str(error) or type(error).__name__
    # The call's request id when it has one, so the message, the traceback and the call's
    # log line can be joined.
    ref = CURRENT_REQUEST_ID.get() or uuid.uuid4().hex[:12]
    logger.error("unexpected error (ref %s)", ref, exc_info=error)
    return grpc.StatusCode.INTERNAL, f"Internal server error (ref {ref}); see the server log."


def abort_for(
    context: grpc.ServicerContext,
    error: BaseException,
    table: Mapping[type[BaseException], StatusRule] | None = None,
) -> NoReturn:
    """Abort the RPC with the status mapped from ``error``."""
    code, message = status_for(error, table)
    context.abort(code, message)
    raise AssertionError("context.abort returned")  # grpc always raises; this keeps NoReturn true


def _already_finished(error: BaseException, context: grpc.ServicerContext) -> bool:
    """True for grpc's own abort exception and for errors from an RPC that is already over."""
    # context.abort() records the status, then raises a bare Exception() to unwind the servicer.
    if type(error) is Exception and not error.args and context.code() is not None:
        return True
    # A cancelled client makes request iteration raise; there is nobody left to answer.
    return isinstance(error, grpc.RpcError) and not context.is_active()


def _handle(
    error: Exception,
    context: grpc.ServicerContext,
    table: Mapping[type[BaseException], StatusRule] | None,
) -> NoReturn:
    if _already_finished(error, context):
        raise error
    abort_for(context, error, table)


def wrap_behavior(
    behavior: Callable[[Any, grpc.ServicerContext], Any],
    response_streaming: bool,
    table: Mapping[type[BaseException], StatusRule] | None = None,
    inflight: InFlight | None = None,
) -> Callable[[Any, grpc.ServicerContext], Any]:
    """Wrap one handler function ``(request_or_iterator, context)`` with the error mapping.

    grpc calls a behavior marked ``experimental_non_blocking`` (the health servicer's
    ``Watch``) with a third argument, ``send_response_callback``, and it returns instead of
    yielding; the wrapper keeps that calling convention, or such a call fails as UNKNOWN.
    ``inflight`` counts the handler while it runs (a non-blocking one returns at once).
    """
    running = inflight if inflight is not None else contextlib.nullcontext()
    if getattr(behavior, "experimental_non_blocking", False):

        def non_blocking(request: Any, context: grpc.ServicerContext, *args: Any) -> Any:
            try:
                return behavior(request, context, *args)  # type: ignore[call-arg]
            except Exception as error:
                _handle(error, context, table)

        return functools.wraps(behavior)(non_blocking)

    if response_streaming:

        def streaming(request: Any, context: grpc.ServicerContext) -> Iterator[Any]:
            with running:
                try:
                    yield from behavior(request, context)
                except Exception as error:
                    _handle(error, context, table)

        return functools.wraps(behavior)(streaming)

    def unary(request: Any, context: grpc.ServicerContext) -> Any:
        with running:
            try:
                return behavior(request, context)
            except Exception as error:
                _handle(error, context, table)

    return functools.wraps(behavior)(unary)


_Method = TypeVar("_Method", bound=Callable[..., Any])


def maps_errors(method: _Method) -> _Method:
    """Decorate a servicer method ``(self, request, context)`` so errors map to status codes."""
    if inspect.isgeneratorfunction(method):

        @functools.wraps(method)
        def streaming(self: Any, request: Any, context: grpc.ServicerContext) -> Iterator[Any]:
            try:
                yield from method(self, request, context)
            except Exception as error:
                _handle(error, context, None)

        return streaming  # type: ignore[return-value]

    @functools.wraps(method)
    def unary(self: Any, request: Any, context: grpc.ServicerContext) -> Any:
        try:
            return method(self, request, context)
        except Exception as error:
            _handle(error, context, None)

    return unary  # type: ignore[return-value]


class ErrorMappingInterceptor(grpc.ServerInterceptor):
    """Applies the error table to every RPC of the server, including services we didn't write,
    and counts running handlers in ``inflight`` when given one."""

    def __init__(
        self,
        table: Mapping[type[BaseException], StatusRule] | None = None,
        inflight: InFlight | None = None,
    ) -> None:
        self._table = dict(default_status_table() if table is None else table)
        self._inflight = inflight

    def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], grpc.RpcMethodHandler | None],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler | None:
        handler = continuation(handler_call_details)
        if handler is None:
            return None
        return wrap_handler(handler, self._table, self._inflight)


class _Undecodable:
    """Stands for request bytes protobuf could not parse, until the handler can refuse them.

    grpc turns a deserializer's exception into INTERNAL before any handler runs; parsing
    leniently lets the call fail with INVALID_ARGUMENT and a sentence instead.
    """

    def __init__(self, error: Exception) -> None:
        self.error = error


def _lenient(deserializer: Callable[[bytes], Any] | None) -> Callable[[bytes], Any] | None:
    if deserializer is None:
        return None

    def parse(data: bytes) -> Any:
        try:
            return deserializer(data)
        except DecodeError as error:  # e.g. a string field that is not UTF-8
            return _Undecodable(error)

    return parse


def _refuse_undecodable(request: Any) -> Any:
    if isinstance(request, _Undecodable):
        raise InvalidArgumentError(
            "request",
            "the request is not a valid message: a string field holds invalid UTF-8, or the "
            "bytes are malformed",
        )
    return request


def _checked(
    behavior: Callable[[Any, grpc.ServicerContext], Any], request_streaming: bool
) -> Callable[[Any, grpc.ServicerContext], Any]:
    """``behavior`` refusing undecodable requests (each message, for a request stream), and
    never starting a call whose deadline has passed."""

    def checked(request: Any, context: grpc.ServicerContext, *args: Any) -> Any:
        # A call that waited for a worker past its deadline has no one left to answer: work
        # done for it would only delay the calls queued behind it.
        remaining = context.time_remaining()
        if remaining is not None and remaining <= 0:
            raise DeadlineExceededError(
                "the request's deadline passed while it waited for a worker, so it was not run"
            )
        if request_streaming:
            request = (_refuse_undecodable(message) for message in request)
        else:
            request = _refuse_undecodable(request)
        return behavior(request, context, *args)  # type: ignore[call-arg]

    return functools.wraps(behavior)(checked)


def wrap_handler(
    handler: grpc.RpcMethodHandler,
    table: Mapping[type[BaseException], StatusRule] | None = None,
    inflight: InFlight | None = None,
) -> grpc.RpcMethodHandler:
    """A copy of ``handler`` whose behavior maps errors to status codes, and refuses
    requests that do not parse with INVALID_ARGUMENT instead of grpc's INTERNAL."""
    streaming_request = bool(handler.request_streaming)
    behavior = _checked(handler_behavior(handler), streaming_request)
    return with_behavior(
        handler,
        wrap_behavior(behavior, bool(handler.response_streaming), table, inflight),
        request_deserializer=_lenient(handler.request_deserializer),
    )


_FACTORIES = {
    (False, False): ("unary_unary", grpc.unary_unary_rpc_method_handler),
    (False, True): ("unary_stream", grpc.unary_stream_rpc_method_handler),
    (True, False): ("stream_unary", grpc.stream_unary_rpc_method_handler),
    (True, True): ("stream_stream", grpc.stream_stream_rpc_method_handler),
}


def handler_behavior(handler: grpc.RpcMethodHandler) -> Callable[..., Any]:
    """The function a handler calls, whichever of the four call shapes it has."""
    attribute, _ = _FACTORIES[(bool(handler.request_streaming), bool(handler.response_streaming))]
    return getattr(handler, attribute)  # type: ignore[no-any-return]


def with_behavior(
    handler: grpc.RpcMethodHandler,
    behavior: Callable[..., Any],
    request_deserializer: Callable[[bytes], Any] | None = None,
) -> grpc.RpcMethodHandler:
    """A handler of the same shape and serializers as ``handler`` that calls ``behavior``
    (and parses requests with ``request_deserializer`` when given)."""
    _, factory = _FACTORIES[(bool(handler.request_streaming), bool(handler.response_streaming))]
    return factory(
        behavior,
        request_deserializer=request_deserializer or handler.request_deserializer,
        response_serializer=handler.response_serializer,
    )
