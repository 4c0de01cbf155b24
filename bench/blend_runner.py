"""The full blend under test: the real ``Recommender`` over a real Qdrant Edge store and the real
SQLite engagement store, fed the world's posts and the simulated train log.

Also: served slates answered by the simulator (labels for ``train-ranker``), and the check that
logged exploration propensities match how often each explored item is actually chosen.
"""

from __future__ import annotations

import logging
import shutil
import sqlite3
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from bench.engagement_sim import (
    COMMENT,
    FOLLOW,
    HIDE,
    IMPRESSION,
    LIKE,
    LONG_VIEW,
    SAVE,
    SHARE,
    SKIP,
    VIEW,
    EngagementLog,
)
from bench.world_sim import DEVICES, REGION_UTC_OFFSET_H, REGIONS, World
from mediarec.encoders import Encoder
from mediarec.server.engagement import SqliteEngagementStore, open_engagement_store
from mediarec.server.engagement.sqlite_store import DATABASE_NAME
from mediarec.server.recommend.recommender import Recommender
from mediarec.server.recommend.settings import RecommendSettings
from mediarec.server.recommend.types import Context, Event, EventKind, RecRequest
from mediarec.server.store import MediaPoint, VectorStore, schema
from mediarec.server.store.factory import open_store

logger = logging.getLogger(__name__)

_KINDS = {
    LIKE: EventKind.LIKE,
    LONG_VIEW: EventKind.VIEW,
    SAVE: EventKind.SAVE,
    SHARE: EventKind.SHARE,
    COMMENT: EventKind.COMMENT,
    VIEW: EventKind.VIEW,
    SKIP: EventKind.SKIP,
    HIDE: EventKind.HIDE,
    FOLLOW: EventKind.FOLLOW,
    IMPRESSION: EventKind.IMPRESSION,
}
_LOG_BATCH = 5_000
_UPSERT_BATCH = 1_000


def recommend_settings(model_id: str, **overrides: object) -> RecommendSettings:
    """The recommender's defaults for ``model_id``: the near-duplicate threshold its registry
    entry (model card) gives, if any, instead of the real-CLIP default."""
    from mediarec.encoders.registry import parse_model_id

    spec = parse_model_id(model_id)
    # Offline replays measure ranking quality, not latency: warming users ahead would only add
    # background work to the replay (each request builds the same profile itself).
    overrides = {"precompute_users": 0, **overrides}
    if spec.near_duplicate_cosine is not None:
        overrides = {"near_duplicate_cosine": spec.near_duplicate_cosine, **overrides}
    return RecommendSettings(**overrides)  # type: ignore[arg-type]


def context_at(world: World, user: int, t: float) -> Context:
    region = int(world.user_region[user])
    hour = int(((t % 86_400) / 3600 + REGION_UTC_OFFSET_H[region]) % 24)
    return Context(device=DEVICES[int(world.user_device[user])], local_hour=hour,
                   location=REGIONS[region])


def to_events(
    world: World, log: EngagementLog, id_prefix: str, request_id: str = ""
) -> list[Event]:
    """The compact log as store events (ids ``{id_prefix}-{row}``), with each user's context."""
    events = []
    for row in range(len(log)):
        u, code = int(log.user[row]), int(log.kind[row])
        ts = float(log.ts[row])
        post = int(log.post[row])
        events.append(Event(
            event_id=f"{id_prefix}-{row}",
            user_id=World.user_id(u),
            kind=_KINDS[code],
            timestamp=ts,
            media_id=World.post_id(post) if post >= 0 else "",
            creator_id=World.creator_id(int(log.creator[row])) if code == FOLLOW else "",
            dwell_ms=int(log.dwell_ms[row]),
            context=context_at(world, u, ts),
            request_id=request_id,
        ))
    return events


def log_events(store: SqliteEngagementStore, events: Sequence[Event]) -> None:
    for start in range(0, len(events), _LOG_BATCH):
        results = store.log_events(events[start : start + _LOG_BATCH])
        rejected = [r for r in results if not r.accepted]
        if rejected:
            raise RuntimeError(f"the engagement store rejected {len(rejected)} events, e.g. "
                               f"{rejected[0]}")


def post_point(world: World, i: int, model_id: str) -> MediaPoint:
    creator = int(world.post_creator[i])
    return MediaPoint(
        media_id=World.post_id(i),
        vectors={schema.VISUAL: world.visual[i], schema.CAPTION: world.caption_vectors[i]},
        payload={
            schema.MEDIA_TYPE: schema.MEDIA_TYPE_IMAGE,
            schema.CREATOR_ID: World.creator_id(creator),
            schema.TAGS: world.post_tags(i),
            schema.CAPTION_TEXT: world.captions[i],
            schema.CREATED_AT: int(world.post_time[i]),
            schema.LOCATION: REGIONS[int(world.creator_region[creator])],
            "model_id": model_id,
        },
    )


def open_vectors(path: Path, encoder: Encoder) -> VectorStore:
    store = open_store(path)
    store.ensure_collection(encoder.model_id, {schema.VISUAL: encoder.dim,
                                               schema.CAPTION: encoder.dim})
    return store


def index_posts(store: VectorStore, world: World, posts: np.ndarray, model_id: str) -> None:
    for start in range(0, posts.size, _UPSERT_BATCH):
        store.upsert([post_point(world, int(i), model_id)
                      for i in posts[start : start + _UPSERT_BATCH]])


def copy_engagement(src_dir: Path, dst_dir: Path) -> None:
    """A consistent copy of a (closed) engagement database, via SQLite's backup API."""
    dst_dir.mkdir(parents=True, exist_ok=True)
    src = sqlite3.connect(src_dir / DATABASE_NAME)
    dst = sqlite3.connect(dst_dir / DATABASE_NAME)
    try:
        src.backup(dst)
    finally:
        dst.close()
        src.close()


@dataclass
class Slates:
    """One page per user: ``items[u]`` are post indices (-1 padded), in served order."""

    users: np.ndarray
    items: np.ndarray
    request_ids: list[str]
    explored: list[dict[int, float]]  # per user: explored post -> logged propensity
    seconds: float


class BlendRunner:
    """One Recommender over given stores, asked once per user at a replayed time."""

    def __init__(
        self,
        world: World,
        encoder: Encoder,
        vectors: VectorStore,
        engagement: SqliteEngagementStore,
        settings: RecommendSettings,
        now: float,
        seed: int,
    ) -> None:
        self.world = world
        self.engagement = engagement
        self.now = now
        started = time.monotonic()
        self.recommender = Recommender(encoder, vectors, engagement, settings,
                                       clock=lambda: now, seed=seed)
        # The constructor starts the first build in the background; wait for it rather than
        # calling refresh(), which would build the same snapshot a second time.
        self.recommender.wait_for_refresh()
        logger.info("recommender ready (derived state built) in %.1fs",
                    time.monotonic() - started)

    def slates(self, users: np.ndarray, k: int = 20,
               on_slate: Callable[[int, list[int], str], None] | None = None) -> Slates:
        started = time.monotonic()
        items = np.full((users.size, k), -1, dtype=np.int64)
        request_ids, explored = [], []
        for row, u in enumerate(users):
            response = self.recommender.recommend(RecRequest(
                user_id=World.user_id(int(u)), k=k, now=self.now, exclude_seen=True,
                context=context_at(self.world, int(u), self.now),
            ))
            posts = [_post_index(item.media_id) for item in response.items]
            items[row, : len(posts)] = posts
            request_ids.append(response.request_id)
            explored.append({_post_index(item.media_id): item.propensity
                             for item in response.items if item.explored})
            if on_slate is not None:
                on_slate(int(u), posts, response.request_id)
        seconds = time.monotonic() - started
        logger.info("%d recommend calls in %.1fs (%.1f ms each)", users.size, seconds,
                    1000 * seconds / max(1, users.size))
        return Slates(users, items, request_ids, explored, seconds)

    def close(self) -> None:
        self.recommender.close()


def _post_index(media_id: str) -> int:
    return int(media_id.removeprefix("post-"))


# ---------------------------------------------------------------------------------------------
# Propensity check


@dataclass(frozen=True)
class PropensityCheck:
    users: int
    repeats: int
    items: int  # distinct (user, item) pairs ever explored on the first page
    mean_logged: float  # mean logged propensity of those pairs
    mean_observed: float  # mean observed first-page frequency of those pairs
    mean_observed_ranking: float  # ... and frequency of being explored anywhere in the ranking
    explored_per_page: float  # explored items per first page (the page's slots)
    logged_mass_per_user: float  # sum over a user's explored items of their logged propensity
    logged_sum_per_request: float  # sum of the logged propensities of one first page
    max_abs_z: float  # largest |observed - logged| in binomial standard errors
    within_2se: float  # share of pairs whose observed frequency is within 2 SE of logged
    rows: list[tuple[str, str, float, float]]  # (user, media, logged, observed), worst first


def propensity_check(
    world: World,
    encoder: Encoder,
    vectors: VectorStore,
    train: EngagementLog,
    users: Sequence[int],
    now: float,
    workdir: Path,
    repeats: int,
    k: int = 20,
) -> PropensityCheck:
    """Re-run the same request with different RNG seeds and compare frequencies to propensities.

    Each repetition starts from an identical fresh engagement store holding only the checked
    user's train events (a run's served log must not change the next run's state), so the
    requests differ only in the exploration draw. The first page is what a user sees; later
    pages (same ranking, via the cursor) show where the other explored items went.
    """
    page_counts: dict[tuple[int, int], int] = {}
    ranking_counts: dict[tuple[int, int], int] = {}
    logged: dict[tuple[int, int], list[float]] = {}
    per_page, sums = [], []
    template = workdir / "template"
    for u in users:
        if template.exists():
            shutil.rmtree(template)
        store = open_engagement_store(template)
        log_events(store, to_events(world, train.select(np.flatnonzero(train.user == u)),
                                    f"prop{u}"))
        store.close()
        for r in range(repeats):
            first, anywhere = _explored_once(world, encoder, vectors, template,
                                             workdir / f"run-{u}-{r}", u, now, k, 10_000 + r)
            per_page.append(len(first))
            sums.append(sum(first.values()))
            for post, p in first.items():
                page_counts[(u, post)] = page_counts.get((u, post), 0) + 1
                logged.setdefault((u, post), []).append(p)
            for post in anywhere:
                ranking_counts[(u, post)] = ranking_counts.get((u, post), 0) + 1
    rows, zs, ranking_freq = [], [], []
    for key, values in logged.items():
        p = float(np.mean(values))
        f = page_counts[key] / repeats
        se = max(float(np.sqrt(p * (1 - p) / repeats)), 1.0 / repeats)
        zs.append(abs(f - p) / se)
        ranking_freq.append(ranking_counts.get(key, 0) / repeats)
        rows.append((World.user_id(key[0]), World.post_id(key[1]), p, f))
    rows.sort(key=lambda row: -abs(row[3] - row[2]))
    mass: dict[str, float] = {}
    for user, _, p, _ in rows:
        mass[user] = mass.get(user, 0.0) + p
    nan = float("nan")
    return PropensityCheck(
        users=len(users),
        repeats=repeats,
        items=len(rows),
        mean_logged=float(np.mean([r[2] for r in rows])) if rows else nan,
        mean_observed=float(np.mean([r[3] for r in rows])) if rows else nan,
        mean_observed_ranking=float(np.mean(ranking_freq)) if rows else nan,
        explored_per_page=float(np.mean(per_page)) if per_page else nan,
        logged_mass_per_user=float(np.mean(list(mass.values()))) if mass else nan,
        logged_sum_per_request=float(np.mean(sums)) if sums else nan,
        max_abs_z=float(max(zs)) if zs else nan,
        within_2se=float(np.mean(np.asarray(zs) <= 2.0)) if zs else nan,
        rows=rows,
    )


def _explored_once(
    world: World, encoder: Encoder, vectors: VectorStore, template: Path, run_dir: Path,
    user: int, now: float, k: int, seed: int,
) -> tuple[dict[int, float], set[int]]:
    """One fresh recommender: explored items of page 1 (with propensities) and of all pages."""
    copy_engagement(template, run_dir)
    engagement = open_engagement_store(run_dir)
    recommender = Recommender(encoder, vectors, engagement, recommend_settings(encoder.model_id),
                              clock=lambda: now, seed=seed)
    try:
        recommender.wait_for_refresh()
        request = RecRequest(user_id=World.user_id(user), k=k, now=now,
                             context=context_at(world, user, now))
        response = recommender.recommend(request)
        first = {_post_index(i.media_id): i.propensity for i in response.items if i.explored}
        anywhere = set(first)
        while response.next_cursor:
            response = recommender.recommend(RecRequest(
                user_id=request.user_id, k=k, now=now, context=request.context,
                cursor=response.next_cursor))
            anywhere |= {_post_index(i.media_id) for i in response.items if i.explored}
    finally:
        recommender.close()
        engagement.close()
        shutil.rmtree(run_dir, ignore_errors=True)
    return first, anywhere
