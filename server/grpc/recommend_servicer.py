"""The thin gRPC RecommendationService: parse the request, call the recommender, convert back.

Domain errors propagate as exceptions; the server-wide ErrorMappingInterceptor turns them into
status codes through the one table in server/grpc/errors.py.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

import grpc

from mediarec.server.embed_batcher import Priority, embeds
from mediarec.server.grpc import recommend_convert as convert
from mediarec.server.grpc.auth import bearer_token
from mediarec.server.grpc.streams import StreamLimits, UploadGate, bounded
from mediarec.server.media import StoredItem
from mediarec.server.observability.tally import EVENTS
from mediarec.server.payload import stored_item
from mediarec.server.recommend.importer import import_events
from mediarec.server.recommend.types import Event, EventResult, RecItem
from mediarec.server.runtime import ServiceDeps, ServiceState
from mediarec.server.service_errors import InvalidArgumentError, ResourceLimitError
from mediarec.v1 import recommend_pb2, recommend_pb2_grpc

DEFAULT_RECENT_EVENTS = 20  # GetUser's newest events when the request names no number
MAX_RECENT_EVENTS = 200

logger = logging.getLogger(__name__)


class RecommendationServicer(recommend_pb2_grpc.RecommendationServiceServicer):
    def __init__(self, state: ServiceState, gate: UploadGate, limits: StreamLimits) -> None:
        self._state = state
        self._gate = gate
        self._limits = limits

    @embeds(Priority.INTERACTIVE)
    def LogEvents(  # noqa: N802 (gRPC method names are fixed by the proto)
        self, request: recommend_pb2.LogEventsRequest, context: grpc.ServicerContext
    ) -> recommend_pb2.LogEventsResponse:
        deps = self._state.require()
        limit = deps.settings.recommend.max_events_per_batch
        if len(request.events) > limit:
            raise ResourceLimitError(
                "events", f"{len(request.events)} events is over the limit of {limit} per call"
            )
        deps.require_room()
        converted = [convert.event_from_proto(message) for message in request.events]
        events = [item for item in converted if isinstance(item, Event)]
        stored = deps.engagement.log_events(events) if events else []
        accepted = [e for e, r in zip(events, stored, strict=True) if r.accepted]
        if accepted:
            deps.recommender.on_events(accepted)
        results = _in_request_order(converted, stored)
        self._count_events(results)
        return convert.log_events_response(results)

    def ImportEvents(  # noqa: N802
        self,
        request_iterator: Iterator[recommend_pb2.ImportEventsRequest],
        context: grpc.ServicerContext,
    ) -> recommend_pb2.ImportEventsResponse:
        deps = self._state.require()
        settings = deps.settings.recommend
        with (
            self._gate.admitted(bearer_token(context.invocation_metadata())),
            self._state.imports.track() as progress,
        ):
            messages = bounded(request_iterator, self._limits, "import")

            def on_chunk(results: Sequence[EventResult]) -> None:
                self._count_events(results)
                progress(results)

            result = import_events(
                _import_chunks(messages, settings.import_chunk_events, deps.require_room),
                deps.engagement,
                deps.recommender,
                max_errors=settings.import_max_errors,
                on_chunk=on_chunk,
            )
        return convert.import_response(result)

    def _count_events(self, results: Sequence[EventResult]) -> None:
        accepted = sum(1 for r in results if r.accepted)
        duplicates = sum(1 for r in results if r.duplicate)
        self._state.tally.add(EVENTS, "accepted", accepted)
        self._state.tally.add(EVENTS, "duplicate", duplicates)
        self._state.tally.add(EVENTS, "rejected", len(results) - accepted - duplicates)

    @embeds(Priority.INTERACTIVE)
    def Recommend(  # noqa: N802
        self, request: recommend_pb2.RecommendRequest, context: grpc.ServicerContext
    ) -> recommend_pb2.RecommendResponse:
        deps = self._state.require()
        rec_request = convert.rec_request_from_proto(
            request,
            default_k=deps.settings.recommend.default_k,
            max_k=deps.settings.recommend.max_k,
            max_text_chars=deps.settings.media.max_caption_chars,
        )
        response = deps.recommender.recommend(rec_request)
        return recommend_pb2.RecommendResponse(
            items=_to_proto(deps, response.items, response.payloads),
            request_id=response.request_id,
            next_page_cursor=response.next_cursor,
        )

    def SimilarMedia(  # noqa: N802
        self, request: recommend_pb2.SimilarMediaRequest, context: grpc.ServicerContext
    ) -> recommend_pb2.SimilarMediaResponse:
        deps = self._state.require()
        media_id = convert.require_id(request.media_id, "media_id")
        k = convert.resolve_k(
            request.k,
            default_k=deps.settings.recommend.default_k,
            max_k=deps.settings.recommend.max_k,
        )
        items = deps.recommender.similar(
            media_id,
            convert.optional_id(request.user_id, "user_id"),
            k,
            convert.filter_from_proto(request.filter),
            dry_run=request.dry_run,
        )
        return recommend_pb2.SimilarMediaResponse(items=_to_proto(deps, items))

    @embeds(Priority.INTERACTIVE)
    def SetInterests(  # noqa: N802
        self, request: recommend_pb2.SetInterestsRequest, context: grpc.ServicerContext
    ) -> recommend_pb2.SetInterestsResponse:
        deps = self._state.require()
        user_id = convert.require_id(request.user_id, "user_id")
        text = request.text.strip()
        if not text:
            raise InvalidArgumentError("text", "the interests text is empty")
        deps.require_room()
        limit = deps.settings.media.max_caption_chars
        if len(text) > limit:
            raise ResourceLimitError("text", f"the interests text is over {limit} characters")
        interests = deps.recommender.set_interests(user_id, text, time.time())
        return recommend_pb2.SetInterestsResponse(interests=list(interests))

    def ForgetUser(  # noqa: N802
        self, request: recommend_pb2.ForgetUserRequest, context: grpc.ServicerContext
    ) -> recommend_pb2.ForgetUserResponse:
        deps = self._state.require()
        user_id = convert.require_id(request.user_id, "user_id")
        report = deps.recommender.forget_user(user_id)
        return convert.forget_report_to_proto(report)

    def GetUser(  # noqa: N802
        self, request: recommend_pb2.GetUserRequest, context: grpc.ServicerContext
    ) -> recommend_pb2.GetUserResponse:
        deps = self._state.require()
        user_id = convert.require_id(request.user_id, "user_id")
        if request.recent_events < 0:
            raise InvalidArgumentError("recent_events", "recent_events must not be negative")
        if request.recent_events > MAX_RECENT_EVENTS:
            raise InvalidArgumentError(
                "recent_events",
                f"recent_events={request.recent_events} is over the maximum of "
                f"{MAX_RECENT_EVENTS}",
            )
        events, count = deps.engagement.recent_events(
            user_id, request.recent_events or DEFAULT_RECENT_EVENTS
        )
        return convert.user_response(events, count, deps.engagement.interests(user_id))


def _import_chunks(
    messages: Iterator[recommend_pb2.ImportEventsRequest],
    limit: int,
    require_room: Callable[[], None],
) -> Iterator[list[Event | EventResult]]:
    """Each message's events as domain rows; a message over ``limit``, or a disk too full to
    take it, ends the import."""
    for message in messages:
        require_room()
        if len(message.events) > limit:
            raise ResourceLimitError(
                "events",
                f"{len(message.events)} events in one message is over the limit of {limit}",
            )
        yield [convert.event_from_proto(event) for event in message.events]


def _in_request_order(
    converted: Sequence[Event | EventResult], stored: Sequence[EventResult]
) -> list[EventResult]:
    """Merge the conversion's rejections with the store's results, in request order."""
    from_store = iter(stored)
    return [next(from_store) if isinstance(item, Event) else item for item in converted]


def _to_proto(
    deps: ServiceDeps,
    items: Sequence[RecItem],
    payloads: Mapping[str, Mapping[str, Any]] | None = None,
) -> list[recommend_pb2.Recommendation]:
    """Recommendations with their stored media; an item deleted meanwhile is left out.

    ``payloads`` are the ones the recommender read while checking the page against the store;
    only items it did not read are fetched here.
    """
    known = payloads or {}
    stored = {media_id: stored_item(media_id, payload) for media_id, payload in known.items()}
    stored |= _stored_items(deps, [item.media_id for item in items if item.media_id not in known])
    missing = [item.media_id for item in items if item.media_id not in stored]
    if missing:
        logger.info("left out %d recommended items deleted meanwhile", len(missing))
    return [
        convert.rec_item_to_proto(item, stored[item.media_id])
        for item in items
        if item.media_id in stored
    ]


def _stored_items(deps: ServiceDeps, media_ids: Sequence[str]) -> dict[str, StoredItem]:
    if not media_ids:
        return {}
    points = deps.store.get(list(media_ids))
    return {media_id: stored_item(media_id, point.payload) for media_id, point in points.items()}
