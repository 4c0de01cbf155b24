"""End-to-end tests of RecommendationService: a real server on 127.0.0.1:0, embedded Qdrant
Edge and SQLite, the bundled demo CLIP, and the typed Python client.

The corpus comes from the demo model's synthetic world, so every post has known latent
attributes (colour, shape, ...). Creators have shape styles; colours are spread over every
creator, so "the slate shifts toward red" can't be satisfied by one creator alone. Background
users engage in two contexts (evening in FR, morning in US) with disjoint sets of posts, which
gives "popular in context" a ground truth.
"""

from __future__ import annotations

import io
import itertools
import random
import sqlite3
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, fields
from datetime import UTC, datetime, timedelta
from pathlib import Path

import grpc
import pytest
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc
from PIL import Image

from mediarec.client import (
    ClientContext,
    Embeddings,
    Event,
    EventKind,
    EventStatus,
    FailedPrecondition,
    FrameVector,
    InvalidArgument,
    Location,
    MediaMetadata,
    MediarecClient,
    MediaType,
    NotFound,
    RecommendFilter,
    RecommendPage,
    ResourceExhausted,
    ServingStatus,
    Surface,
)
from mediarec.encoders.synthetic.world import ATTRIBUTE_FAMILIES, Attributes, WorldGenerator
from mediarec.server.app import RunningServer, build_server
from mediarec.server.config import (
    ConfigError,
    RecommendConfig,
    Settings,
    load_settings,
    recommend_settings,
)
from mediarec.server.engagement import DATABASE_NAME
from mediarec.server.recommend.settings import RecommendSettings
from mediarec.server.runtime import ServiceDeps, ServiceState, open_deps
from mediarec.v1 import recommend_pb2, recommend_pb2_grpc

MODEL_ID = "mediarec-demo"
WORLD_SEED = 4242
IMAGE_SIZE = 96
CREATORS = 12
POSTS_PER_CREATOR = 12
VIDEO_CREATORS = 4  # creators 0..3 also post two videos each
BACKGROUND_USERS = 36
EVENING = ClientContext(device="ios", local_hour=21, location=Location(region="FR"))
MORNING = ClientContext(device="android", local_hour=8, location=Location(region="US"))
CREATOR_CAP = 2
MAX_EVENTS_PER_BATCH = 500


# -- harness ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Post:
    media_id: str
    creator_id: str
    attributes: Attributes
    media_type: MediaType


@dataclass
class World:
    posts: dict[str, Post]
    evening_hits: frozenset[str]  # posts engaged with in the evening-FR context
    morning_hits: frozenset[str]  # posts engaged with in the morning-US context

    def with_attribute(self, family: str, value: str) -> list[str]:
        return sorted(
            m for m, p in self.posts.items() if getattr(p.attributes, family) == value
        )


@dataclass
class Service:
    settings: Settings
    deps: ServiceDeps
    running: RunningServer
    client: MediarecClient
    stopped: bool = False

    @property
    def target(self) -> str:
        return f"127.0.0.1:{self.running.port}"

    def stop(self) -> None:
        if self.stopped:
            return
        self.stopped = True
        self.client.close()
        self.running.stop(0)


def service_settings(data_dir: Path) -> Settings:
    return load_settings(
        {
            "model_id": MODEL_ID,
            "data_dir": str(data_dir),
            "port": 0,
            "creator_cap": CREATOR_CAP,
            "max_events_per_batch": MAX_EVENTS_PER_BATCH,
            # Reproducible exploration: 2 of 20 slots are random draws otherwise, and the
            # slates these tests assert on would differ from run to run.
            "explore_seed": 1,
        },
        {},
        None,
    )


def start_service(settings: Settings) -> Service:
    deps = open_deps(settings)
    running = build_server(settings, ServiceState(deps))
    client = MediarecClient(f"127.0.0.1:{running.port}")
    return Service(settings, deps, running, client)


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("recommend-service") / "data"


@pytest.fixture(scope="module")
def service(data_dir: Path) -> Iterator[Service]:
    running = start_service(service_settings(data_dir))
    try:
        yield running
    finally:
        running.stop()


def jpeg(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.convert("RGB").save(buffer, "JPEG", quality=90)
    return buffer.getvalue()


def creator_style(index: int) -> dict[str, dict[str, float]]:
    shapes = ATTRIBUTE_FAMILIES["shape"]
    return {"shape": {shapes[index % len(shapes)]: 3.0, shapes[(index + 3) % len(shapes)]: 1.0}}


def index_post(
    service: Service,
    generator: WorldGenerator,
    media_id: str,
    creator_id: str,
    attrs: Attributes,
    created_at: datetime,
    *,
    video: bool = False,
) -> Post:
    post = generator.post(attrs)
    tags = (attrs.colour, attrs.shape)
    metadata = MediaMetadata(
        media_id=media_id,
        creator_id=creator_id,
        caption=post.caption,
        tags=tags,
        created_at=created_at,
        media_type=MediaType.VIDEO if video else MediaType.UNSPECIFIED,
    )
    if video:
        # Two frames of the same post: a tiny "video" whose every frame shows the caption.
        frames = service.deps.encoder.embed_images([post.image, generator.render(attrs)])
        service.client.index_embeddings(
            metadata,
            Embeddings(
                model_id=service.deps.encoder.model_id,
                frames=(FrameVector(0.0, frames[0]), FrameVector(1.5, frames[1])),
            ),
        )
    else:
        service.client.index_media(metadata, jpeg(post.image))
    return Post(media_id, creator_id, attrs, MediaType.VIDEO if video else MediaType.IMAGE)


def event(
    user: str,
    kind: EventKind,
    *,
    media_id: str = "",
    creator_id: str = "",
    context: ClientContext | None = None,
    ts: float | None = None,
    **fields: object,
) -> Event:
    return Event(
        event_id=f"{user}-{kind.name}-{media_id or creator_id}-{next(_EVENT_SEQ)}",
        user_id=user,
        kind=kind,
        timestamp=ts if ts is not None else time.time(),
        media_id=media_id,
        creator_id=creator_id,
        context=context,
        **fields,  # type: ignore[arg-type]
    )


_EVENT_SEQ = itertools.count()


def log_all(service: Service, events: Sequence[Event]) -> None:
    for start in range(0, len(events), MAX_EVENTS_PER_BATCH):
        result = service.client.log_events(events[start : start + MAX_EVENTS_PER_BATCH])
        assert result.rejected_count == 0, [r.error for r in result.results if r.error]


@pytest.fixture(scope="module")
def world(service: Service) -> World:
    """The indexed corpus plus background engagement; derived state refreshed once."""
    generator = WorldGenerator(WORLD_SEED, image_size=IMAGE_SIZE)
    now = datetime.now(UTC)
    posts: dict[str, Post] = {}
    for c in range(CREATORS):
        creator = f"creator-{c:02d}"
        for i in range(POSTS_PER_CREATOR):
            attrs = generator.sample_attributes(creator_style(c))
            created = now - timedelta(hours=2 + 3 * i + c)
            media_id = f"p-{c:02d}-{i:02d}"
            posts[media_id] = index_post(service, generator, media_id, creator, attrs, created)
        if c < VIDEO_CREATORS:
            for i in range(2):
                attrs = generator.sample_attributes(creator_style(c))
                media_id = f"v-{c:02d}-{i}"
                created = now - timedelta(hours=5 + i)
                posts[media_id] = index_post(
                    service, generator, media_id, creator, attrs, created, video=True
                )
    rng = random.Random(WORLD_SEED)
    images = sorted(m for m, p in posts.items() if p.media_type is MediaType.IMAGE)
    shuffled = rng.sample(images, len(images))
    evening_hits, morning_hits = frozenset(shuffled[:10]), frozenset(shuffled[10:20])
    events: list[Event] = []
    colours = ATTRIBUTE_FAMILIES["colour"]
    for u in range(BACKGROUND_USERS):
        user = f"bg-{u:02d}"
        # Context group and taste are independent: each colour has fans in both groups.
        context, hits = (EVENING, evening_hits) if u % 2 == 0 else (MORNING, morning_hits)
        for media_id in rng.sample(sorted(hits), 4):
            events.append(event(user, EventKind.VIEW, media_id=media_id, context=context,
                                dwell_ms=9000))
            events.append(event(user, EventKind.LIKE, media_id=media_id, context=context))
        favourite = colours[(u // 2) % len(colours)]
        liked = [m for m in images if posts[m].attributes.colour == favourite]
        for media_id in rng.sample(liked, min(6, len(liked))):
            events.append(event(user, EventKind.LIKE, media_id=media_id))
    log_all(service, events)
    service.deps.recommender.refresh()
    return World(posts, evening_hits, morning_hits)


def recommend(service: Service, user: str, **kwargs: object) -> RecommendPage:
    page = service.client.recommend(user, **kwargs)  # type: ignore[arg-type]
    assert page.request_id, "every response carries a request_id"
    return page


def ids(page: RecommendPage) -> list[str]:
    return [item.media_id for item in page.items]


def one_per_creator(world: World, media_ids: Sequence[str], n: int) -> list[str]:
    """The first of ``media_ids`` of each creator, up to ``n``: likes that share no creator."""
    by_creator: dict[str, str] = {}
    for media_id in media_ids:
        by_creator.setdefault(world.posts[media_id].creator_id, media_id)
    return sorted(by_creator.values())[:n]


def share(media_ids: Sequence[str], wanted: set[str] | frozenset[str]) -> float:
    return sum(m in wanted for m in media_ids) / max(len(media_ids), 1)


# -- configuration ---------------------------------------------------------------------------


def test_every_recommend_config_key_reaches_the_recommender() -> None:
    logic = {f.name: f.default for f in fields(RecommendSettings)}
    servicer_only = {
        "max_events_per_batch",
        "import_chunk_events",
        "import_max_errors",
        "events_max_future_skew_s",
    }
    for f in fields(RecommendConfig):
        if f.name in servicer_only:
            continue
        assert f.name in logic, f"recommend.{f.name} names no RecommendSettings field"
        if f.name not in ("ranker_path", "learned_ranker_path"):  # paths: None means ""
            assert f.default == logic[f.name], f.name
    configured = load_settings({"creator_cap": "4", "explore_fraction": "0.25"}, {}, None)
    built = recommend_settings(configured.recommend)
    assert (built.creator_cap, built.explore_fraction) == (4, 0.25)
    assert recommend_settings(Settings().recommend) == RecommendSettings()
    in_data_dir = recommend_settings(Settings().recommend, "/srv/data")
    assert in_data_dir.learned_ranker_path == "/srv/data/learned_ranker.json"
    with pytest.raises(ConfigError) as caught:
        load_settings({"rec_default_k": "50", "rec_max_k": "10"}, {}, None)
    assert caught.value.key == "recommend.default_k"


# -- cold start ------------------------------------------------------------------------------


def test_a_new_user_gets_a_full_diverse_slate(service: Service, world: World) -> None:
    page = recommend(service, "cold-diverse", k=20, context=EVENING)
    assert len(page.items) == 20
    assert len(set(ids(page))) == 20
    creators = Counter(world.posts[m].creator_id for m in ids(page))
    assert max(creators.values()) <= CREATOR_CAP
    assert len({world.posts[m].attributes.colour for m in ids(page)}) >= 4
    for item in page.items:
        assert item.reasons and item.sources
        total = sum(value for _, value in item.score_breakdown)
        assert total == pytest.approx(item.score, abs=1e-3)


def test_a_new_users_slate_follows_popularity_in_their_context(
    service: Service, world: World
) -> None:
    evening = ids(recommend(service, "cold-evening", k=10, context=EVENING))
    morning = ids(recommend(service, "cold-morning", k=10, context=MORNING))
    assert share(evening, world.evening_hits) > share(evening, world.morning_hits)
    assert share(morning, world.morning_hits) > share(morning, world.evening_hits)
    assert share(evening, world.evening_hits) >= 0.3


def test_a_few_likes_shift_the_slate_toward_the_liked_attribute(
    service: Service, world: World
) -> None:
    """Two users like five posts each (one per creator), one red ones, one blue ones."""
    slates: dict[str, list[str]] = {}
    for colour in ("red", "blue"):
        user = f"likes-{colour}"
        liked = one_per_creator(world, world.with_attribute("colour", colour), 5)
        log_all(service, [event(user, EventKind.LIKE, media_id=m, context=MORNING) for m in liked])
        slates[colour] = ids(recommend(service, user, k=20, context=MORNING))
        assert not set(liked) & set(slates[colour]), "liked items are seen and must not return"
    red = set(world.with_attribute("colour", "red"))
    blue = set(world.with_attribute("colour", "blue"))
    # Each colour is 1/8 of the corpus; a liked colour should clearly stand out.
    assert share(slates["red"], red) >= 0.2
    assert share(slates["blue"], blue) >= 0.2
    assert share(slates["red"], red) >= share(slates["blue"], red) + 0.15
    assert share(slates["blue"], blue) >= share(slates["red"], blue) + 0.15


def test_a_brand_new_post_reaches_an_interested_user_without_engagement(
    service: Service, world: World
) -> None:
    user = "purple-fan"
    purple = world.with_attribute("colour", "purple")
    log_all(service, [event(user, EventKind.LIKE, media_id=m) for m in purple[:4]])
    generator = WorldGenerator(WORLD_SEED + 1, image_size=IMAGE_SIZE)
    attrs = world.posts[purple[0]].attributes
    new = index_post(
        service, generator, "brand-new-purple", "newcomer", attrs, datetime.now(UTC)
    )
    world.posts[new.media_id] = new  # later tests may meet it in their slates
    page = recommend(service, user, k=20)
    assert new.media_id in ids(page)


def test_declared_interests_seed_a_new_users_slate(service: Service, world: World) -> None:
    user = "declared"
    parsed = service.client.set_interests(user, "purple shapes,  blue shapes\n")
    assert parsed == ("purple shapes", "blue shapes")
    wanted = set(world.with_attribute("colour", "purple"))
    wanted |= set(world.with_attribute("colour", "blue"))
    control = ids(recommend(service, "declared-nothing", k=10))
    page = recommend(service, user, k=10)
    # A quarter of the corpus is purple or blue.
    assert share(ids(page), wanted) >= 0.5
    assert share(ids(page), wanted) >= share(control, wanted) + 0.2
    assert sum("interests" in item.sources for item in page.items) >= 5


# -- feedback and filtering ------------------------------------------------------------------


def test_hiding_a_creator_removes_them(service: Service, world: World) -> None:
    user = "hider"
    first = recommend(service, user, k=30, exclude_seen=False)
    creator = Counter(world.posts[m].creator_id for m in ids(first)).most_common(1)[0][0]
    log_all(service, [event(user, EventKind.HIDE, creator_id=creator)])
    for surface in (Surface.FEED, Surface.EXPLORE):
        page = recommend(service, user, k=50, surface=surface, exclude_seen=False)
        assert creator not in {world.posts[m].creator_id for m in ids(page)}
    similar = service.client.similar_media(ids(first)[0], user_id=user, k=50)
    assert creator not in {item.item.metadata.creator_id for item in similar}


def test_seen_items_do_not_come_back_and_impressions_wear_out(
    service: Service, world: World
) -> None:
    user = "viewer"
    page = recommend(service, user, k=10)
    viewed, liked, shown = ids(page)[:3], ids(page)[3:5], ids(page)[5]
    events = [event(user, EventKind.VIEW, media_id=m, dwell_ms=3000) for m in viewed]
    events += [event(user, EventKind.LIKE, media_id=m) for m in liked]
    # Shown in three more sessions (no request_id: e.g. a profile grid) without engagement.
    events += [event(user, EventKind.IMPRESSION, media_id=shown) for _ in range(3)]
    log_all(service, events)
    for surface in (Surface.FEED, Surface.EXPLORE):
        later = set(ids(recommend(service, user, k=60, surface=surface)))
        assert not later & {*viewed, *liked, shown}
    everything = set(ids(recommend(service, user, k=100, exclude_seen=False)))
    assert everything & {*viewed, *liked}, "exclude_seen=False may show seen items again"


def test_forget_user_leaves_no_trace(service: Service, world: World) -> None:
    user = "user-to-forget-9f3a"
    creator = world.posts[world.with_attribute("colour", "blue")[0]].creator_id
    service.client.set_interests(user, "blue squares")
    page = recommend(service, user, k=10)
    log_all(
        service,
        [
            event(user, EventKind.LIKE, media_id=ids(page)[0], request_id=page.request_id),
            event(user, EventKind.FOLLOW, creator_id=creator),
            event(user, EventKind.SEARCH, query="blue squares"),
        ],
    )
    second = recommend(service, user, k=5)
    report = service.client.forget_user(user)
    assert report.events_deleted == 3
    assert report.follows_deleted == 1
    assert report.interests_deleted == 1
    assert report.impressions_deleted >= 10  # both responses' served items
    database = service.settings.storage.data_dir / DATABASE_NAME
    with sqlite3.connect(database) as db:
        tables = [r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type='table'")]
        for table in tables:
            for row in db.execute(f"SELECT * FROM {table}"):
                assert not any(user in str(cell) for cell in row), (table, row)
    with pytest.raises(FailedPrecondition):  # the old cursor is gone too
        service.client.recommend(user, k=5, page_cursor=second.next_page_cursor)
    again = service.client.forget_user(user)
    assert again.events_deleted == 0 and again.impressions_deleted == 0


# -- idempotence and bad input ---------------------------------------------------------------


def test_repeated_event_ids_are_counted_once(service: Service, world: World) -> None:
    user = "retrier"
    media_id = world.with_attribute("colour", "green")[0]
    batch = [
        event(user, EventKind.LIKE, media_id=media_id),
        event(user, EventKind.VIEW, media_id=media_id, dwell_ms=1200),
    ]
    first = service.client.log_events(batch)
    assert (first.accepted_count, first.duplicate_count) == (2, 0)
    again = service.client.log_events([*batch, batch[0]])
    assert (again.accepted_count, again.duplicate_count, again.rejected_count) == (0, 3, 0)
    assert [r.status for r in again.results] == [EventStatus.DUPLICATE] * 3
    assert len(service.deps.engagement.user_events(user)) == 2


def test_bad_events_get_per_item_errors(service: Service, world: World) -> None:
    user = "sloppy"
    media_id = next(iter(world.posts))
    good = event(user, EventKind.LIKE, media_id=media_id)
    bad = [
        Event("bad-kind", user, EventKind.UNSPECIFIED, time.time(), media_id=media_id),
        Event("bad-media", user, EventKind.LIKE, time.time()),
        Event("bad-follow", user, EventKind.FOLLOW, time.time()),
        Event("bad-search", user, EventKind.SEARCH, time.time()),
        Event("bad-dwell", user, EventKind.VIEW, time.time(), media_id=media_id, dwell_ms=-1),
        Event("bad-hour", user, EventKind.LIKE, time.time(), media_id=media_id,
              context=ClientContext(local_hour=25)),
        Event("bad-time", user, EventKind.LIKE, time.time() + 9 * 86_400, media_id=media_id),
        Event("", user, EventKind.LIKE, time.time(), media_id=media_id),
    ]
    result = service.client.log_events([bad[0], good, *bad[1:]])
    statuses = [r.status for r in result.results]
    assert statuses[1] is EventStatus.ACCEPTED
    assert statuses[:1] + statuses[2:] == [EventStatus.REJECTED] * len(bad)
    assert all(r.error for r in result.results if r.status is EventStatus.REJECTED)
    assert (result.accepted_count, result.rejected_count) == (1, len(bad))
    assert [r.event_id for r in result.results][:2] == ["bad-kind", good.event_id]


def test_an_oversized_batch_and_bad_requests_fail_with_clear_codes(
    service: Service, world: World
) -> None:
    flood = MAX_EVENTS_PER_BATCH + 1
    too_many = [event("flood", EventKind.LIKE, media_id="x") for _ in range(flood)]
    with pytest.raises(ResourceExhausted):
        service.client.log_events(too_many)
    with pytest.raises(InvalidArgument):
        service.client.recommend("", k=5)
    with pytest.raises(InvalidArgument):
        service.client.recommend("someone", k=-1)
    with pytest.raises(InvalidArgument):
        service.client.recommend("someone", k=100_000)
    with pytest.raises(InvalidArgument):
        service.client.recommend("someone", k=5, page_cursor="not-a-cursor")
    with pytest.raises(NotFound):
        service.client.similar_media("no-such-media")
    with pytest.raises(InvalidArgument):
        service.client.set_interests("someone", "   ")
    with pytest.raises(InvalidArgument):
        service.client.forget_user("")


def test_overlong_ids_are_refused_before_anything_is_stored(service: Service, world: World) -> None:
    # Each served row stores the user id, so an uncapped id grows the disk with every call.
    huge = "u" * (1 << 20)
    served_before = sum(1 for _ in service.deps.engagement.iter_served())
    with pytest.raises(InvalidArgument):
        service.client.recommend(huge, k=5)
    with pytest.raises(InvalidArgument):
        service.client.recommend("someone", k=5, seed_media_id="m" * 300)
    with pytest.raises(InvalidArgument):
        service.client.similar_media("any", user_id=huge)
    with pytest.raises(InvalidArgument):
        service.client.set_interests(huge, "red circles")
    with pytest.raises(InvalidArgument):
        service.client.forget_user(huge)
    assert sum(1 for _ in service.deps.engagement.iter_served()) == served_before
    assert service.client.recommend("u" * 256, k=3).items  # the cap itself is allowed


# -- surfaces, filters, paging ---------------------------------------------------------------


def test_explore_never_returns_followed_creators_and_feed_favours_them(
    service: Service, world: World
) -> None:
    user = "follower"
    followed = {"creator-03", "creator-07"}
    log_all(service, [event(user, EventKind.FOLLOW, creator_id=c) for c in sorted(followed)])
    feed = recommend(service, user, k=20, surface=Surface.FEED)
    assert followed & {world.posts[m].creator_id for m in ids(feed)}
    cursor = ""
    for _ in range(3):
        page = recommend(service, user, k=20, surface=Surface.EXPLORE, page_cursor=cursor)
        assert not followed & {world.posts[m].creator_id for m in ids(page)}
        cursor = page.next_page_cursor
        if not cursor:
            break


def test_reels_return_only_videos(service: Service, world: World) -> None:
    page = recommend(service, "reels-watcher", k=20, surface=Surface.REELS)
    videos = {m for m, p in world.posts.items() if p.media_type is MediaType.VIDEO}
    assert page.items
    assert set(ids(page)) <= videos
    assert all(item.item.metadata.media_type is MediaType.VIDEO for item in page.items)


def test_filters_restrict_the_slate(service: Service, world: World) -> None:
    only = RecommendFilter(creator_ids=("creator-05",), tags=("red", "blue", "green"))
    page = recommend(service, "filtered", k=20, media_filter=only)
    for media_id in ids(page):
        post = world.posts[media_id]
        assert post.creator_id == "creator-05"
        assert post.attributes.colour in {"red", "blue", "green"}
    recent = recommend(service, "filtered", k=50, media_filter=RecommendFilter(
        max_age=timedelta(hours=10)), exclude_seen=False)
    assert recent.items
    cutoff = datetime.now(UTC) - timedelta(hours=10, minutes=5)
    for item in recent.items:
        assert item.item.metadata.created_at is not None
        assert item.item.metadata.created_at >= cutoff


def test_page_two_continues_page_one_without_repeats(service: Service, world: World) -> None:
    user = "pager"
    pages = [recommend(service, user, k=10)]
    while pages[-1].next_page_cursor and len(pages) < 4:
        pages.append(recommend(service, user, k=10, page_cursor=pages[-1].next_page_cursor))
    assert len(pages) >= 3
    seen: list[str] = [m for page in pages for m in ids(page)]
    assert len(seen) == len(set(seen))
    assert all(len(page.items) == 10 for page in pages[:2])
    # The pages of one cursor chain come from one ranking and carry its request_id.
    assert len({page.request_id for page in pages}) == 1
    assert recommend(service, user, k=10).request_id != pages[0].request_id


def test_similar_media_leaves_out_the_seed_and_prefers_its_attributes(
    service: Service, world: World
) -> None:
    seed = world.with_attribute("colour", "orange")[0]
    similar = service.client.similar_media(seed, k=10)
    assert similar and seed not in {item.media_id for item in similar}
    orange = set(world.with_attribute("colour", "orange"))
    assert share([item.media_id for item in similar], orange) >= 0.3
    videos_only = RecommendFilter(media_types=(MediaType.VIDEO,))
    for item in service.client.similar_media(seed, k=10, media_filter=videos_only):
        assert item.item.metadata.media_type is MediaType.VIDEO


# -- service plumbing ------------------------------------------------------------------------


def test_health_and_reflection_list_the_recommendation_service(service: Service) -> None:
    name = recommend_pb2.DESCRIPTOR.services_by_name["RecommendationService"].full_name
    assert service.client.health(name) is ServingStatus.SERVING
    with grpc.insecure_channel(service.target) as channel:
        stub = reflection_pb2_grpc.ServerReflectionStub(channel)
        request = reflection_pb2.ServerReflectionRequest(list_services="")
        response = next(stub.ServerReflectionInfo(iter([request])))
    names = {s.name for s in response.list_services_response.service}
    assert name in names


def test_reflection_v1_answers_like_v1alpha(service: Service) -> None:
    # Newer tools ask grpc.reflection.v1 first; v1 has v1alpha's messages on the wire.
    request = reflection_pb2.ServerReflectionRequest(list_services="")
    lookup = reflection_pb2.ServerReflectionRequest(
        file_containing_symbol="mediarec.v1.RecommendationService"
    )
    with grpc.insecure_channel(service.target) as channel:
        v1 = channel.stream_stream(
            "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo",
            request_serializer=reflection_pb2.ServerReflectionRequest.SerializeToString,
            response_deserializer=reflection_pb2.ServerReflectionResponse.FromString,
        )
        listed, found = list(v1(iter([request, lookup]), timeout=10))
    names = {s.name for s in listed.list_services_response.service}
    assert {"grpc.reflection.v1.ServerReflection", "mediarec.v1.AdminService"} <= names
    assert found.file_descriptor_response.file_descriptor_proto


def test_exclude_seen_unset_means_true_on_the_wire(service: Service, world: World) -> None:
    user = "raw-wire"
    first = recommend(service, user, k=5)
    log_all(service, [event(user, EventKind.VIEW, media_id=m, dwell_ms=500) for m in ids(first)])
    with grpc.insecure_channel(service.target) as channel:
        stub = recommend_pb2_grpc.RecommendationServiceStub(channel)
        response = stub.Recommend(recommend_pb2.RecommendRequest(user_id=user, k=30))
    assert response.request_id
    assert not {item.media.metadata.media_id for item in response.items} & set(ids(first))


# -- persistence (last: it restarts the module's server) ---------------------------------------


def test_recommendations_survive_a_restart(service: Service, world: World) -> None:
    user = "survivor"
    red = set(world.with_attribute("colour", "red"))
    liked = one_per_creator(world, sorted(red), 5)
    log_all(service, [event(user, EventKind.LIKE, media_id=m) for m in liked])
    log_all(service, [event(user, EventKind.FOLLOW, creator_id="creator-01")])
    service.stop()
    restarted = start_service(service.settings)
    try:
        after = recommend(restarted, user, k=20, surface=Surface.EXPLORE)
        assert not set(liked) & set(ids(after))
        assert "creator-01" not in {item.item.metadata.creator_id for item in after.items}
        assert share(ids(after), red) >= 0.2  # red is 1/8 of the corpus
        assert len(restarted.deps.engagement.user_events(user)) == 6
    finally:
        restarted.stop()
