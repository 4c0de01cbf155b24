"""The operators' HTTP port (``serve --http-port``): ``/metrics`` and the web gallery.

Off by default, and bound to localhost unless ``server.http_host`` says otherwise. When the
server has API keys, nothing is served without one: the gallery asks for a login, and
``/metrics`` (Prometheus' text format) wants a key as a bearer token, which Prometheus'
scrape configs send (``authorization``), or a logged-in browser. The port is an ASGI app
(Starlette) served by uvicorn in a daemon thread of its own, so a slow page or scrape never
takes a gRPC worker.
"""

from __future__ import annotations

import logging
import socket
import threading
import time
from collections.abc import Callable

import uvicorn
from prometheus_client import CollectorRegistry, make_asgi_app
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import BaseRoute, Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

logger = logging.getLogger(__name__)

START_TIMEOUT_S = 10.0
STOP_GRACE_S = 2  # open requests get this long to finish when the server stops
MAX_CONNECTIONS = 64  # beyond this uvicorn answers 503 instead of taking more
LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost", "::1"})
# Every response: no framing by other sites, no content-type guessing.
SECURITY_HEADERS = [
    (b"x-frame-options", b"DENY"),
    (b"content-security-policy", b"frame-ancestors 'none'"),
    (b"x-content-type-options", b"nosniff"),
]


class _GuardedAsgi:
    """An ASGI app as a route's endpoint, answering 401 when ``allowed`` says no. (Starlette
    calls a plain function with a request, but hands the raw scope to an object.)"""

    def __init__(self, app: ASGIApp, allowed: Callable[[Request], bool]) -> None:
        self._app = app
        self._allowed = allowed

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if not self._allowed(Request(scope)):
            refusal = PlainTextResponse(
                "Send one of the server's API keys as Authorization: Bearer KEY.\n",
                status_code=401, headers={"WWW-Authenticate": "Bearer"},
            )  # fmt: skip
            await refusal(scope, receive, send)
            return
        await self._app(scope, receive, send)


class _Hardened:
    """Security headers on every response and, on a port bound to loopback, only loopback
    Host headers: a web page elsewhere whose name was re-pointed at 127.0.0.1 (DNS
    rebinding) must not read what the gallery shows the machine's own browser."""

    def __init__(self, app: ASGIApp, loopback_only: bool) -> None:
        self._app = app
        self._loopback_only = loopback_only

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self._app(scope, receive, send)
            return
        if self._loopback_only and host_name(Request(scope).headers.get("host", "")) not in (
            LOOPBACK_HOSTS
        ):
            refusal = PlainTextResponse("This port answers to localhost only.\n", 421)
            await refusal(scope, receive, send)
            return

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), *SECURITY_HEADERS]
            await send(message)

        await self._app(scope, receive, with_headers)


def host_name(host: str) -> str:
    """The name of a Host header without its port: ``[::1]:8080`` -> ``::1``."""
    if host.startswith("["):
        return host[1:].partition("]")[0]
    return host.rpartition(":")[0] if host.count(":") == 1 else host


def is_loopback(host: str) -> bool:
    return host in LOOPBACK_HOSTS or host.startswith("127.")


def operators_app(
    registry: CollectorRegistry,
    pages: list[BaseRoute] | None = None,
    metrics_allowed: Callable[[Request], bool] = lambda request: True,
    *,
    loopback_only: bool = False,
) -> ASGIApp:
    """``/metrics`` (for whom ``metrics_allowed`` lets in), and the gallery's ``pages``."""
    metrics = _GuardedAsgi(make_asgi_app(registry), metrics_allowed)
    app = Starlette(routes=[Route("/metrics", metrics), *(pages or [])])
    return _Hardened(app, loopback_only)


class OperatorsPort:
    """The HTTP server, started on construction; ``port`` is the one bound (0 picks one)."""

    def __init__(
        self,
        host: str,
        port: int,
        registry: CollectorRegistry,
        pages: list[BaseRoute] | None = None,
        metrics_allowed: Callable[[Request], bool] = lambda request: True,
    ) -> None:
        # Bound here, so a port in use fails the caller at once with the OS's reason.
        self._socket = socket.create_server((host, port), reuse_port=False)
        self.port = int(self._socket.getsockname()[1])
        config = uvicorn.Config(
            operators_app(registry, pages, metrics_allowed, loopback_only=is_loopback(host)),
            log_config=None,  # the service's logging stays as main() configured it
            access_log=False,
            lifespan="off",
            limit_concurrency=MAX_CONNECTIONS,
            timeout_graceful_shutdown=STOP_GRACE_S,
        )
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(
            target=self._server.run, kwargs={"sockets": [self._socket]},
            name="operators-http", daemon=True,
        )  # fmt: skip
        self._thread.start()
        deadline = time.monotonic() + START_TIMEOUT_S
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                self.close()
                raise OSError(f"the HTTP server on {host}:{self.port} did not start")
            time.sleep(0.01)
        logger.info("operators' HTTP port on %s:%d (/metrics, the gallery)", host, self.port)

    def close(self) -> None:
        self._server.should_exit = True
        self._thread.join(timeout=STOP_GRACE_S + 3)
        self._socket.close()
