"""The latency bench's load generator: runs in its own process and talks gRPC with the client.

Three ways to send a list of calls:

* :func:`closed_loop` - ``concurrency`` clients, each sending its next call when the last one
  returned (concurrency 1 gives the unloaded latency; more gives the saturated throughput);
* :func:`open_loop` - calls sent on a fixed schedule (``rate`` per second) whatever the server
  does, each latency measured from its *scheduled* send time, so queueing behind a slow call
  counts (no coordinated omission). The run gives up early once too many calls are in flight:
  the server is overloaded and the rest would only measure the backlog.

Only ``client`` is imported here (grpcio and protobuf), never the server.
"""

from __future__ import annotations

import threading
import time
import zlib
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

REC_WARM = "recommend (users with history)"
REC_NEW = "recommend (new users)"
# A user with history who just did something (a search): their cached profile and candidates
# are gone, so the call builds them, as on a session's first request after new activity.
REC_AFTER_EVENT = "recommend (history, just after an event)"
SEARCH_ID = "search by media_id"
SEARCH_TEXT = "search by text"
DEVICES = ("ios", "android", "web")
REGIONS = ("FR-75", "DE-BE", "US-CA", "US-NY", "BR-SP", "JP-13")
CHANNELS = 4  # open loop: calls spread over a few channels, as several app servers would


@dataclass(frozen=True)
class Call:
    workload: str  # REC_WARM, REC_NEW, REC_AFTER_EVENT, SEARCH_ID or SEARCH_TEXT
    arg: str  # user id, media id or query text; REC_AFTER_EVENT: "user id<TAB>search query"


@dataclass
class Sample:
    """Latencies (s) of the calls that were sent; failed calls count with their elapsed time."""

    latencies_s: list[float]
    errors: int
    wall_s: float
    offered: int  # calls the run meant to send
    aborted: bool = False  # open loop: stopped early, too many calls in flight
    first_error: str = ""


def before_send(client: object, call: Call) -> None:
    """Untimed work that sets up a call: REC_AFTER_EVENT logs the user's search first."""
    import uuid

    from mediarec.client import Event, EventKind, MediarecClient

    assert isinstance(client, MediarecClient)
    if call.workload == REC_AFTER_EVENT:
        user, query = call.arg.split("\t", 1)
        event = Event(uuid.uuid4().hex, user, EventKind.SEARCH, query=query)
        client.log_events([event])


def send(client: object, call: Call) -> int:
    """One call; returns how many items came back (so a broken answer is visible)."""
    from mediarec.client import ClientContext, Location, MediarecClient

    assert isinstance(client, MediarecClient)
    if call.workload in (REC_WARM, REC_NEW, REC_AFTER_EVENT):
        user = call.arg.split("\t", 1)[0]
        h = zlib.crc32(user.encode())
        context = ClientContext(
            device=DEVICES[h % 3], local_hour=h % 24, location=Location(region=REGIONS[h % 6])
        )
        return len(client.recommend(user, k=20, context=context).items)
    if call.workload == SEARCH_ID:
        return len(client.search_similar(call.arg, k=10))
    return len(client.search_text(call.arg, k=10))


def closed_loop(
    target: str,
    calls: Sequence[Call],
    concurrency: int,
    *,
    warmup: int = 0,
    max_seconds: float | None = None,
    timeout_s: float = 10.0,
) -> Sample:
    """Send ``calls`` from ``concurrency`` clients back to back (the first ``warmup`` untimed,
    one client). Stops early after ``max_seconds`` of timed calls."""
    from mediarec.client import MediarecClient

    clients = [MediarecClient(target, default_timeout_s=timeout_s) for _ in range(concurrency)]
    try:
        for call in calls[:warmup]:
            before_send(clients[0], call)
            send(clients[0], call)
        timed = list(calls[warmup:])
        latencies: list[float] = []
        errors: list[str] = []
        lock = threading.Lock()
        next_index = [0]
        started = time.perf_counter()

        def worker(client: MediarecClient) -> None:
            while True:
                with lock:
                    i = next_index[0]
                    next_index[0] += 1
                if i >= len(timed):
                    return
                if max_seconds is not None and time.perf_counter() - started > max_seconds:
                    return
                before_send(client, timed[i])
                t0 = time.perf_counter()
                try:
                    send(client, timed[i])
                except Exception as error:  # counted and reported, never hidden
                    with lock:
                        errors.append(repr(error))
                elapsed = time.perf_counter() - t0
                with lock:
                    latencies.append(elapsed)

        threads = [threading.Thread(target=worker, args=(c,)) for c in clients]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        wall = time.perf_counter() - started
    finally:
        for client in clients:
            client.close()
    return Sample(latencies, len(errors), wall, len(timed), first_error=errors[0] if errors else "")


def open_loop(
    target: str,
    calls: Sequence[Call],
    rate: float,
    *,
    max_in_flight: int = 64,
    timeout_s: float = 5.0,
) -> Sample:
    """Send call i at ``start + i / rate`` whatever happened before; latency from that time."""
    from mediarec.client import MediarecClient

    clients = [MediarecClient(target, default_timeout_s=timeout_s) for _ in range(CHANNELS)]
    latencies: list[float] = []
    errors: list[str] = []
    lock = threading.Lock()
    in_flight = [0]
    aborted = False

    def one(i: int, scheduled: float) -> None:
        try:
            send(clients[i % CHANNELS], calls[i])
        except Exception as error:  # a deadline under overload: counted, latency kept
            with lock:
                errors.append(repr(error))
        elapsed = time.perf_counter() - scheduled
        with lock:
            latencies.append(elapsed)
            in_flight[0] -= 1

    pool = ThreadPoolExecutor(max_workers=max_in_flight, thread_name_prefix="open-loop")
    start = time.perf_counter() + 0.05
    try:
        for i in range(len(calls)):
            scheduled = start + i / rate
            delay = scheduled - time.perf_counter()
            if delay > 0:
                time.sleep(delay)
            with lock:
                if in_flight[0] >= max_in_flight:
                    aborted = True
                    break
                in_flight[0] += 1
            pool.submit(one, i, scheduled)
    finally:
        pool.shutdown(wait=True)
        wall = time.perf_counter() - start
        for client in clients:
            client.close()
    return Sample(latencies, len(errors), wall, len(calls), aborted, errors[0] if errors else "")
