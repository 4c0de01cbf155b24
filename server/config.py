"""Layered, validated configuration: defaults, then a TOML file, then MEDIAREC_* env, then flags.

Every key is declared once, as a field of a frozen section dataclass with its default, help text
and limits; the TOML keys, environment variables, command-line flags, the reference table in
docs/configuration.md and docs/mediarec.example.toml are all derived from those declarations.
Settings are built in ``main()`` by ``load_settings`` (or ``settings_from_args``), never at import.

    python -m mediarec.server.config --reference   # print the Markdown reference table
    python -m mediarec.server.config --example     # print the commented example TOML
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import re
import sys
import textwrap
import tomllib
import typing
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mediarec.encoders.options import PRECISIONS
from mediarec.server.recommend.learned import LEARNED_RANKER_FILE
from mediarec.server.recommend.settings import RecommendSettings
from mediarec.server.remembered_model import RememberedModelError, remembered_model

ENV_PREFIX = "MEDIAREC_"
CONFIG_ENV = "MEDIAREC_CONFIG"
DEFAULT_MODEL_ID = "openclip:ViT-B-32/laion2b_s34b_b79k"
MODEL_KEY = "model.id"
TOPIC_VOCABULARIES = ("auto", "everyday", "demo-world")
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
LOG_FORMATS = ("text", "json")
_DEVICE_PATTERN = re.compile(r"^(cpu|mps|cuda(:\d+)?)$")
MiB = 1 << 20


class ConfigError(ValueError):
    """A configuration value is missing, malformed or out of range; ``key`` names it."""

    def __init__(self, key: str, message: str) -> None:
        super().__init__(f"{key}: {message}")
        self.key = key


def setting(
    default: Any,
    name: str,
    help: str,
    *,
    minimum: float | None = None,
    maximum: float | None = None,
    choices: Sequence[str] | None = None,
    flag: bool = True,
    secret: bool = False,
) -> Any:
    """Declare one key. ``name`` gives the flag (``--name``) and env var (``MEDIAREC_NAME``).

    Secrets get no flag (a command line is visible to every user of the machine) and are
    hidden from ``repr``.
    """
    metadata = {
        "name": name,
        "help": help,
        "minimum": minimum,
        "maximum": maximum,
        "choices": tuple(choices) if choices else None,
        "flag": flag and not secret,
        "secret": secret,
    }
    return field(default=default, metadata=metadata, repr=not secret)


@dataclass(frozen=True)
class ServerSettings:
    host: str = setting("127.0.0.1", "host", "Address to listen on; 0.0.0.0 listens on all.")
    port: int = setting(
        50051, "port", "TCP port to listen on; 0 picks a free port.", minimum=0, maximum=65535
    )
    workers: int = setting(
        8, "workers", "Threads that serve RPCs concurrently.", minimum=1, maximum=256
    )
    http_port: int = setting(
        -1,
        "http_port",
        "The operators' HTTP port: /metrics in Prometheus' text format, and the web "
        "gallery; -1 turns it off, 0 picks a free port.",
        minimum=-1,
        maximum=65535,
    )
    http_host: str = setting(
        "127.0.0.1",
        "http_host",
        "Address of the operators' HTTP port; metrics are for operators, so localhost unless "
        "a scraper or the gallery's users elsewhere need it.",
    )
    blas_threads: int = setting(
        1,
        "blas_threads",
        "Threads numpy's BLAS may use in the server process; 0 keeps the library default. "
        "Per-request matrix products are small, and idle BLAS threads spin against the RPC "
        "threads and the model.",
        minimum=0,
        maximum=256,
    )
    full_gc_interval_s: float = setting(
        300.0,
        "full_gc_interval_s",
        "Seconds between full garbage collections in `mediarec serve` (at least 1); 0 keeps "
        "CPython's default (a full collection whenever the old generation grew by a quarter, "
        "which with warm caches falls into every hundredth or so Recommend call).",
        minimum=0.0,
        maximum=86_400.0,
    )
    max_message_bytes: int = setting(
        4 * MiB,
        "max_message_bytes",
        "Largest request message: bounds IndexMedia inline bytes and each upload chunk.",
        minimum=64 * 1024,
        maximum=1 << 30,
    )
    max_upload_bytes: int = setting(
        512 * MiB,
        "max_upload_bytes",
        "Largest file one UploadMedia stream may carry.",
        minimum=1,
        maximum=1 << 40,
    )
    max_concurrent_uploads: int = setting(
        6,
        "max_concurrent_uploads",
        "Streaming calls (UploadMedia, ImportEvents, ListMedia) in flight at once; more are "
        "refused with RESOURCE_EXHAUSTED. At most workers - 1 apply, so other calls always find "
        "a thread.",
        minimum=1,
        maximum=255,
    )
    # `mediarec index --server` keeps 4 uploads in flight.
    max_uploads_per_key: int = setting(
        4,
        "max_uploads_per_key",
        "Streaming calls one API key may have in flight at once (all callers share one "
        "count when no keys are configured).",
        minimum=1,
        maximum=255,
    )
    cpu_workers: int = setting(
        0,
        "cpu_workers",
        "Requests that may decode photos or video frames at once (IndexMedia, UploadMedia, "
        "image searches); 0: one fewer than the machine's cores, at least 1. Up to workers - "
        "cpu_workers - 2 more wait for a turn, and the rest are refused with "
        "RESOURCE_EXHAUSTED, so cheap calls keep a core and a thread.",
        minimum=0,
        maximum=256,
    )
    stream_idle_timeout_s: float = setting(
        30.0,
        "stream_idle_timeout_s",
        "A client stream that sends nothing for this long ends with DEADLINE_EXCEEDED.",
        minimum=0.1,
        maximum=3600,
    )
    stream_total_timeout_s: float = setting(
        1800.0,
        "stream_total_timeout_s",
        "A client stream that takes longer than this in all ends with DEADLINE_EXCEEDED.",
        minimum=1,
        maximum=86_400,
    )
    shutdown_grace_s: float = setting(
        10.0,
        "shutdown_grace_s",
        "Seconds in-flight RPCs get to finish after SIGTERM/SIGINT.",
        minimum=0,
        maximum=600,
    )
    api_keys: tuple[str, ...] = setting(
        (),
        "api_keys",
        "API keys accepted as 'authorization: Bearer <key>'; empty disables auth. "
        "Env: comma-separated.",
        secret=True,
    )
    admin_api_keys: tuple[str, ...] = setting(
        (),
        "admin_api_keys",
        "Keys for AdminService (Refresh), sent like api_keys; they are accepted by every other "
        "RPC too. With keys configured and none of these, AdminService refuses every caller. "
        "Env: comma-separated.",
        secret=True,
    )
    tls_cert: Path | None = setting(
        None, "tls_cert", "PEM certificate chain; with tls_key, serve TLS. Empty: plaintext."
    )
    tls_key: Path | None = setting(None, "tls_key", "PEM private key of tls_cert.")


@dataclass(frozen=True)
class StorageSettings:
    data_dir: Path = setting(
        Path("var/mediarec"), "data_dir", "Folder of the embedded stores (Qdrant Edge, SQLite)."
    )
    qdrant_url: str = setting(
        "",
        "qdrant_url",
        "Qdrant server or cluster URL (http/https); empty uses embedded Qdrant Edge.",
    )
    qdrant_api_key: str = setting(
        "", "qdrant_api_key", "API key of the Qdrant server; empty sends none.", secret=True
    )
    optimize_after_points: int = setting(
        10_000,
        "optimize_after_points",
        "Unindexed points that trigger a background HNSW build of the embedded store.",
        minimum=1,
    )
    min_free_mb: int = setting(
        256,
        "min_free_mb",
        "Writes (indexing, events, interests) are refused with RESOURCE_EXHAUSTED while the "
        "data dir's file system has less than this many MB free; 0 turns the check off. The "
        "reserve keeps the embedded stores from running out of room mid-write.",
        minimum=0,
    )


@dataclass(frozen=True)
class ModelSettings:
    id: str = setting(
        DEFAULT_MODEL_ID,
        "model_id",
        "Encoder model identifier, e.g. 'mediarec-demo' or 'openclip:ARCH/TAG'. Unset, the "
        "model recorded in the data dir (DATA_DIR/model.json) is used, then this default.",
    )
    device: str = setting("cpu", "device", "Torch device: cpu, cuda, cuda:N or mps.")
    torch_threads: int = setting(
        0, "torch_threads", "Torch intra-op threads; 0 keeps torch's default.", minimum=0
    )
    batch_size: int = setting(
        32, "batch_size", "Images or texts per encoder forward pass.", minimum=1, maximum=4096
    )
    precision: str = setting(
        "fp32",
        "precision",
        "Weights precision: fp32; bf16 (casts the weights); or int8 (open_clip image tower run "
        "by ONNX Runtime with dynamic int8 quantization, built once into DATA_DIR/onnx; texts "
        "stay fp32; needs the 'int8' extra).",
        choices=PRECISIONS,
    )
    hf_cache_dir: Path | None = setting(
        None, "hf_cache_dir", "Hugging Face cache folder; empty uses HF_HOME's default."
    )


@dataclass(frozen=True)
class BatchingSettings:
    enabled: bool = setting(
        True,
        "batching",
        "Gather concurrent requests' encoder work (queries, interests, indexing) into shared "
        "forward passes; search and interests run ahead of indexing.",
    )
    max_items: int = setting(
        32,
        "batching_max_items",
        "Most texts or images one gathered forward pass holds; a larger request is split into "
        "passes of at most this many.",
        minimum=1,
        maximum=4096,
    )
    max_wait_ms: float = setting(
        3.0,
        "batching_max_wait_ms",
        "Longest wait for more work after the first request of a batch arrives.",
        minimum=0,
        maximum=1000,
    )


@dataclass(frozen=True)
class MediaSettings:
    video_frames: int = setting(
        8, "video_frames", "Frames sampled (and stored) per video.", minimum=1, maximum=256
    )
    max_image_pixels: int = setting(
        80_000_000,
        "max_image_pixels",
        "Largest image (width x height) decoded; larger is RESOURCE_EXHAUSTED.",
        minimum=1,
    )
    max_caption_chars: int = setting(
        2200, "max_caption_chars", "Longest caption in characters.", minimum=1
    )
    max_tags: int = setting(30, "max_tags", "Most tags on one item.", minimum=0)
    near_duplicate_cosine: float = setting(
        0.0,
        "near_duplicate_cosine",
        "Visual cosine at or above which a new item names an existing one as near_duplicate_of; "
        "0 uses the model's own value from the registry (0.985 for mediarec-demo), else 0.95.",
        minimum=0.0,
        maximum=1.0,
    )


@dataclass(frozen=True)
class TopicsSettings:
    vocabulary: str = setting(
        "auto",
        "topics",
        "Topic vocabulary: auto (the one the model's registry entry declares fits its "
        "pictures: everyday for real CLIP models, none for mediarec-demo, so it labels "
        "nothing), everyday, demo-world, or a text file with one topic per line.",
    )
    top_k: int = setting(
        3, "topics_top_k", "Topics stored and returned per item.", minimum=0, maximum=100
    )


@dataclass(frozen=True)
class SearchSettings:
    default_k: int = setting(
        10, "search_default_k", "Results returned when a search asks for k = 0.", minimum=1
    )
    max_k: int = setting(1000, "search_max_k", "Largest k a search accepts.", minimum=1)
    caption_weight: float = setting(
        1.0,
        "search_caption_weight",
        "Weight of the caption ranking against the picture ranking (1) when a hybrid text "
        "search fuses them.",
        minimum=0.01,
        maximum=100.0,
    )
    fusion_rrf_k: int = setting(
        2,
        "search_fusion_rrf_k",
        "The k of reciprocal-rank fusion in hybrid text search: larger flattens the gap "
        "between adjacent ranks (Qdrant's default is 2).",
        minimum=1,
        maximum=1000,
    )
    fusion_depth: int = setting(
        50,
        "search_fusion_depth",
        "Candidates each ranking contributes to a hybrid text search (at least k).",
        minimum=1,
        maximum=10000,
    )


def _recommend_default(name: str) -> Any:
    """The recommender's own default for ``name``, so the two declarations cannot drift."""
    return next(f.default for f in dataclasses.fields(RecommendSettings) if f.name == name)


@dataclass(frozen=True)
class RecommendConfig:
    """The operator-facing recommendation knobs; each attribute that names a field of
    ``mediarec.server.recommend.settings.RecommendSettings`` overrides it (see
    ``recommend_settings``).
    """

    default_k: int = setting(
        _recommend_default("default_k"),
        "rec_default_k",
        "Items per Recommend page when a request asks for k = 0.",
        minimum=1,
    )
    max_k: int = setting(
        _recommend_default("max_k"),
        "rec_max_k",
        "Largest k Recommend and SimilarMedia accept.",
        minimum=1,
        maximum=10_000,
    )
    max_events_per_batch: int = setting(
        1000,
        "max_events_per_batch",
        "Most events one LogEvents call may carry; more is RESOURCE_EXHAUSTED.",
        minimum=1,
        maximum=100_000,
    )
    rank_depth: int = setting(
        _recommend_default("rank_depth"),
        "rec_rank_depth",
        "Items ranked once per Recommend request; later pages of its cursor slice this ranking.",
        minimum=1,
    )
    page_cache_ttl_s: float = setting(
        _recommend_default("page_cache_ttl_s"),
        "rec_page_cache_ttl_s",
        "Seconds a Recommend page cursor stays valid.",
        minimum=1,
    )
    max_impressions: int = setting(
        _recommend_default("max_impressions"),
        "max_impressions",
        "Impressions without engagement after which an item is no longer shown to that user.",
        minimum=1,
    )
    served_window_s: float = setting(
        _recommend_default("served_window_s"),
        "served_window_s",
        "Seconds served impressions are kept: fatigue counts within this window, and older "
        "rows are deleted at each rebuild (training sees only this window). Memory holds the "
        "window's impressions (a few hundred bytes each): lower it for heavy traffic.",
        minimum=3600,
    )
    max_clusters: int = setting(
        _recommend_default("max_clusters"),
        "max_interest_clusters",
        "Interest clusters (taste vectors) built per user from positively engaged media.",
        minimum=1,
        maximum=64,
    )
    positive_half_life_s: float = setting(
        _recommend_default("positive_half_life_s"),
        "positive_half_life_s",
        "Seconds after which the weight of a positive engagement (like, save, long view) halves.",
        minimum=1,
    )
    negative_half_life_s: float = setting(
        _recommend_default("negative_half_life_s"),
        "negative_half_life_s",
        "Seconds after which the push-down of a skip or hide halves.",
        minimum=1,
    )
    search_half_life_s: float = setting(
        _recommend_default("search_half_life_s"),
        "search_half_life_s",
        "Seconds after which the interest from a search query or hashtag halves.",
        minimum=1,
    )
    coeng_half_life_s: float = setting(
        _recommend_default("coeng_half_life_s"),
        "coeng_half_life_s",
        "Seconds after which an engagement's weight in the co-engagement (item-kNN) counts "
        "halves; 0: never fade.",
        minimum=0,
    )
    coeng_shrinkage: float = setting(
        _recommend_default("coeng_shrinkage"),
        "coeng_shrinkage",
        "Co-engagement similarity shrinkage: pairs seen together only a few times count less.",
        minimum=0,
    )
    trending_half_life_s: float = setting(
        _recommend_default("trending_half_life_s"),
        "trending_half_life_s",
        "Seconds after which an engagement's weight in trending counts halves.",
        minimum=1,
    )
    fresh_window_s: float = setting(
        _recommend_default("fresh_window_s"),
        "fresh_window_s",
        "Posts younger than this many seconds are fresh: candidates for exploration.",
        minimum=0,
    )
    explore_fraction: float = setting(
        _recommend_default("explore_fraction"),
        "explore_fraction",
        "Exploration budget: share of each page the bandit may give to new, low-exposure items.",
        minimum=0.0,
        maximum=1.0,
    )
    explore_max_slots: int = setting(
        _recommend_default("explore_max_slots"),
        "explore_max_slots",
        "Most exploration slots in one page, whatever explore_fraction gives.",
        minimum=0,
    )
    explore_seed: int = setting(
        _recommend_default("explore_seed"),
        "explore_seed",
        "Seed of the bandit's random draws; 0 draws a fresh seed at each start, any other "
        "value makes the exploration draws reproducible across starts (replays, tests).",
        minimum=0,
    )
    mmr_lambda: float = setting(
        _recommend_default("mmr_lambda"),
        "mmr_lambda",
        "MMR relevance-vs-novelty weight for a well-known user (1 = no diversity).",
        minimum=0.0,
        maximum=1.0,
    )
    mmr_lambda_cold: float = setting(
        _recommend_default("mmr_lambda_cold"),
        "mmr_lambda_cold",
        "MMR relevance-vs-novelty weight for a user with no history (lower = more diverse).",
        minimum=0.0,
        maximum=1.0,
    )
    learned_mmr_lambda: float = setting(
        _recommend_default("learned_mmr_lambda"),
        "learned_mmr_lambda",
        "MMR relevance-vs-novelty weight, for every user, on the learned path (the model, or "
        "popularity for a user with no positive yet); 1 = no diversity: on real data any "
        "lower value cost accuracy.",
        minimum=0.0,
        maximum=1.0,
    )
    content_signals: bool = setting(
        _recommend_default("content_signals"),
        "content_signals",
        "false: taste vectors search nothing (the content source, fresh posts by taste) and "
        "the content feature weighs 0; for measuring what content adds.",
    )
    creator_cap: int = setting(
        _recommend_default("creator_cap"),
        "creator_cap",
        "Most items of one creator in one page.",
        minimum=1,
    )
    near_duplicate_cosine: float = setting(
        _recommend_default("near_duplicate_cosine"),
        "rec_near_duplicate_cosine",
        "Cosine at or above which recommended items collapse into one; 0 uses the model's own "
        "value from the registry (0.985 for mediarec-demo), else 0.95.",
        minimum=0.0,
        maximum=1.0,
    )
    cohorts: int = setting(
        _recommend_default("cohorts"),
        "cohorts",
        "Taste cohorts users are clustered into for 'popular in your cohort'.",
        minimum=1,
    )
    refresh_min_events: int = setting(
        _recommend_default("refresh_min_events"),
        "refresh_min_events",
        "New events that trigger a background rebuild of co-engagement, trending and cohorts.",
        minimum=1,
    )
    refresh_min_interval_s: float = setting(
        _recommend_default("refresh_min_interval_s"),
        "refresh_min_interval_s",
        "At most one background rebuild per this many seconds; events that arrive inside it "
        "are rebuilt when it ends.",
        minimum=0,
    )
    refresh_max_pending_events: int = setting(
        _recommend_default("refresh_max_pending_events"),
        "refresh_max_pending_events",
        "New events that start a rebuild at once, however recent the last one.",
        minimum=1,
    )
    import_chunk_events: int = setting(
        10_000,
        "import_chunk_events",
        "Most events one ImportEvents message may carry; more is RESOURCE_EXHAUSTED.",
        minimum=1,
        maximum=1_000_000,
    )
    import_max_errors: int = setting(
        1000,
        "import_max_errors",
        "Rejected rows an ImportEvents response lists (the counts cover all of them).",
        minimum=0,
        maximum=1_000_000,
    )
    events_max_future_skew_s: float = setting(
        86_400.0,
        "events_max_future_skew_s",
        "How far in the future of the server's clock an event's timestamp may lie (clock "
        "skew); events from 1970 on are accepted.",
        minimum=0,
        maximum=365 * 86_400.0,
    )
    precompute_users: int = setting(
        _recommend_default("precompute_users"),
        "rec_precompute_users",
        "Most recently active users whose profile and feed candidates are built in the "
        "background ahead of their requests (each costs a profile build per rebuild); 0: off.",
        minimum=0,
    )
    user_cache_entries: int = setting(
        _recommend_default("user_cache_entries"),
        "rec_user_cache_entries",
        "Users whose profile and candidates stay cached between their requests.",
        minimum=0,
    )
    user_cache_max_mb: int = setting(
        _recommend_default("user_cache_max_mb"),
        "rec_user_cache_max_mb",
        "And at most this much memory (MiB, estimated); 0: the entry count alone bounds it.",
        minimum=0,
    )
    ranker_path: Path | None = setting(
        None,
        "ranker_path",
        "Trained ranker (from `mediarec train-ranker`) loaded on start; empty: default weights.",
    )
    learned_ranker_path: Path | None = setting(
        None,
        "learned_ranker_path",
        "Learned ranker (LightGBM, from `mediarec train-ranker` or the schedule) loaded on "
        "start; it ranks when the file exists, the blend until then. Empty: "
        "DATA_DIR/learned_ranker.json.",
    )
    learned_train_interval_s: float = setting(
        _recommend_default("learned_train_interval_s"),
        "learned_train_interval_s",
        "Retrain the learned ranker from the event history this often (seconds) and swap it "
        "in; 0: only `mediarec train-ranker` trains it.",
        minimum=0,
    )
    collab_candidates: int = setting(
        _recommend_default("collab_candidates"),
        "collab_candidates",
        "Candidates each collaborative source (ALS, item-kNN, RP3beta, popularity) proposes "
        "per request while the learned ranker serves.",
        minimum=0,
    )
    collab_als_factors: int = setting(
        _recommend_default("collab_als_factors"),
        "collab_als_factors",
        "Latent factors of the collaborative core's ALS models.",
        minimum=1,
    )
    collab_als_regularization: float = setting(
        _recommend_default("collab_als_regularization"),
        "collab_als_regularization",
        "L2 regularisation of the ALS models.",
        minimum=0,
    )
    collab_als_alpha: float = setting(
        _recommend_default("collab_als_alpha"),
        "collab_als_alpha",
        "ALS confidence of an observed interaction (1 + alpha).",
        minimum=0,
    )
    collab_als_iterations: int = setting(
        _recommend_default("collab_als_iterations"),
        "collab_als_iterations",
        "ALS alternating passes.",
        minimum=1,
    )
    collab_knn_neighbours: int = setting(
        _recommend_default("collab_knn_neighbours"),
        "collab_knn_neighbours",
        "Neighbours kept per item in the core's item-kNN and RP3beta graphs.",
        minimum=1,
    )
    collab_knn_exponent: float = setting(
        _recommend_default("collab_knn_exponent"),
        "collab_knn_exponent",
        "Item-kNN similarities are raised to this power (higher: sharper neighbourhoods).",
        minimum=0,
    )
    collab_rp3_beta: float = setting(
        _recommend_default("collab_rp3_beta"),
        "collab_rp3_beta",
        "RP3beta divides a walk's target by its popularity to this power.",
        minimum=0,
    )
    # Advanced: the rest of the recommender's knobs (TOML and environment only, no flags).
    cluster_merge_margin: float = setting(
        _recommend_default("cluster_merge_margin"),
        "cluster_merge_margin",
        "Interest clusters merge while their centroids are more alike than the user's liked "
        "posts are on average, by this share of the way to identical.",
        minimum=0,
        maximum=1,
        flag=False,
    )
    profile_max_items: int = setting(
        _recommend_default("profile_max_items"),
        "profile_max_items",
        "Most important positive items a profile clusters.",
        minimum=1,
        flag=False,
    )
    interest_half_life_s: float = setting(
        _recommend_default("interest_half_life_s"),
        "interest_half_life_s",
        "Seconds after which a declared interest's weight halves.",
        minimum=1,
        flag=False,
    )
    affinity_half_life_s: float = setting(
        _recommend_default("affinity_half_life_s"),
        "affinity_half_life_s",
        "Seconds after which creator affinity (visits, engagement) halves.",
        minimum=1,
        flag=False,
    )
    user_prior: float = setting(
        _recommend_default("user_prior"),
        "user_prior",
        "User confidence = positives / (positives + user_prior).",
        flag=False,
    )
    item_prior: float = setting(
        _recommend_default("item_prior"),
        "item_prior",
        "Item confidence = engagements / (engagements + item_prior); the bandit explores items "
        "under 0.5.",
        flag=False,
    )
    max_interests: int = setting(
        _recommend_default("max_interests"),
        "max_interests",
        "Declared interests kept per SetInterests text.",
        minimum=1,
        flag=False,
    )
    profile_cache_ttl_s: float = setting(
        _recommend_default("profile_cache_ttl_s"),
        "profile_cache_ttl_s",
        "Seconds a cached profile and its candidates serve before a rebuild; past half of it a "
        "request also queues one.",
        minimum=0,
        flag=False,
    )
    precompute_delay_s: float = setting(
        _recommend_default("precompute_delay_s"),
        "precompute_delay_s",
        "Seconds a user's events settle before their cached profile is warmed again.",
        minimum=0,
        flag=False,
    )
    long_view_dwell_ms: int = setting(
        _recommend_default("long_view_dwell_ms"),
        "long_view_dwell_ms",
        "A view at least this long (milliseconds) counts as a positive.",
        minimum=0,
        flag=False,
    )
    long_view_watch_fraction: float = setting(
        _recommend_default("long_view_watch_fraction"),
        "long_view_watch_fraction",
        "A video view at least this complete counts as a positive.",
        minimum=0,
        maximum=1,
        flag=False,
    )
    content_candidates: int = setting(
        _recommend_default("content_candidates"),
        "content_candidates",
        "Candidates from the user's taste vectors (nearest neighbours).",
        minimum=0,
        flag=False,
    )
    coengagement_candidates: int = setting(
        _recommend_default("coengagement_candidates"),
        "coengagement_candidates",
        "Candidates from the blend's co-engagement graph.",
        minimum=0,
        flag=False,
    )
    following_candidates: int = setting(
        _recommend_default("following_candidates"),
        "following_candidates",
        "Candidates from recent posts of followed creators.",
        minimum=0,
        flag=False,
    )
    social_candidates: int = setting(
        _recommend_default("social_candidates"),
        "social_candidates",
        "Candidates liked by creators the user follows.",
        minimum=0,
        flag=False,
    )
    trending_candidates: int = setting(
        _recommend_default("trending_candidates"),
        "trending_candidates",
        "Candidates from trending lists of the request's context.",
        minimum=0,
        flag=False,
    )
    cohort_candidates: int = setting(
        _recommend_default("cohort_candidates"),
        "cohort_candidates",
        "Candidates from the favourites of the user's taste cohort.",
        minimum=0,
        flag=False,
    )
    fresh_candidates: int = setting(
        _recommend_default("fresh_candidates"),
        "fresh_candidates",
        "Candidates among fresh posts, by taste.",
        minimum=0,
        flag=False,
    )
    interest_candidates: int = setting(
        _recommend_default("interest_candidates"),
        "interest_candidates",
        "Candidates from declared interests and searches.",
        minimum=0,
        flag=False,
    )
    cold_candidates: int = setting(
        _recommend_default("cold_candidates"),
        "cold_candidates",
        "Candidates among items nobody has engaged with yet, by taste.",
        minimum=0,
        flag=False,
    )
    cold_pool_size: int = setting(
        _recommend_default("cold_pool_size"),
        "cold_pool_size",
        "Items without any event that the cold source searches, the newest first (0: no cold "
        "source).",
        minimum=0,
        flag=False,
    )
    cold_engagement_ridge: float = setting(
        _recommend_default("cold_engagement_ridge"),
        "cold_engagement_ridge",
        "Ridge penalty of the regression from content to engagement that ranks items without "
        "events by appeal.",
        minimum=0,
        flag=False,
    )
    candidate_hnsw_ef: int = setting(
        _recommend_default("candidate_hnsw_ef"),
        "candidate_hnsw_ef",
        "HNSW search beam of the candidate searches (SearchMedia uses the store's own).",
        minimum=1,
        flag=False,
    )
    following_window_s: float = setting(
        _recommend_default("following_window_s"),
        "following_window_s",
        "Seconds a followed creator's post stays a recent post.",
        minimum=0,
        flag=False,
    )
    fresh_queries: int = setting(
        _recommend_default("fresh_queries"),
        "fresh_queries",
        "The user's strongest taste and interest vectors that look for fresh posts.",
        minimum=0,
        flag=False,
    )
    freshness_half_life_s: float = setting(
        _recommend_default("freshness_half_life_s"),
        "freshness_half_life_s",
        "Seconds after which the freshness feature halves.",
        minimum=1,
        flag=False,
    )
    coeng_neighbours: int = setting(
        _recommend_default("coeng_neighbours"),
        "coeng_neighbours",
        "Neighbours kept per item in the blend's co-engagement graph.",
        minimum=1,
        flag=False,
    )
    coeng_alpha: float = setting(
        _recommend_default("coeng_alpha"),
        "coeng_alpha",
        "Co-engagement similarity exponent: 0.5 is the cosine, lower discounts popular "
        "neighbours more.",
        minimum=0,
        maximum=1,
        flag=False,
    )
    coeng_max_user_items: int = setting(
        _recommend_default("coeng_max_user_items"),
        "coeng_max_user_items",
        "Most recent positives per user counted in co-occurrence.",
        minimum=1,
        flag=False,
    )
    trending_top_n: int = setting(
        _recommend_default("trending_top_n"),
        "trending_top_n",
        "Items kept per trending list (global, context, hashtag).",
        minimum=1,
        flag=False,
    )
    cohort_top_n: int = setting(
        _recommend_default("cohort_top_n"),
        "cohort_top_n",
        "Favourites kept per taste cohort.",
        minimum=1,
        flag=False,
    )
    cohort_half_life_s: float = setting(
        _recommend_default("cohort_half_life_s"),
        "cohort_half_life_s",
        "Seconds after which an engagement's weight in cohort favourites halves.",
        minimum=1,
        flag=False,
    )
    social_recent_per_user: int = setting(
        _recommend_default("social_recent_per_user"),
        "social_recent_per_user",
        "Recent positives remembered per user for liked-by reasons and candidates.",
        minimum=0,
        flag=False,
    )
    explore_min_k: int = setting(
        _recommend_default("explore_min_k"),
        "explore_min_k",
        "Pages smaller than this get no exploration slot.",
        minimum=1,
        flag=False,
    )
    explore_max_impressions: int = setting(
        _recommend_default("explore_max_impressions"),
        "explore_max_impressions",
        "Items shown more often than this are never explored.",
        minimum=0,
        flag=False,
    )
    explore_appeal_weight: float = setting(
        _recommend_default("explore_appeal_weight"),
        "explore_appeal_weight",
        "Weight of an item's appeal (what its content predicts about its engagement) against "
        "its content match to the user in the exploration prior; 0 to 1.",
        minimum=0,
        maximum=1,
        flag=False,
    )
    explore_max_engagements: int = setting(
        _recommend_default("explore_max_engagements"),
        "explore_max_engagements",
        "Items with more engagements than this are never explored.",
        minimum=0,
        flag=False,
    )
    explore_pool_size: int = setting(
        _recommend_default("explore_pool_size"),
        "explore_pool_size",
        "Best-prior candidates the bandit draws from.",
        minimum=0,
        flag=False,
    )
    explore_prior_strength: float = setting(
        _recommend_default("explore_prior_strength"),
        "explore_prior_strength",
        "Pseudo-impressions of an explored item's content-based prior; the default, far above "
        "explore_max_impressions, lets the prior pick the slots, and an item that draws nothing "
        "leaves at the impression cap.",
        minimum=0,
        flag=False,
    )
    explore_prior_base: float = setting(
        _recommend_default("explore_prior_base"),
        "explore_prior_base",
        "Prior engagement rate of an explored item that matches nothing.",
        minimum=0,
        maximum=1,
        flag=False,
    )
    explore_prior_gain: float = setting(
        _recommend_default("explore_prior_gain"),
        "explore_prior_gain",
        "Added to the prior engagement rate for a perfect content match.",
        minimum=0,
        maximum=1,
        flag=False,
    )
    propensity_samples: int = setting(
        _recommend_default("propensity_samples"),
        "propensity_samples",
        "Policy re-samples that estimate an explored item's logged propensity.",
        minimum=1,
        flag=False,
    )
    item_cache_entries: int = setting(
        _recommend_default("item_cache_entries"),
        "item_cache_entries",
        "Items whose vectors and ranking fields are cached in memory.",
        minimum=0,
        flag=False,
    )
    item_cache_max_mb: int = setting(
        _recommend_default("item_cache_max_mb"),
        "item_cache_max_mb",
        "Most memory (MB) the item cache holds, whatever item_cache_entries allows; the least "
        "recently used go first. 0: the entry count alone bounds it.",
        minimum=0,
        flag=False,
    )
    item_cache_ttl_s: float = setting(
        _recommend_default("item_cache_ttl_s"),
        "item_cache_ttl_s",
        "Seconds a cached item is trusted before it is read again.",
        minimum=0,
        flag=False,
    )
    page_cache_max_entries: int = setting(
        _recommend_default("page_cache_max_entries"),
        "page_cache_max_entries",
        "Rankings kept for paging; the least recently used go first.",
        minimum=1,
        flag=False,
    )
    page_cache_max_mb: int = setting(
        _recommend_default("page_cache_max_mb"),
        "page_cache_max_mb",
        "And at most this much memory (MiB, estimated); 0: the entry count alone bounds it.",
        minimum=0,
        flag=False,
    )
    text_cache_entries: int = setting(
        _recommend_default("text_cache_entries"),
        "text_cache_entries",
        "Text vectors (searches, interests, steering texts) kept by exact text.",
        minimum=0,
        flag=False,
    )
    text_cache_max_mb: int = setting(
        _recommend_default("text_cache_max_mb"),
        "text_cache_max_mb",
        "And at most this much memory (MiB); 0: the entry count alone bounds it.",
        minimum=0,
        flag=False,
    )
    refresh_max_interval_s: float = setting(
        _recommend_default("refresh_max_interval_s"),
        "refresh_max_interval_s",
        "Derived state is rebuilt at least this often (seconds) while events arrive or pages are "
        "served.",
        minimum=1,
        flag=False,
    )


def recommend_settings(
    config: RecommendConfig, data_dir: Path | str | None = None
) -> RecommendSettings:
    """The recommender's settings: its defaults, overridden by the configured knobs. The
    learned ranker's file defaults to ``data_dir``/learned_ranker.json."""
    known = {f.name for f in dataclasses.fields(RecommendSettings)}
    values: dict[str, Any] = {
        f.name: getattr(config, f.name) for f in dataclasses.fields(config) if f.name in known
    }
    values["ranker_path"] = str(config.ranker_path) if config.ranker_path else ""
    learned = config.learned_ranker_path or (
        Path(data_dir) / LEARNED_RANKER_FILE if data_dir else None
    )
    values["learned_ranker_path"] = str(learned) if learned else ""
    return RecommendSettings(**values)


@dataclass(frozen=True)
class LogSettings:
    level: str = setting("INFO", "log_level", "Log level.", choices=LOG_LEVELS)
    format: str = setting(
        "text",
        "log_format",
        "text: one readable line per record; json: one JSON object per line (for a log "
        "pipeline), with the same fields.",
        choices=LOG_FORMATS,
    )


@dataclass(frozen=True)
class Settings:
    """Every setting of mediarec, grouped by the TOML section it lives in."""

    server: ServerSettings = field(default_factory=ServerSettings)
    storage: StorageSettings = field(default_factory=StorageSettings)
    model: ModelSettings = field(default_factory=ModelSettings)
    batching: BatchingSettings = field(default_factory=BatchingSettings)
    media: MediaSettings = field(default_factory=MediaSettings)
    topics: TopicsSettings = field(default_factory=TopicsSettings)
    search: SearchSettings = field(default_factory=SearchSettings)
    recommend: RecommendConfig = field(default_factory=RecommendConfig)
    log: LogSettings = field(default_factory=LogSettings)


# -- the key registry, derived from the dataclasses ------------------------------------------


@dataclass(frozen=True)
class KeySpec:
    """One configuration key and everything derived from its declaration."""

    section: str
    attribute: str
    name: str
    kind: Any  # the resolved annotation, e.g. int, Path | None, tuple[str, ...]
    default: Any
    help: str
    minimum: float | None
    maximum: float | None
    choices: tuple[str, ...] | None
    has_flag: bool
    secret: bool

    @property
    def toml_key(self) -> str:
        return f"{self.section}.{self.attribute}"

    @property
    def env(self) -> str:
        return ENV_PREFIX + self.name.upper()

    @property
    def flag(self) -> str | None:
        return "--" + self.name.replace("_", "-") if self.has_flag else None


def _section_types() -> dict[str, type]:
    hints = typing.get_type_hints(Settings)
    return {f.name: hints[f.name] for f in dataclasses.fields(Settings)}


def key_specs() -> tuple[KeySpec, ...]:
    """Every key, in declaration order."""
    specs = []
    for section, section_type in _section_types().items():
        hints = typing.get_type_hints(section_type)
        for f in dataclasses.fields(section_type):
            meta = f.metadata
            specs.append(
                KeySpec(
                    section=section,
                    attribute=f.name,
                    name=meta["name"],
                    kind=hints[f.name],
                    default=f.default,
                    help=meta["help"],
                    minimum=meta["minimum"],
                    maximum=meta["maximum"],
                    choices=meta["choices"],
                    has_flag=meta["flag"],
                    secret=meta["secret"],
                )
            )
    return tuple(specs)


# -- converting raw values ---------------------------------------------------------------


def _is_optional_path(kind: Any) -> bool:
    return kind == (Path | None)


def _from_text(spec: KeySpec, text: str, where: str) -> Any:
    """Parse an env var or flag string into the key's type."""
    kind = spec.kind
    if kind is str:
        return text
    if kind is int or kind is float:
        try:
            return kind(text.strip())
        except ValueError:
            raise ConfigError(
                where, f"expected {'an integer' if kind is int else 'a number'}, got {text!r}"
            ) from None
    if kind is bool:
        lowered = text.strip().lower()
        if lowered in ("1", "true", "yes", "on"):
            return True
        if lowered in ("0", "false", "no", "off"):
            return False
        raise ConfigError(where, f"expected true or false, got {text!r}")
    if kind is Path:
        return Path(text)
    if _is_optional_path(kind):
        return Path(text) if text.strip() else None
    if kind == tuple[str, ...]:
        return tuple(part.strip() for part in text.split(",") if part.strip())
    raise TypeError(f"unsupported setting type {kind!r} for {spec.toml_key}")


def _from_native(spec: KeySpec, value: Any, where: str) -> Any:
    """Check a TOML (or programmatic) value against the key's type."""
    kind = spec.kind
    if isinstance(value, str) and kind is not str:
        if kind in (Path,) or _is_optional_path(kind):
            return _from_text(spec, value, where)
        if kind in (int, float, bool):
            raise ConfigError(where, f"expected {kind.__name__}, got the string {value!r}")
    if kind is bool:
        if isinstance(value, bool):
            return value
        raise ConfigError(where, f"expected true or false, got {value!r}")
    if kind is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        raise ConfigError(where, f"expected an integer, got {value!r}")
    if kind is float:
        if isinstance(value, int | float) and not isinstance(value, bool):
            return float(value)
        raise ConfigError(where, f"expected a number, got {value!r}")
    if kind is str:
        if isinstance(value, str):
            return value
        raise ConfigError(where, f"expected a string, got {value!r}")
    if kind is Path or _is_optional_path(kind):
        if isinstance(value, Path):
            return value
        if value is None and _is_optional_path(kind):
            return None
        raise ConfigError(where, f"expected a path string, got {value!r}")
    if kind == tuple[str, ...]:
        if isinstance(value, list | tuple) and all(isinstance(v, str) for v in value):
            return tuple(value)
        raise ConfigError(where, f"expected a list of strings, got {value!r}")
    raise TypeError(f"unsupported setting type {kind!r} for {spec.toml_key}")


# -- the layers ------------------------------------------------------------------------------


def _layer_from_toml(config_file: Path, specs: Mapping[str, KeySpec]) -> dict[str, Any]:
    try:
        raw = tomllib.loads(config_file.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(str(config_file), "config file not found") from None
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as error:
        raise ConfigError(str(config_file), f"cannot read config file: {error}") from None
    sections = _section_types()
    values: dict[str, Any] = {}
    for section, table in raw.items():
        if section not in sections:
            raise ConfigError(section, f"unknown section in {config_file}")
        if not isinstance(table, dict):
            raise ConfigError(section, f"must be a [{section}] table in {config_file}")
        for attribute, value in table.items():
            toml_key = f"{section}.{attribute}"
            spec = specs.get(toml_key)
            if spec is None:
                raise ConfigError(toml_key, f"unknown key in {config_file}")
            values[toml_key] = _from_native(spec, value, toml_key)
    return values


def _layer_from_env(env: Mapping[str, str], specs: Mapping[str, KeySpec]) -> dict[str, Any]:
    # Unknown MEDIAREC_* variables are ignored: tests and tools use the prefix too.
    return {
        spec.toml_key: _from_text(spec, env[spec.env], spec.env)
        for spec in specs.values()
        if spec.env in env
    }


def _layer_from_overrides(
    overrides: Mapping[str, Any], specs: Mapping[str, KeySpec]
) -> dict[str, Any]:
    by_name = {spec.name: spec for spec in specs.values()}
    values: dict[str, Any] = {}
    for key, value in overrides.items():
        if value is None:  # an argparse flag that was not given
            continue
        spec = by_name.get(key) or specs.get(key)
        if spec is None:
            raise ConfigError(key, "unknown setting")
        where = spec.flag or spec.name
        parse = _from_text if isinstance(value, str) else _from_native
        values[spec.toml_key] = parse(spec, value, where)
    return values


def load_settings(
    argv_overrides: Mapping[str, Any] | None = None,
    env: Mapping[str, str] | None = None,
    config_file: Path | None = None,
) -> Settings:
    """Defaults, then ``config_file`` (TOML), then ``MEDIAREC_*`` in ``env``, then overrides.

    Where no layer names the model, the data dir's recorded model (``DATA_DIR/model.json``,
    written when a command opens the store) replaces the default.

    ``argv_overrides`` is keyed by setting name (``port``, ``data_dir``; see ``key_specs()``) or
    TOML key (``server.port``); None values are skipped. Strings are parsed like env values.
    ``env`` defaults to an empty mapping, so only an explicit ``os.environ`` is read.
    Raises ``ConfigError`` naming the offending key.
    """
    specs = {spec.toml_key: spec for spec in key_specs()}
    merged: dict[str, Any] = {key: spec.default for key, spec in specs.items()}
    given: set[str] = set()
    layers = (
        _layer_from_toml(Path(config_file), specs) if config_file is not None else {},
        _layer_from_env(env or {}, specs),
        _layer_from_overrides(argv_overrides or {}, specs),
    )
    for layer in layers:
        merged.update(layer)
        given.update(layer)
    if MODEL_KEY not in given:
        # No model named anywhere: the one whose vectors this data dir holds, if it records one.
        try:
            remembered = remembered_model(Path(merged["storage.data_dir"]))
        except RememberedModelError as exc:
            raise ConfigError(MODEL_KEY, f"{exc}; name the model with --model-id") from exc
        if remembered:
            merged[MODEL_KEY] = remembered
    sections: dict[str, Any] = {}
    for name, section_type in _section_types().items():
        kwargs = {s.attribute: merged[s.toml_key] for s in specs.values() if s.section == name}
        sections[name] = section_type(**kwargs)
    settings = Settings(**sections)
    validate(settings)
    return settings


# -- validation ------------------------------------------------------------------------------


def _check_spec(spec: KeySpec, value: Any) -> None:
    if spec.minimum is not None and value < spec.minimum:
        raise ConfigError(spec.toml_key, f"must be at least {spec.minimum:g}, got {value}")
    if spec.maximum is not None and value > spec.maximum:
        raise ConfigError(spec.toml_key, f"must be at most {spec.maximum:g}, got {value}")
    if spec.choices is not None and value not in spec.choices:
        raise ConfigError(spec.toml_key, f"must be one of {', '.join(spec.choices)}; got {value!r}")


def validate(settings: Settings) -> None:
    """Raise ``ConfigError`` for the first invalid key; cross-key rules come after ranges."""
    for spec in key_specs():
        _check_spec(spec, getattr(getattr(settings, spec.section), spec.attribute))
    server, storage, model = settings.server, settings.storage, settings.model
    if not server.host.strip():
        raise ConfigError("server.host", "must not be empty")
    for name, keys in (("api_keys", server.api_keys), ("admin_api_keys", server.admin_api_keys)):
        if any(not key or any(ch.isspace() for ch in key) for key in keys):
            raise ConfigError(f"server.{name}", "keys must be non-empty and contain no spaces")
    if (server.tls_cert is None) != (server.tls_key is None):
        raise ConfigError("server.tls_key", "tls_cert and tls_key must be set together")
    for key, path in (("server.tls_cert", server.tls_cert), ("server.tls_key", server.tls_key)):
        if path is not None and not path.is_file():
            raise ConfigError(key, f"file not found: {path}")
    if not str(storage.data_dir).strip():
        raise ConfigError("storage.data_dir", "must not be empty")
    if storage.qdrant_url and not re.match(r"^https?://[^\s/]+", storage.qdrant_url):
        raise ConfigError(
            "storage.qdrant_url", f"must be an http(s) URL, got {storage.qdrant_url!r}"
        )
    if not model.id.strip():
        raise ConfigError("model.id", "must not be empty")
    if not _DEVICE_PATTERN.match(model.device):
        raise ConfigError("model.device", f"must be cpu, cuda, cuda:N or mps; got {model.device!r}")
    if model.precision == "int8" and model.device != "cpu":
        raise ConfigError("model.precision", "int8 runs on the CPU only; set model.device = 'cpu'")
    if model.precision == "int8" and model.id.startswith(("hf:", "hf-dir:", "external:")):
        raise ConfigError(
            "model.precision", "int8 is available for open_clip models only, not " + model.id
        )
    vocabulary = settings.topics.vocabulary
    if vocabulary not in TOPIC_VOCABULARIES and not Path(vocabulary).is_file():
        raise ConfigError(
            "topics.vocabulary",
            f"must be {', '.join(TOPIC_VOCABULARIES)} or an existing file; got {vocabulary!r}",
        )
    if settings.search.default_k > settings.search.max_k:
        raise ConfigError("search.default_k", "must not exceed search.max_k")
    if settings.recommend.default_k > settings.recommend.max_k:
        raise ConfigError("recommend.default_k", "must not exceed recommend.max_k")
    try:
        recommend_settings(settings.recommend)
    except ValueError as error:  # the recommender's own cross-checks
        named = re.match(r"^(recommend\.\w+)", str(error))
        raise ConfigError(named.group(1) if named else "recommend", str(error)) from None


# -- argparse helpers ------------------------------------------------------------------------


def add_arguments(parser: argparse.ArgumentParser, sections: Sequence[str] | None = None) -> None:
    """Add ``--config`` and one flag per key (of ``sections``, or all) to ``parser``.

    Flags default to "not given", so only flags on the command line override lower layers.
    """
    parser.add_argument(
        "--config",
        type=Path,
        default=None,
        help=f"TOML config file (default: ${CONFIG_ENV} if set)",
    )
    for spec in key_specs():
        if spec.flag is None or (sections is not None and spec.section not in sections):
            continue
        kwargs: dict[str, Any] = {"dest": spec.name, "default": argparse.SUPPRESS}
        if spec.kind is bool:
            kwargs["action"] = argparse.BooleanOptionalAction
        else:
            kwargs["metavar"] = spec.name.upper()
            if spec.choices:
                kwargs["choices"] = spec.choices
        parser.add_argument(
            spec.flag, help=f"{spec.help} (default: {_display(spec.default)})", **kwargs
        )


def overrides_from_args(args: argparse.Namespace) -> dict[str, Any]:
    """The setting flags present on the command line, for ``load_settings``."""
    names = {spec.name for spec in key_specs()}
    return {name: value for name, value in vars(args).items() if name in names}


def config_path(args: argparse.Namespace, env: Mapping[str, str]) -> Path | None:
    """``--config`` if given, else ``$MEDIAREC_CONFIG`` if set, else None."""
    given = getattr(args, "config", None)
    if given is not None:
        return Path(given)
    from_env = env.get(CONFIG_ENV, "").strip()
    return Path(from_env) if from_env else None


def settings_from_args(args: argparse.Namespace, env: Mapping[str, str] | None = None) -> Settings:
    """Build settings for a parsed command line; ``env`` defaults to ``os.environ``."""
    environment = os.environ if env is None else env
    return load_settings(overrides_from_args(args), environment, config_path(args, environment))


# -- documentation renderers -----------------------------------------------------------------


def _display(value: Any) -> str:
    if value is None:
        return '""'
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, Path):
        return json.dumps(str(value))
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, tuple):
        return "[" + ", ".join(json.dumps(v) for v in value) + "]"
    return repr(value)


def render_reference_table() -> str:
    """The Markdown table of every key, as embedded in docs/configuration.md."""
    lines = [
        "| TOML key | Env var | Flag | Default | Meaning |",
        "|---|---|---|---|---|",
    ]
    for spec in key_specs():
        flag = f"`{spec.flag}`" if spec.flag else "— (secret)" if spec.secret else "—"
        meaning = spec.help.replace("|", "\\|")
        lines.append(
            f"| `{spec.toml_key}` | `{spec.env}` | {flag} | `{_display(spec.default)}` "
            f"| {meaning} |"
        )
    return "\n".join(lines) + "\n"


def render_example_toml() -> str:
    """A commented TOML file that sets every key to its default."""
    out = [
        "# mediarec example configuration: every key, set to its default.",
        "# Precedence: defaults < this file < MEDIAREC_* env vars < command-line flags.",
        "# Reference: docs/configuration.md. Regenerate: "
        "python -m mediarec.server.config --example",
    ]
    current = None
    for spec in key_specs():
        if spec.section != current:
            current = spec.section
            out += ["", f"[{spec.section}]"]
        out += [f"# {line}" for line in textwrap.wrap(spec.help, width=96)]
        out.append(f"# env {spec.env}" + (f", flag {spec.flag}" if spec.flag else ", no flag"))
        out.append(f"{spec.attribute} = {_display(spec.default)}")
    return "\n".join(out) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m mediarec.server.config", description="Print the configuration reference."
    )
    group = parser.add_mutually_exclusive_group(required=True)
    group.add_argument("--reference", action="store_true", help="Markdown table of every key")
    group.add_argument("--example", action="store_true", help="commented example TOML")
    args = parser.parse_args(argv)
    sys.stdout.write(render_reference_table() if args.reference else render_example_toml())
    return 0


if __name__ == "__main__":
    sys.exit(main())
