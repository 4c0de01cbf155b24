"""Derived state: co-engagement neighbours, trending lists, cohorts, exposure and social memory.

``build_state`` reads the whole engagement log (and the payloads and vectors of engaged media)
and returns an immutable :class:`DerivedState`. It runs off the request path (a background
thread, or ``Recommender.refresh()``); requests read whichever snapshot is current and never
wait. Between rebuilds :class:`LiveCounters` adds the cheap per-event updates (engagement and
exposure counts, recent likes for "liked by people you follow").
"""

from __future__ import annotations

import logging
import threading
import time
import weakref
from collections import deque
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import InitVar, dataclass, field

import numpy as np

from mediarec.encoders import l2_normalize
from mediarec.server.recommend.coldstart import ColdPool, build_cold_pool
from mediarec.server.recommend.collab import CollabModel, Interactions, build_collab
from mediarec.server.recommend.profile import decay, item_vector, positive_weight
from mediarec.server.recommend.rows import (
    EMPTY_ROWS,
    RowValues,
    extended_index,
    find_rows,
    rows_of,
    values_at,
)
from mediarec.server.recommend.settings import RecommendSettings
from mediarec.server.recommend.types import (
    SEEN_KINDS,
    EngagementStore,
    Event,
    EventKind,
    ServedItem,
)
from mediarec.server.store import VectorStore, schema

logger = logging.getLogger(__name__)

GLOBAL = "global"
_GET_BATCH = 256
_KMEANS_ITERATIONS = 15
_MIN_USERS_PER_COHORT = 10


def hour_bucket(local_hour: int | None) -> str:
    """"night" (0-5), "morning" (6-11), "afternoon" (12-17), "evening" (18-23), or ""."""
    if local_hour is None or not 0 <= local_hour <= 23:
        return ""
    return ("night", "morning", "afternoon", "evening")[local_hour // 6]


def context_keys(device: str, local_hour: int | None, location: str) -> dict[str, str]:
    """Trending keys of a context by kind: hour, location, device and location+hour."""
    keys = {}
    bucket = hour_bucket(local_hour)
    if bucket:
        keys["hour"] = f"hour:{bucket}"
    if location:
        keys["location"] = f"loc:{location}"
        if bucket:
            keys["location_hour"] = f"loc+hour:{location}|{bucket}"
    if device:
        keys["device"] = f"dev:{device}"
    return keys


def tag_key(tag: str) -> str:
    return f"tag:{tag.lower()}"


@dataclass(frozen=True)
class RankedList:
    """Items by descending score; ``level(m)`` is m's score divided by the best score."""

    ids: tuple[str, ...]
    scores: np.ndarray
    levels: Mapping[str, float] = field(default_factory=dict)

    def level(self, media_id: str) -> float:
        return self.levels.get(media_id, 0.0)


def top_items(scores: Mapping[str, float], n: int) -> RankedList:
    ranked = sorted(scores.items(), key=lambda kv: (-kv[1], kv[0]))[:n]
    top = ranked[0][1] if ranked and ranked[0][1] > 0 else 0.0
    levels = {m: s / top for m, s in ranked} if top > 0 else {}
    return RankedList(tuple(m for m, _ in ranked), np.array([s for _, s in ranked]), levels)


EMPTY_LIST = RankedList((), np.zeros(0))


@dataclass(frozen=True)
class CoEngagement:
    """Item-to-item neighbours (cosine of co-engagement, shrunk), top-M per item, CSR layout."""

    ids: tuple[str, ...] = ()
    index: Mapping[str, int] = field(default_factory=dict)
    indptr: np.ndarray = field(default_factory=lambda: np.zeros(1, dtype=np.int64))
    neighbours: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    similarities: np.ndarray = field(default_factory=lambda: np.zeros(0))

    def neighbours_of(self, media_id: str) -> tuple[np.ndarray, np.ndarray]:
        i = self.index.get(media_id)
        if i is None:
            return self.neighbours[:0], self.similarities[:0]
        lo, hi = self.indptr[i], self.indptr[i + 1]
        return self.neighbours[lo:hi], self.similarities[lo:hi]

    def scores(self, positives: Mapping[str, float]) -> CoScores:
        """Item-kNN: score_j = sum_i w_i * sim(i, j) over the user's positive items i."""
        parts_idx, parts_score = [], []
        for media_id, weight in positives.items():
            idx, sims = self.neighbours_of(media_id)
            if idx.size:
                parts_idx.append(idx)
                parts_score.append(sims * weight)
        if not parts_idx:
            return CoScores(np.zeros(0, dtype=np.int64), np.zeros(0), np.zeros(0))
        unique, inverse, counts = np.unique(
            np.concatenate(parts_idx), return_inverse=True, return_counts=True
        )
        totals = np.bincount(inverse, weights=np.concatenate(parts_score))
        return CoScores(unique, totals, counts)

    def top(
        self, scores: CoScores, limit: int, exclude: Mapping[str, float] | set[str]
    ) -> tuple[list[str], np.ndarray]:
        """The best ``limit`` items of ``scores`` (computed by this graph), leaving out
        ``exclude`` (e.g. the positives themselves)."""
        skip = [self.index[m] for m in exclude if m in self.index]
        ranked = np.argsort(-scores.totals, kind="stable")
        if skip:
            ranked = ranked[~np.isin(scores.items[ranked], skip)]
        order = ranked[:limit]
        return [self.ids[int(scores.items[j])] for j in order], scores.totals[order]


@dataclass(frozen=True)
class CoScores:
    """One user's co-engagement scores over the items that neighbour their positives.

    Item indices into the graph that computed them, which they hold no reference to: a user's
    kept scores must not keep a replaced snapshot's graph (and its id index) alive."""

    items: np.ndarray  # sorted item indices
    totals: np.ndarray
    counts: np.ndarray  # how many of the user's positives each item neighbours

    def lookup_rows(self, wanted: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Scores and neighbour counts of the items at ``wanted``, rows of the graph's index
        (0 where an item has none; -1, or a row past the graph's items: none)."""
        scores = np.zeros(wanted.size)
        counts = np.zeros(wanted.size, dtype=np.int64)
        pos, hit = find_rows(self.items, wanted)
        scores[hit], counts[hit] = self.totals[pos[hit]], self.counts[pos[hit]]
        return scores, counts


def build_coengagement(
    user_items: Iterable[Sequence[str]],
    neighbours: int,
    shrinkage: float,
    max_user_items: int,
    alpha: float = 0.5,
    recency: Iterable[Sequence[float]] | None = None,
    pair_budget: int = 2_000_000,
    dense_cells: int = 8_000_000,
) -> CoEngagement:
    """Item-item similarity over users' positive sets, each user weighted 1/log2(2 + n_items).

    ``sim(i, j) = c_ij / (n_i^alpha * n_j^(1 - alpha) + shrinkage)`` where ``c_ij`` sums the
    weights of users who engaged with both and ``n_i`` those of users who engaged with ``i``
    (alpha = 0.5 is cosine; lower alpha discounts popular neighbours ``j`` more). Shrinkage
    damps pairs seen only a few times. Each user's most recent ``max_user_items`` count.

    ``recency``, parallel to ``user_items``, weighs each engagement (e.g. by its age): a
    user's engagement with the neighbour ``j`` then counts that much in ``c_ij`` and in
    ``n_j`` (``n_i``, the query item's fans, count in full). Old co-engagements fade, so an
    item's neighbours are what people who liked it engage with *now*; on the quality
    benchmark's validation window this lifted warm-item co-engagement-only NDCG@20 from
    0.017 / 0.019 to 0.031 / 0.031 (seeds 1 / 2; docs/recommend.md). Without it every
    engagement counts 1 and alpha = 0.5 is the cosine.

    The co-occurrences of a block of items at a time are counted (into a dense block of at
    most ``dense_cells`` counters) and pruned to the best ``neighbours`` before the next
    block, so memory stays bounded however many pairs the whole log has (the sum over users
    of n_items squared).
    """
    index: dict[str, int] = {}
    rows: list[list[int]] = []
    row_recency: list[list[float]] = []
    with_weights: Iterable[tuple[Sequence[str], Sequence[float]]] = (
        zip(user_items, recency, strict=True) if recency is not None
        else ((items, (1.0,) * len(items)) for items in user_items)
    )  # fmt: skip
    for items, weights in with_weights:
        unique: dict[str, float] = {}
        for media_id, weight in zip(items, weights, strict=True):
            unique.setdefault(media_id, float(weight))  # an item's first (newest) entry counts
        kept = list(unique.items())[:max_user_items]
        if kept:
            rows.append([index.setdefault(m, len(index)) for m, _ in kept])
            row_recency.append([w for _, w in kept])
    ids = tuple(index)
    n = len(ids)
    if not rows:
        return CoEngagement(ids=ids, index=index, indptr=np.zeros(n + 1, dtype=np.int64))
    lens = np.array([len(r) for r in rows], dtype=np.int64)
    uptr = np.concatenate([[0], np.cumsum(lens)])
    uitems = np.fromiter((i for r in rows for i in r), dtype=np.int64, count=int(uptr[-1]))
    entry_recency = np.fromiter((w for r in row_recency for w in r), dtype=np.float64,
                                count=int(uptr[-1]))  # fmt: skip
    uweight = 1.0 / np.log2(2.0 + lens)
    entry_user = np.repeat(np.arange(len(rows)), lens)
    # An item's fans (the query side of a row) count in full; its neighbours' fans count as
    # recently as they engaged. Fading the query side too would scale up the rows of items
    # whose engagement is old, so an old like would weigh more than a new one.
    fans = np.bincount(uitems, weights=uweight[entry_user], minlength=n)
    fans_now = np.bincount(uitems, weights=uweight[entry_user] * entry_recency, minlength=n)
    # Item -> users, and the pairs each item's row costs (the items of all its users).
    by_item = np.argsort(uitems, kind="stable")
    item_users = entry_user[by_item]
    iptr = np.searchsorted(uitems[by_item], np.arange(n + 1))
    work = np.bincount(uitems, weights=lens[entry_user], minlength=n)
    parts_left, parts_right, parts_sim = [], [], []
    max_rows = max(1, dense_cells // max(n, 1))
    lo = 0
    while lo < n:
        hi = lo + 1
        budget = work[lo]
        while hi < n and hi - lo < max_rows and budget + work[hi] <= pair_budget:
            budget += work[hi]
            hi += 1
        left, right, sims = _block_neighbours(
            lo, hi, n, iptr, item_users, uptr, lens, uitems, entry_recency, uweight, fans,
            fans_now, alpha, shrinkage, neighbours,
        )
        parts_left.append(left)
        parts_right.append(right)
        parts_sim.append(sims)
        lo = hi
    left = np.concatenate(parts_left)
    indptr = np.zeros(n + 1, dtype=np.int64)
    np.add.at(indptr, left + 1, 1)
    return CoEngagement(
        ids, index, np.cumsum(indptr), np.concatenate(parts_right), np.concatenate(parts_sim)
    )


def _block_neighbours(
    lo: int,
    hi: int,
    n: int,
    iptr: np.ndarray,
    item_users: np.ndarray,
    uptr: np.ndarray,
    lens: np.ndarray,
    uitems: np.ndarray,
    entry_recency: np.ndarray,
    uweight: np.ndarray,
    fans: np.ndarray,
    fans_now: np.ndarray,
    alpha: float,
    shrinkage: float,
    neighbours: int,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The best ``neighbours`` of items lo..hi-1, sorted by item then similarity."""
    users = item_users[iptr[lo] : iptr[hi]]
    owner = np.repeat(np.arange(lo, hi), np.diff(iptr[lo : hi + 1]))  # the item of each user
    counts = lens[users]
    total = int(counts.sum())
    if total == 0:
        empty = np.zeros(0, dtype=np.int64)
        return empty, empty, np.zeros(0)
    # Every item of every user of the block (ranges of uitems, gathered without a loop).
    starts = np.repeat(uptr[users] - np.concatenate([[0], np.cumsum(counts)[:-1]]), counts)
    entries = starts + np.arange(total)
    right = uitems[entries]
    left = np.repeat(owner, counts)
    weight = np.repeat(uweight[users], counts) * entry_recency[entries]
    keep = left != right
    cells = np.bincount((left[keep] - lo) * n + right[keep], weights=weight[keep],
                        minlength=(hi - lo) * n)
    unique = np.flatnonzero(cells)
    cooc = cells[unique]
    left, right = unique // n + lo, unique % n
    sims = cooc / (fans[left] ** alpha * fans_now[right] ** (1.0 - alpha) + shrinkage)
    order = np.lexsort((-sims, left))
    left, right, sims = left[order], right[order], sims[order]
    first = np.searchsorted(left, left)  # start of each item's run
    best = np.arange(left.shape[0]) - first < neighbours
    return left[best], right[best], sims[best]


@dataclass(frozen=True)
class Cohorts:
    """Users clustered by taste (spherical k-means); each cohort's favourite items."""

    centroids: np.ndarray = field(default_factory=lambda: np.zeros((0, 0), dtype=np.float32))
    favourites: tuple[RankedList, ...] = ()

    def assign(self, taste: np.ndarray | None) -> int | None:
        if taste is None or self.centroids.shape[0] == 0:
            return None
        if self.centroids.shape[1] != taste.shape[0]:
            return None
        return int(np.argmax(self.centroids @ taste))


def spherical_kmeans(
    x: np.ndarray, k: int, rng: np.random.Generator, iterations: int = _KMEANS_ITERATIONS
) -> tuple[np.ndarray, np.ndarray]:
    """Centroids ``(k, d)`` and labels ``(n,)`` of unit rows ``x`` (k-means++ seeding)."""
    n = x.shape[0]
    k = min(k, n)
    centroids = [x[int(rng.integers(n))]]
    for _ in range(1, k):
        dist = 1.0 - np.max(x @ np.stack(centroids).T, axis=1)
        dist = np.maximum(dist, 0.0)
        total = float(dist.sum())
        pick = int(rng.choice(n, p=dist / total)) if total > 0 else int(rng.integers(n))
        centroids.append(x[pick])
    c = np.stack(centroids)
    labels = np.zeros(n, dtype=np.int64)
    for _ in range(iterations):
        labels = np.argmax(x @ c.T, axis=1)
        sums = np.zeros_like(c)
        np.add.at(sums, labels, x)
        empty = np.linalg.norm(sums, axis=1) < 1e-9
        sums[empty] = c[empty]
        c = l2_normalize(sums)
    return c.astype(np.float32), labels


@dataclass(frozen=True)
class DerivedState:
    built_at: float = 0.0
    reference_time: float = 0.0  # decayed scores are relative to this time
    events: int = 0
    coengagement: CoEngagement = field(default_factory=CoEngagement)
    trending: Mapping[str, RankedList] = field(default_factory=dict)
    cohorts: Cohorts = field(default_factory=Cohorts)
    # Positive events and exposure per media id: read into ``engagement_rows`` and
    # ``impression_rows`` when the snapshot is built, and not kept beside them.
    item_engagements: InitVar[Mapping[str, float] | None] = None
    item_impressions: InitVar[Mapping[str, int] | None] = None
    recent_positives: Mapping[str, tuple[str, ...]] = field(default_factory=dict)  # newest first
    served: Mapping[str, Mapping[str, frozenset[str]]] = field(default_factory=dict)
    active_users: tuple[str, ...] = ()  # users with events, most recently active first
    # The collaborative core, built only while a learned ranker serves (or is trained), and
    # each of its items' unit content vectors (zero rows: none), in its item order.
    collab: CollabModel = field(default_factory=CollabModel)
    collab_vectors: np.ndarray = field(default_factory=lambda: np.zeros((0, 0), np.float32))
    cold: ColdPool = field(default_factory=ColdPool)  # items without a single event
    # Built from the fields above (``__post_init__``): one row per item the snapshot knows
    # of, and its lists by row (``rows.py``).
    row_index: Mapping[str, int] = field(init=False, repr=False, compare=False)
    trending_rows: Mapping[str, RowValues] = field(init=False, repr=False, compare=False)
    cohort_rows: tuple[RowValues, ...] = field(init=False, repr=False, compare=False)
    collab_of_row: np.ndarray = field(init=False, repr=False, compare=False)
    engagement_rows: RowValues = field(init=False, repr=False, compare=False)
    impression_rows: RowValues = field(init=False, repr=False, compare=False)

    def __post_init__(
        self,
        item_engagements: Mapping[str, float] | None,
        item_impressions: Mapping[str, int] | None,
    ) -> None:
        # One row per item the snapshot knows of (the co-engagement graph's rows first, so a
        # row below its size is the graph's index), and its lists by row (``rows.py``).
        engagements, impressions = item_engagements or {}, item_impressions or {}
        lists = [*self.trending.values(), *self.cohorts.favourites]
        index = extended_index(
            self.coengagement.index,
            [
                *(ranked.ids for ranked in lists), self.collab.item_ids,
                tuple(engagements), tuple(impressions),
            ],
        )  # fmt: skip
        collab_of_row = np.full(len(index), -1, dtype=np.int64)
        collab_of_row[rows_of(index, self.collab.item_ids)] = np.arange(self.collab.n_items)
        by_row = {
            "row_index": index,
            "trending_rows": {
                key: RowValues.of_mapping(ranked.levels, index)
                for key, ranked in self.trending.items()
            },
            "cohort_rows": tuple(
                RowValues.of_mapping(ranked.levels, index) for ranked in self.cohorts.favourites
            ),
            "collab_of_row": collab_of_row,
            "engagement_rows": RowValues.of_mapping(engagements, index),
            "impression_rows": RowValues.of_mapping(impressions, index),
        }
        for name, value in by_row.items():
            object.__setattr__(self, name, value)

    def trending_list(self, key: str) -> RankedList:
        return self.trending.get(key, EMPTY_LIST)

    def rows_of(self, media_ids: Sequence[str]) -> np.ndarray:
        """Each item's row in this snapshot (-1: an item it does not know)."""
        return rows_of(self.row_index, media_ids)

    def trending_levels(self, key: str) -> RowValues:
        """The trending list's levels by row (``trending_list(key).levels``)."""
        return self.trending_rows.get(key, EMPTY_ROWS)

    def cohort_levels(self, cohort: int) -> RowValues:
        """The cohort's favourites' levels by row."""
        return self.cohort_rows[cohort]

    def collab_rows(self, rows: np.ndarray) -> np.ndarray:
        """The collaborative core's index of the items at ``rows`` (-1: not in the core)."""
        of_row = self.collab_of_row
        if of_row.size == 0:
            return np.full(rows.size, -1, dtype=np.int64)
        return np.where(rows >= 0, of_row[np.maximum(rows, 0)], -1)


@dataclass
class _Accumulator:
    """Per-event aggregation of one pass over the log."""

    settings: RecommendSettings
    events: int = 0
    max_ts: float = 0.0
    user_items: dict[str, list[tuple[float, str]]] = field(default_factory=dict)
    item_engagements: dict[str, float] = field(default_factory=dict)
    item_impressions: dict[str, int] = field(default_factory=dict)
    positive_rows: list[tuple[str, str, float, float, tuple[str, ...]]] = field(
        default_factory=list
    )  # (user, media, ts, weight, context keys)
    served: dict[str, dict[str, set[str]]] = field(default_factory=dict)
    last_active: dict[str, float] = field(default_factory=dict)
    # (user, media, time, positive) of every event that engaged with a media item.
    interactions: list[tuple[str, str, float, bool]] = field(default_factory=list)

    def add_event(self, e: Event) -> None:
        self.events += 1
        self.max_ts = max(self.max_ts, e.timestamp)
        if e.timestamp > self.last_active.get(e.user_id, float("-inf")):
            self.last_active[e.user_id] = e.timestamp
        weight = positive_weight(e, self.settings)
        row = interaction_row(e, weight)
        if row is not None:
            self.interactions.append(row)
        if weight > 0 and e.media_id:
            self.user_items.setdefault(e.user_id, []).append((e.timestamp, e.media_id))
            self.item_engagements[e.media_id] = self.item_engagements.get(e.media_id, 0.0) + 1.0
            ctx = e.context
            keys = tuple(context_keys(ctx.device, ctx.local_hour, ctx.location).values())
            self.positive_rows.append((e.user_id, e.media_id, e.timestamp, weight, keys))
        elif e.kind is EventKind.IMPRESSION and e.media_id and not e.request_id:
            self.item_impressions[e.media_id] = self.item_impressions.get(e.media_id, 0) + 1

    def add_served(self, item: ServedItem) -> None:
        self.max_ts = max(self.max_ts, item.timestamp)
        self.item_impressions[item.media_id] = self.item_impressions.get(item.media_id, 0) + 1
        per_user = self.served.setdefault(item.user_id, {})
        per_user.setdefault(item.media_id, set()).add(f"request:{item.request_id}")


def build_state(
    engagement: EngagementStore,
    store: VectorStore,
    settings: RecommendSettings,
    now: float,
    *,
    with_collab: bool = False,
) -> DerivedState:
    """Rebuild every derived structure from the engagement log (slow; off the request path).

    ``with_collab`` also fits the collaborative core (the learned ranker's features)."""
    started = time.monotonic()
    acc = _Accumulator(settings)
    for event in engagement.iter_events():
        acc.add_event(event)
    # Up to ``now``, the rebuild's start: pages served while it scans are counted live (their
    # counts stay when it finishes), so reading them here too would count them twice. A page
    # whose request began before the start and was served after it still can: the request's
    # time stamps its rows.
    for served in engagement.iter_served(since=now - settings.served_window_s, until=now):
        acc.add_served(served)
    engaged = list(acc.item_engagements)
    if with_collab:  # every item engaged with in any way, not only the positively engaged
        engaged += [m for m in dict.fromkeys(r[1] for r in acc.interactions)
                    if m not in acc.item_engagements]  # fmt: skip
    meta = _fetch_meta(store, engaged)  # deleted media drop out here
    reference = max(acc.max_ts, 0.0) or now
    newest_first = {
        user: [(ts, m) for ts, m in sorted(items, reverse=True) if m in meta]
        for user, items in acc.user_items.items()
    }
    user_items = {user: [m for _, m in items] for user, items in newest_first.items()}
    coeng = build_coengagement(
        user_items.values(),
        settings.coeng_neighbours,
        settings.coeng_shrinkage,
        settings.coeng_max_user_items,
        settings.coeng_alpha,
        recency=(
            [decay(reference - ts, settings.coeng_half_life_s) for ts, _ in items]
            for items in newest_first.values()
        ),
    )
    trending = _trending(acc.positive_rows, meta, settings, reference)
    cohorts = _cohorts(user_items, acc.positive_rows, meta, settings, reference)
    collab, collab_vectors = (
        _collab(acc.interactions, meta, settings) if with_collab else (CollabModel(), None)
    )
    engaged_any = set(acc.item_engagements).union(row[1] for row in acc.interactions)
    engaged_ids = [m for m in acc.item_engagements if m in meta]
    cold = build_cold_pool(
        store, engaged_any, settings.cold_pool_size,
        unit_vectors(engaged_ids, {m: meta[m].vector for m in engaged_ids}),
        np.array([acc.item_engagements[m] for m in engaged_ids]),
        settings.cold_engagement_ridge,
    )  # fmt: skip
    state = DerivedState(
        built_at=now,
        reference_time=reference,
        events=acc.events,
        coengagement=coeng,
        trending=trending,
        cohorts=cohorts,
        item_engagements={m: c for m, c in acc.item_engagements.items() if m in meta},
        item_impressions=acc.item_impressions,
        recent_positives={
            u: tuple(items[: settings.social_recent_per_user]) for u, items in user_items.items()
        },
        served={u: {m: frozenset(k) for m, k in per.items()} for u, per in acc.served.items()},
        active_users=tuple(sorted(acc.last_active, key=lambda u: (-acc.last_active[u], u))),
        collab=collab,
        cold=cold,
        **({"collab_vectors": collab_vectors} if collab_vectors is not None else {}),
    )
    logger.info(
        "derived state rebuilt in %.2fs: %d events, %d engaged items, %d users, %d cohorts",
        time.monotonic() - started, acc.events, len(meta), len(user_items),
        cohorts.centroids.shape[0],
    )
    return state


def interaction_arrays(
    rows: Sequence[tuple[str, str, float, bool]], keep: Mapping[str, object]
) -> tuple[Interactions, list[str], list[str]]:
    """(user, media, time, positive) rows as index arrays over the media in ``keep``; the item
    ids and the user ids in index order."""
    rows = [r for r in rows if r[1] in keep]
    users = {u: i for i, u in enumerate(dict.fromkeys(r[0] for r in rows))}
    items = {m: i for i, m in enumerate(dict.fromkeys(r[1] for r in rows))}
    n = len(rows)
    data = Interactions(
        n_users=len(users),
        n_items=len(items),
        users=np.fromiter((users[r[0]] for r in rows), dtype=np.int64, count=n),
        items=np.fromiter((items[r[1]] for r in rows), dtype=np.int64, count=n),
        timestamps=np.fromiter((r[2] for r in rows), dtype=np.float64, count=n),
        positive=np.fromiter((r[3] for r in rows), dtype=bool, count=n),
    )
    return data, list(items), list(users)


@dataclass(frozen=True)
class InteractionLog:
    """The event log as index arrays, with the ids of its users and items in index order and
    the items' unit content vectors: what ``train-ranker`` learns from."""

    data: Interactions
    item_ids: list[str]
    user_ids: list[str]
    vectors: np.ndarray


def interaction_log(
    engagement: EngagementStore, store: VectorStore, settings: RecommendSettings
) -> InteractionLog:
    """Every media interaction in the log, of media still stored."""
    rows = [
        row for e in engagement.iter_events()
        if (row := interaction_row(e, positive_weight(e, settings))) is not None
    ]  # fmt: skip
    meta = _fetch_meta(store, list(dict.fromkeys(r[1] for r in rows)))
    data, item_ids, user_ids = interaction_arrays(rows, meta)
    vectors = unit_vectors(item_ids, {m: meta[m].vector for m in item_ids})
    return InteractionLog(data, item_ids, user_ids, vectors)


def interaction_row(e: Event, weight: float) -> tuple[str, str, float, bool] | None:
    """(user, media, time, positive) of an event that engaged with a media item, else None;
    ``weight`` is the event's ``positive_weight``."""
    if e.media_id and (weight > 0 or e.kind in SEEN_KINDS):
        return (e.user_id, e.media_id, e.timestamp, weight > 0)
    return None


def _core_inputs(
    rows: Sequence[tuple[str, str, float, bool]], meta: Mapping[str, _Meta]
) -> tuple[Interactions, list[str], np.ndarray]:
    """The rows of stored media as index arrays, the item ids, and their unit vectors."""
    data, item_ids, _ = interaction_arrays(rows, meta)
    return data, item_ids, unit_vectors(item_ids, {m: meta[m].vector for m in item_ids})


def unit_vectors(item_ids: Sequence[str], vectors: Mapping[str, np.ndarray | None]) -> np.ndarray:
    """Unit content vectors of ``item_ids`` (zero rows where an item has none)."""
    dim = next((v.shape[0] for v in vectors.values() if v is not None), 0)
    out = np.zeros((len(item_ids), dim), dtype=np.float32)
    for row, media_id in enumerate(item_ids):
        vector = vectors.get(media_id)
        if vector is not None:
            out[row] = vector
    return l2_normalize(out) if dim else out


def _collab(
    rows: Sequence[tuple[str, str, float, bool]],
    meta: Mapping[str, _Meta],
    settings: RecommendSettings,
) -> tuple[CollabModel, np.ndarray]:
    started = time.monotonic()
    data, item_ids, vectors = _core_inputs(rows, meta)
    if not item_ids:
        return CollabModel(), np.zeros((0, 0), dtype=np.float32)
    model = build_collab(data, item_ids, settings.collab())
    logger.info(
        "collaborative core built in %.2fs: %d items, %d interactions",
        time.monotonic() - started, len(item_ids), data.users.size,
    )
    return model, vectors


@dataclass(frozen=True)
class _Meta:
    creator_id: str
    tags: tuple[str, ...]
    vector: np.ndarray | None


def _fetch_meta(store: VectorStore, media_ids: Sequence[str]) -> dict[str, _Meta]:
    meta: dict[str, _Meta] = {}
    for start in range(0, len(media_ids), _GET_BATCH):
        points = store.get(media_ids[start : start + _GET_BATCH], with_vectors=True)
        for media_id, point in points.items():
            meta[media_id] = _Meta(
                creator_id=str(point.payload.get(schema.CREATOR_ID, "") or ""),
                tags=tuple(str(t).lower() for t in point.payload.get(schema.TAGS, ()) or ()),
                vector=item_vector(point),
            )
    return meta


def _trending(
    rows: Sequence[tuple[str, str, float, float, tuple[str, ...]]],
    meta: Mapping[str, _Meta],
    settings: RecommendSettings,
    reference: float,
) -> dict[str, RankedList]:
    scores: dict[str, dict[str, float]] = {}
    for _, media_id, ts, weight, keys in rows:
        item = meta.get(media_id)
        if item is None:
            continue
        w = weight * decay(reference - ts, settings.trending_half_life_s)
        for key in (GLOBAL, *keys, *(tag_key(t) for t in item.tags)):
            bucket = scores.setdefault(key, {})
            bucket[media_id] = bucket.get(media_id, 0.0) + w
    return {key: top_items(s, settings.trending_top_n) for key, s in scores.items()}


def _cohorts(
    user_items: Mapping[str, Sequence[str]],
    rows: Sequence[tuple[str, str, float, float, tuple[str, ...]]],
    meta: Mapping[str, _Meta],
    settings: RecommendSettings,
    reference: float,
) -> Cohorts:
    users, tastes = [], []
    for user, items in user_items.items():
        vectors = [v for v in (meta[m].vector for m in items) if v is not None]
        if vectors:
            users.append(user)
            tastes.append(np.mean(vectors, axis=0))
    k = min(settings.cohorts, len(users) // _MIN_USERS_PER_COHORT)
    if k < 2:
        return Cohorts()
    rng = np.random.default_rng(0)  # fixed: cohorts stay stable across identical rebuilds
    centroids, labels = spherical_kmeans(l2_normalize(np.stack(tastes)), k, rng)
    cohort_of = dict(zip(users, labels.tolist(), strict=True))
    scores: list[dict[str, float]] = [{} for _ in range(k)]
    for user, media_id, ts, weight, _ in rows:
        c = cohort_of.get(user)
        if c is None or media_id not in meta:
            continue
        scores[c][media_id] = scores[c].get(media_id, 0.0) + weight * decay(
            reference - ts, settings.cohort_half_life_s
        )
    return Cohorts(centroids, tuple(top_items(s, settings.cohort_top_n) for s in scores))


class LiveCounters:
    """Cheap updates between rebuilds: engagement and exposure deltas, recent likes, and the
    per-user served log (impressions, for fatigue). Thread-safe.

    A rebuild takes the current deltas over (``start_rebuild``); they stay readable until the
    new snapshot replaces the old one (``finish_rebuild``), so no count dips meanwhile. Every
    read names the snapshot it adds to: a request that read the old snapshot before the
    rebuild finished still gets the deltas the old one lacks (kept while it is in use),
    and one on the new snapshot never counts them twice.
    """

    def __init__(self, settings: RecommendSettings) -> None:
        self._settings = settings
        self._lock = threading.Lock()
        self._current = _Deltas()
        self._handed_over = _Deltas()
        # Impressions served since the rebuild in flight started (which reads those before).
        self._served: dict[str, dict[str, set[str]]] = {}
        self._handed_over_served: dict[str, dict[str, set[str]]] = {}
        self._events = 0  # events since the rebuild in flight (or the last one) started
        self._handed_over_events = 0  # events before it that it is taking in
        # Users forgotten since the current snapshot was built: the snapshot's per-user
        # entries are ignored for them until a rebuild that started after the forget.
        self._forgotten: dict[str, float] = {}
        # What each replaced snapshot still in use lacks beyond the deltas of the snapshots
        # after it, oldest first (usually none or one: a request holds one for milliseconds).
        self._retired: list[_Retired] = []

    @property
    def events_since_rebuild(self) -> int:
        """Events not in the current snapshot: those a rebuild in flight is taking in too."""
        with self._lock:
            return self._events + self._handed_over_events

    def add_events(self, events: Sequence[Event]) -> None:
        with self._lock:
            for e in events:
                self._events += 1
                if not e.media_id:
                    continue
                if positive_weight(e, self._settings) > 0:
                    self._current.engagements[e.media_id] = (
                        self._current.engagements.get(e.media_id, 0.0) + 1.0
                    )
                    recent = self._current.recent.setdefault(
                        e.user_id, deque(maxlen=self._settings.social_recent_per_user)
                    )
                    recent.appendleft(e.media_id)
                elif e.kind is EventKind.IMPRESSION and not e.request_id:
                    self._current.impressions[e.media_id] = (
                        self._current.impressions.get(e.media_id, 0) + 1
                    )

    def add_served(self, items: Sequence[ServedItem]) -> None:
        with self._lock:
            for item in items:
                self._current.impressions[item.media_id] = (
                    self._current.impressions.get(item.media_id, 0) + 1
                )
                per_user = self._served.setdefault(item.user_id, {})
                per_user.setdefault(item.media_id, set()).add(f"request:{item.request_id}")

    def start_rebuild(self) -> None:
        """A rebuild that will read every event logged so far is starting."""
        with self._lock:
            self._handed_over.merge(self._current)
            self._current = _Deltas()
            self._handed_over_events += self._events
            self._events = 0
            _merge_served(self._handed_over_served, self._served)
            self._served = {}

    def finish_rebuild(
        self, succeeded: bool, build_started: float, replaced: DerivedState | None = None
    ) -> None:
        """The rebuild's snapshot is about to replace ``replaced`` (or the rebuild failed and
        nothing changed). Call it before the swap: reads that name ``replaced`` still get
        what it lacks, and reads that name the new snapshot never get it twice."""
        with self._lock:
            if succeeded:
                pruned = frozenset(u for u, t in self._forgotten.items() if t < build_started)
                self._drop_unheld()
                if replaced is not None:
                    self._retired.append(_Retired(
                        weakref.ref(replaced), self._handed_over, self._handed_over_served,
                        pruned,
                    ))  # fmt: skip
                self._handed_over = _Deltas()
                self._handed_over_events = 0
                self._handed_over_served = {}
                self._forgotten = {
                    u: t for u, t in self._forgotten.items() if t >= build_started
                }
            else:
                self._handed_over.merge(self._current)
                self._current, self._handed_over = self._handed_over, _Deltas()
                self._events += self._handed_over_events
                self._handed_over_events = 0
                _merge_served(self._served, self._handed_over_served)
                self._handed_over_served = {}

    def engagements(
        self, state: DerivedState, media_ids: Sequence[str], rows: np.ndarray
    ) -> np.ndarray:
        """Positive events per item: the snapshot's, plus those since it was built.
        ``rows``: the items' rows in ``state`` (``state.rows_of(media_ids)``)."""
        base = state.engagement_rows.at(rows)
        with self._lock:
            lacking = self._lacking(state)
            deltas = (self._current.engagements, *(d.engagements for d in lacking.deltas))
            return _plus_deltas(base, deltas, media_ids)

    def impressions(
        self, state: DerivedState, media_ids: Sequence[str], rows: np.ndarray
    ) -> np.ndarray:
        """Times each item was served: the snapshot's count, plus those since it was built."""
        base = state.impression_rows.at(rows)
        with self._lock:
            lacking = self._lacking(state)
            deltas = (self._current.impressions, *(d.impressions for d in lacking.deltas))
            return _plus_deltas(base, deltas, media_ids)

    def recent_positives(self, state: DerivedState, user_id: str) -> list[str]:
        with self._lock:
            lacking = self._lacking(state)
            live = list(self._current.recent.get(user_id, ()))
            for deltas in reversed(lacking.deltas):  # newest first, as each list is
                live += list(deltas.recent.get(user_id, ()))
            forgotten = user_id in self._forgotten or user_id in lacking.forgotten
        built = [] if forgotten else list(state.recent_positives.get(user_id, ()))
        return list(dict.fromkeys(live + built))[: self._settings.social_recent_per_user]

    def served_keys(self, state: DerivedState, user_id: str) -> dict[str, frozenset[str]]:
        with self._lock:
            lacking = self._lacking(state)
            live: dict[str, frozenset[str]] = {}
            for per_user in (*lacking.served, self._served):
                for m, k in per_user.get(user_id, {}).items():
                    live[m] = live.get(m, frozenset()) | k
            forgotten = user_id in self._forgotten or user_id in lacking.forgotten
        merged = {} if forgotten else dict(state.served.get(user_id, {}))
        for m, keys in live.items():
            merged[m] = merged.get(m, frozenset()) | keys
        return merged

    def forget_user(self, user_id: str, state: DerivedState) -> int:
        """Drop the user's per-user entries (live, and masked in ``state``); returns how many."""
        with self._lock:
            removed = len(self._served.pop(user_id, {}))
            removed += len(self._handed_over_served.pop(user_id, {}))
            for deltas in (self._current, self._handed_over):
                removed += len(deltas.recent.pop(user_id, ()))
            for retired in self._retired:  # read by requests still on a replaced snapshot
                retired.served.pop(user_id, None)
                retired.deltas.recent.pop(user_id, None)
            self._forgotten[user_id] = time.monotonic()
        removed += len(state.served.get(user_id, {}))
        removed += len(state.recent_positives.get(user_id, ()))
        return removed

    def _drop_unheld(self) -> None:
        """Drop the oldest complements while nobody holds their snapshots (the caller holds
        the lock). Only from the front: a read on an older snapshot still needs the
        complements of the snapshots after it, held or not."""
        while self._retired and self._retired[0].state() is None:
            del self._retired[0]

    def _lacking(self, state: DerivedState) -> _Lacking:
        """What ``state`` lacks beyond the current deltas (the caller holds the lock): the
        deltas a rebuild in flight took over and, for a replaced snapshot, the complements of
        it and of every snapshot after it, oldest first, with the users forgotten before
        those rebuilds."""
        deltas, served = [self._handed_over], [self._handed_over_served]
        forgotten: frozenset[str] = frozenset()
        if not self._retired:
            return _Lacking(deltas, served, forgotten)
        self._drop_unheld()
        at = next((n for n, r in enumerate(self._retired) if r.state() is state), None)
        if at is None:  # the current snapshot (a dropped one is held by nobody to ask)
            return _Lacking(deltas, served, forgotten)
        later = self._retired[at:]
        for r in later:
            forgotten |= r.forgotten
        return _Lacking(
            [*(r.deltas for r in later), *deltas], [*(r.served for r in later), *served],
            forgotten,
        )


def _plus_deltas(
    base: np.ndarray, deltas: Sequence[Mapping[str, float]], media_ids: Sequence[str]
) -> np.ndarray:
    """``base`` (a count per media id) plus each id's counts in ``deltas`` (0 if absent).

    A request asks for a few hundred ids and a delta holds whatever happened since the last
    rebuild, so each delta is walked by whichever of the two is shorter.
    """
    out = np.array(base, dtype=np.float64)
    position: dict[str, int] | None = None
    for delta in deltas:
        if not delta:
            continue
        if len(delta) < len(media_ids):
            if position is None:
                position = {m: k for k, m in enumerate(media_ids)}
            for media_id, value in delta.items():
                k = position.get(media_id)
                if k is not None:
                    out[k] += value
        else:
            out += values_at(delta, media_ids)
    return out


def _merge_served(
    into: dict[str, dict[str, set[str]]], other: Mapping[str, Mapping[str, set[str]]]
) -> None:
    for user, per_media in other.items():
        mine = into.setdefault(user, {})
        for media_id, keys in per_media.items():
            mine.setdefault(media_id, set()).update(keys)


@dataclass
class _Retired:
    """What a replaced snapshot lacks beyond the snapshot that replaced it: the deltas and
    served keys that rebuild took over, and the users forgotten before it started (whose
    entries the replaced snapshot still holds)."""

    state: weakref.ref[DerivedState]
    deltas: _Deltas
    served: dict[str, dict[str, set[str]]]
    forgotten: frozenset[str]


@dataclass(frozen=True)
class _Lacking:
    """What a read's snapshot lacks beyond the current deltas, oldest first."""

    deltas: list[_Deltas]
    served: list[dict[str, dict[str, set[str]]]]
    forgotten: frozenset[str]


@dataclass
class _Deltas:
    engagements: dict[str, float] = field(default_factory=dict)
    impressions: dict[str, int] = field(default_factory=dict)
    recent: dict[str, deque[str]] = field(default_factory=dict)

    def merge(self, other: _Deltas) -> None:
        for m, c in other.engagements.items():
            self.engagements[m] = self.engagements.get(m, 0.0) + c
        for m, n in other.impressions.items():
            self.impressions[m] = self.impressions.get(m, 0) + n
        for u, recent in other.recent.items():
            mine = self.recent.get(u)
            if mine is None:
                self.recent[u] = recent
            else:  # other is newer: its items go in front
                merged = deque(dict.fromkeys([*recent, *mine]), maxlen=recent.maxlen)
                self.recent[u] = merged
