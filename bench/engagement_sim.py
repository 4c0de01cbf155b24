"""Organic engagement in the synthetic world, day by day, and users' responses to served slates.

Each active user has one session a day. The platform's *organic* feed (not mediarec) shows
recent posts from a mix of followed creators, what is trending, posts matching one of the
user's latent tastes (topic browsing) and random posts. Whether a user engages depends on the
latent utility (``World.affinity``), the post's current popularity and noise; disliked posts are
skipped, sometimes hidden. Nothing here reads a CLIP vector or any output of mediarec.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from bench.world_sim import DAY_S, NOT_NEW, World, prepare_cache

logger = logging.getLogger(__name__)

# Event kind codes of the compact log (converted to mediarec.server.recommend.types.EventKind
# later).
LIKE, LONG_VIEW, SAVE, SHARE, COMMENT, VIEW, SKIP, HIDE, FOLLOW, IMPRESSION = range(10)
POSITIVE_CODES = (LIKE, LONG_VIEW, SAVE, SHARE, COMMENT)
SEEN_CODES = (*POSITIVE_CODES, VIEW, SKIP, HIDE)  # mediarec's SEEN_KINDS: not IMPRESSION
_CHUNK = 256  # users per vectorised exposure draw


@dataclass(frozen=True)
class SimConfig:
    exposures_per_session: int = 8
    pool_age_days: float = 5.0  # the feed (following, trending, random) shows younger posts
    discovery_age_days: float = 30.0  # topic browsing reaches back this far
    discovery_half_life_days: float = 10.0
    mix_following: float = 0.2
    mix_trending: float = 0.2
    mix_community: float = 0.2  # "liked by people like you": recent positives in the community
    mix_discovery: float = 0.35
    mix_random: float = 0.05
    discovery_sharpness: float = 6.0  # topic browsing favours exp(sharpness * taste match)
    discovery_popularity: float = 1.2  # ... times (1 + all-time positives) ** this
    trending_popularity: float = 1.5  # trending favours (0.5 + recent positives) ** this
    recency_half_life_days: float = 1.0
    popularity_half_life_days: float = 1.0
    popularity_effect: float = 0.15  # utility += effect * log1p(current popularity)
    noise_sd: float = 0.8
    hide_margin: float = -2.5  # utility this far below the threshold may hide the post
    hide_probability: float = 0.3
    skip_margin: float = -1.5  # a clearly disliked post may be skipped explicitly ...
    skip_probability: float = 0.5
    short_view_probability: float = 0.25  # ... else opened briefly, else just scrolled past
    new_user_activity: float = 0.9  # daily session probability of new users after joining
    new_user_join_days: float = 1.0  # new users join this long before the test split
    join_exposures: int = 60  # exposures drawn while a new user builds its first events


@dataclass
class EngagementLog:
    """Compact event log; ``post`` is -1 for follows, ``creator`` -1 for post events."""

    user: np.ndarray
    post: np.ndarray
    creator: np.ndarray
    ts: np.ndarray
    kind: np.ndarray
    dwell_ms: np.ndarray

    @staticmethod
    def empty() -> EngagementLog:
        z = np.zeros(0, dtype=np.int64)
        return EngagementLog(z, z, z, np.zeros(0), np.zeros(0, dtype=np.int8), z)

    @staticmethod
    def concat(parts: list[EngagementLog]) -> EngagementLog:
        if not parts:
            return EngagementLog.empty()
        log = EngagementLog(*(np.concatenate([getattr(p, f) for p in parts]) for f in _FIELDS))
        order = np.argsort(log.ts, kind="stable")
        return log.select(order)

    def select(self, index: np.ndarray) -> EngagementLog:
        return EngagementLog(*(getattr(self, f)[index] for f in _FIELDS))

    def __len__(self) -> int:
        return int(self.user.shape[0])

    @property
    def positive(self) -> np.ndarray:
        return np.isin(self.kind, POSITIVE_CODES)

    def before(self, t: float) -> EngagementLog:
        return self.select(np.flatnonzero(self.ts < t))

    def between(self, t0: float, t1: float) -> EngagementLog:
        return self.select(np.flatnonzero((self.ts >= t0) & (self.ts < t1)))


_FIELDS = ("user", "post", "creator", "ts", "kind", "dwell_ms")


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


class Simulator:
    """Runs the organic platform over the world's timeline (deterministic for a seed)."""

    def __init__(self, world: World, config: SimConfig | None = None, stream: int = 0) -> None:
        """``stream`` picks an independent random stream (e.g. organic log vs. responses)."""
        self.world = world
        self.config = config or SimConfig()
        self._rng = np.random.default_rng([world.config.seed, 2, stream])
        self._total = np.zeros(world.n_posts)
        self._community = np.zeros((world.config.communities, world.n_posts))

    # -- the organic timeline ----------------------------------------------------------------
    def run(self) -> EngagementLog:
        started = time.monotonic()
        w, c = self.world, self.config
        wc = w.config
        seen = np.zeros((w.n_users, w.n_posts), dtype=bool)
        popularity = np.zeros(w.n_posts)
        self._total = np.zeros(w.n_posts)  # all-time positives: topic browsing ranks by them
        # Decayed positives per community (by the communities of the users who engaged).
        self._community = np.zeros((w.config.communities, w.n_posts))
        parts = [self._follow_events()]
        established = np.flatnonzero(w.user_bucket == NOT_NEW)
        new_users = np.flatnonzero(w.user_bucket != NOT_NEW)
        join_day = int(round((wc.test_split - wc.start) / DAY_S - c.new_user_join_days))
        test_day = int(round((wc.test_split - wc.start) / DAY_S))
        for day in range(wc.days):
            day_start = wc.start + day * DAY_S
            active = established[self._rng.random(established.size) < w.user_activity[established]]
            if day == join_day:
                parts.append(self._join(new_users, day_start, seen, popularity))
            if day >= test_day:
                joined = new_users[self._rng.random(new_users.size) < c.new_user_activity]
                active = np.concatenate([active, joined])
            log = self._day(active, day_start, seen, popularity)
            parts.append(log)
            decay = 0.5 ** (1.0 / c.popularity_half_life_days)
            popularity *= decay
            self._community *= decay
            pos = log.positive & (log.kind != SAVE) & (log.kind != SHARE) & (log.kind != COMMENT)
            np.add.at(popularity, log.post[pos], 1.0)
            np.add.at(self._total, log.post[pos], 1.0)
            np.add.at(self._community.T, log.post[pos], w.user_communities[log.user[pos]])
        log = EngagementLog.concat(parts)
        logger.info("simulated %d events in %.1fs", len(log), time.monotonic() - started)
        return log

    def _follow_events(self) -> EngagementLog:
        users, creators = np.nonzero(self.world.follows)
        ts = self.world.follow_time[users, creators]
        n = users.size
        return EngagementLog(users, np.full(n, -1), creators, ts,
                             np.full(n, FOLLOW, dtype=np.int8), np.zeros(n, dtype=np.int64))

    def _pool(self, t_hi: float) -> np.ndarray:
        """Posts an organic feed may show at times up to ``t_hi`` (created within the age cap)."""
        times = self.world.post_time
        reach = max(self.config.pool_age_days, self.config.discovery_age_days) + 1.0
        lo = np.searchsorted(times, t_hi - reach * DAY_S)
        hi = np.searchsorted(times, t_hi)
        return np.arange(lo, hi)

    def _exposures(
        self,
        users: np.ndarray,
        session_t: np.ndarray,
        seen: np.ndarray,
        popularity: np.ndarray,
        k: int,
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Per user, ``k`` organic exposures as pool indices (-1 when the pool ran dry), and
        the users' utility over the pool."""
        pool = self._pool(float(session_t.max()) + 1.0)
        chosen = np.full((users.size, k), -1)
        utility = np.zeros((users.size, pool.size), dtype=np.float32)
        if pool.size == 0 or users.size == 0:
            return pool, chosen, utility
        for start in range(0, users.size, _CHUNK):
            part = slice(start, start + _CHUNK)
            chosen[part], utility[part] = self._choose(users[part], session_t[part], seen,
                                                       popularity, pool, k)
        return pool, chosen, utility

    def _choose(
        self,
        users: np.ndarray,
        session_t: np.ndarray,
        seen: np.ndarray,
        popularity: np.ndarray,
        pool: np.ndarray,
        k: int,
    ) -> tuple[np.ndarray, np.ndarray]:
        w, c = self.world, self.config
        age = (session_t[:, None] - w.post_time[pool][None, :]).astype(np.float32)
        unseen = (age >= 0) & ~seen[users][:, pool]
        in_feed = unseen & (age <= c.pool_age_days * DAY_S)
        in_discovery = unseen & (age <= c.discovery_age_days * DAY_S)
        age_days = np.maximum(age, 0) / DAY_S
        recency = np.exp2(-age_days / c.recency_half_life_days)
        taste = w.taste_match(users, pool)
        utility = w.affinity(users, pool, taste)
        follow = w.follows[users][:, w.post_creator[pool]]
        browse = np.exp(c.discovery_sharpness * taste) * np.exp2(
            -age_days / c.discovery_half_life_days
        ) * ((1.0 + self._total[pool]) ** c.discovery_popularity)[None, :].astype(np.float32)
        community = w.user_communities[users] @ self._community[:, pool].astype(np.float32)
        sources = (
            (c.mix_following, follow * recency, in_feed),
            (c.mix_community, community * recency, in_feed),
            (c.mix_trending,
             ((popularity[pool] + 0.5) ** c.trending_popularity)[None, :].astype(np.float32)
             * recency, in_feed),
            (c.mix_discovery, browse, in_discovery),
            (c.mix_random, np.ones_like(recency), in_feed),
        )
        mixture = np.zeros_like(recency)
        for share, weight, available in sources:
            weight = np.where(available, weight, 0.0)
            total = weight.sum(axis=1, keepdims=True)
            mixture += share * np.divide(weight, total, out=np.zeros_like(weight),
                                         where=total > 0)
        with np.errstate(divide="ignore"):
            keys = np.log(mixture) + self._rng.gumbel(size=mixture.shape).astype(np.float32)
        k_eff = min(k, pool.size)
        top = np.argpartition(-keys, k_eff - 1, axis=1)[:, :k_eff]
        order = np.argsort(-np.take_along_axis(keys, top, axis=1), axis=1)
        top = np.take_along_axis(top, order, axis=1)
        valid = np.isfinite(np.take_along_axis(keys, top, axis=1))
        chosen = np.where(valid, top, -1)
        if k_eff < k:
            chosen = np.pad(chosen, ((0, 0), (0, k - k_eff)), constant_values=-1)
        return chosen, utility

    def _outcomes(
        self, users: np.ndarray, utility: np.ndarray, popularity: np.ndarray, posts: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """(positive, z) for utility values of exposed posts: z is utility minus threshold."""
        c = self.config
        z = (
            utility
            + c.popularity_effect * np.log1p(popularity[posts])
            + self._rng.normal(0.0, c.noise_sd, utility.shape)
            - self.world.user_threshold[users]
        )
        positive = self._rng.random(z.shape) < _sigmoid(z)
        return positive, z

    def _day(
        self, users: np.ndarray, day_start: float, seen: np.ndarray, popularity: np.ndarray
    ) -> EngagementLog:
        if users.size == 0:
            return EngagementLog.empty()
        k = self.config.exposures_per_session
        session_t = day_start + self._rng.uniform(0, DAY_S - 600, users.size)
        pool, chosen, utility = self._exposures(users, session_t, seen, popularity, k)
        rows, slots = np.nonzero(chosen >= 0)
        cols = chosen[rows, slots]
        u, p = users[rows], pool[cols]
        seen[u, p] = True
        positive, z = self._outcomes(u, utility[rows, cols], popularity, p)
        ts = session_t[rows] + slots * 20.0 + self._rng.uniform(0, 15, rows.size)
        return self._events(u, p, ts, positive, z)

    def _events(
        self, u: np.ndarray, p: np.ndarray, ts: np.ndarray, positive: np.ndarray, z: np.ndarray
    ) -> EngagementLog:
        """One primary event per exposure (a like or long view; else a hide, an explicit skip,
        a short view or a bare impression), plus a save/share/comment for some positives."""
        c, rng = self.config, self._rng
        n = u.size
        kind = np.where(rng.random(n) < 0.7, LIKE, LONG_VIEW)
        hide = (z < c.hide_margin) & (rng.random(n) < c.hide_probability)
        skip = (z < c.skip_margin) & (rng.random(n) < c.skip_probability)
        glance = np.where(rng.random(n) < c.short_view_probability, VIEW, IMPRESSION)
        negative = np.where(hide, HIDE, np.where(skip, SKIP, glance))
        kind = np.where(positive, kind, negative).astype(np.int8)
        dwell = np.select(
            [kind == LONG_VIEW, kind == LIKE, kind == VIEW],
            [rng.integers(9_000, 40_000, n), rng.integers(3_000, 20_000, n),
             rng.integers(1_000, 5_000, n)],
            default=rng.integers(100, 900, n),
        )
        extra = positive & (rng.random(n) < 0.12)
        extra_kind = rng.choice([SAVE, SHARE, COMMENT], size=int(extra.sum())).astype(np.int8)
        m = int(extra.sum())
        return EngagementLog(
            np.concatenate([u, u[extra]]),
            np.concatenate([p, p[extra]]),
            np.full(n + m, -1),
            np.concatenate([ts, ts[extra] + 5.0]),
            np.concatenate([kind, extra_kind]),
            np.concatenate([dwell, np.zeros(m, dtype=np.int64)]),
        )

    def _join(
        self, users: np.ndarray, day_start: float, seen: np.ndarray, popularity: np.ndarray
    ) -> EngagementLog:
        """New users' first events: exactly their bucket's number of positive events, logged in
        the day before the test split (negative exposures of that session are discarded)."""
        w, c = self.world, self.config
        wanted = w.user_bucket[users]
        users = users[wanted > 0]
        wanted = wanted[wanted > 0]
        session_t = day_start + self._rng.uniform(0, DAY_S * 0.5, users.size)
        pool, chosen, utility = self._exposures(
            users, session_t, seen, popularity, c.join_exposures
        )
        parts = []
        for row, u in enumerate(users):
            cols = chosen[row][chosen[row] >= 0]
            pos, _ = self._outcomes(np.full(cols.size, u), utility[row, cols], popularity,
                                    pool[cols])
            picked = pool[cols[pos]][: wanted[row]]
            if picked.size < wanted[row]:  # an unusually picky user: take their best matches
                rest = pool[cols[~pos]]
                best = rest[np.argsort(-utility[row, cols[~pos]])]
                picked = np.concatenate([picked, best[: wanted[row] - picked.size]])
            seen[u, picked] = True
            ts = session_t[row] + 30.0 * np.arange(1, picked.size + 1)
            n = picked.size
            parts.append(EngagementLog(
                np.full(n, u), picked, np.full(n, -1), ts, np.full(n, LIKE, dtype=np.int8),
                self._rng.integers(3_000, 20_000, n),
            ))
        return EngagementLog.concat(parts)


def simulate_cached(
    world: World, config: SimConfig, cache_dir: Path | None, key: str
) -> EngagementLog:
    """The organic log of ``world`` (stream 0), cached under ``cache_dir`` by ``key``."""
    path = cache_dir / f"log-seed{world.config.seed}-{key}.npz" if cache_dir else None
    if path is not None and path.exists():
        with np.load(path) as data:
            logger.info("engagement log of seed %d loaded from %s", world.config.seed, path)
            return EngagementLog(*(data[f] for f in _FIELDS))
    log = Simulator(world, config).run()
    if path is not None:
        prepare_cache(path, f"log-seed{world.config.seed}-*.npz")
        tmp = path.with_suffix(".tmp.npz")
        np.savez(tmp, **{f: getattr(log, f) for f in _FIELDS})
        tmp.replace(path)
    return log
