"""The server's Prometheus metrics, named in Prometheus' conventions (``*_seconds``,
``*_total``, base units), in a registry per server so that several servers in one process
(the tests) never share counts. No label carries a user id.

RPC metrics are observed as calls happen (``requests.py``); the rest is read from the
components when ``/metrics`` is scraped, so the serving path pays nothing for it.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator

from prometheus_client import (
    CollectorRegistry,
    Gauge,
    Histogram,
    PlatformCollector,
    ProcessCollector,
)
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from server.observability.tally import EVENTS, MEDIA_INDEXED
from server.runtime import ServiceState

# From a cheap health check to a slow batch index.
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
                   30.0, 60.0)  # fmt: skip


class ServerMetrics:
    """One server's registry and the metrics its RPC interceptor updates."""

    def __init__(self, state: ServiceState, clock: Callable[[], float] = time.time) -> None:
        self.registry = CollectorRegistry()
        self.rpc_seconds = Histogram(
            "mediarec_rpc_duration_seconds",
            "Seconds from a call's start to its status, by method and status code.",
            ("method", "code"),
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.in_flight = Gauge(
            "mediarec_rpc_in_flight", "Calls running now, by method.", ("method",),
            registry=self.registry,
        )  # fmt: skip
        ProcessCollector(registry=self.registry)
        PlatformCollector(registry=self.registry)
        self.registry.register(ComponentCollector(state, clock))


class ComponentCollector(Collector):
    """The embedding batcher's and the recommender's own statistics, read at scrape time."""

    def __init__(self, state: ServiceState, clock: Callable[[], float]) -> None:
        self._state = state
        self._clock = clock

    def collect(self) -> Iterator[Metric]:
        if not self._state.ready:
            return
        deps = self._state.require()
        if deps.batcher is not None:
            stats = deps.batcher.stats()
            labels = ("model", "precision")
            values = (deps.settings.model.id, deps.settings.model.precision)
            for name, help_text, value in (
                ("mediarec_embed_forward_passes_total", "Forward passes of the encoder.",
                 stats.forward_passes),
                ("mediarec_embed_items_total", "Texts and images sent through forward passes.",
                 stats.items),
                ("mediarec_embed_jobs_total", "Embedding jobs served, failed ones included.",
                 stats.jobs),
                ("mediarec_embed_expired_total", "Jobs dropped because their deadline passed.",
                 stats.dropped_expired),
                ("mediarec_embed_forward_seconds_total", "Seconds spent in forward passes.",
                 stats.forward_seconds),
            ):  # fmt: skip
                counter = CounterMetricFamily(name, help_text, labels=labels)
                counter.add_metric(values, float(value))
                yield counter
            queued = GaugeMetricFamily(
                "mediarec_embed_queue_depth", "Embedding jobs waiting for a forward pass.",
                labels=labels,
            )  # fmt: skip
            queued.add_metric(values, float(stats.queued))
            yield queued
        counts = self._state.tally.snapshot()
        for name, key, help_text in (
            ("mediarec_media_indexed_total", MEDIA_INDEXED,
             "Media indexed through the API, by outcome (created, updated, unchanged)."),
            ("mediarec_events_total", EVENTS,
             "Events logged or imported, by outcome (accepted, duplicate, rejected)."),
        ):  # fmt: skip
            family = CounterMetricFamily(name, help_text, labels=("outcome",))
            for outcome, n in sorted(counts.get(key, {}).items()):
                family.add_metric((outcome,), float(n))
            yield family
        caches = CounterMetricFamily(
            "mediarec_cache_requests_total",
            "Lookups of the recommender's in-memory caches (items, users, pages), by result.",
            labels=("cache", "result"),
        )
        for cache, hits in sorted(deps.recommender.cache_counts().items()):
            caches.add_metric((cache, "hit"), float(hits.hits))
            caches.add_metric((cache, "miss"), float(hits.misses))
        yield caches
        info = deps.recommender.state_info()
        age = GaugeMetricFamily(
            "mediarec_derived_state_age_seconds",
            "Seconds since the recommender's derived state was built (0 before the first).",
            value=info.age_s,
        )
        yield age
        yield CounterMetricFamily(
            "mediarec_derived_state_rebuilds_total", "Finished rebuilds of the derived state.",
            value=float(info.version),
        )  # fmt: skip
        yield GaugeMetricFamily(
            "mediarec_derived_state_last_rebuild_seconds",
            "Seconds the last finished rebuild of the derived state took.",
            value=info.last_rebuild_s,
        )
        yield GaugeMetricFamily(
            "mediarec_events_pending", "Events stored since the derived state's rebuild began.",
            value=float(info.events_pending),
        )  # fmt: skip
