"""Assemble the gRPC server: services, health, reflection, auth, error mapping, limits, TLS."""

from __future__ import annotations

import functools
import logging
from concurrent import futures
from dataclasses import dataclass, field
from pathlib import Path

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

from mediarec.server.config import Settings
from mediarec.server.gallery.app import Gallery, GalleryConfig
from mediarec.server.gallery.clients import ClientPool, local_socket_address
from mediarec.server.grpc.admin_servicer import AdminServicer
from mediarec.server.grpc.auth import auth_interceptors
from mediarec.server.grpc.control import CONTROL_THREADS, ControlPlaneInterceptor
from mediarec.server.grpc.cpu_gate import CpuGate, default_slots
from mediarec.server.grpc.errors import ErrorMappingInterceptor
from mediarec.server.grpc.inflight import InFlight
from mediarec.server.grpc.media_servicer import MediaServicer
from mediarec.server.grpc.recommend_servicer import RecommendationServicer
from mediarec.server.grpc.reflection import enable_reflection
from mediarec.server.grpc.streams import StreamLimits, UploadGate
from mediarec.server.observability.http import OperatorsPort
from mediarec.server.observability.metrics import ServerMetrics
from mediarec.server.observability.requests import RequestObserver
from mediarec.server.runtime import ServiceState
from mediarec.v1 import (
    admin_pb2,
    admin_pb2_grpc,
    media_pb2,
    media_pb2_grpc,
    recommend_pb2,
    recommend_pb2_grpc,
)

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
    control_pool: futures.ThreadPoolExecutor | None = None  # health and server info
    gallery_clients: ClientPool | None = None  # the gallery's channels to this server

    def set_serving(self) -> None:
        for name in SERVICE_NAMES:
            self.health.set(name, health_pb2.HealthCheckResponse.SERVING)

    def stop(self, grace_s: float) -> bool:
        """Graceful shutdown: report NOT_SERVING, let in-flight calls finish within the grace,
        close the stores. False when handlers still ran after it: the stores are then left
        open (closing them under a running handler could break its write) for the caller to
        abandon with the process; every acknowledged write is already durable."""
        self.health.enter_graceful_shutdown()
        if self.http is not None:  # first: its pages are calls to the server stopping below
            self.http.close()
        self.server.stop(grace_s).wait()
        if self.control_pool is not None:
            self.control_pool.shutdown(wait=False, cancel_futures=True)
        if self.gallery_clients is not None:
            self.gallery_clients.close()
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
    control_pool = futures.ThreadPoolExecutor(CONTROL_THREADS, thread_name_prefix="control")
    interceptors = [
        # Outermost, so the control calls' final handler is the one that names their pool.
        ControlPlaneInterceptor(control_pool),
        RequestObserver(metrics),  # refused and failed calls are measured too
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
    cpu_slots = limits.cpu_workers or default_slots()
    cpu = CpuGate(cpu_slots, max_waiting=max(0, limits.workers - cpu_slots - 2))
    media_pb2_grpc.add_MediaServiceServicer_to_server(
        MediaServicer(state, gate, streams, cpu), server
    )
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
    gallery_clients = None
    if limits.http_port >= 0:
        # The gallery's own way in: a local socket, plaintext whatever the TCP port serves.
        gallery_clients = ClientPool(local_socket_address())
        try:
            bound = server.add_insecure_port(gallery_clients.target)
        except RuntimeError:
            bound = 0
        if not bound:  # abstract sockets are Linux's
            raise OSError(f"could not listen on {gallery_clients.target} (the gallery's socket)")
    server.start()
    try:
        http = None
        if gallery_clients is not None:
            gallery = Gallery(
                gallery_clients.for_key,
                GalleryConfig(keys=frozenset((*limits.api_keys, *limits.admin_api_keys))),
            )
            http = OperatorsPort(
                limits.http_host, limits.http_port, metrics.registry, gallery.routes(),
                metrics_allowed=gallery.may_scrape,
            )  # fmt: skip
    except OSError as exc:
        server.stop(0)
        control_pool.shutdown(wait=False)
        raise OSError(
            f"could not listen on {limits.http_host}:{limits.http_port} (server.http_port): "
            f"{exc.strerror or exc}"
        ) from exc
    running = RunningServer(
        server, port, health_servicer, state, inflight, metrics, http, control_pool,
        gallery_clients,
    )  # fmt: skip
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
