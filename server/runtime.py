"""The service's dependencies and their life-cycle: model and store open before "ready"."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path

from mediarec.encoders import Encoder, EncoderOptions, create_encoder
from mediarec.encoders.registry import near_duplicate_cosine_of
from mediarec.server.config import Settings, recommend_settings
from mediarec.server.diskspace import DiskGuard
from mediarec.server.embed_batcher import BatchingEncoder
from mediarec.server.engagement import EventLimits, open_engagement_store
from mediarec.server.indexing.indexer import IndexLimits, MediaIndexer
from mediarec.server.observability.tally import Tally
from mediarec.server.recommend.importer import RunningImports
from mediarec.server.recommend.recommender import Recommender
from mediarec.server.recommend.types import EngagementStore
from mediarec.server.remembered_model import RememberedModelError, remember_model, remembered_model
from mediarec.server.search import MediaSearch
from mediarec.server.service_errors import UnavailableError
from mediarec.server.store import (
    EDGE_SUBDIR,
    Fusion,
    VectorStore,
    schema,
)
from mediarec.server.store.edge import EdgeTuning
from mediarec.server.store.factory import open_store
from mediarec.server.thumbnails import SqliteThumbnails, open_thumbnails
from mediarec.server.topics import TopicLabeler, vocabulary_prompts

logger = logging.getLogger(__name__)

SERVER_VERSION = "0.1.0"


@dataclass
class ServiceDeps:
    settings: Settings
    encoder: Encoder
    store: VectorStore
    labeler: TopicLabeler | None
    indexer: MediaIndexer
    search: MediaSearch
    spool_dir: Path
    engagement: EngagementStore
    recommender: Recommender
    batcher: BatchingEncoder | None = None  # the encoder's batching worker, when batching is on
    disk: DiskGuard | None = None  # refuses writes while the data dir is nearly full
    thumbnails: SqliteThumbnails | None = None  # JPEGs made at index time, beside the store

    def require_room(self) -> None:
        """Raise ResourceLimitError while the data dir is too full to take a write."""
        if self.disk is not None:
            self.disk.check()

    def close(self) -> None:
        """Stop the recommender's background work first: it reads both stores and the encoder."""
        try:
            self.recommender.close()
        finally:
            try:
                if self.batcher is not None:
                    self.batcher.close()
            finally:
                try:
                    self.engagement.close()
                finally:
                    try:
                        if self.thumbnails is not None:
                            self.thumbnails.close()
                    finally:
                        self.store.close()


def encoder_options(settings: Settings) -> EncoderOptions:
    model = settings.model
    return EncoderOptions(
        device=model.device,
        torch_threads=model.torch_threads or None,
        batch_size=model.batch_size,
        precision=model.precision,
        cache_dir=model.hf_cache_dir,
        onnx_cache_dir=settings.storage.data_dir / "onnx",
    )


def open_deps(settings: Settings, encoder: Encoder | None = None) -> ServiceDeps:
    """Load the model and open the store (slow: seconds to minutes for real weights)."""
    started = time.monotonic()
    encoder = encoder or create_encoder(settings.model.id, encoder_options(settings))
    encoder.load()
    batcher = batching_encoder(settings, encoder)
    try:
        return _open_deps(settings, batcher or encoder, batcher, started)
    except BaseException:
        if batcher is not None:
            batcher.close()
        raise


def batching_encoder(settings: Settings, encoder: Encoder) -> BatchingEncoder | None:
    """``encoder`` behind a cross-request batching queue, or None when batching is off."""
    batching = settings.batching
    if not batching.enabled:
        return None
    return BatchingEncoder(
        encoder, max_items=batching.max_items, max_wait_s=batching.max_wait_ms / 1000.0
    )


def _remember_model_if_in_use(data_dir: Path, model_id: str, store: VectorStore) -> None:
    """Record ``model_id`` as the data dir's model when it is the first one opened here or
    its collection holds items: one search with another model must not move a data dir onto
    an empty collection."""
    try:
        recorded = remembered_model(data_dir)
    except RememberedModelError:
        recorded = None  # unreadable: what is true now replaces it
    if recorded is None or (recorded != model_id and store.count() > 0):
        remember_model(data_dir, model_id)


def _open_deps(
    settings: Settings, encoder: Encoder, batcher: BatchingEncoder | None, started: float
) -> ServiceDeps:
    data_dir = Path(settings.storage.data_dir)
    data_dir.mkdir(parents=True, exist_ok=True)
    store = open_store(
        data_dir,
        settings.storage.qdrant_url or None,
        settings.storage.qdrant_api_key or None,
        edge_tuning=EdgeTuning(build_after_writes=settings.storage.optimize_after_points),
    )
    try:
        store.ensure_collection(
            encoder.model_id, {schema.VISUAL: encoder.dim, schema.CAPTION: encoder.dim}
        )
        _remember_model_if_in_use(data_dir, encoder.model_id, store)
        labeler = _labeler(settings, encoder)
        engagement = open_engagement_store(
            data_dir,
            limits=EventLimits(max_future_skew_s=settings.recommend.events_max_future_skew_s),
        )
    except BaseException:
        store.close()
        raise
    thumbnails: SqliteThumbnails | None = None
    try:
        thumbnails = open_thumbnails(data_dir)
        recommender = Recommender(
            encoder, store, engagement, recommend_settings(settings.recommend, data_dir)
        )
    except BaseException:
        if thumbnails is not None:
            thumbnails.close()
        engagement.close()
        store.close()
        raise
    limits = IndexLimits(
        max_caption_chars=settings.media.max_caption_chars,
        max_tags=settings.media.max_tags,
        max_image_pixels=settings.media.max_image_pixels,
        video_frames=settings.media.video_frames,
        topics_top_k=settings.topics.top_k,
        near_duplicate_cosine=(
            settings.media.near_duplicate_cosine or near_duplicate_cosine_of(encoder.model_id)
        ),
    )
    spool_dir = data_dir / "uploads"
    spool_dir.mkdir(exist_ok=True)
    for leftover in spool_dir.glob("upload-*"):  # partial uploads of a crashed process
        leftover.unlink(missing_ok=True)
    deps = ServiceDeps(
        settings=settings,
        encoder=encoder,
        store=store,
        labeler=labeler,
        indexer=MediaIndexer(encoder, store, labeler, limits, thumbnails),
        search=MediaSearch(
            encoder,
            store,
            default_k=settings.search.default_k,
            max_k=settings.search.max_k,
            max_image_pixels=settings.media.max_image_pixels,
            max_text_chars=settings.media.max_caption_chars,
            fusion=Fusion(
                rrf_k=settings.search.fusion_rrf_k,
                weights=(1.0, settings.search.caption_weight),
                depth=settings.search.fusion_depth,
            ),
            thumbnails=thumbnails,
        ),
        spool_dir=spool_dir,
        engagement=engagement,
        recommender=recommender,
        batcher=batcher,
        disk=DiskGuard(data_dir, settings.storage.min_free_mb),
        thumbnails=thumbnails,
    )
    logger.info(
        "service ready in %.1fs: model %s (%d-d), store %s",
        time.monotonic() - started, encoder.model_id, encoder.dim, store.stats().engine,
    )
    return deps


def _labeler(settings: Settings, encoder: Encoder) -> TopicLabeler | None:
    if settings.topics.top_k == 0:
        return None
    try:
        encoder.embed_texts(["probe"])
    except Exception:  # a vectors-only model cannot embed a vocabulary: topics are off
        logger.info("model %s cannot embed text; zero-shot topics are off", encoder.model_id)
        return None
    prompts = vocabulary_prompts(settings.topics.vocabulary, encoder.model_id)
    if prompts is None:
        logger.info(
            "zero-shot topics are off: no vocabulary fits the pictures of model %s (its "
            "registry entry); set topics to a vocabulary to label with one anyway",
            encoder.model_id,
        )
        return None
    return TopicLabeler(encoder, prompts)


class ServiceState:
    """Holds the dependencies once they are ready; RPCs before that get UNAVAILABLE."""

    def __init__(self, deps: ServiceDeps | None = None) -> None:
        self._deps = deps
        self.tally = Tally()  # what the API did, for /metrics
        self.started_at = time.time()  # unix seconds, for GetServerInfo
        self.imports = RunningImports()  # ImportEvents calls in progress, for GetServerInfo

    def set_ready(self, deps: ServiceDeps) -> None:
        self._deps = deps

    @property
    def ready(self) -> bool:
        return self._deps is not None

    def require(self) -> ServiceDeps:
        if self._deps is None:
            raise UnavailableError("The server is still loading its model and store; retry soon.")
        return self._deps


__all__ = ["EDGE_SUBDIR", "ServiceDeps", "ServiceState", "encoder_options", "open_deps"]
