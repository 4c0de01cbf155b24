"""Candidate sources: each proposes media ids with a score and its own name.

Sources only *propose*; every candidate then gets the same features (``features.py``), so
where an item came from never decides its score by itself. Vector sources share batched
Qdrant searches (one per named vector); the others read the derived state.
"""

from __future__ import annotations

import bisect
import operator
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from functools import cached_property
from typing import Any

import numpy as np

from mediarec.server.recommend.profile import STEERING, EngagementSummary, UserProfile
from mediarec.server.recommend.settings import RecommendSettings
from mediarec.server.recommend.state import (
    GLOBAL,
    CoScores,
    DerivedState,
    LiveCounters,
    context_keys,
    tag_key,
)
from mediarec.server.recommend.types import RecRequest, Surface
from mediarec.server.store import SearchFilter, SearchHit, VectorStore, schema

CONTENT = "content"
COENGAGEMENT = "coengagement"
FOLLOWING = "following"
SOCIAL = "social"
TRENDING = "trending"
COHORT = "cohort"
FRESH = "fresh"
COLD = "cold"
INTERESTS = "interests"
SEED = "seed"

SOURCES: tuple[str, ...] = (
    CONTENT, COENGAGEMENT, FOLLOWING, SOCIAL, TRENDING, COHORT, FRESH, COLD, INTERESTS, SEED,
)
# Excluding ids in a search costs time per id; beyond the most recent ones, seen items are
# filtered after retrieval instead.
MAX_EXCLUDED_IN_FILTER = 256
# A request's seed post weighs this many times the user's strongest positive in co-engagement:
# a seeded request ("more like this") is about that post first.
SEED_COENGAGEMENT_WEIGHT = 2.0


@dataclass(frozen=True)
class Proposal:
    media_id: str
    source: str
    score: float


@dataclass(frozen=True)
class QueryVector:
    """A vector that stands for one of the user's tastes or intents."""

    kind: str  # "cluster", a TextInterest kind, or "seed"
    label: str  # cluster index as text, the interest text, or the seed media id
    weight: float
    vector: np.ndarray


@dataclass(frozen=True)
class SourceContext:
    request: RecRequest
    profile: UserProfile
    state: DerivedState
    live: LiveCounters
    store: VectorStore
    settings: RecommendSettings
    now: float
    search_filter: SearchFilter  # the request's filter, surface and exclusions, for the store
    queries: tuple[QueryVector, ...]  # clusters, then text interests and steering, then seed
    seed_id: str = ""
    known_coscores: CoScores | None = None  # kept from an earlier request on the same snapshot

    @cached_property
    def coscores(self) -> CoScores:
        """Co-engagement with the user's positives and the seed, scored once per request (the
        co-engagement source and the feature share it), unless known already."""
        if self.known_coscores is not None:
            return self.known_coscores
        positives = seeded_positives(self.profile.summary.positives, self.seed_id)
        return self.state.coengagement.scores(positives)


def seeded_positives(positives: Mapping[str, float], seed_id: str) -> dict[str, float]:
    """The user's positives (media id -> weight), plus the request's seed post if any, weighing
    ``SEED_COENGAGEMENT_WEIGHT`` times the strongest positive (1 when there is none)."""
    out = dict(positives)
    if seed_id:
        top = max(out.values(), default=1.0)
        out[seed_id] = out.get(seed_id, 0.0) + SEED_COENGAGEMENT_WEIGHT * top
    return out


def store_filter(
    request: RecRequest,
    profile: UserProfile,
    now: float,
    excluded_media: Sequence[str],
) -> SearchFilter:
    """The request's filter plus surface rules and exclusions, as a vector-store filter.

    ``excluded_media`` should come most important first (e.g. most recently seen): only the
    first ``MAX_EXCLUDED_IN_FILTER`` go into the store filter.
    """
    f = request.filter
    media_types = tuple(f.media_types)
    if request.surface is Surface.REELS:
        media_types = (schema.MEDIA_TYPE_VIDEO,)
        if f.media_types and schema.MEDIA_TYPE_VIDEO not in f.media_types:
            media_types = ("__none__",)  # REELS asked for non-videos: nothing matches
    excluded_creators = set(profile.summary.hidden_creators) | {request.user_id}
    if request.surface is Surface.EXPLORE:
        excluded_creators |= profile.follows
    created_from = int(now - f.max_age_s) if f.max_age_s is not None else None
    return SearchFilter(
        media_types=media_types,
        creator_ids=tuple(f.creator_ids),
        tags=tuple(f.tags),
        created_at_from=created_from,
        exclude_media_ids=tuple(excluded_media)[:MAX_EXCLUDED_IN_FILTER],
        exclude_creator_ids=tuple(sorted(c for c in excluded_creators if c)),
    )


def nearest(ctx: SourceContext) -> list[Proposal]:
    """content (clusters), interests (texts, steering) and seed, in up to three batched
    searches: every query on the visual vectors; text queries on every caption vector; taste
    and seed vectors on the caption vectors of caption-only posts, which have no visual one."""
    s = ctx.settings
    queries = ctx.queries
    if not s.content_signals:
        queries = tuple(q for q in queries if q.kind != "cluster")
    if not queries:
        return []
    f = ctx.search_filter
    texts = [q for q in queries if q.kind not in ("cluster", SEED)]
    tastes = [q for q in queries if q.kind in ("cluster", SEED)]
    k_text = max(1, s.interest_candidates // max(1, len(texts)))
    plans = [
        (schema.VISUAL, queries, [_budget(q, ctx) for q in queries], f),
        (schema.CAPTION, texts, [k_text] * len(texts), f),
        (schema.CAPTION, tastes, [_budget(q, ctx) for q in tastes], caption_only(f)),
    ]
    proposals = []
    for vector_name, group, ks, group_filter in plans:
        if not group or group_filter is None:
            continue
        batches = ctx.store.search_batch(
            vector_name, [q.vector for q in group], ks, group_filter,
            with_payload=False, hnsw_ef=s.candidate_hnsw_ef,
        )  # fmt: skip
        for q, hits in zip(group, batches, strict=True):
            proposals += _from_hits(hits, _source_of(q))
    return proposals


def caption_only(f: SearchFilter) -> SearchFilter | None:
    """``f`` narrowed to caption-only posts, or None when ``f`` excludes them.

    A taste vector (a mean of liked items' vectors) searches the caption vectors only of posts
    that have nothing else: photos are found by their visual vectors already (their captions by
    text queries), and a second full search per query would cost as much as the first."""
    if f.media_types and schema.MEDIA_TYPE_TEXT not in f.media_types:
        return None
    return replace(f, media_types=(schema.MEDIA_TYPE_TEXT,))


def _source_of(q: QueryVector) -> str:
    if q.kind == "cluster":
        return CONTENT
    return SEED if q.kind == SEED else INTERESTS


def _budget(q: QueryVector, ctx: SourceContext) -> int:
    s = ctx.settings
    if q.kind == "cluster":  # clusters share the content budget by importance
        return max(10, int(round(s.content_candidates * q.weight)))
    if q.kind == SEED:
        return s.content_candidates
    texts = sum(1 for x in ctx.queries if x.kind not in ("cluster", SEED))
    boost = 2 if q.kind == STEERING else 1
    return max(10, boost * s.interest_candidates // max(1, texts))


def _from_hits(hits: Sequence[SearchHit], source: str) -> list[Proposal]:
    return [Proposal(h.media_id, source, float(h.score)) for h in hits]


def coengagement(ctx: SourceContext) -> list[Proposal]:
    ids, scores = ctx.state.coengagement.top(
        ctx.coscores,
        ctx.settings.coengagement_candidates,
        exclude={*ctx.profile.summary.positives, ctx.seed_id} - {""},
    )
    return [Proposal(m, COENGAGEMENT, float(s)) for m, s in zip(ids, scores, strict=True)]


def following(ctx: SourceContext) -> list[Proposal]:
    follows = ctx.profile.follows
    if not follows or ctx.request.surface is Surface.EXPLORE:
        return []
    f = ctx.search_filter
    allowed = tuple(sorted(c for c in follows if not f.creator_ids or c in f.creator_ids))
    if not allowed:
        return []
    since = int(ctx.now - ctx.settings.following_window_s)
    if f.created_at_from is not None:
        since = max(since, f.created_at_from)
    points = ctx.store.list_media(
        replace(f, creator_ids=allowed, created_at_from=since),
        limit=ctx.settings.following_candidates,
        payload_keys=[schema.CREATED_AT],
    )
    return [Proposal(p.media_id, FOLLOWING, _recency(p.payload, ctx)) for p in points]


def social_counts(ctx: SourceContext) -> dict[str, float]:
    """media -> how many followed people recently liked it (more recent likes count more)."""
    counts: dict[str, float] = {}
    for followee in ctx.profile.follows:
        for rank, media_id in enumerate(ctx.live.recent_positives(ctx.state, followee)):
            counts[media_id] = counts.get(media_id, 0.0) + 1.0 / (1.0 + 0.1 * rank)
    return counts


def social(ctx: SourceContext) -> list[Proposal]:
    """Liked by people you follow (a followed creator is also a user who likes things)."""
    counts = social_counts(ctx)
    best = sorted(counts, key=lambda m: -counts[m])[: ctx.settings.social_candidates]
    return [Proposal(m, SOCIAL, counts[m]) for m in best]


def trending_keys(ctx: SourceContext) -> dict[str, str]:
    """Trending keys that apply to this request, by kind (global, context kinds, hashtags)."""
    c = ctx.request.context
    keys = {"global": GLOBAL, **context_keys(c.device, c.local_hour, c.location)}
    for i, tag in enumerate(ctx.profile.hashtags[:5]):
        keys[f"tag{i}"] = tag_key(tag)
    return keys


def trending(ctx: SourceContext) -> list[Proposal]:
    keys = list(trending_keys(ctx).values())
    per_key = max(10, ctx.settings.trending_candidates // max(1, len(keys)))
    out = []
    for key in keys:
        ranked = ctx.state.trending_list(key)
        out += [Proposal(m, TRENDING, ranked.level(m)) for m in ranked.ids[:per_key]]
    return out


def cohort(ctx: SourceContext) -> list[Proposal]:
    c = ctx.state.cohorts.assign(ctx.profile.taste)
    if c is None:
        return []
    ranked = ctx.state.cohorts.favourites[c]
    return [
        Proposal(m, COHORT, ranked.level(m)) for m in ranked.ids[: ctx.settings.cohort_candidates]
    ]


def fresh(ctx: SourceContext) -> list[Proposal]:
    """New posts: nearest to the user's tastes when known, else simply the newest."""
    s = ctx.settings
    since = int(ctx.now - s.fresh_window_s)
    f = ctx.search_filter
    if f.created_at_from is not None:
        since = max(since, f.created_at_from)
    window = replace(f, created_at_from=since, exclude_media_ids=fresh_exclusions(
        ctx.profile.summary, f.exclude_media_ids, since))
    queries = strongest_tastes(ctx.queries, s.fresh_queries) if s.content_signals else []
    if queries:
        k = max(5, s.fresh_candidates // len(queries))
        found = []
        for vector_name, vector_filter in (
            (schema.VISUAL, window),
            (schema.CAPTION, caption_only(window)),
        ):
            if vector_filter is None:
                continue
            batches = ctx.store.search_batch(
                vector_name, [q.vector for q in queries], k, vector_filter, with_payload=False,
                hnsw_ef=s.candidate_hnsw_ef,
            )
            found += [p for hits in batches for p in _from_hits(hits, FRESH)]
        return found
    # Nothing known about the user: simply the newest posts (however old the newest are).
    points = ctx.store.list_media(f, limit=s.fresh_candidates, payload_keys=[schema.CREATED_AT])
    return [Proposal(p.media_id, FRESH, _recency(p.payload, ctx)) for p in points]


def cold(ctx: SourceContext) -> list[Proposal]:
    """Items nobody has engaged with yet: half of the budget nearest to the user's strongest
    tastes, half of best appeal (``coldstart``).

    Engagement-based sources never propose them, and a user's nearest items by content are
    mostly engaged ones, so without this source a new item could reach a page only by being
    new (``fresh``), never by matching the user. Searched in memory (the derived state's cold
    pool); the request's filter applies to the candidates afterwards."""
    s, pool = ctx.settings, ctx.state.cold
    if not s.content_signals or s.cold_candidates <= 0:
        return []
    half = max(1, s.cold_candidates // 2)
    queries = strongest_tastes(ctx.queries, s.fresh_queries)
    near = nearest_in_pool(pool.ids, pool.vectors, [q.vector for q in queries], half)
    last = max(1, len(pool.by_appeal) - 1)
    appealing = [Proposal(m, COLD, 1.0 - r / last) for r, m in enumerate(pool.by_appeal[:half])]
    return near + appealing


def nearest_in_pool(
    ids: Sequence[str], vectors: np.ndarray, queries: Sequence[np.ndarray], budget: int
) -> list[Proposal]:
    """The nearest rows of ``vectors`` (one per id) to each query, ``budget`` shared evenly by
    the queries (at least 5 each), scored by their dot product. Queries of another dimension
    find nothing."""
    usable = [q for q in queries if vectors.ndim == 2 and q.shape == (vectors.shape[1],)]
    if not ids or not usable or budget <= 0:
        return []
    k = min(len(ids), max(5, budget // len(usable)))
    similarity = vectors @ np.stack(usable).T  # (pool, queries)
    best = np.argpartition(-similarity, k - 1, axis=0)[:k]
    return [
        Proposal(ids[i], COLD, float(similarity[i, j]))
        for j in range(len(usable)) for i in best[:, j]
    ]  # fmt: skip


def fresh_exclusions(
    summary: EngagementSummary, excluded: Sequence[str], since: float
) -> tuple[str, ...]:
    """Those of ``excluded`` that can be posts created since ``since``.

    A post is seen after it is created, so media the user last saw before ``since`` are old
    posts the window leaves out anyway. Excluding ids costs the store time per id, and a heavy
    user's exclusions are mostly old posts (fresh went from 3.9 to 3.0 ms at 100k posts).
    """
    lately = bisect.bisect_right(summary.recent_seen_at, -since, key=operator.neg)
    seen_lately = set(summary.recent_seen[:lately])
    return tuple(m for m in excluded if m in seen_lately or m not in summary.seen)


def strongest_tastes(queries: Sequence[QueryVector], n: int) -> list[QueryVector]:
    """At most ``n`` query vectors, the heaviest first, half of them (rounded up) from the
    taste clusters and their centroid, the rest from text interests and steering; a group
    with fewer leaves its share to the other. (Fresh posts are few, and each query vector
    costs a filtered search: the strongest tastes are where a new post matters most.)"""
    def heaviest(group: list[QueryVector]) -> list[QueryVector]:
        return sorted(group, key=lambda q: -q.weight)

    clusters = heaviest([q for q in queries if q.kind == "cluster"])
    texts = heaviest([q for q in queries if q.kind not in ("cluster", SEED)])
    take_clusters = max((n + 1) // 2, n - len(texts))
    picked = clusters[:take_clusters]
    return picked + texts[: n - len(picked)]


def _recency(payload: Mapping[str, Any], ctx: SourceContext) -> float:
    created = payload.get(schema.CREATED_AT)
    if created is None:
        return 0.0
    return float(0.5 ** (max(0.0, ctx.now - float(created)) / ctx.settings.freshness_half_life_s))


# The named chain, in order. Each entry is cheap or one batched store call.
SOURCE_CHAIN: tuple[tuple[str, Callable[[SourceContext], list[Proposal]]], ...] = (
    ("nearest", nearest),
    (COENGAGEMENT, coengagement),
    (FOLLOWING, following),
    (SOCIAL, social),
    (TRENDING, trending),
    (COHORT, cohort),
    (FRESH, fresh),
    (COLD, cold),
)


# A proposal as a plain (media_id, source, score) tuple: what caches keep. Tuples of strings and
# floats drop out of the garbage collector's tracking, so thousands of users' cached proposals
# do not lengthen its full collections (Proposal objects would: about 0.4 s at 1,000 users).
ProposalTuple = tuple[str, str, float]


def as_tuples(proposals: Iterable[Proposal]) -> tuple[ProposalTuple, ...]:
    return tuple((p.media_id, p.source, p.score) for p in proposals)


# The sources whose proposals depend on the catalogue's newest posts, the profile and the time
# but not on the request's context: a cache keeps them while the store's content is unchanged
# (the time drifts by at most the cache's lifetime, against windows of days).
CATALOGUE_SOURCES: tuple[str, ...] = (FOLLOWING, FRESH)
# The sources whose proposals depend only on the profile and the derived-state snapshot (for a
# default request): a cache keeps them until the next rebuild swaps the snapshot.
SNAPSHOT_SOURCES: tuple[str, ...] = (COENGAGEMENT, COHORT, COLD)


def proposals_of(ctx: SourceContext, names: Sequence[str]) -> dict[str, tuple[ProposalTuple, ...]]:
    """The named chain sources' proposals for ``ctx``, as the tuples caches keep."""
    chain = dict(SOURCE_CHAIN)
    return {name: as_tuples(chain[name](ctx)) for name in names}


def gather(
    ctx: SourceContext, known: Mapping[str, Sequence[ProposalTuple]] | None = None
) -> dict[str, dict[str, float]]:
    """media_id -> {source: best score}, sources in chain order; ``known`` maps chain names
    to proposals computed earlier (for this request, or kept from an earlier request of the
    same kind), which stand in for those sources."""
    known = known or {}
    merged: dict[str, dict[str, float]] = {}
    for name, source in SOURCE_CHAIN:
        found = known[name] if name in known else as_tuples(source(ctx))
        # Plain comparisons, not max() and setdefault(): this runs for every proposal.
        for media_id, source_name, score in found:
            scores = merged.get(media_id)
            if scores is None:
                merged[media_id] = {source_name: score}
                continue
            best = scores.get(source_name)
            if best is None or score > best:
                scores[source_name] = score
    return merged
