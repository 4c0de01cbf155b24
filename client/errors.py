"""The one place where ``grpc.RpcError`` becomes a typed mediarec exception.

Every non-OK status code maps to exactly one class below; each exception keeps the status
code and the server's message, so callers can branch on the type and still log the detail.
"""

from __future__ import annotations

import grpc


class MediarecError(Exception):
    """Base class of every error the client raises for a failed RPC."""

    def __init__(self, code: grpc.StatusCode, details: str, method: str = "") -> None:
        self.code = code
        self.details = details
        self.method = method
        where = f" in {method}" if method else ""
        super().__init__(f"{code.name}{where}: {details}" if details else f"{code.name}{where}")

    def __reduce__(self) -> tuple[type[MediarecError], tuple[grpc.StatusCode, str, str]]:
        # Pickle by the constructor's arguments, so an error raised in a worker process (a
        # ProcessPoolExecutor, multiprocessing) reaches the parent as itself.
        return type(self), (self.code, self.details, self.method)


class InvalidArgument(MediarecError):
    """The request was malformed (INVALID_ARGUMENT, OUT_OF_RANGE); fix it, don't retry."""


class NotFound(MediarecError):
    """The named item does not exist (NOT_FOUND)."""


class AlreadyExists(MediarecError):
    """The item to create exists already (ALREADY_EXISTS)."""


class FailedPrecondition(MediarecError):
    """The server is not in a state to do this, e.g. a model/collection mismatch."""


class ResourceExhausted(MediarecError):
    """The input is over a configured limit, or the server is out of a resource."""


class Unauthenticated(MediarecError):
    """No API key, or a wrong one, was sent (UNAUTHENTICATED)."""


class PermissionDenied(MediarecError):
    """The caller is known but not allowed to do this (PERMISSION_DENIED)."""


class Unavailable(MediarecError):
    """The server could not be reached or refused for now (UNAVAILABLE, ABORTED); retryable."""


class DeadlineExceeded(MediarecError):
    """The call ran past its deadline (DEADLINE_EXCEEDED)."""


class Cancelled(MediarecError):
    """The call was cancelled before it finished (CANCELLED)."""


class Unimplemented(MediarecError):
    """The server does not offer this RPC, e.g. an older server version (UNIMPLEMENTED)."""


class Internal(MediarecError):
    """The server failed unexpectedly (INTERNAL, UNKNOWN, DATA_LOSS); see its log."""


ERROR_BY_CODE: dict[grpc.StatusCode, type[MediarecError]] = {
    grpc.StatusCode.CANCELLED: Cancelled,
    grpc.StatusCode.UNKNOWN: Internal,
    grpc.StatusCode.INVALID_ARGUMENT: InvalidArgument,
    grpc.StatusCode.DEADLINE_EXCEEDED: DeadlineExceeded,
    grpc.StatusCode.NOT_FOUND: NotFound,
    grpc.StatusCode.ALREADY_EXISTS: AlreadyExists,
    grpc.StatusCode.PERMISSION_DENIED: PermissionDenied,
    grpc.StatusCode.RESOURCE_EXHAUSTED: ResourceExhausted,
    grpc.StatusCode.FAILED_PRECONDITION: FailedPrecondition,
    grpc.StatusCode.ABORTED: Unavailable,
    grpc.StatusCode.OUT_OF_RANGE: InvalidArgument,
    grpc.StatusCode.UNIMPLEMENTED: Unimplemented,
    grpc.StatusCode.INTERNAL: Internal,
    grpc.StatusCode.UNAVAILABLE: Unavailable,
    grpc.StatusCode.DATA_LOSS: Internal,
    grpc.StatusCode.UNAUTHENTICATED: Unauthenticated,
}


def error_for(code: grpc.StatusCode, details: str, method: str = "") -> MediarecError:
    """The typed exception for a failed status; OK is not a failure and raises ``ValueError``."""
    if code is grpc.StatusCode.OK:
        raise ValueError("StatusCode.OK is not an error")
    return ERROR_BY_CODE.get(code, Internal)(code, details, method)


def from_rpc_error(error: grpc.RpcError, method: str = "") -> MediarecError:
    """Convert an error raised by a grpc call (a ``grpc.Call``) into a typed exception."""
    code_of = getattr(error, "code", None)
    details_of = getattr(error, "details", None)
    code = code_of() if callable(code_of) else None
    details = details_of() if callable(details_of) else None
    if not isinstance(code, grpc.StatusCode):
        # An RpcError that is not a Call carries no status; treat it as a transport failure.
        return Unavailable(grpc.StatusCode.UNAVAILABLE, str(error), method)
    return error_for(code, details or "", method)
