"""The latency bench's server process: the real server over a prepared data dir, plus a probe.

:func:`serve` runs in a spawned process of its own (so its RSS is the server's alone): it
opens the service (``open_deps``, demo model), starts ``build_server`` on 127.0.0.1:0, waits
for the store's pending build and the recommender's first derived-state snapshot, sends
``{"port", "pid", "startup_s"}`` through the pipe and then answers commands:

* ``("profile", users)`` - Recommend for each user twice (the first call, with the user's
  cached work dropped, builds their profile and candidates; the second finds them cached),
  in-process, with a timer around each stage, then a cProfile of more calls with nothing
  cached; returns :class:`StageReport`-shaped dicts (see :func:`profile`);
* ``("settle", None)`` - returns once the served log of earlier calls is stored, so the next
  measurement does not share the cores with the last one's background writes;
* ``("stop", None)`` - graceful stop; the process then exits.

The stage timers wrap the recommender's, stores' and sources' callables *in this process
only*, by name; a callable that no longer exists is reported as missing, never fatal.
"""

from __future__ import annotations

import contextlib
import cProfile
import functools
import io
import logging
import os
import pstats
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from typing import Any

logger = logging.getLogger(__name__)

MODEL_ID = "mediarec-demo"


def serve(data_dir: str, conn: Connection, overrides: dict[str, Any]) -> None:
    """The server process's main, set up as ``mediarec.server.app.serve`` sets up
    ``mediarec serve``."""
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s server %(name)s %(message)s")
    from mediarec.server.app import build_server
    from mediarec.server.config import load_settings
    from mediarec.server.heap import freeze_startup_objects, schedule_full_collections
    from mediarec.server.runtime import ServiceState, open_deps
    from mediarec.server.threads import limit_numpy_blas_threads

    started = time.monotonic()
    settings = load_settings(
        {"model_id": MODEL_ID, "data_dir": data_dir, "port": 0, **overrides}, {}, None
    )
    limit_numpy_blas_threads(settings.server.blas_threads)
    deps = open_deps(settings)
    freeze_startup_objects()
    full_collections = schedule_full_collections(settings.server.full_gc_interval_s)
    running = build_server(settings, ServiceState(deps))
    try:
        deps.store.wait_optimized()  # a build the store asked for when it opened
        deps.recommender.wait_for_refresh()  # the first derived-state snapshot
        deps.recommender.wait_for_precompute()  # ... and the users it warms ahead
        conn.send({"port": running.port, "pid": os.getpid(),
                   "startup_s": time.monotonic() - started})  # fmt: skip
        while True:
            command, argument = conn.recv()
            if command == "stop":
                break
            if command == "profile":
                conn.send(profile(deps, argument))
            elif command == "settle":  # the last phase's background work done: a quiet server
                deps.recommender.flush_served()
                deps.recommender.wait_for_refresh()
                deps.recommender.wait_for_precompute()
                conn.send({})
            else:
                conn.send({"error": f"unknown command {command!r}"})
    finally:
        running.stop(1.0)
        if full_collections is not None:
            full_collections.close()


# -- stage timers -----------------------------------------------------------------------------


@dataclass
class Timers:
    """Wall time and calls per label, collected by wrappers installed on named callables."""

    seconds: dict[str, float] = field(default_factory=dict)
    calls: dict[str, int] = field(default_factory=dict)
    missing: list[str] = field(default_factory=list)
    _restore: list[Callable[[], None]] = field(default_factory=list)

    def wrap(self, owner: Any, name: str, label: str) -> None:
        original = getattr(owner, name, None)
        if original is None:
            self.missing.append(label)
            return

        @functools.wraps(original)
        def timed(*args: Any, **kwargs: Any) -> Any:
            t0 = time.perf_counter()
            try:
                return original(*args, **kwargs)
            finally:
                self.seconds[label] = self.seconds.get(label, 0.0) + time.perf_counter() - t0
                self.calls[label] = self.calls.get(label, 0) + 1

        own = name in getattr(owner, "__dict__", {})
        _set(owner, name, timed)
        if own:
            self._restore.append(lambda: _set(owner, name, original))
        else:  # an instance attribute shadowed a class attribute: remove the shadow
            self._restore.append(lambda: _delete(owner, name))

    def wrap_chain(self, sources: Any) -> None:
        """Each candidate source of the named chain, timed under ``source <name>``."""
        chain = getattr(sources, "SOURCE_CHAIN", None)
        if chain is None:
            self.missing.append("sources.SOURCE_CHAIN")
            return
        timed_chain = []
        for name, fn in chain:
            slot = _Slot(fn)
            self.wrap(slot, "fn", f"source {name}")
            timed_chain.append((name, slot.fn))
        sources.SOURCE_CHAIN = tuple(timed_chain)
        self._restore.append(lambda: setattr(sources, "SOURCE_CHAIN", chain))

    def restore(self) -> None:
        for undo in reversed(self._restore):
            undo()
        self._restore.clear()

    def reset(self) -> None:
        self.seconds.clear()
        self.calls.clear()


@dataclass
class _Slot:
    """Holds one function so that it can be wrapped like an attribute."""

    fn: Callable[..., Any]


def _set(owner: Any, name: str, value: Any) -> None:
    try:
        setattr(owner, name, value)
    except AttributeError:  # a frozen dataclass instance
        object.__setattr__(owner, name, value)


def _delete(owner: Any, name: str) -> None:
    try:
        delattr(owner, name)
    except AttributeError:
        object.__delattr__(owner, name)


# Where a Recommend call spends its time: (label, how to reach the owner, attribute).
IN_PROCESS_STAGE = "recommend (total, in-process)"
_RECOMMENDER_STAGES = (
    (IN_PROCESS_STAGE, "recommend"),
    ("1 profile (user history -> tastes; cached or built)", "_user_entry"),
    ("3a nearest-neighbour searches (cached or searched)", "_nearest"),
    ("3b fresh + following (kept or searched)", "_catalogue"),
    ("3c co-engagement, cohort, cold (kept or computed)", "_snapshot_sources"),
    ("2 query vectors", "_queries"),
    ("5 candidates: fetch + filter", "_candidates"),
    ("8 select: MMR + exploration", "_select"),
    ("9 page: existence check + served log", "_page"),
    ("9a best video frames", "_with_frames"),
    ("L1 learned: the core's work on the user (kept or computed)", "_collab_work"),
)
_MODULE_STAGES = (
    (
        "mediarec.server.recommend.sources", "gather",
        "3 candidate sources (the others; all but 3a-3c)",
    ),
    ("mediarec.server.recommend.sources", "social_counts", "4 social counts"),
    ("mediarec.server.recommend.recommender", "compute_features", "6 features"),
    (
        "mediarec.server.recommend.recommender", "collapse_near_duplicates",
        "7b near-duplicate collapse",
    ),
    ("mediarec.server.recommend.recommender", "mmr_rank", "8a MMR"),
    ("mediarec.server.recommend.profile", "summarize_events", "1a summarize events"),
    ("mediarec.server.recommend.profile", "cluster_interests", "1b cluster interests"),
    ("mediarec.server.grpc.recommend_servicer", "_to_proto",
     "10 response: protobuf (+ payloads the page lacks)"),  # fmt: skip
    ("mediarec.server.recommend.recommender", "with_collab_candidates",
     "L2 learned: the core's candidates joined to the proposals"),  # fmt: skip
    ("mediarec.server.recommend.recommender", "learned_features", "L3 learned: features"),
)
# Methods timed on their class: (module, class, method, label).
_CLASS_STAGES = (
    ("mediarec.server.recommend.learned", "LearnedRanker", "score", "L4 learned: scores"),
    ("mediarec.server.recommend.learned", "LearnedRanker", "contributions",
     "L5 learned: explanations"),  # fmt: skip
)
_STORE_CALLS = ("search", "search_batch", "get", "list_media", "search_frames", "count")


def install(timers: Timers, deps: Any) -> None:
    import importlib

    recommender = deps.recommender
    for label, name in _RECOMMENDER_STAGES:
        timers.wrap(recommender, name, label)
    for module_name, name, label in _MODULE_STAGES:
        timers.wrap(importlib.import_module(module_name), name, label)
    for module_name, class_name, name, label in _CLASS_STAGES:
        timers.wrap(getattr(importlib.import_module(module_name), class_name), name, label)
    timers.wrap_chain(importlib.import_module("mediarec.server.recommend.sources"))
    ranker = getattr(recommender, "_ranker", None)
    if ranker is not None:
        timers.wrap(ranker, "score", "7 ranker score")
    for name in _STORE_CALLS:
        timers.wrap(deps.store, name, f"qdrant {name}")
    timers.wrap(deps.engagement, "user_events", "sqlite user_events")
    timers.wrap(deps.engagement, "follows", "sqlite follows")
    timers.wrap(deps.engagement, "interests", "sqlite interests")
    texts = getattr(recommender, "_texts", None)
    if texts is not None:
        timers.wrap(texts, "embed", "text tower (interests, searches)")
    items = getattr(recommender, "_items", None)
    if items is not None:
        timers.wrap(items, "get", "item cache get")
        timers.wrap(items, "stored_payloads", "item existence check")


@contextlib.contextmanager
def installed(deps: Any) -> Iterator[Timers]:
    timers = Timers()
    install(timers, deps)
    try:
        yield timers
    finally:
        timers.restore()


def _request(user: str) -> Any:
    import zlib

    from bench.speed_latency_load import DEVICES, REGIONS
    from mediarec.server.recommend.types import Context, RecRequest

    h = zlib.crc32(user.encode())
    context = Context(device=DEVICES[h % 3], local_hour=h % 24, location=REGIONS[h % 6])
    return RecRequest(user_id=user, k=20, context=context)


def _one(deps: Any, user: str) -> None:
    from mediarec.server.grpc.recommend_servicer import _to_proto

    response = deps.recommender.recommend(_request(user))
    _to_proto(deps, response.items, response.payloads)  # as RecommendationService.Recommend


def _drop_cached(deps: Any, users: Sequence[str]) -> None:
    """Forget what the recommender keeps for ``users`` (profile, candidates) without
    scheduling their warming again, as after an event the precompute has not caught up with."""
    cache = getattr(deps.recommender, "_users", None)
    if cache is None:
        return
    for user in users:
        cache.invalidate(user)


def profile(deps: Any, users: Sequence[str]) -> dict[str, Any]:
    """Per-stage mean ms per request (nothing cached, then cached) and a cProfile summary."""
    half = max(1, len(users) // 2)
    timed, profiled = list(users[:half]), list(users[half:])
    out: dict[str, Any] = {}
    _drop_cached(deps, users)
    with installed(deps) as timers:
        # The same users twice: the first pass builds each profile and its candidates, the
        # second finds them cached (as every user the background warming reached does).
        for key in ("nothing_cached", "cached"):
            timers.reset()
            for user in timed:
                _one(deps, user)
            out[key] = {
                label: {"ms": 1000 * s / len(timed), "calls": timers.calls[label] / len(timed)}
                for label, s in sorted(timers.seconds.items())
            }
        out["missing"] = list(timers.missing)
    deps.recommender.flush_served()
    profiler = cProfile.Profile()
    profiler.enable()
    for user in profiled:
        _one(deps, user)
    profiler.disable()
    out["cprofile"] = top_functions(profiler, len(profiled))
    buffer = io.StringIO()
    pstats.Stats(profiler, stream=buffer).strip_dirs().sort_stats("cumulative").print_stats(40)
    out["cprofile_text"] = buffer.getvalue()
    out["users"] = [len(timed), len(profiled)]
    return out


def top_functions(profiler: cProfile.Profile, requests: int, n: int = 15) -> list[dict[str, Any]]:
    """The functions with the most own time: calls and ms per request, own and cumulative."""
    stats = pstats.Stats(profiler).stats  # type: ignore[attr-defined]
    rows = []
    for (path, line, name), (_, calls, own, cumulative, _) in stats.items():
        short = "/".join(path.split("/")[-2:]) if path != "~" else ""
        rows.append({
            "function": f"{short}:{line}({name})" if short else name,
            "calls": calls / requests,
            "own_ms": 1000 * own / requests,
            "cumulative_ms": 1000 * cumulative / requests,
        })  # fmt: skip
    rows.sort(key=lambda r: -r["own_ms"])
    return rows[:n]
