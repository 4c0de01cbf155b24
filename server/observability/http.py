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
from starlette.types import ASGIApp, Receive, Scope, Send

logger = logging.getLogger(__name__)

START_TIMEOUT_S = 10.0


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


def operators_app(
    registry: CollectorRegistry,
    pages: list[BaseRoute] | None = None,
    metrics_allowed: Callable[[Request], bool] = lambda request: True,
) -> Starlette:
    """``/metrics`` (for whom ``metrics_allowed`` lets in), and the gallery's ``pages``."""
    metrics = _GuardedAsgi(make_asgi_app(registry), metrics_allowed)
    return Starlette(routes=[Route("/metrics", metrics), *(pages or [])])


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
            operators_app(registry, pages, metrics_allowed),
            log_config=None,  # the service's logging stays as main() configured it
            access_log=False,
            lifespan="off",
        )
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(
            target=self._server.run, kwargs={"sockets": [self._socket]},
            name="operators-http", daemon=True,
        )  # fmt: skip
        self._thread.start()
        deadline = time.monotonic() + START_TIMEOUT_S
        while not self._server.started and self._thread.is_alive():
            if time.monotonic() > deadline:
                break
            time.sleep(0.01)
        logger.info("operators' HTTP port on %s:%d (/metrics, the gallery)", host, self.port)

    def close(self) -> None:
        self._server.should_exit = True
        self._thread.join(timeout=5)
        self._socket.close()
