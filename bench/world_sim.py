"""The benchmark's synthetic world: creators with styles, posts with latent attributes, users with
several tastes, communities and follows.

Posts are drawn by the demo model's generator (``mediarec.encoders.synthetic.world``), so their
content vectors come from the real demo CLIP. Everything a user *feels* about a post (the latent
``affinity``) is computed from latent attributes, communities, follows, regions and a hidden
quality: never from a CLIP vector or anything else mediarec produces.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from mediarec.encoders import Encoder, parse_model_id
from mediarec.encoders.registry import WeightsKind
from mediarec.encoders.synthetic.world import ATTRIBUTE_FAMILIES, Attributes, WorldGenerator

logger = logging.getLogger(__name__)

DAY_S = 86_400.0
FAMILIES = tuple(ATTRIBUTE_FAMILIES)
# Column offset of each family's values in the one-hot attribute layout.
_OFFSETS = np.cumsum([0] + [len(v) for v in ATTRIBUTE_FAMILIES.values()])
N_VALUES = int(_OFFSETS[-1])
REGIONS = ("FR-75", "DE-BE", "US-CA", "US-NY", "BR-SP", "JP-13")
REGION_UTC_OFFSET_H = (1, 1, -8, -5, -3, 9)
DEVICES = ("ios", "android", "web")
MAX_TASTES = 4
NOT_NEW = -1  # user bucket of established users
CACHE_VERSION = 1


@dataclass(frozen=True)
class WorldConfig:
    seed: int
    posts: int = 20_000
    creators: int = 600
    established_users: int = 2_000
    new_user_buckets: tuple[int, ...] = (0, 1, 3, 10)  # train events of each new-user bucket
    users_per_bucket: int = 520
    days: int = 40
    val_days: int = 5
    test_days: int = 5
    communities: int = 12
    follows_mean: float = 6.0  # creators an established user follows
    image_size: int = 64
    start: float = 1_735_689_600.0  # 2025-01-01T00:00:00Z

    @property
    def end(self) -> float:
        return self.start + self.days * DAY_S

    @property
    def test_split(self) -> float:
        return self.end - self.test_days * DAY_S

    @property
    def val_split(self) -> float:
        return self.test_split - self.val_days * DAY_S


@dataclass(frozen=True)
class AffinityWeights:
    """How much each latent factor adds to a user's utility for a post."""

    attributes: float = 3.0  # best taste match (fraction of the taste's families matched)
    community: float = 1.2  # the creator belongs to a community the user likes
    follow: float = 1.0  # the user follows the creator
    region: float = 0.3  # the creator is from the user's region
    quality: float = 1.0  # the post's hidden quality (creator quality + post noise)


@dataclass
class World:
    """Every latent fact of the world as arrays; index order of posts is creation-time order."""

    config: WorldConfig
    # creators
    creator_community: np.ndarray  # (C,) int
    creator_quality: np.ndarray  # (C,) float
    creator_region: np.ndarray  # (C,) int
    creator_styles: list[dict[str, dict[str, float]]]
    # posts
    post_creator: np.ndarray  # (P,) int
    post_time: np.ndarray  # (P,) float unix seconds, ascending
    post_attrs: np.ndarray  # (P, 5) int8 value index per family
    post_onehot: np.ndarray  # (P, N_VALUES) float32
    post_quality: np.ndarray  # (P,) float
    captions: list[str]
    visual: np.ndarray  # (P, d) float32 unit rows, demo CLIP image tower
    caption_vectors: np.ndarray  # (P, d) float32 unit rows, demo CLIP text tower
    # users
    user_tastes: np.ndarray  # (U, MAX_TASTES, N_VALUES) float32; a row sums to 1 or is 0
    user_taste_weight: np.ndarray  # (U, MAX_TASTES) float32 (0 for absent tastes)
    user_communities: np.ndarray  # (U, K) float32 in {0, 1}
    user_region: np.ndarray  # (U,) int
    user_device: np.ndarray  # (U,) int
    user_activity: np.ndarray  # (U,) daily session probability
    user_threshold: np.ndarray  # (U,) utility at which engagement is a coin flip
    user_bucket: np.ndarray  # (U,) NOT_NEW or the new-user bucket (train events)
    follows: np.ndarray  # (U, C) bool
    follow_time: np.ndarray  # (U, C) float, NaN where not followed
    weights: AffinityWeights

    # -- ids ---------------------------------------------------------------------------------
    @staticmethod
    def post_id(i: int) -> str:
        return f"post-{i:05d}"

    @staticmethod
    def creator_id(c: int) -> str:
        return f"creator-{c:04d}"

    @staticmethod
    def user_id(u: int) -> str:
        return f"user-{u:05d}"

    @property
    def n_posts(self) -> int:
        return int(self.post_creator.shape[0])

    @property
    def n_users(self) -> int:
        return int(self.user_region.shape[0])

    def post_tags(self, i: int) -> list[str]:
        """Hashtags a creator would type: the scene and the shape (content, not engagement)."""
        scene = ATTRIBUTE_FAMILIES["scene"][self.post_attrs[i, FAMILIES.index("scene")]]
        shape = ATTRIBUTE_FAMILIES["shape"][self.post_attrs[i, FAMILIES.index("shape")]]
        return [scene.replace(" ", ""), shape]

    # -- the latent utility ------------------------------------------------------------------
    def taste_match(self, users: np.ndarray, posts: np.ndarray) -> np.ndarray:
        """(len(users), len(posts)): the best weighted share of a taste's families matched."""
        tastes = self.user_tastes[users] * self.user_taste_weight[users][:, :, None]
        flat = tastes.reshape(-1, N_VALUES) @ self.post_onehot[posts].T
        return flat.reshape(len(users), MAX_TASTES, len(posts)).max(axis=1)

    def affinity(
        self, users: np.ndarray, posts: np.ndarray, taste: np.ndarray | None = None
    ) -> np.ndarray:
        """(len(users), len(posts)) deterministic utility: tastes, community, follow, region,
        quality. The simulator adds popularity and noise. ``taste`` may pass a precomputed
        ``taste_match``."""
        w = self.weights
        attr = self.taste_match(users, posts) if taste is None else taste
        creators = self.post_creator[posts]
        comm = self.user_communities[users][:, self.creator_community[creators]]
        follow = self.follows[users][:, creators]
        region = self.user_region[users][:, None] == self.creator_region[creators][None, :]
        return (
            w.attributes * attr
            + w.community * comm
            + w.follow * follow
            + w.region * region
            + w.quality * self.post_quality[posts][None, :]
        ).astype(np.float32)


# ---------------------------------------------------------------------------------------------
# Building


def build_world(
    config: WorldConfig,
    encoder: Encoder,
    cache_dir: Path | None,
    weights: AffinityWeights | None = None,
) -> World:
    """The world of ``config.seed``; rendering and embedding are cached under ``cache_dir``."""
    rng = np.random.default_rng([config.seed, 1])
    creators = _make_creators(config, rng)
    post_creator, post_time = _place_posts(config, rng)
    post_quality = creators["quality"][post_creator] + rng.normal(0.0, 0.35, config.posts)
    attrs, captions, visual, caption_vectors = _content(
        config, encoder, cache_dir, creators["styles"], post_creator
    )
    onehot = np.zeros((config.posts, N_VALUES), dtype=np.float32)
    for f in range(len(FAMILIES)):
        onehot[np.arange(config.posts), _OFFSETS[f] + attrs[:, f]] = 1.0
    users = _make_users(config, rng)
    world = World(
        config=config,
        creator_community=creators["community"],
        creator_quality=creators["quality"],
        creator_region=creators["region"],
        creator_styles=creators["styles"],
        post_creator=post_creator,
        post_time=post_time,
        post_attrs=attrs,
        post_onehot=onehot,
        post_quality=post_quality.astype(np.float32),
        captions=captions,
        visual=visual,
        caption_vectors=caption_vectors,
        user_tastes=users["tastes"],
        user_taste_weight=users["taste_weight"],
        user_communities=users["communities"],
        user_region=users["region"],
        user_device=users["device"],
        user_activity=users["activity"],
        user_threshold=users["threshold"],
        user_bucket=users["bucket"],
        follows=np.zeros((users["region"].shape[0], config.creators), dtype=bool),
        follow_time=np.full((users["region"].shape[0], config.creators), np.nan),
        weights=weights or AffinityWeights(),
    )
    _choose_follows(world, rng)
    return world


def _make_creators(config: WorldConfig, rng: np.random.Generator) -> dict:
    styles = []
    for _ in range(config.creators):
        style: dict[str, dict[str, float]] = {}
        signature = rng.choice(len(FAMILIES), size=int(rng.integers(2, 4)), replace=False)
        for f in signature:
            family = FAMILIES[int(f)]
            values = ATTRIBUTE_FAMILIES[family]
            weights = {v: 0.25 for v in values}
            picks = rng.choice(len(values), size=1 if rng.random() < 0.7 else 2, replace=False)
            for p in picks:
                weights[values[int(p)]] = 8.0 / len(picks)
            style[family] = weights
        styles.append(style)
    return {
        "styles": styles,
        "community": rng.integers(0, config.communities, config.creators),
        "quality": rng.normal(0.0, 0.35, config.creators).astype(np.float32),
        "region": rng.integers(0, len(REGIONS), config.creators),
    }


def _place_posts(config: WorldConfig, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Which creator posts each post and when; posts are indexed in creation-time order."""
    share = rng.lognormal(0.0, 1.0, config.creators)
    creator = rng.choice(config.creators, size=config.posts, p=share / share.sum())
    times = np.sort(rng.uniform(config.start, config.end, config.posts))
    return creator.astype(np.int64), times


def _make_users(config: WorldConfig, rng: np.random.Generator) -> dict:
    n_new = config.users_per_bucket * len(config.new_user_buckets)
    n = config.established_users + n_new
    tastes = np.zeros((n, MAX_TASTES, N_VALUES), dtype=np.float32)
    taste_weight = np.zeros((n, MAX_TASTES), dtype=np.float32)
    for u in range(n):
        k = int(rng.integers(2, MAX_TASTES + 1))
        for t in range(k):
            families = rng.choice(len(FAMILIES), size=2 if rng.random() < 0.75 else 3,
                                  replace=False)
            for f in families:
                value = int(rng.integers(len(ATTRIBUTE_FAMILIES[FAMILIES[int(f)]])))
                tastes[u, t, _OFFSETS[int(f)] + value] = 1.0 / len(families)
            taste_weight[u, t] = 1.0 if t == 0 else float(rng.uniform(0.6, 1.0))
    communities = np.zeros((n, config.communities), dtype=np.float32)
    for u in range(n):
        liked = rng.choice(config.communities, size=int(rng.integers(1, 3)), replace=False)
        communities[u, liked] = 1.0
    bucket = np.full(n, NOT_NEW, dtype=np.int64)
    bucket[config.established_users:] = np.repeat(
        np.asarray(config.new_user_buckets, dtype=np.int64), config.users_per_bucket
    )
    return {
        "tastes": tastes,
        "taste_weight": taste_weight,
        "communities": communities,
        "region": rng.integers(0, len(REGIONS), n),
        "device": rng.integers(0, len(DEVICES), n),
        "activity": np.clip(rng.lognormal(np.log(0.45), 0.5, n), 0.08, 1.0),
        "threshold": rng.normal(3.3, 0.3, n).astype(np.float32),
        "bucket": bucket,
    }


def _choose_follows(world: World, rng: np.random.Generator) -> None:
    """Established users follow creators they would like (by the creators' typical posts)."""
    config = world.config
    c = config.creators
    typical = np.zeros((c, N_VALUES), dtype=np.float32)
    np.add.at(typical, world.post_creator, world.post_onehot)
    counts = np.bincount(world.post_creator, minlength=c).astype(np.float32)
    typical /= np.maximum(counts, 1.0)[:, None]
    established = np.flatnonzero(world.user_bucket == NOT_NEW)
    match = np.einsum("utv,cv->utc", world.user_tastes[established], typical)
    attr = np.max(match * world.user_taste_weight[established][:, :, None], axis=1)
    comm = world.user_communities[established][:, world.creator_community]
    logits = 3.0 * attr + 1.5 * comm + world.creator_quality[None, :]
    logits += np.where(counts > 0, 0.0, -np.inf)[None, :]
    follow_window = 0.5 * (config.val_split - config.start)
    for row, u in enumerate(established):
        k = min(int(rng.poisson(config.follows_mean)) + 1, c)
        gumbel = logits[row] + rng.gumbel(size=c)
        chosen = np.argpartition(-gumbel, k)[:k]
        world.follows[u, chosen] = True
        world.follow_time[u, chosen] = config.start + rng.uniform(0, follow_window, k)


# ---------------------------------------------------------------------------------------------
# Content: rendered by the generator, embedded by the demo CLIP; cached on disk by seed.


def _content(
    config: WorldConfig,
    encoder: Encoder,
    cache_dir: Path | None,
    styles: list[dict[str, dict[str, float]]],
    post_creator: np.ndarray,
) -> tuple[np.ndarray, list[str], np.ndarray, np.ndarray]:
    key = _cache_key(config, encoder, styles, post_creator)
    path = cache_dir / f"world-seed{config.seed}-{key}.npz" if cache_dir else None
    if path is not None and path.exists():
        with np.load(path, allow_pickle=False) as data:
            logger.info("world content of seed %d loaded from %s", config.seed, path)
            return (data["attrs"], [str(c) for c in data["captions"]], data["visual"],
                    data["caption_vectors"])
    started = time.monotonic()
    generator = WorldGenerator(config.seed, image_size=config.image_size)
    attrs = np.zeros((config.posts, len(FAMILIES)), dtype=np.int8)
    captions: list[str] = []
    visual_parts = []
    chunk: list = []
    for i in range(config.posts):
        a = generator.sample_attributes(styles[int(post_creator[i])])
        captions.append(generator.caption(a))
        chunk.append(generator.render(a))
        attrs[i] = [ATTRIBUTE_FAMILIES[f].index(v) for f, v in a.as_dict().items()]
        if len(chunk) == 1024:
            visual_parts.append(encoder.embed_images(chunk))
            chunk = []
    if chunk:
        visual_parts.append(encoder.embed_images(chunk))
    visual = np.concatenate(visual_parts).astype(np.float32)
    caption_vectors = encoder.embed_texts(captions).astype(np.float32)
    logger.info(
        "rendered and embedded %d posts of seed %d in %.1fs",
        config.posts, config.seed, time.monotonic() - started,
    )
    if path is not None:
        prepare_cache(path, f"world-seed{config.seed}-*.npz")
        tmp = path.with_suffix(".tmp.npz")
        np.savez(tmp, attrs=attrs, captions=np.asarray(captions), visual=visual,
                 caption_vectors=caption_vectors)
        tmp.replace(path)
    return attrs, captions, visual, caption_vectors


def prepare_cache(path: Path, stale: str) -> None:
    """Create the cache folder (which keeps itself out of git) and drop stale entries."""
    path.parent.mkdir(parents=True, exist_ok=True)
    ignore = path.parent / ".gitignore"
    if not ignore.exists():
        ignore.write_text("*\n")
    for old in path.parent.glob(stale):
        if old != path:
            old.unlink(missing_ok=True)


def _cache_key(
    config: WorldConfig,
    encoder: Encoder,
    styles: list[dict[str, dict[str, float]]],
    post_creator: np.ndarray,
) -> str:
    """Changes whenever the content would: seed, styles, posts, image size, model weights."""
    digest = hashlib.sha256()
    digest.update(json.dumps(
        [CACHE_VERSION, config.seed, config.image_size, encoder.model_id, styles], sort_keys=True
    ).encode())
    digest.update(np.ascontiguousarray(post_creator, dtype=np.int64).tobytes())
    digest.update(source_digest("mediarec.encoders.synthetic.world").encode())
    digest.update(model_fingerprint(encoder.model_id).encode())
    return digest.hexdigest()[:16]


def source_digest(*modules: str) -> str:
    """A hash of the named modules' source files: caches go stale when their code changes."""
    digest = hashlib.sha256()
    for name in modules:
        spec = importlib.util.find_spec(name)
        if spec is None or spec.origin is None:
            raise ValueError(f"module {name!r} not found")
        digest.update(Path(spec.origin).read_bytes())
    return digest.hexdigest()


def model_fingerprint(model_id: str) -> str:
    """A hash of a local model's weight files (sizes and bytes), else the model id itself."""
    spec = parse_model_id(model_id)
    if spec.weights.kind not in (WeightsKind.LOCAL_DIR, WeightsKind.LOCAL_FILE):
        return model_id
    root = Path(spec.weights.location)
    files = sorted(root.rglob("*")) if root.is_dir() else [root]
    digest = hashlib.sha256()
    for f in files:
        if f.is_file():
            digest.update(f.name.encode())
            digest.update(f.read_bytes())
    return digest.hexdigest()


def attributes_of(world: World, i: int) -> Attributes:
    values: Mapping[str, str] = {
        f: ATTRIBUTE_FAMILIES[f][int(world.post_attrs[i, k])] for k, f in enumerate(FAMILIES)
    }
    return Attributes(**values)
