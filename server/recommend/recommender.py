"""The recommender: profile -> candidate sources -> features -> blend -> exploration -> MMR.

Per request: the user's profile and candidate searches (nearest neighbours of the taste and
interest vectors, fresh posts, followed creators' posts; cached per user for the default
request, see usercache.py), the candidates' vectors (item cache), then numpy over a few
hundred candidates, and one ``get`` of the page's payloads.
Derived state (co-engagement, trending, cohorts) is rebuilt in the background and only read.
See docs/recommend.md.
"""

from __future__ import annotations

import logging
import math
import threading
import time
import uuid
import weakref
import zlib
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from mediarec.encoders import Encoder
from mediarec.encoders.registry import near_duplicate_cosine_of
from mediarec.server.embed_batcher import Priority, embed_scope
from mediarec.server.observability.buckets import Buckets
from mediarec.server.recommend import bandit
from mediarec.server.recommend import blend as b
from mediarec.server.recommend import sources as src
from mediarec.server.recommend.collab import CollabModel, UserHistory, UserScores
from mediarec.server.recommend.diversity import collapse_near_duplicates, merge_pages, mmr_rank
from mediarec.server.recommend.features import Candidates, FeatureTable, compute_features
from mediarec.server.recommend.forget_fence import ForgetFence
from mediarec.server.recommend.hits import HitCounts
from mediarec.server.recommend.items import ItemCache, item_filter
from mediarec.server.recommend.learned import (
    LearnedRanker,
    PopularityRanker,
    load_learned_or_none,
    save_learned_ranker,
)
from mediarec.server.recommend.ltr_features import feature_matrix, reported_contributions
from mediarec.server.recommend.ltr_train import LtrConfig, NotEnoughHistoryError, train_from_store
from mediarec.server.recommend.paging import (
    RankedEntry,
    Ranking,
    RankingCache,
    make_cursor,
)
from mediarec.server.recommend.profile import (
    STEERING,
    ProfileBuilder,
    UserProfile,
)
from mediarec.server.recommend.ranker import RankerModel, load_or_default
from mediarec.server.recommend.refresh import Refresher
from mediarec.server.recommend.rows import values_at
from mediarec.server.recommend.schedule import Periodic
from mediarec.server.recommend.servedlog import ServedLogWriter
from mediarec.server.recommend.settings import RecommendSettings
from mediarec.server.recommend.slate import ReasonProfile, Slate, SlateItem, ordered_sources
from mediarec.server.recommend.state import DerivedState, LiveCounters, build_state
from mediarec.server.recommend.texts import TextEmbedder, parse_interests
from mediarec.server.recommend.types import (
    EngagementStore,
    Event,
    ForgetReport,
    RecFilter,
    RecItem,
    RecRequest,
    RecResponse,
    ServedItem,
    StateInfo,
    Surface,
)
from mediarec.server.recommend.usercache import (
    CollabWork,
    Precomputer,
    SnapshotWork,
    UserCache,
    UserEntry,
)
from mediarec.server.service_errors import InvalidArgumentError, NotFoundError
from mediarec.server.store import SearchFilter, VectorStore, schema

logger = logging.getLogger(__name__)

REBUILD_SECOND_BOUNDS = (0.1, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0)
POPULARITY_RANKER = PopularityRanker()
# The exploration pool takes at most 1/POOL_SHARE_DIVISOR of the candidates past page 1.
POOL_SHARE_DIVISOR = 3


class Recommender:
    """Thread-safe; one per server. ``close()`` stops the background refresh."""

    def __init__(
        self,
        encoder: Encoder,
        store: VectorStore,
        engagement: EngagementStore,
        settings: RecommendSettings,
        *,
        clock: Callable[[], float] = time.time,
        seed: int | None = None,
    ) -> None:
        if not settings.near_duplicate_cosine:  # the model's own threshold, from its card
            settings = replace(
                settings, near_duplicate_cosine=near_duplicate_cosine_of(encoder.model_id)
            )
        self._store = store
        self._engagement = engagement
        self._settings = settings
        self._clock = clock
        self._texts = TextEmbedder(
            encoder, settings.text_cache_entries, settings.text_cache_max_mb << 20
        )
        self._items = ItemCache(store, settings.item_cache_entries, settings.item_cache_ttl_s,
                                max_bytes=settings.item_cache_max_mb << 20)  # fmt: skip
        self._profiles = ProfileBuilder(self._items, self._texts, settings)
        self._users = UserCache(
            settings.user_cache_entries,
            settings.profile_cache_ttl_s,
            max_bytes=settings.user_cache_max_mb << 20,
        )
        self._precompute = Precomputer(self._warm, settings.precompute_delay_s)
        self._state = DerivedState()
        self._live = LiveCounters(settings)
        self._rankings = RankingCache(
            settings.page_cache_ttl_s,
            settings.page_cache_max_entries,
            max_bytes=settings.page_cache_max_mb << 20,
        )
        self._ranker = load_or_default(settings.ranker_path)
        self._learned = load_learned_or_none(settings.learned_ranker_path)
        # ``seed`` (offline replays, tests) overrides the configured one, where 0 means none.
        if seed is None:
            seed = settings.explore_seed or None
        self._seeds = np.random.SeedSequence(seed)
        self._rng_lock = threading.Lock()
        self._served_log = ServedLogWriter(engagement)
        self._fence = ForgetFence()
        self._state_version = 0  # grows with every finished rebuild
        self._rebuild_seconds = Buckets(REBUILD_SECOND_BOUNDS)
        self._refresher = Refresher(self._rebuild, settings)
        self._refresher.request()  # the first snapshot builds in the background
        self._trainer = (
            Periodic(self._scheduled_training, settings.learned_train_interval_s,
                     "learned-ranker training")
            if settings.learned_train_interval_s > 0 else None
        )  # fmt: skip

    # ---------------------------------------------------------------- public API

    @property
    def state(self) -> DerivedState:
        return self._state

    @property
    def settings(self) -> RecommendSettings:
        return self._settings

    @property
    def ranker(self) -> RankerModel:
        return self._ranker

    def recommend(self, request: RecRequest) -> RecResponse:
        """One page of recommendations; its items are logged via ``engagement.log_served``
        (from a background thread: ``flush_served()`` waits for it)."""
        k = self._check_k(request.k)
        if not request.user_id:
            raise InvalidArgumentError("user_id", "a user id is required")
        now = request.now if request.now is not None else self._clock()
        ticket = self._fence.ticket()
        if request.cursor:
            ranking, offset = self._rankings.get(request.cursor, request.user_id)
        else:
            ranking, offset = self._rank(request, k, now), 0
        page, served = self._page(ranking, offset, k, now)
        if request.dry_run:
            return replace(page, next_cursor="")
        with self._fence.storing(request.user_id, ticket) as allowed:
            if not allowed:  # forgotten meanwhile: the page is answered, and kept nowhere
                return replace(page, next_cursor="")
            self._log_served(served)
            # Kept after its first page is built: sizing it reads a built entry, which a
            # learned ranker would otherwise explain on its own. A dry run keeps none: a kept
            # ranking could evict someone else's cursor.
            if not request.cursor:
                self._rankings.put(ranking)
        return page

    def similar(
        self, media_id: str, user_id: str, k: int, filter: RecFilter, *, dry_run: bool = False
    ) -> list[RecItem]:
        """Items like ``media_id``: content similarity blended with co-engagement.

        ``dry_run`` reads the user's profile without caching it."""
        k = self._check_k(k)
        now = self._clock()
        anchor = self._items.get([media_id]).get(media_id)
        if anchor is None or media_id not in self._items.existing([media_id]):
            raise NotFoundError(f"media_id {media_id!r} is not indexed")
        vector = anchor.vector
        hidden: frozenset[str] = frozenset()
        if user_id:
            entry = self._user_entry(user_id, now, keep=not dry_run)
            hidden = entry.profile.summary.hidden_creators
        request = RecRequest(user_id=user_id or "-", k=k, filter=filter, now=now)
        sf = src.store_filter(request, _empty_profile(user_id, now), now, [media_id])
        sf = replace(sf, exclude_creator_ids=tuple(sorted(hidden)))
        state = self._state
        hits = self._store.search(schema.VISUAL, vector, 3 * k + 10, sf, with_payload=False)
        graph = state.coengagement
        co_ids, co_scores = graph.top(graph.scores({media_id: 1.0}), 3 * k, {media_id})
        proposals: dict[str, dict[str, float]] = {}
        for h in hits:
            proposals.setdefault(h.media_id, {})[src.CONTENT] = h.score
        for m, score in zip(co_ids, co_scores, strict=True):
            proposals.setdefault(m, {})[src.COENGAGEMENT] = float(score)
        cands = self._candidates(proposals, sf, set())
        if not len(cands):
            return []
        x = np.zeros((len(cands), len(b.FEATURES)))
        x[:, b.FEATURE_INDEX[b.CONTENT]] = b.scale_unit(cands.visual @ vector)
        co = np.array([s.get(src.COENGAGEMENT, 0.0) for s in cands.sources])
        x[:, b.FEATURE_INDEX[b.COENGAGEMENT]] = b.scale_max(co)
        item_conf = b.item_confidence(
            self._live.engagements(state, cands.ids, state.rows_of(cands.ids)),
            self._settings.item_prior,
        )
        ranker = self._ranker  # one model per call, whatever a reload swaps in meanwhile
        scores, contrib = ranker.score(x, 0.5, item_conf, Surface.EXPLORE)
        order = [int(i) for i in np.argsort(-scores, kind="stable")]
        # The anchor's own near-duplicates are the anchor, not "similar" items.
        same = self._settings.near_duplicate_cosine
        order = [i for i in order if float(cands.visual[i] @ vector) < same]
        collapsed = collapse_near_duplicates(
            order, cands.visual, self._settings.near_duplicate_cosine, _dup_groups(cands)
        )
        alive = self._items.existing([cands.ids[i] for i in collapsed.keep[: k + 5]])
        out = []
        for i in [i for i in collapsed.keep[: k + 5] if cands.ids[i] in alive][:k]:
            breakdown = b.breakdown_of(contrib[i], ranker.bias)
            reasons = []
            if breakdown.get(b.CONTENT, 0.0) > 0:
                reasons.append("looks like this post")
            if breakdown.get(b.COENGAGEMENT, 0.0) > 0:
                reasons.append("people who liked this post also liked it")
            out.append(
                RecItem(
                    media_id=cands.ids[i],
                    score=float(scores[i]),
                    breakdown=breakdown,
                    sources=ordered_sources(cands.sources[i]),
                    reasons=tuple(reasons) or ("looks like this post",),
                    collapsed=tuple(cands.ids[j] for j in collapsed.folded.get(i, ())),
                )
            )
        return out

    def set_interests(self, user_id: str, text: str, now: float | None = None) -> list[str]:
        """Parse "hiking, street food, cats", embed each through the text tower, store them."""
        if not user_id:
            raise InvalidArgumentError("user_id", "a user id is required")
        interests = parse_interests(text, self._settings.max_interests)
        if not interests:
            raise InvalidArgumentError("text", "no interests found; send e.g. 'hiking, cats'")
        self._texts.embed(interests)  # fails clearly for a model without a text tower
        now = now if now is not None else self._clock()
        self._engagement.set_interests(user_id, ", ".join(interests), now)
        self._invalidate(user_id)
        return interests

    def on_events(self, events: Sequence[Event], *, schedule_rebuild: bool = True) -> None:
        """Cheap incremental updates after ``events`` were stored; may schedule a rebuild
        (an import, which rebuilds once at its end, passes ``schedule_rebuild=False``)."""
        if not events:
            return
        self._live.add_events(events)
        for user_id in {e.user_id for e in events}:
            self._invalidate(user_id)
        if schedule_rebuild:
            self._refresher.notify(len(events))

    def refresh(self) -> StateInfo:
        """Rebuild derived state now and wait for it (Refresh, the end of an import, tests)."""
        self._users.clear()  # first: the rebuild warms the active users again
        self._refresher.run_now()
        return self.state_info()

    def refresh_in_background(self) -> None:
        """Start a rebuild without waiting for it (an import that stopped part-way)."""
        self._refresher.request()

    def state_info(self) -> StateInfo:
        """How current the derived state is: its version, the events in it and those not yet."""
        state = self._state
        built = self._state_version > 0
        return StateInfo(
            version=self._state_version,
            events_included=state.events,
            events_pending=self._live.events_since_rebuild,
            built_at=state.built_at if built else None,
            age_s=max(0.0, self._clock() - state.built_at) if built else 0.0,
            rebuilding=self._refresher.running,
            rebuild_seconds=self._rebuild_seconds.snapshot(),
        )

    def cache_counts(self) -> dict[str, HitCounts]:
        """Hits and misses of each in-memory cache, by name (for /metrics)."""
        return {
            "items": self._items.counts.snapshot(),
            "users": self._users.counts.snapshot(),
            "pages": self._rankings.counts.snapshot(),
        }

    def forget_user(self, user_id: str) -> ForgetReport:
        """Delete the user's stored data and every derived in-memory state of theirs."""
        if not user_id:
            raise InvalidArgumentError("user_id", "a user id is required")
        # Requests of theirs store nothing until this ends, nor later if they started before;
        # what they stored earlier is in the served log once it is flushed: no impression of
        # theirs may land after the delete.
        with self._fence.forgetting(user_id):
            self._served_log.flush()
            self._precompute.cancel(user_id)  # nor a profile (or search vectors) of theirs
            # Their interest and search texts may sit in the text-vector cache: evict them too.
            profile = self._profiles.build(user_id, self._engagement, self._clock())
            texts = [t.text for t in profile.interests]
            report = self._engagement.forget_user(user_id)
            derived = self._live.forget_user(user_id, self._state)
            derived += self._rankings.forget_user(user_id)
            derived += 1 if self._users.invalidate(user_id) else 0
            derived += self._texts.forget(texts)
        # Aggregates (co-engagement, trending, cohorts) lose the user's part at the next
        # rebuild, which starts now.
        self._refresher.request()
        return replace(report, other=report.other + derived)

    @property
    def learned_ranker(self) -> LearnedRanker | None:
        return self._learned

    def reload_ranker(self) -> bool:
        """Load the ranker files again (after `mediarec train-ranker`); True if a trained one
        is in use. A learned ranker that arrives when the collaborative core is not built yet
        serves from the rebuild that this starts."""
        # Both files read before either is swapped in: a bad one leaves both as they were.
        ranker = load_or_default(self._settings.ranker_path)
        learned = load_learned_or_none(self._settings.learned_ranker_path)
        had_core = self._wants_collab
        self._ranker, self._learned = ranker, learned
        if learned is not None and not had_core:
            self._refresher.request()
        return self._ranker.trained or learned is not None

    def train_learned_ranker(self, config: LtrConfig | None = None) -> LearnedRanker:
        """Train the learned ranker on the whole event log, save it to
        ``learned_ranker_path`` (when set) and serve it; the core it needs is rebuilt first
        when it was not built yet. Raises NotEnoughHistoryError on too little history."""
        self._served_log.flush()
        model = train_from_store(
            self._engagement, self._store, self._settings, config or LtrConfig()
        )
        if self._settings.learned_ranker_path:
            save_learned_ranker(model, self._settings.learned_ranker_path)
        had_core = self._wants_collab and self._state.collab.n_items > 0
        self._learned = model
        if not had_core:
            self._refresher.run_now()
        return model

    def _scheduled_training(self) -> None:
        try:
            model = self.train_learned_ranker()
        except NotEnoughHistoryError as exc:
            logger.info("learned ranker not trained: %s", exc)
            return
        logger.info("learned ranker retrained and swapped in: %s", model.info)

    def wait_for_refresh(self, timeout: float | None = None) -> bool:
        """Wait for a background rebuild in flight (tests); False on timeout."""
        return self._refresher.wait(timeout)

    def wait_for_precompute(self, timeout: float | None = None) -> bool:
        """Wait until the background warming of users is done (benchmarks); False on timeout."""
        return self._precompute.wait_idle(timeout)

    def flush_served(self) -> None:
        """Wait until every served item so far is in the engagement store."""
        self._served_log.flush()

    def close(self) -> None:
        """Stop background work: pending served items are stored, a rebuild in flight ends."""
        if self._trainer is not None:
            self._trainer.close()
        self._refresher.close()
        self._precompute.close()
        self._served_log.close()

    # ---------------------------------------------------------------- ranking

    def candidate_ranking(self, request: RecRequest) -> list[str]:
        """The request's whole candidate union, best blended score first, before diversity,
        exploration and paging (benchmarks measure retrieval with it). Keeps nothing."""
        now = request.now if request.now is not None else self._clock()
        scored = self._score(replace(request, dry_run=True), now)
        if scored is None:
            return []
        order = np.argsort(-scored.scores, kind="stable")
        return [scored.cands.ids[int(i)] for i in order]

    def _score(self, request: RecRequest, now: float) -> _Scored | None:
        """Candidates from every source, their features and blended scores; None if none."""
        s = self._settings
        entry = self._user_entry(request.user_id, now, keep=not request.dry_run)
        profile = entry.profile
        state = self._state
        inputs = self._inputs(request, profile, state, now, entry)
        ctx, queries, seed_vector = inputs.ctx, inputs.queries, inputs.seed_vector
        user_impressions, excluded, sf = inputs.user_impressions, inputs.excluded, ctx.search_filter
        keep = not request.dry_run
        known = {
            "nearest": self._nearest(entry, ctx, keep),
            **self._catalogue(entry, ctx, keep),
            **self._snapshot_sources(entry, ctx, keep),
        }
        proposals: Mapping[str, Mapping[str, float]] = src.gather(ctx, known)
        learned = self._learned  # one model per request, whatever a reload swaps in meanwhile
        history, user_scores = None, None
        # A seeded or steered request is about that post or text first: the blend ranks it.
        steered = bool(request.seed_media_id or request.steering_text.strip())
        if learned is not None and state.collab.n_items and not steered:
            work = self._collab_work(entry, request, state, now, keep)
            history, user_scores = work.history, work.scores
            proposals = with_collab_candidates(proposals, state.collab, work.candidates)
        cands = self._candidates(proposals, sf, excluded)
        if not len(cands):
            return None
        rows = state.rows_of(cands.ids)
        table = compute_features(
            cands, profile, queries, seed_vector, ctx.coscores, state, rows,
            engagements=self._live.engagements(state, cands.ids, rows),
            impressions=self._live.impressions(state, cands.ids, rows),
            user_impressions=values_at(user_impressions, cands.ids),
            social_counts=src.social_counts(ctx),
            context=request.context, settings=s, now=now,
        )
        ranker = self._ranker  # one model per request, whatever a reload swaps in meanwhile
        if not s.content_signals:
            ranker = replace(ranker, weights={**ranker.weights, b.CONTENT: 0.0})
        scores, contrib = ranker.score(
            table.x, profile.confidence, table.item_conf, request.surface
        )
        learned_x = None
        scorer: LearnedRanker | PopularityRanker | None = None
        if history is not None and user_scores is not None and learned is not None:
            # No positive yet: no taste to go on, and a history the model never trained on.
            scorer = POPULARITY_RANKER if history.positives.size == 0 else learned
            learned_x = learned_features(
                state, history, user_scores, cands, table.rows, s.content_signals
            )
            scores = scorer.score(learned_x)
        return _Scored(
            cands, table, scores, contrib, profile, queries, seed_vector, ranker,
            scorer, learned_x,
        )  # fmt: skip

    def _rank(self, request: RecRequest, k: int, now: float) -> Ranking:
        s = self._settings
        request_id = uuid.uuid4().hex
        scored = self._score(request, now)
        if scored is None:
            return Ranking(request_id, request.user_id, [])
        cands, table, scores, contrib = scored.cands, scored.table, scored.scores, scored.contrib
        profile, queries, seed_vector, ranker = (
            scored.profile, scored.queries, scored.seed_vector, scored.ranker
        )
        # Only the best few times the depth can reach the ranking, and the best-prior
        # explorable items (a never-engaged item ranks low on score, so it would never be
        # explored if the pool came from the best scores alone).
        order: list[int] = np.argsort(-scores, kind="stable")[: 3 * s.rank_depth].tolist()
        prior = self._exploration_prior(table, queries, profile, cands.visual)
        explorable = self._is_explorable(table)
        explore_only: set[int] = set()  # in the list for the bandit's pool, never exploited
        if bandit.exploration_slots(k, s.explore_fraction, s.explore_max_slots, s.explore_min_k):
            listed = set(order)
            best = self._best_explorable(explorable, prior)
            explore_only = {i for i in best if i not in listed}
            order += [i for i in best if i in explore_only]
        collapsed = collapse_near_duplicates(
            order, cands.visual, s.near_duplicate_cosine, _dup_groups(cands)
        )
        final, explored = self._select(
            cands, table, scores, collapsed.keep, profile, k, lambda: self._rng(request),
            prior=prior, explorable=explorable, explore_only=explore_only,
            learned=scored.learned is not None,
        )
        match_vectors = {
            f"c{q.label}": q.vector for q in queries if q.kind == "cluster"
        }  # the clusters and their centroid
        texts = [q for q in queries if q.kind not in ("cluster", "seed")]
        match_vectors |= {f"t{j}": q.vector for j, q in enumerate(texts)}
        if seed_vector is not None:
            match_vectors["seed"] = seed_vector
        ids = cands.ids
        contributions, bias, explain = contrib[final], ranker.bias, None
        if scored.learned is not None and scored.learned_x is not None:
            contributions, bias = np.zeros((len(final), len(b.FEATURES))), 0.0
            explain = _explainer(scored.learned, scored.learned_x[final])
        slate = Slate(
            items=[SlateItem.of(cands.items[i]) for i in final],
            sources=[cands.sources[i] for i in final],
            x=table.x[final].astype(np.float32),
            contributions=contributions,
            scores=scores[final],
            item_conf=table.item_conf[final],
            best_cluster=table.best_cluster[final],
            best_query=table.best_query[final],
            coeng_counts=table.coeng_counts[final],
            popular_in=[table.popular_in[i] for i in final],
            propensity=np.array([explored.get(i, 1.0) for i in final]),
            explored=np.array([i in explored for i in final], dtype=bool),
            folded=[tuple(ids[j] for j in collapsed.folded.get(i, ())) for i in final],
            profile=ReasonProfile.of(profile),
            request=request,
            now=now,
            bias=bias,
            fresh_window_s=s.fresh_window_s,
            texts=self._text_queries(profile, request),
            explain=explain,
        )
        return Ranking(request_id, request.user_id, slate, match_vectors)

    def _select(
        self,
        cands: Candidates,
        table: FeatureTable,
        scores: np.ndarray,
        kept: list[int],
        profile: UserProfile,
        k: int,
        rng_source: Callable[[], np.random.Generator],
        *,
        prior: np.ndarray,
        explorable: np.ndarray,
        explore_only: set[int],
        learned: bool = False,
    ) -> tuple[list[int], dict[int, float]]:
        """Exploitation (MMR + creator cap) and exploration (Thompson) merged into one list.

        The exploration pool is fixed before any random draw: the best-prior low-exposure,
        little-known items outside the first page's best (at most ``explore_pool_size``, and
        at most a third of the candidates past the first page but never fewer than the page's
        slots; none when the page has no slot), minus creators the exploitation list already
        shows at the cap on the first page. Exploitation never sees the pool, so
        an exploited item's presence does not depend on the draw. The n-th best draw fills
        page n // slots, and an explored item's propensity is the probability of its draw
        ranking among that page's slots; in the rare case that its creator reached the cap on
        that page anyway (two draws of one creator), ``merge_pages`` moves it to a later slot.
        Pool items the draw passes over wait for a later request. ``learned``: the learned
        path scored (the model, or popularity for a user with no positive yet), so MMR weighs
        relevance by ``learned_mmr_lambda`` for every user. ``prior`` and ``explorable``:
        each candidate's prior rate and whether it may be explored; ``explore_only``:
        candidates listed for the pool alone.
        Returns candidate indices in order and {index: propensity} of the explored ones.
        """
        s = self._settings
        depth = s.rank_depth
        slots = bandit.exploration_slots(
            k, s.explore_fraction, s.explore_max_slots, s.explore_min_k
        )
        pages = math.ceil(depth / k)
        top = set(kept[:k])  # the first page's best are never gambled on
        # Without exploration slots nothing is set aside for the draw.
        pool = [i for i in kept if i not in top and explorable[i]] if slots > 0 else []
        # Exploitation never sees the pool, so in a small catalogue a full pool would leave it
        # too few items to fill pages under the creator cap.
        room = max(slots, (len(kept) - len(top)) // POOL_SHARE_DIVISOR)
        pool = sorted(pool, key=lambda i: (-prior[i], i))[: min(s.explore_pool_size, room)]
        pool0 = set(pool)
        # Items listed only for the pool keep out of exploitation whether drawn or not: they
        # ranked below the cut on score.
        exploit = [i for i in kept if i not in pool0 and i not in explore_only]
        lam = (
            s.learned_mmr_lambda if learned
            else s.mmr_lambda_cold + (s.mmr_lambda - s.mmr_lambda_cold) * profile.confidence
        )  # fmt: skip
        creators = cands.creators
        budget = min(slots * pages, len(pool))
        ranked = mmr_rank(
            scores[exploit],
            cands.visual[exploit],
            depth - budget,
            lam,
            [creators[i] for i in exploit],
            s.creator_cap,
            max(1, k - slots),
        )
        exploited = [exploit[j] for j in ranked]
        if s.creator_cap > 0:  # an explored item must not break the cap on the first page
            first_page = Counter(creators[i] for i in exploited[: max(1, k - slots)])
            capped = {c for c, n in first_page.items() if c and n >= s.creator_cap}
            pool = [i for i in pool if creators[i] not in capped]
        total = min(slots * pages, len(pool))
        if total == 0:
            return exploited, {}
        arms = bandit.posterior(
            prior[pool], s.explore_prior_strength,
            table.engagements[pool], table.impressions[pool],
        )
        rng = rng_source()
        order = bandit.thompson_select(arms, total, rng)
        picks = [pool[j] for j in order]
        # The n-th draw fills page n // slots: its propensity is the chance of landing there.
        by_page = bandit.block_propensities(
            arms, slots, math.ceil(total / slots), s.propensity_samples, rng
        )
        explored = {pool[j]: float(by_page[j, n // slots]) for n, j in enumerate(order)}
        positions = [p * k + off for p in range(pages) for off in bandit.slot_positions(k, slots)]
        final = merge_pages(
            exploited, picks, set(positions[: len(picks)]), creators, s.creator_cap, k
        )
        return final, explored

    def _is_explorable(self, table: FeatureTable) -> np.ndarray:
        """Little-known, rarely shown candidates: what the bandit may spend a slot on."""
        s = self._settings
        return (
            (table.item_conf < 0.5)
            & (table.engagements <= s.explore_max_engagements)
            & (table.impressions < s.explore_max_impressions)
        )

    def _best_explorable(self, explorable: np.ndarray, prior: np.ndarray) -> list[int]:
        """The ``explore_pool_size`` explorable candidates of best prior, best first."""
        index = np.flatnonzero(explorable)
        best = index[np.argsort(-prior[index], kind="stable")]
        return [int(i) for i in best[: self._settings.explore_pool_size]]

    def _exploration_prior(
        self,
        table: FeatureTable,
        queries: Sequence[src.QueryVector],
        profile: UserProfile,
        vectors: np.ndarray,
    ) -> np.ndarray:
        """Each candidate's prior engagement rate: from its content match to the user's taste
        (its popularity for a user with nothing to match) and, once the cold pool has an
        appeal model and content counts, its appeal (``coldstart``), weighted by
        ``explore_appeal_weight``."""
        s = self._settings
        col = b.FEATURE_INDEX
        has_vectors = any(q.kind != "seed" for q in queries) or bool(profile.clusters)
        if has_vectors:
            match = table.x[:, [col[b.CONTENT], col[b.INTEREST], col[b.SEED]]].max(axis=1)
        else:
            match = table.x[:, col[b.POPULARITY]]
        appeal = self._state.cold.appeal(vectors) if s.content_signals else None
        if appeal is not None:
            w = s.explore_appeal_weight
            match = (1.0 - w) * match + w * appeal
        return bandit.prior_mean(match, s.explore_prior_base, s.explore_prior_gain)

    def _page(
        self, ranking: Ranking, offset: int, k: int, now: float
    ) -> tuple[RecResponse, list[ServedItem]]:
        """The next ``k`` entries from ``offset`` that still exist, and the rows that log
        them as served."""
        page: list[tuple[int, RankedEntry]] = []
        payloads: dict[str, Mapping[str, Any]] = {}
        pos = offset
        while len(page) < k and pos < len(ranking.entries):
            chunk = list(enumerate(ranking.entries[pos : pos + k - len(page)], start=pos))
            alive = self._items.stored_payloads([e.item.media_id for _, e in chunk])
            page += [(n, e) for n, e in chunk if e.item.media_id in alive]
            payloads |= alive
            pos += len(chunk)
        items = self._with_frames([e for _, e in page], ranking.match_vectors)
        next_cursor = make_cursor(ranking.request_id, pos) if pos < len(ranking.entries) else ""
        served = [
            ServedItem(
                request_id=ranking.request_id,
                user_id=ranking.user_id,
                media_id=item.media_id,
                position=n,
                score=item.score,
                propensity=item.propensity,
                sources=item.sources,
                features=entry.features,
                timestamp=now,
            )
            for (n, entry), item in zip(page, items, strict=True)
        ]
        return RecResponse(ranking.request_id, tuple(items), next_cursor, payloads), served

    def _log_served(self, served: Sequence[ServedItem]) -> None:
        if served:
            self._live.add_served(served)
            self._served_log.submit(served)
            self._refresher.notify_served(len(served))

    def _with_frames(
        self, entries: Sequence[RankedEntry], vectors: Mapping[str, np.ndarray]
    ) -> list[RecItem]:
        """Items with the best-matching frame of each video, per the vector it matched."""
        by_key: dict[str, list[str]] = {}
        for e in entries:
            if e.video and e.match_key in vectors:
                by_key.setdefault(e.match_key, []).append(e.item.media_id)
        frames = {}
        for key, media_ids in by_key.items():
            for media_id, match in self._store.search_frames(vectors[key], media_ids).items():
                frames[media_id] = match.timestamp_s
        return [
            replace(e.item, matched_frame_timestamp_s=frames[e.item.media_id])
            if e.item.media_id in frames else e.item
            for e in entries
        ]

    # ---------------------------------------------------------------- inputs

    def _inputs(
        self,
        request: RecRequest,
        profile: UserProfile,
        state: DerivedState,
        now: float,
        entry: UserEntry | None = None,
    ) -> _Inputs:
        queries, seed_vector = self._queries(request, profile)
        user_impressions = self._user_impressions(profile, state)
        excluded = self._excluded(request, profile, user_impressions)
        recent = [m for m in profile.summary.recent_seen if m in excluded]
        ordered = recent + sorted(excluded.difference(recent))
        kept = _kept_snapshot(entry, request, state)
        ctx = src.SourceContext(
            request=request, profile=profile, state=state, live=self._live, store=self._store,
            settings=self._settings, now=now,
            search_filter=src.store_filter(request, profile, now, ordered),
            queries=tuple(queries), seed_id=request.seed_media_id,
            known_coscores=kept.coscores if kept is not None else None,
        )  # fmt: skip
        return _Inputs(ctx, queries, seed_vector, user_impressions, excluded)

    def _user_entry(self, user_id: str, now: float, *, keep: bool = True) -> UserEntry:
        """The user's cached profile (and candidates), else a new one, built here and kept
        unless ``keep`` is False (a dry run)."""
        entry = self._users.get(user_id, now)
        if entry is not None:
            if keep and self._precomputing and self._users.is_aging(entry):
                self._precompute.schedule([user_id], delay=False)  # rebuilt before it expires
            return entry
        version = self._users.version(user_id)
        entry = UserEntry(self._profiles.build(user_id, self._engagement, now), time.monotonic())
        if keep:
            self._users.put(user_id, entry, version)
        return entry

    def _nearest(
        self, entry: UserEntry, ctx: src.SourceContext, keep: bool = True
    ) -> tuple[src.ProposalTuple, ...]:
        """The "nearest" source's proposals: kept in the user's entry for a surface's default
        request (which the warming computes ahead), computed here for any other."""
        key = ctx.request.surface.value
        default = _is_default(ctx.request)
        if default and key in entry.nearest:
            return entry.nearest[key]
        proposals = src.as_tuples(src.nearest(ctx))
        if default and keep:
            # A new dict, not an insert: the user cache measures entries as other requests
            # (another surface) read them, and iterating a dict that grows meanwhile raises.
            # Two surfaces stored at once may lose one of them: it is computed again.
            entry.nearest = {**entry.nearest, key: proposals}
        return proposals

    def _catalogue(
        self, entry: UserEntry, ctx: src.SourceContext, keep: bool = True
    ) -> dict[str, tuple[src.ProposalTuple, ...]]:
        """The catalogue sources' proposals (fresh, following): kept in the user's entry for a
        surface's default request while the store's content version is unchanged (a new post
        renews them), computed here otherwise. Empty when the store cannot tell (a Qdrant
        server, which other clients write to): gather then computes them for each request."""
        if not _is_default(ctx.request):
            return {}
        version = self._store.content_version()  # read before searching: a write after it
        if version is None:  # changes it, and the next request searches again
            return {}
        key = ctx.request.surface.value
        kept = entry.catalogue.get(key)
        if kept is not None and kept[0] == version:
            return kept[1]
        proposals = src.proposals_of(ctx, src.CATALOGUE_SOURCES)
        if keep:
            entry.catalogue = {**entry.catalogue, key: (version, proposals)}  # as ``nearest``
        return proposals

    def _snapshot_sources(
        self, entry: UserEntry, ctx: src.SourceContext, keep: bool = True
    ) -> dict[str, tuple[src.ProposalTuple, ...]]:
        """The snapshot sources' proposals (co-engagement, cohort, cold): kept in the user's
        entry, with the co-engagement scores, for a default request while the recommender
        serves the snapshot they were computed from; computed here otherwise."""
        kept = _kept_snapshot(entry, ctx.request, ctx.state)
        if kept is not None:
            return kept.proposals
        if not _is_default(ctx.request):
            return {}
        proposals = src.proposals_of(ctx, src.SNAPSHOT_SOURCES)
        if keep:
            entry.snapshot = SnapshotWork(weakref.ref(ctx.state), ctx.coscores, proposals)
        return proposals

    def _collab_work(
        self, entry: UserEntry, request: RecRequest, state: DerivedState, now: float, keep: bool
    ) -> CollabWork:
        """What the core makes of the user (history, scores, candidates): kept in the user's
        snapshot work for a default request, computed here otherwise."""
        collab = state.collab
        kept = _kept_snapshot(entry, request, state)
        if kept is not None and kept.collab is not None:
            return kept.collab
        history = learned_history(entry.profile, collab, now)
        scores = collab.user_scores(history)
        per_source = self._settings.collab_candidates
        work = CollabWork(history, scores.kept(), collab.candidates(history, per_source, scores))
        # Only onto the work it extends: a request on a newer snapshot may have replaced it.
        if keep and kept is not None and entry.snapshot is kept:
            entry.snapshot = replace(kept, collab=work)
        return work

    @property
    def _wants_collab(self) -> bool:
        """The collaborative core is built while a learned ranker serves or is trained."""
        return self._learned is not None or self._settings.learned_train_interval_s > 0

    @property
    def _precomputing(self) -> bool:
        return self._settings.precompute_users > 0

    def _warm(self, user_id: str) -> None:
        """Build a user's profile and default feed candidates ahead of their next request."""
        if self._users.is_warm(user_id):
            return  # a request (or an earlier warming) was first
        now = self._clock()
        version = self._users.version(user_id)
        # Its text-tower work (recent searches) queues behind people's searches.
        with embed_scope(Priority.BULK):
            profile = self._profiles.build(user_id, self._engagement, now)
        entry = UserEntry(profile, time.monotonic())
        request = RecRequest(user_id=user_id)
        ctx = self._inputs(request, entry.profile, self._state, now).ctx
        self._nearest(entry, ctx)
        self._catalogue(entry, ctx)
        self._snapshot_sources(entry, ctx)
        if self._learned is not None and ctx.state.collab.n_items:
            self._collab_work(entry, request, ctx.state, now, keep=True)
        self._users.put(user_id, entry, version)

    def _invalidate(self, user_id: str) -> None:
        """Drop the user's cached work; a user who had some is warmed again shortly."""
        if self._users.invalidate(user_id) and self._precomputing:
            self._precompute.schedule([user_id])

    def _text_queries(self, profile: UserProfile, request: RecRequest) -> list[tuple[str, str]]:
        """(kind, text) of the text query vectors, in the order ``_queries`` builds them."""
        texts = [(t.kind, t.text) for t in profile.interests]
        if request.steering_text.strip():
            texts.append((STEERING, request.steering_text.strip()))
        return texts

    def _queries(
        self, request: RecRequest, profile: UserProfile
    ) -> tuple[list[src.QueryVector], np.ndarray | None]:
        queries = [
            src.QueryVector("cluster", str(i), c.importance, c.vector)
            for i, c in enumerate(profile.clusters)
        ]
        centroid = profile.centroid
        if centroid is not None:  # half a content budget for what the likes share
            queries.append(src.QueryVector("cluster", str(len(profile.clusters)), 0.5, centroid))
        queries += [src.QueryVector(t.kind, t.text, t.weight, t.vector) for t in profile.interests]
        steering = request.steering_text.strip()
        if steering:
            vector = self._texts.embed([steering], cache=False)[0]  # request-scoped text
            queries.append(src.QueryVector(STEERING, steering, 1.0, vector))
        seed_vector = None
        if request.seed_media_id:
            seed = self._items.get([request.seed_media_id]).get(request.seed_media_id)
            if seed is None:
                raise NotFoundError(f"seed_media_id {request.seed_media_id!r} is not indexed")
            seed_vector = seed.vector
            queries.append(src.QueryVector("seed", request.seed_media_id, 1.0, seed_vector))
        return queries, seed_vector

    def _user_impressions(self, profile: UserProfile, state: DerivedState) -> dict[str, int]:
        keys = dict(self._live.served_keys(state, profile.user_id))
        for media_id, more in profile.summary.impressions.items():
            keys[media_id] = keys.get(media_id, frozenset()) | more
        return {m: len(v) for m, v in keys.items()}

    def _excluded(
        self, request: RecRequest, profile: UserProfile, impressions: Mapping[str, int]
    ) -> set[str]:
        excluded: set[str] = set()
        if request.exclude_seen:
            excluded |= profile.summary.seen
        engaged = profile.summary.seen | set(profile.summary.positives)
        excluded |= {
            m for m, n in impressions.items()
            if n >= self._settings.max_impressions and m not in engaged
        }
        if request.seed_media_id:
            excluded.add(request.seed_media_id)
        return excluded

    def _candidates(
        self, proposals: Mapping[str, Mapping[str, float]], sf: SearchFilter, excluded: set[str]
    ) -> Candidates:
        ids = [m for m in proposals if m not in excluded] if excluded else list(proposals)
        info_of = self._items.get(ids).get  # absent: deleted since it was proposed
        # Plain comprehensions and filter(): these run for every candidate of a request.
        infos = [info for m in ids if (info := info_of(m)) is not None]
        kept = list(filter(item_filter(sf), infos))
        return Candidates.build(kept, [proposals[i.media_id] for i in kept], self._texts.dim)

    def _check_k(self, k: int) -> int:
        s = self._settings
        if k == 0:
            return s.default_k
        if k < 0:
            raise InvalidArgumentError("k", f"k must be positive, got {k}")
        if k > s.max_k:
            raise InvalidArgumentError("k", f"k = {k} is over the limit of {s.max_k}")
        return k

    def _rng(self, request: RecRequest) -> np.random.Generator:
        """The request's exploration draws: the next child of the recommender's seed, or for a
        dry run a stream of its own (from the seed and the user), which leaves the sequence of
        later requests' draws as it was."""
        if request.dry_run:
            key = zlib.crc32(request.user_id.encode("utf-8"))
            return np.random.default_rng(
                np.random.SeedSequence(self._seeds.entropy, spawn_key=(1 << 32, key))
            )
        with self._rng_lock:
            child = self._seeds.spawn(1)[0]
        return np.random.default_rng(child)

    def _rebuild(self) -> None:
        started = time.monotonic()
        # The snapshot's time, read before the handover: it reads impressions served up to it,
        # and pages served after the handover stay counted live.
        now = self._clock()
        # The live counts handed over here stop counting for the new snapshot when the rebuild
        # finishes, so the impressions behind them must be in the store before it reads it:
        # flushed after the handover, which pages served meanwhile cannot slip past.
        self._live.start_rebuild()
        self._served_log.flush()
        try:
            state = build_state(
                self._engagement, self._store, self._settings, now,
                with_collab=self._wants_collab,
            )  # fmt: skip
        except BaseException:
            self._live.finish_rebuild(False, started)
            raise
        # Before the swap: a request still on the old snapshot keeps the counts it lacks, and
        # one on the new snapshot never adds the taken-over ones to it again.
        self._live.finish_rebuild(True, started, replaced=self._state)
        self._state = state
        self._state_version += 1
        self._rebuild_seconds.observe(time.monotonic() - started)
        trimmed = self._engagement.trim_served(self._clock() - self._settings.served_window_s)
        if trimmed:
            logger.info("deleted %d served impressions older than the served window", trimmed)
        if self._precomputing:
            cold = [
                u for u in state.active_users[: self._settings.precompute_users]
                if not self._users.is_warm(u)
            ]  # fmt: skip
            self._precompute.schedule(cold, delay=False)


@dataclass(frozen=True)
class _Scored:
    """One request's scored candidates and what its ranking goes on to need."""

    cands: Candidates
    table: FeatureTable
    scores: np.ndarray
    contrib: np.ndarray
    profile: UserProfile
    queries: list[src.QueryVector]
    seed_vector: np.ndarray | None
    ranker: RankerModel
    learned: LearnedRanker | PopularityRanker | None = None  # when set, it scored ...
    learned_x: np.ndarray | None = None  # ... from these features


@dataclass(frozen=True)
class _Inputs:
    """What one request's sources and features start from."""

    ctx: src.SourceContext
    queries: list[src.QueryVector]
    seed_vector: np.ndarray | None
    user_impressions: dict[str, int]
    excluded: set[str]


def _explainer(
    model: LearnedRanker | PopularityRanker, x: np.ndarray
) -> Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]]:
    """Positions -> (their path attributions summed into blend columns, base values)."""

    def explain(rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        learned, base = model.contributions(x[rows])
        return reported_contributions(learned), base

    return explain


def learned_history(profile: UserProfile, collab: CollabModel, now: float) -> UserHistory:
    """The user's history in the core's items: positives newest first, everything seen."""
    summary = profile.summary
    positives = sorted(summary.positive_at.items(), key=lambda kv: (-kv[1], kv[0]))
    seen = list(zip(summary.recent_seen, summary.recent_seen_at, strict=True))
    return collab.history(positives, seen, now)


def with_collab_candidates(
    proposals: Mapping[str, Mapping[str, float]], collab: CollabModel, candidates: np.ndarray
) -> dict[str, Mapping[str, float]]:
    """``proposals`` plus the collaborative core's ``candidates`` (item indices, proposed as
    co-engagement); ``proposals`` and its mappings are left as they were."""
    out: dict[str, Mapping[str, float]] = dict(proposals)
    for i in candidates.tolist():
        media_id = collab.item_ids[i]
        found = out.get(media_id, {})
        if src.COENGAGEMENT not in found:
            out[media_id] = {**found, src.COENGAGEMENT: 0.0}
    return out


def learned_features(
    state: DerivedState,
    history: UserHistory,
    scores: UserScores,
    cands: Candidates,
    rows: np.ndarray,
    content_signals: bool,
) -> np.ndarray:
    """The learned ranker's features of the candidates, whose rows in ``state`` are ``rows``
    (``content_signals`` off: the content columns read 0, as for a user with no liked
    vectors)."""
    collab = state.collab
    liked = state.collab_vectors[history.positives] if content_signals else np.zeros((0, 0))
    items = state.collab_rows(rows)  # the candidates' indices in the core
    return feature_matrix(collab, history, items, cands.visual, liked, scores)


def _is_default(request: RecRequest) -> bool:
    """A surface's default request: what a user's cached candidates were gathered for."""
    return (
        not request.seed_media_id and not request.steering_text.strip()
        and request.filter == RecFilter() and request.exclude_seen
    )  # fmt: skip


def _kept_snapshot(
    entry: UserEntry | None, request: RecRequest, state: DerivedState
) -> SnapshotWork | None:
    """The entry's snapshot work when it applies: a default request on the snapshot it was
    computed from."""
    work = entry.snapshot if entry is not None else None
    if work is None or not work.is_for(state) or not _is_default(request):
        return None
    return work


def _dup_groups(cands: Candidates) -> list[str]:
    """Items indexed as near-duplicates of one root collapse with it (and with each other)."""
    return [item.duplicate_root for item in cands.items]


def _empty_profile(user_id: str, now: float) -> UserProfile:
    from mediarec.server.recommend.profile import EngagementSummary

    return UserProfile(
        user_id=user_id, summary=EngagementSummary(), clusters=(), interests=(),
        follows=frozenset(), negative_vectors=np.zeros((0, 0)), negative_weights=np.zeros(0),
        positive_vectors={}, liked_topics={}, liked_tags={}, engaged_creators=frozenset(),
        confidence=0.0, taste=None, built_at=now,
    )

