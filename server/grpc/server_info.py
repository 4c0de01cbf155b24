"""GetServerInfo's answer, assembled from the running service's parts."""

from __future__ import annotations

from collections.abc import Sequence

from google.protobuf.timestamp_pb2 import Timestamp

from mediarec.server.grpc.convert import set_unix_time
from mediarec.server.grpc.recommend_convert import state_to_proto
from mediarec.server.recommend.importer import ImportProgress
from mediarec.server.runtime import SERVER_VERSION, ServiceDeps
from mediarec.server.store import SearchFilter
from mediarec.v1 import media_pb2


def server_info_to_proto(
    deps: ServiceDeps, started_at: float, imports: Sequence[ImportProgress] = ()
) -> media_pb2.GetServerInfoResponse:
    """GetServerInfo's answer: the model, the store and its counts, the limits, how current
    the recommender's derived state is, and the imports running now."""
    settings = deps.settings
    stats = deps.store.stats()
    remote = bool(settings.storage.qdrant_url)

    def count(media_type: str) -> int:
        return deps.store.count(SearchFilter(media_types=(media_type,)))

    started = Timestamp()
    set_unix_time(started, started_at)
    return media_pb2.GetServerInfoResponse(
        model_id=deps.encoder.model_id,
        dims=deps.encoder.dim,
        store_kind=(
            media_pb2.STORE_KIND_QDRANT_SERVER if remote else media_pb2.STORE_KIND_EMBEDDED
        ),
        collection=stats.collection,
        media_count=stats.points,
        image_count=count("image"),
        video_count=count("video"),
        text_count=count("text"),
        video_frames=settings.media.video_frames,
        topic_vocabulary=list(deps.labeler.labels) if deps.labeler else [],
        limits=media_pb2.ServerLimits(
            max_message_bytes=settings.server.max_message_bytes,
            max_upload_bytes=settings.server.max_upload_bytes,
            max_image_pixels=settings.media.max_image_pixels,
            max_caption_chars=settings.media.max_caption_chars,
            max_tags=settings.media.max_tags,
            max_k=settings.search.max_k,
            max_events_per_batch=settings.recommend.max_events_per_batch,
            import_chunk_events=settings.recommend.import_chunk_events,
        ),
        server_version=SERVER_VERSION,
        started_at=started,
        recommend_state=state_to_proto(deps.recommender.state_info()),
        imports=[_import_to_proto(progress) for progress in imports],
    )


def _import_to_proto(progress: ImportProgress) -> media_pb2.ImportProgress:
    message = media_pb2.ImportProgress(
        rows=progress.rows,
        accepted=progress.accepted,
        duplicates=progress.duplicates,
        rejected=progress.rejected,
    )
    set_unix_time(message.started_at, progress.started_at)
    return message
