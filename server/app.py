"""Assemble the gRPC server: services, health, reflection, auth, error mapping, limits, TLS."""

from __future__ import annotations

import errno
import functools
import logging
import os
import signal
import socket
import threading
from concurrent import futures
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

from mediarec.v1 import (
    admin_pb2,
    admin_pb2_grpc,
    media_pb2,
    media_pb2_grpc,
    recommend_pb2,
    recommend_pb2_grpc,
)
from server.commands import EXIT_UNUSABLE, CommandError, open_local_deps
from server.config import Settings
from server.grpc.admin_servicer import AdminServicer
from server.grpc.auth import auth_interceptors
from server.grpc.errors import ErrorMappingInterceptor
from server.grpc.inflight import InFlight
from server.grpc.media_servicer import MediaServicer
from server.grpc.recommend_servicer import RecommendationServicer
from server.grpc.reflection import enable_reflection
from server.grpc.streams import StreamLimits, UploadGate
from server.heap import freeze_startup_objects, schedule_full_collections
from server.observability.http import OperatorsPort
from server.observability.metrics import ServerMetrics
from server.observability.requests import RequestObserver
from server.recommend.ranker import RankerFileError
from server.runtime import ServiceState
from server.threads import limit_numpy_blas_threads

logger = logging.getLogger(__name__)

# Services whose health is reported; "" is the whole server.
SERVICE_NAMES = (
    "",
    media_pb2.DESCRIPTOR.services_by_name["MediaService"].full_name,
    recommend_pb2.DESCRIPTOR.services_by_name["RecommendationService"].full_name,
    admin_pb2.DESCRIPTOR.services_by_name["AdminService"].full_name,
)


# After the grace, handlers still running get this long to notice they were cancelled.
ABANDON_AFTER_S = 1.0


@dataclass
class RunningServer:
    server: grpc.Server
    port: int
    health: health.HealthServicer
    state: ServiceState
    inflight: InFlight = field(default_factory=InFlight)
    metrics: ServerMetrics | None = None
    http: OperatorsPort | None = None  # the operators' HTTP port, when configured

    def set_serving(self) -> None:
        for name in SERVICE_NAMES:
            self.health.set(name, health_pb2.HealthCheckResponse.SERVING)

    def stop(self, grace_s: float) -> bool:
        """Graceful shutdown: report NOT_SERVING, let in-flight calls finish within the grace,
        close the stores. False when handlers still ran after it: the stores are then left
        open (closing them under a running handler could break its write) for the caller to
        abandon with the process; every acknowledged write is already durable."""
        self.health.enter_graceful_shutdown()
        self.server.stop(grace_s).wait()
        if self.http is not None:
            self.http.close()
        if not self.inflight.wait_idle(ABANDON_AFTER_S):
            logger.warning(
                "%d calls still running %.0f s after the grace; abandoning them",
                self.inflight.count, ABANDON_AFTER_S,
            )
            return False
        if self.state.ready:
            self.state.require().close()
        return True


def build_server(settings: Settings, state: ServiceState) -> RunningServer:
    """A started server on ``settings.server.host:port`` (port 0 picks one).

    Health reports NOT_SERVING until :meth:`RunningServer.set_serving` is called, which
    ``serve`` does once the model is loaded and the store is open.
    """
    limits = settings.server
    options = [
        ("grpc.max_receive_message_length", limits.max_message_bytes),
        ("grpc.max_send_message_length", limits.max_message_bytes),
        ("grpc.so_reuseport", 0),
    ]
    inflight = InFlight()
    metrics = ServerMetrics(state)
    interceptors = [
        RequestObserver(metrics),  # outermost: refused and failed calls are measured too
        *auth_interceptors(limits.api_keys, limits.admin_api_keys),
        ErrorMappingInterceptor(inflight=inflight),
    ]
    server = grpc.server(
        futures.ThreadPoolExecutor(max_workers=limits.workers, thread_name_prefix="rpc"),
        interceptors=interceptors,
        options=options,
    )
    # Streaming calls share one gate, so stalled clients can never hold every worker thread.
    uploads = max(1, min(limits.max_concurrent_uploads, limits.workers - 1))
    gate = UploadGate(uploads, limits.max_uploads_per_key)
    streams = StreamLimits(limits.stream_idle_timeout_s, limits.stream_total_timeout_s)
    media_pb2_grpc.add_MediaServiceServicer_to_server(MediaServicer(state, gate, streams), server)
    recommend_pb2_grpc.add_RecommendationServiceServicer_to_server(
        RecommendationServicer(state, gate, streams), server
    )
    admin_pb2_grpc.add_AdminServiceServicer_to_server(AdminServicer(state), server)
    health_servicer = health.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    for name in SERVICE_NAMES:
        health_servicer.set(name, health_pb2.HealthCheckResponse.NOT_SERVING)
    enable_reflection((*[n for n in SERVICE_NAMES if n], health.SERVICE_NAME), server)
    address = f"{limits.host}:{limits.port}"
    if limits.tls_cert and limits.tls_key:
        credentials = grpc.ssl_server_credentials(
            [(Path(limits.tls_key).read_bytes(), Path(limits.tls_cert).read_bytes())]
        )
        add_port = functools.partial(server.add_secure_port, address, credentials)
    else:
        add_port = functools.partial(server.add_insecure_port, address)
    try:
        port = add_port()
    except RuntimeError as exc:  # grpc's "Failed to bind to address ..."
        raise OSError(f"could not listen on {address}") from exc
    if port == 0:
        raise OSError(f"could not listen on {address}")
    server.start()
    try:
        http = (
            OperatorsPort(limits.http_host, limits.http_port, metrics.registry)
            if limits.http_port >= 0 else None
        )  # fmt: skip
    except OSError as exc:
        server.stop(0)
        raise OSError(
            f"could not listen on {limits.http_host}:{limits.http_port} (server.http_port): "
            f"{exc.strerror or exc}"
        ) from exc
    running = RunningServer(server, port, health_servicer, state, inflight, metrics, http)
    transport = "TLS" if limits.tls_cert else "plain"
    if state.ready:
        running.set_serving()
        logger.info("serving on %s:%d (%s)", limits.host, port, transport)
    else:
        logger.info(
            "listening on %s:%d (%s); health is NOT_SERVING until the model and store are ready",
            limits.host, port, transport,
        )  # fmt: skip
    return running


def refuse_a_port_in_use(host: str, port: int) -> None:
    """One sentence (exit 2) for a port another process holds, before grpc's own traceback."""
    if port == 0:
        return
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except OSError:
        return  # an unresolvable host is grpc's to report
    family, kind, proto, _, address = infos[0]
    with socket.socket(family, kind, proto) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(address)
        except OSError as exc:
            if exc.errno != errno.EADDRINUSE:
                return
            raise CommandError(
                f"port {port} on {host} is in use (another mediarec serve?); stop that "
                "process, or choose another --port",
                EXIT_UNUSABLE,
            ) from exc


def serve(settings: Settings) -> int:
    """Run until SIGTERM/SIGINT: listen first (health NOT_SERVING), load, then SERVING."""
    # Process-wide, so it belongs to the serving process's setup, not to build_server.
    limit_numpy_blas_threads(settings.server.blas_threads)
    refuse_a_port_in_use(settings.server.host, settings.server.port)
    state = ServiceState()
    try:
        running = build_server(settings, state)
    except OSError as exc:  # lost a race for the port, or the operators' port is taken
        raise CommandError(str(exc), EXIT_UNUSABLE) from exc
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        logger.info("received %s; shutting down", signal.Signals(signum).name)
        stop.set()

    handled = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)
    previous = {sig: signal.getsignal(sig) for sig in handled}
    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    # Until the recommender exists there is nothing to reload: its start reads the file anyway.
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    try:
        deps = open_local_deps(
            settings,
            locked_message=f"the store in {settings.storage.data_dir} is in use by another "
            "process (a running server?); stop it, or serve another --data-dir",
        )
    except BaseException:
        running.server.stop(0)
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        raise
    freeze_startup_objects()
    full_collections = schedule_full_collections(settings.server.full_gc_interval_s)
    state.set_ready(deps)

    def on_reload(signum: int, frame: FrameType | None) -> None:
        # SIGHUP: pick up a ranker written by `mediarec train-ranker` without a restart.
        # Nothing raised here may take a serving process down (it would surface in stop.wait()).
        try:
            loaded = deps.recommender.reload_ranker()
        except RankerFileError as exc:
            logger.error("SIGHUP: %s; the ranker in use stays", exc)
            return
        except Exception:
            logger.exception("SIGHUP: reloading the ranker failed; the ranker in use stays")
            return
        logger.info("SIGHUP: ranker %s", "reloaded" if loaded else "absent; default weights")

    signal.signal(signal.SIGHUP, on_reload)
    running.set_serving()
    logger.info(
        "serving on %s:%d: model %s and the store are ready",
        settings.server.host, running.port, deps.encoder.model_id,
    )  # fmt: skip
    print(f"mediarec serving on {settings.server.host}:{running.port}", flush=True)
    try:
        stop.wait()
        finished = running.stop(settings.server.shutdown_grace_s)
    finally:
        if full_collections is not None:
            full_collections.close()
    if not finished:
        # The executor's exit handler would wait for those handlers, however long they take;
        # the process leaves now, within grace + ABANDON_AFTER_S.
        logger.info("stopped (abandoned calls that outran the grace)")
        logging.shutdown()
        os._exit(0)
    logger.info("stopped")
    return 0
