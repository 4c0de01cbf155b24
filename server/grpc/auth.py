"""API-key authentication: ``authorization: Bearer <key>`` metadata, checked in constant time.

Health checks and server reflection stay open so load balancers and grpcurl work without a key.
AdminService needs an admin key whenever any key is configured: another valid key is
PERMISSION_DENIED, a missing or unknown one UNAUTHENTICATED. Admin keys open every RPC.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import grpc

logger = logging.getLogger(__name__)

OPEN_METHOD_PREFIXES: tuple[str, ...] = (
    "/grpc.health.v1.Health/",
    "/grpc.reflection.v1.ServerReflection/",
    "/grpc.reflection.v1alpha.ServerReflection/",
)
ADMIN_METHOD_PREFIXES: tuple[str, ...] = ("/mediarec.v1.AdminService/",)
_BEARER = "bearer "


def _digest(key: str) -> bytes:
    # Comparing fixed-length digests keeps the comparison time independent of the key length.
    return hashlib.sha256(key.encode("utf-8")).digest()


def bearer_token(metadata: Iterable[tuple[str, str | bytes]] | None) -> str | None:
    """The token of the first ``authorization: Bearer <token>`` entry, or None."""
    for name, value in metadata or ():
        if name.lower() != "authorization" or not isinstance(value, str):
            continue
        if value[: len(_BEARER)].lower() == _BEARER:
            return value[len(_BEARER) :].strip()
        return None
    return None


class ApiKeyChecker:
    """Decides whether a presented key is one of the configured keys."""

    def __init__(self, api_keys: Sequence[str]) -> None:
        if not api_keys or any(not key for key in api_keys):
            raise ValueError("ApiKeyChecker needs at least one non-empty API key")
        self._digests = tuple(_digest(key) for key in api_keys)

    def is_valid(self, presented: str) -> bool:
        candidate = _digest(presented)
        # Compare against every key without short-circuiting, so timing reveals nothing.
        matches = [hmac.compare_digest(candidate, known) for known in self._digests]
        return any(matches)


def _denied_handler(
    handler: grpc.RpcMethodHandler,
    message: str,
    code: grpc.StatusCode = grpc.StatusCode.UNAUTHENTICATED,
) -> grpc.RpcMethodHandler:
    """A handler of the same shape as ``handler`` that fails with ``code``."""

    def deny(request: Any, context: grpc.ServicerContext) -> Any:
        context.abort(code, message)

    factories: dict[tuple[bool, bool], Callable[..., grpc.RpcMethodHandler]] = {
        (False, False): grpc.unary_unary_rpc_method_handler,
        (False, True): grpc.unary_stream_rpc_method_handler,
        (True, False): grpc.stream_unary_rpc_method_handler,
        (True, True): grpc.stream_stream_rpc_method_handler,
    }
    factory = factories[(bool(handler.request_streaming), bool(handler.response_streaming))]
    return factory(
        deny,
        request_deserializer=handler.request_deserializer,
        response_serializer=handler.response_serializer,
    )


class ApiKeyAuthInterceptor(grpc.ServerInterceptor):
    """Refuses every RPC outside ``open_prefixes`` that lacks a configured key, and every
    AdminService RPC that lacks an admin key."""

    def __init__(
        self,
        api_keys: Sequence[str],
        open_prefixes: Sequence[str] = OPEN_METHOD_PREFIXES,
        admin_keys: Sequence[str] = (),
    ) -> None:
        self._checker = ApiKeyChecker(api_keys) if api_keys else None
        self._admin = ApiKeyChecker(admin_keys) if admin_keys else None
        self._open_prefixes = tuple(open_prefixes)

    def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], grpc.RpcMethodHandler | None],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler | None:
        method = handler_call_details.method
        handler = continuation(handler_call_details)
        if handler is None or method.startswith(self._open_prefixes):
            return handler
        token = bearer_token(handler_call_details.invocation_metadata)
        refusal = refuse(
            admin_only=method.startswith(ADMIN_METHOD_PREFIXES),
            token=token,
            api_key_ok=self._checker is not None and token is not None
            and self._checker.is_valid(token),
            admin_key_ok=self._admin is not None and token is not None
            and self._admin.is_valid(token),
            api_keys_configured=self._checker is not None,
        )  # fmt: skip
        if refusal is None:
            return handler
        code, message = refusal
        logger.info("refused %s: %s", method, message)
        return _denied_handler(handler, message, code)


MISSING_KEY = "Missing API key: send metadata 'authorization: Bearer <key>'."
WRONG_KEY = "Invalid API key."
NOT_ADMIN = "This call needs an admin key (server.admin_api_keys)."


def refuse(
    *,
    admin_only: bool,
    token: str | None,
    api_key_ok: bool,
    admin_key_ok: bool,
    api_keys_configured: bool,
) -> tuple[grpc.StatusCode, str] | None:
    """Why a call is refused (status and message), or None to let it through.

    Called only when some key is configured. Admin keys open everything; other valid keys
    open all but AdminService; with only admin keys configured, the other RPCs stay open.
    """
    if admin_key_ok:
        return None
    if not admin_only and (api_key_ok or not api_keys_configured):
        return None
    if token is None:
        return grpc.StatusCode.UNAUTHENTICATED, MISSING_KEY
    if api_key_ok:
        return grpc.StatusCode.PERMISSION_DENIED, NOT_ADMIN
    return grpc.StatusCode.UNAUTHENTICATED, WRONG_KEY


def auth_interceptors(
    api_keys: Sequence[str], admin_keys: Sequence[str] = ()
) -> list[grpc.ServerInterceptor]:
    """The interceptors for ``grpc.server(interceptors=...)``: none when no key is configured,
    so a server without keys (local development) leaves every RPC, AdminService's too, open."""
    if not api_keys and not admin_keys:
        return []
    return [ApiKeyAuthInterceptor(api_keys, admin_keys=admin_keys)]
