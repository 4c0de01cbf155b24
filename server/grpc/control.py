"""Health checks and server info answered from their own threads.

Every other call runs on the server's request pool; when slow clients or heavy work hold all
of its threads, a probe that queued behind them would time out and an orchestrator would
restart a server that is merely busy. grpc runs a method on the thread pool its behaviour
names (``experimental_thread_pool``), so this interceptor, outermost, gives the cheap control
calls a small pool of their own, on the same port.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from concurrent import futures
from typing import Any

import grpc

logger = logging.getLogger(__name__)

# Unary and cheap: answered whatever the request pool is doing. (Health/Watch streams for as
# long as a watcher likes, so it stays on the request pool.)
CONTROL_METHODS = frozenset(
    {
        "/grpc.health.v1.Health/Check",
        "/mediarec.v1.MediaService/GetServerInfo",
    }
)
CONTROL_THREADS = 2


class ControlPlaneInterceptor(grpc.ServerInterceptor):
    """Runs the control methods on ``pool``; every other call passes through untouched."""

    def __init__(self, pool: futures.ThreadPoolExecutor) -> None:
        self._pool = pool

    def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], grpc.RpcMethodHandler | None],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler | None:
        handler = continuation(handler_call_details)
        method = handler_call_details.method  # type: ignore[attr-defined]
        if handler is None or method not in CONTROL_METHODS or handler.unary_unary is None:
            return handler
        behavior = handler.unary_unary

        @functools.wraps(behavior)
        def on_control_pool(request: Any, context: grpc.ServicerContext) -> Any:
            return behavior(request, context)

        on_control_pool.experimental_thread_pool = self._pool  # type: ignore[attr-defined]
        return grpc.unary_unary_rpc_method_handler(
            on_control_pool,
            request_deserializer=handler.request_deserializer,
            response_serializer=handler.response_serializer,
        )
