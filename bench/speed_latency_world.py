"""The latency bench's world: a synthetic catalogue and 1k users with histories, cached on disk.

Posts carry the payload indexing writes (``build_payload``: creator, caption, tags, topics,
created_at, location, content hash, fingerprint; frames for videos) and bring-your-own vectors
of the demo model's dimension: random unit vectors clustered around a few hundred centres, so
a user's likes form real taste clusters. Users' events (views, likes, skips, saves, follows,
searches, hides, ...) go through the real SQLite engagement store, all in the past.

Everything is written straight into a server data dir with the real store APIs (``EdgeStore``
and ``SqliteEngagementStore``), then the HNSW build runs to completion and is timed. The data
dir is cached under the bench's work dir, keyed by :data:`CACHE_VERSION` and the size, and
reused while it is younger than :data:`MAX_CACHE_AGE_S` (created_at and event times are
relative to when it was generated, and "fresh" posts stop being fresh).
"""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np

from bench.world_sim import DEVICES, REGIONS
from mediarec.server.engagement import open_engagement_store
from mediarec.server.media import IndexedItem, ItemMetadata, Location, MediaType, Outcome
from mediarec.server.payload import build_payload
from mediarec.server.recommend.types import Context, Event, EventKind
from mediarec.server.store import MediaPoint, schema
from mediarec.server.store.edge import EdgeTuning
from mediarec.server.store.factory import open_store
from mediarec.server.topics import EVERYDAY_TOPICS, Topic

logger = logging.getLogger(__name__)

CACHE_VERSION = "latency-world-v1"
MAX_CACHE_AGE_S = 2 * 86_400.0
META_FILE = "world.json"
DATA_SUBDIR = "data"
DAY_S = 86_400.0
WORDS = (
    "sunset", "hike", "coffee", "street", "food", "cat", "dog", "beach", "mountain", "city",
    "night", "forest", "lake", "snow", "bike", "train", "market", "garden", "flower", "bread",
    "pasta", "sushi", "surf", "skate", "concert", "guitar", "museum", "bridge", "river", "rain",
    "autumn", "spring", "desert", "island", "castle", "harbour", "roof", "window", "kitchen",
    "cake", "tea", "wine", "football", "run", "yoga", "paint", "vintage", "neon", "fog", "storm",
)  # fmt: skip
_UPSERT_BATCH = 2_000
_EVENT_BATCH = 5_000
# Event kinds of one user action, and how often each occurs.
_KINDS = (
    (EventKind.VIEW, 0.50), (EventKind.IMPRESSION, 0.14), (EventKind.LIKE, 0.15),
    (EventKind.SKIP, 0.10), (EventKind.SAVE, 0.03), (EventKind.SHARE, 0.02),
    (EventKind.COMMENT, 0.02), (EventKind.HIDE, 0.005), (EventKind.PROFILE_VISIT, 0.02),
    (EventKind.SEARCH, 0.015),
)  # fmt: skip


@dataclass(frozen=True)
class WorldSpec:
    """How big the world is. Creators and centres scale with the catalogue."""

    posts: int
    users: int = 1_000
    dim: int = 128
    video_share: float = 0.05
    text_share: float = 0.02  # caption-only posts (no visual vector)
    near_duplicate_share: float = 0.01
    frames_per_video: int = 8
    mean_events_per_user: float = 120.0
    seed: int = 5

    @property
    def creators(self) -> int:
        return int(np.clip(self.posts // 20, 50, 5_000))

    @property
    def centres(self) -> int:
        return int(np.clip(self.posts // 50, 10, 300))


@dataclass
class WorldInfo:
    """What the generation wrote, how long it took, and what the load generator may ask for."""

    version: str
    posts: int
    users: int
    model_id: str
    generated_at: float
    write_s: float  # catalogue into the vector store (payloads, vectors, video frames)
    events: int
    events_s: float  # events into the engagement store
    build_s: float  # the background HNSW build, from request to swap-in
    indexed_vectors: int  # vectors an HNSW index covers after the build
    warm_users: list[str] = field(default_factory=list)
    media_ids: list[str] = field(default_factory=list)  # "more like this" anchors
    queries: list[str] = field(default_factory=list)  # text search queries


def world_dir(work_dir: Path, posts: int) -> Path:
    return work_dir / "latency" / f"{CACHE_VERSION}-{posts}"


def ensure_world(work_dir: Path, spec: WorldSpec, model_id: str) -> tuple[Path, WorldInfo]:
    """The cached data dir of ``spec`` (generated when missing or stale) and its info."""
    root = world_dir(work_dir, spec.posts)
    info = _load_info(root, spec, model_id)
    if info is not None:
        logger.info("reusing the cached %d-post world at %s", spec.posts, root)
        return root / DATA_SUBDIR, info
    shutil.rmtree(root, ignore_errors=True)
    tmp = root.with_name(root.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    info = generate(tmp / DATA_SUBDIR, spec, model_id)
    (tmp / META_FILE).write_text(json.dumps(asdict(info)))
    tmp.rename(root)
    return root / DATA_SUBDIR, info


def _load_info(root: Path, spec: WorldSpec, model_id: str) -> WorldInfo | None:
    try:
        data = json.loads((root / META_FILE).read_text())
        info = WorldInfo(**data)
    except (OSError, ValueError, TypeError):
        return None
    fresh = time.time() - info.generated_at < MAX_CACHE_AGE_S
    same = (info.version, info.posts, info.users, info.model_id) == (
        CACHE_VERSION, spec.posts, spec.users, model_id,
    )  # fmt: skip
    return info if fresh and same else None


# -- generation -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Catalogue:
    """The posts as arrays (index i is ``post_id(i)``)."""

    now: float
    centres: np.ndarray  # (c, dim) unit
    centre_of: np.ndarray  # (n,) the taste centre each post was drawn around
    creator_of: np.ndarray  # (n,)
    creator_region: np.ndarray  # (creators,)
    visual: np.ndarray  # (n, dim) unit; unused for text posts
    caption: np.ndarray  # (n, dim) unit
    media_type: np.ndarray  # (n,) of MediaType values
    created_at: np.ndarray  # (n,) unix seconds
    duplicate_of: np.ndarray  # (n,) index of the near-duplicate's root, else -1
    popularity: np.ndarray  # (n,) sampling weight of a post


@dataclass(frozen=True)
class Sampler:
    """Popularity-weighted draws of posts, overall or within one taste centre (O(log n))."""

    cdf: np.ndarray  # over all posts
    by_centre: list[tuple[np.ndarray, np.ndarray]]  # (posts of the centre, their cdf)

    @classmethod
    def of(cls, cat: Catalogue) -> Sampler:
        order = np.argsort(cat.centre_of, kind="stable")
        bounds = np.searchsorted(cat.centre_of[order], np.arange(len(cat.centres) + 1))
        by_centre = []
        for c in range(len(cat.centres)):
            posts = order[bounds[c] : bounds[c + 1]]
            by_centre.append((posts, _cdf(cat.popularity[posts])))
        return cls(_cdf(cat.popularity), by_centre)

    def any(self, rng: np.random.Generator) -> int:
        return int(np.searchsorted(self.cdf, rng.random(), side="right").clip(0, self.cdf.size - 1))

    def of_centre(self, rng: np.random.Generator, centre: int) -> int:
        posts, cdf = self.by_centre[centre]
        if posts.size == 0:
            return self.any(rng)
        j = int(np.searchsorted(cdf, rng.random(), side="right").clip(0, posts.size - 1))
        return int(posts[j])


def _cdf(weights: np.ndarray) -> np.ndarray:
    cdf = np.cumsum(weights)
    return cdf / cdf[-1] if cdf.size else cdf


def post_id(i: int) -> str:
    return f"post-{i:07d}"


def creator_id(c: int) -> str:
    return f"creator-{c:05d}"


def user_id(u: int) -> str:
    return f"user-{u:04d}"


def _unit(x: np.ndarray) -> np.ndarray:
    return (x / np.linalg.norm(x, axis=-1, keepdims=True)).astype(np.float32)


def _around(rng: np.random.Generator, anchors: np.ndarray, spread: float) -> np.ndarray:
    """Unit vectors near ``anchors``: cosine to the anchor about 1 / sqrt(1 + spread^2)."""
    noise = rng.standard_normal(anchors.shape) * (spread / np.sqrt(anchors.shape[-1]))
    return _unit(anchors + noise)


def make_catalogue(spec: WorldSpec, now: float) -> Catalogue:
    rng = np.random.default_rng(spec.seed)
    n = spec.posts
    centres = _unit(rng.standard_normal((spec.centres, spec.dim)))
    home = rng.integers(spec.centres, size=spec.creators)
    creator_weight = 1.0 / (np.arange(spec.creators) + 10.0)  # a few prolific creators
    creator_of = rng.choice(spec.creators, size=n, p=creator_weight / creator_weight.sum())
    stray = rng.random(n) < 0.2  # a creator's post now and then is off their usual theme
    centre_of = np.where(stray, rng.integers(spec.centres, size=n), home[creator_of])
    visual = _around(rng, centres[centre_of], 0.9)  # within-theme cosine about 0.55
    dups = rng.choice(np.arange(1, n), size=int(spec.near_duplicate_share * n), replace=False)
    duplicate_of = np.full(n, -1)
    duplicate_of[dups] = rng.integers(0, dups)  # a re-post of an older post
    visual[dups] = _around(rng, visual[duplicate_of[dups]], 0.15)
    centre_of[dups] = centre_of[duplicate_of[dups]]
    kind = rng.random(n)
    media_type = np.where(
        kind < spec.video_share,
        MediaType.VIDEO.value,
        np.where(kind < spec.video_share + spec.text_share, MediaType.TEXT.value,
                 MediaType.IMAGE.value),
    )  # fmt: skip
    age = np.minimum(rng.exponential(20 * DAY_S, size=n), 365 * DAY_S) + 600.0
    popularity = 1.0 / (rng.permutation(n) + 20.0)
    return Catalogue(
        now=now,
        centres=centres,
        centre_of=centre_of,
        creator_of=creator_of,
        creator_region=rng.integers(len(REGIONS), size=spec.creators),
        visual=visual,
        caption=_around(rng, visual, 0.8),
        media_type=media_type,
        created_at=(now - age).astype(np.int64),
        duplicate_of=duplicate_of,
        popularity=popularity,
    )


def centre_words(centre: int) -> tuple[str, ...]:
    """Three words that describe a taste centre (its tags and caption vocabulary)."""
    return tuple(WORDS[(centre * 7 + k * 13) % len(WORDS)] for k in range(3))


def centre_topics(centre: int) -> tuple[str, ...]:
    return tuple(EVERYDAY_TOPICS[(centre * 5 + k * 11) % len(EVERYDAY_TOPICS)] for k in range(3))


def post_payload(cat: Catalogue, i: int, model_id: str, dim: int, frames: int) -> dict:
    rng = np.random.default_rng(i)
    centre = int(cat.centre_of[i])
    words = centre_words(centre)
    tags = tuple(dict.fromkeys(rng.choice(words, size=int(rng.integers(1, 4))).tolist()))
    tags += (WORDS[int(rng.integers(len(WORDS)))] + "life",) if rng.random() < 0.3 else ()
    media_type = MediaType(str(cat.media_type[i]))
    duration = float(rng.uniform(5.0, 60.0)) if media_type is MediaType.VIDEO else 0.0
    timestamps = tuple(duration * (k + 0.5) / frames for k in range(frames)) if duration else ()
    region = REGIONS[int(cat.creator_region[cat.creator_of[i]])]
    exact = rng.random() < 0.3
    content_hash = hashlib.sha256(f"content-{i}".encode()).hexdigest()
    topics = tuple(
        Topic(label, round(float(score), 3))
        for label, score in zip(centre_topics(centre), sorted(rng.uniform(0.2, 0.4, 3))[::-1],
                                strict=True)
    )  # fmt: skip
    root = int(cat.duplicate_of[i])
    item = IndexedItem(
        media_id=post_id(i), outcome=Outcome.CREATED, media_type=media_type, model_id=model_id,
        dims=dim, frame_timestamps_s=timestamps, content_sha256=content_hash, duplicate=False,
        duplicate_of="", near_duplicate_of=post_id(root) if root >= 0 else "", topics=topics,
    )  # fmt: skip
    metadata = ItemMetadata(
        media_id=post_id(i),
        creator_id=creator_id(int(cat.creator_of[i])),
        caption=f"{words[0].capitalize()} and {words[1]} today, {words[2]} vibes "
        + " ".join(f"#{t}" for t in tags),
        tags=tags,
        created_at=int(cat.created_at[i]),
        location=Location(
            region=region,
            latitude=float(rng.uniform(-60, 60)) if exact else None,
            longitude=float(rng.uniform(-180, 180)) if exact else None,
        ),
    )
    fingerprint = hashlib.sha256(f"{content_hash}|{i}".encode()).hexdigest()
    return build_payload(
        item, metadata, fingerprint=fingerprint, duration_s=duration,
        indexed_at=int(cat.created_at[i]) + 5,
    )  # fmt: skip


def write_catalogue(data_dir: Path, cat: Catalogue, spec: WorldSpec, model_id: str) -> float:
    """Every post (and each video's frames) into the Edge store; returns the HNSW build time."""
    # No build while writing: one build at the end, timed on its own.
    store = open_store(data_dir, edge_tuning=EdgeTuning(build_after_writes=10**9))
    try:
        store.ensure_collection(model_id, {schema.VISUAL: spec.dim, schema.CAPTION: spec.dim})
        rng = np.random.default_rng(spec.seed + 1)
        batch: list[MediaPoint] = []
        for i in range(spec.posts):
            payload = post_payload(cat, i, model_id, spec.dim, spec.frames_per_video)
            vectors = {schema.CAPTION: cat.caption[i]}
            if payload[schema.MEDIA_TYPE] == MediaType.VIDEO.value:
                frames = _around(rng, np.repeat(cat.visual[i][None], spec.frames_per_video, 0), 0.5)
                store.upsert_frames(post_id(i), frames, payload["frame_timestamps_s"])
                vectors[schema.VISUAL] = _unit(frames.mean(axis=0))
            elif payload[schema.MEDIA_TYPE] != MediaType.TEXT.value:
                vectors[schema.VISUAL] = cat.visual[i]
            batch.append(MediaPoint(post_id(i), vectors, payload))
            if len(batch) == _UPSERT_BATCH:
                store.upsert(batch)
                batch = []
        store.upsert(batch)
        started = time.monotonic()
        store.request_optimize()
        store.wait_optimized()
        build_s = time.monotonic() - started
        stats = store.stats()
        logger.info("catalogue of %d posts: HNSW build %.1f s, %d indexed vectors",
                    stats.points, build_s, stats.indexed_vectors)  # fmt: skip
        return build_s
    finally:
        store.close()


def indexed_vectors(data_dir: Path, model_id: str, dim: int) -> int:
    store = open_store(data_dir, edge_tuning=EdgeTuning(build_after_writes=10**9))
    try:
        store.ensure_collection(model_id, {schema.VISUAL: dim, schema.CAPTION: dim})
        return store.stats().indexed_vectors
    finally:
        store.close()


def user_events(cat: Catalogue, spec: WorldSpec, u: int, sampler: Sampler) -> list[Event]:
    """One user's history: tastes of 1-3 centres, most actions on posts of those tastes."""
    rng = np.random.default_rng(spec.seed * 1_000_003 + u)
    tastes = rng.choice(len(cat.centres), size=int(rng.integers(1, 4)), replace=False)
    n = int(np.clip(rng.lognormal(np.log(spec.mean_events_per_user) - 0.32, 0.8), 10, 800))
    device, region = DEVICES[u % len(DEVICES)], REGIONS[u % len(REGIONS)]
    kinds = [k for k, _ in _KINDS]
    p = np.array([w for _, w in _KINDS])
    ts = np.sort(cat.now - rng.exponential(8 * DAY_S, size=n).clip(60.0, 60 * DAY_S))
    drawn = rng.choice(len(kinds), size=n, p=p / p.sum())
    events: list[Event] = []
    for k in range(n):
        kind = kinds[int(drawn[k])]
        if rng.random() < 0.75:
            post = sampler.of_centre(rng, int(rng.choice(tastes)))
        else:
            post = sampler.any(rng)
        context = Context(device, int((ts[k] % DAY_S) // 3600), region)
        base = Event(f"u{u}-e{k}", user_id(u), kind, float(ts[k]), context=context)
        if kind is EventKind.SEARCH:
            word = centre_words(int(rng.choice(tastes)))[int(rng.integers(3))]
            events.append(replace(base, query=f"{word} {WORDS[int(rng.integers(len(WORDS)))]}"))
        elif kind is EventKind.PROFILE_VISIT:
            events.append(replace(base, creator_id=creator_id(int(cat.creator_of[post]))))
        else:
            dwell = int(rng.lognormal(8.0, 1.0)) if kind is EventKind.VIEW else 0
            events.append(replace(base, media_id=post_id(post), dwell_ms=dwell))
    liked = [e.media_id for e in events if e.kind is EventKind.LIKE]
    for j, media in enumerate(dict.fromkeys(liked[: int(rng.integers(3, 16))])):
        creator = creator_id(int(cat.creator_of[int(media.removeprefix("post-"))]))
        events.append(Event(f"u{u}-f{j}", user_id(u), EventKind.FOLLOW,
                            float(ts[-1]) - 3600.0 * (j + 1), creator_id=creator,
                            context=Context(device, None, region)))  # fmt: skip
    return events


def write_engagement(data_dir: Path, cat: Catalogue, spec: WorldSpec) -> int:
    """Every user's events (and some declared interests) into the SQLite store."""
    store = open_engagement_store(data_dir)
    sampler = Sampler.of(cat)
    total = 0
    try:
        pending: list[Event] = []
        for u in range(spec.users):
            pending += user_events(cat, spec, u, sampler)
            if u % 7 == 0:  # one user in seven declared interests
                labels = centre_topics(u % len(cat.centres))[:2]
                store.set_interests(user_id(u), ", ".join(labels), cat.now - 5 * DAY_S)
            if len(pending) >= _EVENT_BATCH or u == spec.users - 1:
                results = store.log_events(pending)
                rejected = [r for r in results if not r.accepted]
                if rejected:
                    raise RuntimeError(f"{len(rejected)} events rejected, e.g. {rejected[0]}")
                total += len(pending)
                pending = []
    finally:
        store.close()
    return total


def generate(data_dir: Path, spec: WorldSpec, model_id: str) -> WorldInfo:
    now = time.time()
    cat = make_catalogue(spec, now)
    started = time.monotonic()
    build_s = write_catalogue(data_dir, cat, spec, model_id)
    write_s = time.monotonic() - started - build_s
    started = time.monotonic()
    events = write_engagement(data_dir, cat, spec)
    events_s = time.monotonic() - started
    logger.info("world of %d posts: write %.1f s, build %.1f s, %d events in %.1f s",
                spec.posts, write_s, build_s, events, events_s)  # fmt: skip
    rng = np.random.default_rng(spec.seed + 2)
    anchors = rng.choice(spec.posts, size=min(spec.posts, 2_000), replace=False)
    words = np.array(WORDS)
    queries = [
        f"{a} {b}" if rng.random() < 0.5 else f"a photo of {a} and {b}"
        for a, b in rng.choice(words, size=(2_000, 2))
    ]
    return WorldInfo(
        version=CACHE_VERSION, posts=spec.posts, users=spec.users, model_id=model_id,
        generated_at=now, write_s=write_s, events=events, events_s=events_s, build_s=build_s,
        indexed_vectors=indexed_vectors(data_dir, model_id, spec.dim),
        warm_users=[user_id(u) for u in range(spec.users)],
        media_ids=[post_id(int(i)) for i in anchors], queries=queries,
    )  # fmt: skip
