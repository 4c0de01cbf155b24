"""The operators' HTTP port (``serve --http-port``): ``/metrics`` in Prometheus' text format.

Off by default, and bound to localhost unless ``server.http_host`` says otherwise: metrics name
methods and error rates, which are for operators, not for the internet. It runs in daemon
threads of its own, so a slow scrape never takes a gRPC worker.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable
from socketserver import ThreadingMixIn
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from prometheus_client import CollectorRegistry, make_wsgi_app

logger = logging.getLogger(__name__)

INDEX = b"mediarec operators' port: /metrics (Prometheus text format)\n"


class _ThreadingServer(ThreadingMixIn, WSGIServer):
    daemon_threads = True


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 (the stdlib's name)
        logger.debug("http: " + format, *args)


def operators_app(registry: CollectorRegistry) -> Callable[..., Iterable[bytes]]:
    """The WSGI app: ``/metrics``, an index at ``/``, 404 elsewhere."""
    metrics = make_wsgi_app(registry)

    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "/")
        if path == "/metrics":
            return metrics(environ, start_response)  # type: ignore[no-any-return]
        if path == "/":
            start_response("200 OK", [("Content-Type", "text/plain; charset=utf-8")])
            return [INDEX]
        start_response("404 Not Found", [("Content-Type", "text/plain; charset=utf-8")])
        return [b"not found; try /metrics\n"]

    return app


class OperatorsPort:
    """The HTTP server, started on construction; ``port`` is the one bound (0 picks one)."""

    def __init__(self, host: str, port: int, registry: CollectorRegistry) -> None:
        self._httpd = make_server(host, port, operators_app(registry), _ThreadingServer,
                                  handler_class=_QuietHandler)  # fmt: skip
        self.port = int(self._httpd.server_port)
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, name="operators-http", daemon=True
        )
        self._thread.start()
        logger.info("operators' HTTP port on %s:%d (/metrics)", host, self.port)

    def close(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(timeout=5)
