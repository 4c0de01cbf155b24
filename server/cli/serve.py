"""``mediarec serve``: run the gRPC server until SIGTERM or SIGINT.

It listens first (health NOT_SERVING), loads the model and opens the store, then serves; the
server itself is assembled by ``mediarec.server.app.build_server``.
"""

from __future__ import annotations

import errno
import logging
import os
import signal
import socket
import threading
from types import FrameType

from mediarec.server.app import build_server
from mediarec.server.cli.common import EXIT_UNUSABLE, CommandError, open_local_deps
from mediarec.server.config import Settings
from mediarec.server.heap import freeze_startup_objects, schedule_full_collections
from mediarec.server.recommend.ranker import RankerFileError
from mediarec.server.runtime import ServiceState
from mediarec.server.threads import limit_numpy_blas_threads

logger = logging.getLogger(__name__)


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
        # Handlers run on the main thread, which shuts the service down holding its locks: once
        # a stop signal came, a reload could wait for a lock that thread holds, and would only
        # delay the exit. The stop handler sets the event before the shutdown starts.
        if stop.is_set():
            return
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
