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
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector
from prometheus_client.utils import floatToGoString

from mediarec.server.embed_batcher import BatcherStats
from mediarec.server.observability.buckets import BucketCounts
from mediarec.server.observability.tally import EVENTS, MEDIA_INDEXED
from mediarec.server.runtime import ServiceState

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
            yield from _batcher_metrics(
                deps.batcher.stats(), (deps.settings.model.id, deps.settings.model.precision)
            )
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
        if info.built_at is not None:  # before the first rebuild there is no age to report
            yield GaugeMetricFamily(
                "mediarec_derived_state_age_seconds",
                "Seconds since the recommender's derived state was built.",
                value=info.age_s,
            )
        if info.rebuild_seconds is not None:
            yield _histogram(
                "mediarec_derived_state_rebuild_seconds",
                "Seconds each finished rebuild of the derived state took.",
                info.rebuild_seconds,
            )
        yield GaugeMetricFamily(
            "mediarec_events_pending", "Events stored since the derived state's rebuild began.",
            value=float(info.events_pending),
        )  # fmt: skip


def _batcher_metrics(stats: BatcherStats, values: tuple[str, str]) -> Iterator[Metric]:
    labels = ("model", "precision")
    for name, help_text, value in (
        ("mediarec_embed_jobs_total", "Embedding jobs served, failed ones included.",
         stats.jobs),
        ("mediarec_embed_expired_total", "Jobs dropped because their deadline passed.",
         stats.dropped_expired),
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
    if stats.pass_items is not None:
        yield _histogram("mediarec_embed_batch_items", "Texts and images per forward pass.",
                         stats.pass_items, labels, values)  # fmt: skip
    if stats.pass_seconds is not None:
        yield _histogram("mediarec_embed_forward_seconds", "Seconds per forward pass.",
                         stats.pass_seconds, labels, values)  # fmt: skip


def _histogram(
    name: str,
    help_text: str,
    counts: BucketCounts,
    labels: tuple[str, ...] = (),
    values: tuple[str, ...] = (),
) -> HistogramMetricFamily:
    cumulative, buckets = 0, []
    for bound, n in zip((*counts.bounds, float("inf")), counts.counts, strict=True):
        cumulative += n
        buckets.append((floatToGoString(bound), float(cumulative)))
    family = HistogramMetricFamily(name, help_text, labels=labels)
    family.add_metric(list(values), buckets, counts.total)
    return family
