"""Every knob of the recommender, with its default. docs/recommend.md explains each group.

``RecommendSettings`` is a plain frozen dataclass so the logic does not depend on the config
layer; server/config.py exposes the fields as ``recommend.*`` keys and builds one in ``main()``.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

from mediarec.server.recommend.collab import CollabSettings

DAY_S = 86_400.0


@dataclass(frozen=True)
class RecommendSettings:
    # -- responses and paging ---------------------------------------------------------------
    default_k: int = 20  # items per page when a request asks for k = 0
    max_k: int = 200  # largest page a request may ask for
    rank_depth: int = 100  # items ranked once per request_id; later pages slice this ranking
    page_cache_ttl_s: float = 600.0  # how long a cursor stays valid
    page_cache_max_entries: int = 5_000  # rankings kept for paging (least recent evicted)
    page_cache_max_mb: int = 256  # and at most this much memory (0: entries alone bound it)

    # -- what counts as engagement ------------------------------------------------------------
    long_view_watch_fraction: float = 0.8  # a video view this complete counts as positive
    long_view_dwell_ms: int = 8_000  # a view this long counts as positive
    max_impressions: int = 3  # impressions without engagement before an item is dropped
    # Served impressions older than this are forgotten: fatigue counts within it, and rows
    # beyond it are deleted at each rebuild, so neither memory nor disk grows without bound.
    served_window_s: float = 30 * DAY_S

    # -- the user profile ---------------------------------------------------------------------
    max_clusters: int = 5  # interest clusters (taste vectors) per user
    # Clusters merge while their centroids are more alike than the user's liked posts are on
    # average, by this share of the way to identical (adapts to the embedding space).
    cluster_merge_margin: float = 0.15
    profile_max_items: int = 100  # most important positive items a profile clusters
    positive_half_life_s: float = 60 * DAY_S  # weight of a like halves after this long
    negative_half_life_s: float = 14 * DAY_S  # skip/hide push-down halves after this long
    search_half_life_s: float = 2 * DAY_S  # search queries and hashtags fade fast
    interest_half_life_s: float = 180 * DAY_S  # declared interests fade slowly
    affinity_half_life_s: float = 30 * DAY_S  # creator affinity (visits, engagement)
    user_prior: float = 5.0  # user_confidence = positives / (positives + user_prior)
    item_prior: float = 10.0  # item_confidence = engagements / (engagements + item_prior)
    max_interests: int = 20  # declared interests kept per SetInterests text
    # A user's cached profile and nearest-neighbour candidates (usercache.py) are rebuilt
    # after their events, and at least this often; past half of it a request that uses them
    # also queues a rebuild in the background.
    profile_cache_ttl_s: float = 600.0
    user_cache_entries: int = 10_000  # users whose profile and candidates are kept
    user_cache_max_mb: int = 512  # and at most this much memory (0: entries alone bound it)
    # After each derived-state rebuild, the most recently active users not yet cached are
    # warmed in the background, so their next request finds its profile and candidates.
    precompute_users: int = 1_000
    precompute_delay_s: float = 1.0  # a user's events are this long settled before re-warming

    # -- candidate sources: how many candidates each proposes -------------------------------
    content_candidates: int = 120
    # False: the user's taste vectors search nothing (content source, fresh by taste) and the
    # content feature weighs 0, to measure what content adds (bench-real's content_off).
    content_signals: bool = True
    coengagement_candidates: int = 150
    following_candidates: int = 60
    social_candidates: int = 40
    trending_candidates: int = 80
    cohort_candidates: int = 80
    fresh_candidates: int = 60
    interest_candidates: int = 80
    cold_candidates: int = 60
    # HNSW search beam of the candidate searches (the store's own default serves SearchMedia):
    # candidates only need to be good, not the exact nearest, and the beam is most of the
    # search's cost at 100k posts (docs/benchmarks.md).
    candidate_hnsw_ef: int = 64
    following_window_s: float = 14 * DAY_S  # "recent posts" of followed creators
    fresh_window_s: float = 3 * DAY_S  # posts younger than this are "fresh"
    fresh_queries: int = 4  # the user's strongest taste and interest vectors that look for them
    freshness_half_life_s: float = 1 * DAY_S  # the freshness feature halves after this long
    # Items nobody has engaged with yet that the cold source searches, the newest first (kept
    # in memory: a filtered store search for "no events" would need a payload write per event).
    cold_pool_size: int = 4096
    # Ridge penalty of the regression from content to engagement that ranks cold items by
    # appeal (chosen on bench-real's validation split).
    cold_engagement_ridge: float = 10.0

    # -- derived state: co-engagement, trending, cohorts ---------------------------------------
    coeng_neighbours: int = 200  # neighbours kept per item
    coeng_shrinkage: float = 2.0  # similarity shrinkage: few co-engagements count for less
    coeng_alpha: float = 0.5  # 0.5: cosine; lower discounts popular neighbours more
    coeng_max_user_items: int = 200  # most recent positives per user in the co-occurrence count
    # Co-engagements fade with this half-life, so an item's neighbours are what its fans
    # engage with now (chosen on the quality benchmark's validation window; 0: never fade).
    coeng_half_life_s: float = 5 * DAY_S
    trending_half_life_s: float = 2 * DAY_S
    trending_top_n: int = 300  # items kept per trending key (global, context, hashtag)
    cohorts: int = 16  # taste cohorts users are clustered into
    cohort_top_n: int = 300  # favourites kept per cohort
    cohort_half_life_s: float = 14 * DAY_S
    social_recent_per_user: int = 50  # recent positives remembered per user for "liked by"

    # -- exploration ----------------------------------------------------------------------------
    explore_fraction: float = 0.1  # share of each page reserved for exploration
    explore_max_slots: int = 2  # at most this many exploration slots per page
    explore_min_k: int = 5  # pages smaller than this get no exploration slot
    explore_max_impressions: int = 200  # items shown more often than this are not explored
    # Weight of appeal (coldstart.py) against the content match in the exploration prior.
    explore_appeal_weight: float = 0.75
    explore_max_engagements: int = 0  # items with more engagements than this are not explored
    explore_pool_size: int = 30  # best-prior candidates the bandit samples from
    # Pseudo-impressions of the content-based prior: far more than explore_max_impressions, so
    # the slots go to what the content predicts best, and an item that draws nothing leaves
    # the pool at the impression cap rather than through its posterior.
    explore_prior_strength: float = 2000.0
    explore_prior_base: float = 0.02  # prior engagement rate of an unmatched item
    explore_prior_gain: float = 0.2  # added to the prior rate for a perfect content match
    propensity_samples: int = 400  # policy re-samples that estimate a propensity
    explore_seed: int = 0  # seed of the bandit's draws; 0: a fresh one at each start

    # -- diversity ------------------------------------------------------------------------------
    mmr_lambda: float = 0.9  # relevance vs novelty for a well-known user (1 = no diversity)
    mmr_lambda_cold: float = 0.9  # the same for a user with no history
    # The same on the learned path (the model, or popularity for a user with no positive
    # yet): the model is trained for the accuracy of the whole list, and diversity on top of
    # it costs that accuracy at every history length.
    learned_mmr_lambda: float = 1.0
    creator_cap: int = 2  # items per creator in each page
    # Items this similar collapse into one; 0: the model's registry value (else 0.95).
    near_duplicate_cosine: float = 0.0

    # -- in-memory item cache (vectors and ranking fields of recently seen candidates) ------------
    item_cache_entries: int = 200_000
    item_cache_max_mb: int = 512  # and at most this much memory (0: entries alone bound it)
    item_cache_ttl_s: float = 300.0
    # Text vectors of searches, interests and steering texts, by exact text.
    text_cache_entries: int = 4096
    text_cache_max_mb: int = 64  # and at most this much memory (0: entries alone bound it)

    # -- the trained ranker ---------------------------------------------------------------------
    ranker_path: str = ""  # JSON model from `mediarec train-ranker`; empty: default weights

    # -- the learned ranker and its collaborative core (collab.py, ltr_*.py) -----------------------
    learned_ranker_path: str = ""  # LightGBM model file; when it exists it ranks, else the blend
    learned_train_interval_s: float = 0.0  # retrain and swap in the model this often; 0: never
    collab_candidates: int = 100  # candidates from each collaborative source per request
    collab_als_factors: int = 256
    collab_als_regularization: float = 10.0
    collab_als_alpha: float = 1.0
    collab_als_iterations: int = 30
    collab_knn_neighbours: int = 100
    collab_knn_exponent: float = 2.0
    collab_rp3_beta: float = 0.5

    # -- background refresh of derived state -----------------------------------------------------
    refresh_min_events: int = 200  # new events that trigger a background rebuild
    refresh_min_interval_s: float = 30.0  # at most one rebuild per this many seconds
    refresh_max_interval_s: float = 900.0  # ... while events arrive or pages are served
    refresh_max_pending_events: int = 10_000  # this many new events rebuild at once

    def collab(self) -> CollabSettings:
        return CollabSettings(
            als_factors=self.collab_als_factors,
            als_regularization=self.collab_als_regularization,
            als_alpha=self.collab_als_alpha,
            als_iterations=self.collab_als_iterations,
            knn_neighbours=self.collab_knn_neighbours,
            knn_exponent=self.collab_knn_exponent,
            rp3_beta=self.collab_rp3_beta,
            rp3_neighbours=self.collab_knn_neighbours,
        )

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if isinstance(value, (int, float)) and not isinstance(value, bool) and value < 0:
                raise ValueError(f"recommend.{f.name} must be >= 0, got {value}")
        for name in ("mmr_lambda", "mmr_lambda_cold", "learned_mmr_lambda", "explore_fraction",
                     "near_duplicate_cosine", "cluster_merge_margin", "long_view_watch_fraction"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"recommend.{name} must be in [0, 1], got {getattr(self, name)}")
        for name in ("default_k", "max_k", "rank_depth", "max_clusters", "max_impressions",
                     "user_prior", "item_prior", "propensity_samples"):
            if getattr(self, name) <= 0:
                raise ValueError(f"recommend.{name} must be > 0, got {getattr(self, name)}")
        if self.default_k > self.max_k:
            raise ValueError(
                f"recommend.default_k ({self.default_k}) is over recommend.max_k ({self.max_k})"
            )
