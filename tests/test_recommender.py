"""The Recommender over the real stores: Qdrant Edge, SQLite and the bundled demo CLIP.

Posts come from the demo model's synthetic world, so each has known latent attributes. Creators
have shape styles while colours are spread over every creator; background users each love one
colour and engage in one of two contexts (evening in FR, morning in US) with disjoint posts.
Engagement is simulated from those latent attributes, never from the recommender's vectors.
"""

from __future__ import annotations

import gc
import itertools
import os
import random
import threading
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest

from mediarec.encoders import Encoder, load_encoder
from mediarec.encoders.synthetic.world import ATTRIBUTE_FAMILIES, Attributes, WorldGenerator
from mediarec.server.engagement import open_engagement_store
from mediarec.server.indexing.indexer import IndexLimits, MediaIndexer
from mediarec.server.media import ItemMetadata
from mediarec.server.recommend import blend as b
from mediarec.server.recommend.profile import UserProfile
from mediarec.server.recommend.ranker import RankerModel, save_ranker
from mediarec.server.recommend.recommender import Recommender
from mediarec.server.recommend.settings import DAY_S, RecommendSettings
from mediarec.server.recommend.state import CoEngagement, build_coengagement, build_state
from mediarec.server.recommend.types import (
    Context,
    Event,
    EventKind,
    RecFilter,
    RecItem,
    RecRequest,
    ServedItem,
    Surface,
)
from mediarec.server.service_errors import InvalidArgumentError, NotFoundError, PreconditionError
from mediarec.server.store import VectorStore, schema
from mediarec.server.store.factory import open_store
from mediarec.server.topics import TopicLabeler, demo_world_prompts

MODEL_ID = os.environ.get("MEDIAREC_TEST_RECOMMEND_MODEL", "mediarec-demo")
WORLD_SEED = 777
IMAGE_SIZE = 64
CREATORS = 10
POSTS_PER_CREATOR = 14
VIDEO_CREATORS = 3  # creators 0..2 also post two videos each
BACKGROUND_USERS = 32
EVENING = Context(device="ios", local_hour=21, location="FR")
MORNING = Context(device="android", local_hour=8, location="US")
COLOURS = ("red", "blue", "green", "yellow")
NOW = float(int(time.time()))


@dataclass
class World:
    store: VectorStore
    engagement: object
    encoder: Encoder
    indexer: MediaIndexer
    generator: WorldGenerator
    attributes: dict[str, Attributes] = field(default_factory=dict)
    creator: dict[str, str] = field(default_factory=dict)
    videos: set[str] = field(default_factory=set)
    evening_hits: set[str] = field(default_factory=set)
    morning_hits: set[str] = field(default_factory=set)
    counter: Iterator[int] = field(default_factory=itertools.count)

    def with_colour(self, colour: str) -> list[str]:
        return sorted(m for m, a in self.attributes.items() if a.colour == colour)

    def index(
        self,
        items: Sequence[tuple[str, str, Attributes, float, bool]],
    ) -> None:
        """(media_id, creator_id, attributes, created_at, is_video) through the real indexer."""
        posts = [self.generator.post(attrs) for _, _, attrs, _, _ in items]
        images = [p.image for p in posts]
        extra = [self.generator.render(attrs) for _, _, attrs, _, video in items if video]
        vectors = self.encoder.embed_images(images + extra)
        extra_vectors = iter(vectors[len(images):])
        prepared = []
        for (media_id, creator, attrs, created, video), post, vector in zip(
            items, posts, vectors[: len(images)], strict=True
        ):
            metadata = ItemMetadata(
                media_id=media_id, creator_id=creator, caption=post.caption,
                tags=(attrs.colour, attrs.shape), created_at=int(created),
            )
            frames = [(0.0, vector), (2.0, next(extra_vectors))] if video else []
            prepared.append(
                self.indexer.prepare_vectors(
                    metadata, model_id=self.encoder.model_id,
                    visual=None if video else vector, caption=None, frames=frames,
                )
            )
            self.attributes[media_id] = attrs
            self.creator[media_id] = creator
            if video:
                self.videos.add(media_id)
        self.indexer.commit(prepared)

    def log(self, recommender: Recommender | None, events: Sequence[Event]) -> None:
        results = self.engagement.log_events(events)  # type: ignore[attr-defined]
        assert all(r.accepted for r in results), [r.error for r in results if not r.accepted]
        if recommender is not None:
            recommender.on_events(events)

    def event(self, user: str, kind: EventKind, t: float = NOW, **kw) -> Event:
        return Event(f"ev{next(self.counter)}", user, kind, t, **kw)


def creator_style(index: int) -> dict[str, dict[str, float]]:
    shapes = ATTRIBUTE_FAMILIES["shape"]
    return {
        "shape": {shapes[index % len(shapes)]: 3.0, shapes[(index + 3) % len(shapes)]: 1.0},
        "colour": {c: 1.0 for c in COLOURS},
    }


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    data_dir = tmp_path_factory.mktemp("recommender")
    encoder = load_encoder(MODEL_ID)
    store = open_store(data_dir)
    store.ensure_collection(encoder.model_id, {schema.VISUAL: encoder.dim,
                                                schema.CAPTION: encoder.dim})
    engagement = open_engagement_store(data_dir)
    labeler = TopicLabeler(encoder, demo_world_prompts(per_topic=2))
    indexer = MediaIndexer(encoder, store, labeler, IndexLimits())
    generator = WorldGenerator(WORLD_SEED, image_size=IMAGE_SIZE)
    w = World(store, engagement, encoder, indexer, generator)
    rng = random.Random(WORLD_SEED)
    items = []
    for c in range(CREATORS):
        for p in range(POSTS_PER_CREATOR):
            attrs = generator.sample_attributes(creator_style(c))
            created = NOW - rng.uniform(1, 20) * DAY_S
            items.append((f"c{c}-p{p}", f"creator{c}", attrs, created, False))
        if c < VIDEO_CREATORS:
            for v in range(2):
                attrs = generator.sample_attributes(creator_style(c))
                items.append((f"c{c}-v{v}", f"creator{c}", attrs, NOW - 2 * DAY_S, True))
    w.index(items)
    simulate_background(w, rng)
    try:
        yield w
    finally:
        engagement.close()
        store.close()


def simulate_background(w: World, rng: random.Random) -> None:
    """Each background user loves one colour and likes posts of it, in one context."""
    posts = sorted(w.attributes)
    evening_pool = set(rng.sample(posts, len(posts) // 2))
    events = []
    for u in range(BACKGROUND_USERS):
        user = f"bg{u}"
        colour = COLOURS[(u // 2) % len(COLOURS)]
        evening = u % 2 == 0
        context = EVENING if evening else MORNING
        pool = [m for m in posts if (m in evening_pool) == evening]
        loved = [m for m in pool if w.attributes[m].colour == colour]
        liked = rng.sample(loved, min(len(loved), 8)) + rng.sample(pool, 2)  # plus noise
        for m in liked:
            t = NOW - rng.uniform(0.1, 3) * DAY_S
            events.append(w.event(user, EventKind.LIKE, t, media_id=m, context=context))
            (w.evening_hits if evening else w.morning_hits).add(m)
    w.log(None, events)


def make_recommender(w: World, **overrides) -> Recommender:
    settings = RecommendSettings(**{"refresh_min_events": 10_000, **overrides})
    r = Recommender(w.encoder, w.store, w.engagement, settings, clock=lambda: NOW, seed=5)
    r.refresh()
    return r


@pytest.fixture
def rec(world: World) -> Iterator[Recommender]:
    r = make_recommender(world)
    yield r
    r.close()


def unused_attributes(w: World, **fixed: str) -> Attributes:
    """Attributes no indexed post has (so the new post is nobody's near-duplicate)."""
    taken = set(w.attributes.values())
    rng = random.Random(len(taken))
    while True:
        values = {f: rng.choice(v) for f, v in ATTRIBUTE_FAMILIES.items()} | fixed
        attrs = Attributes(**values)
        if all(sum(getattr(attrs, f) == getattr(t, f) for f in values) <= 3 for t in taken):
            return attrs


def ids(items: Sequence[RecItem]) -> list[str]:
    return [i.media_id for i in items]


def colour_share(w: World, items: Sequence[RecItem], colour: str) -> float:
    return sum(w.attributes[i.media_id].colour == colour for i in items) / max(1, len(items))


# -- cold start --------------------------------------------------------------------------------


def test_cold_start_slate_is_non_empty_diverse_and_popular_in_context(world, rec) -> None:
    slate = rec.recommend(RecRequest("newcomer", k=12, context=EVENING)).items
    assert len(slate) == 12
    creators = Counter(world.creator[m] for m in ids(slate))
    assert len(creators) >= 6 and max(creators.values()) <= 2
    assert len({world.attributes[m].colour for m in ids(slate)}) >= 3
    evening = sum(m in world.evening_hits for m in ids(slate))
    morning = sum(m in world.morning_hits and m not in world.evening_hits for m in ids(slate))
    assert evening > morning
    assert any("popular near you this evening" in i.reasons for i in slate)


def test_likes_shift_the_slate_toward_the_liked_colour(world, rec) -> None:
    before = rec.recommend(RecRequest("convert", k=12, context=EVENING)).items
    reds = [m for m in world.with_colour("red") if m not in ids(before)][:4]
    world.log(rec, [world.event("convert", EventKind.LIKE, media_id=m) for m in reds])
    after = rec.recommend(RecRequest("convert", k=12, context=EVENING)).items
    assert colour_share(world, after, "red") >= colour_share(world, before, "red") + 0.25
    assert colour_share(world, after, "red") >= 0.5
    assert not set(reds) & set(ids(after))  # liked posts are seen
    assert any(r.startswith("similar to") for i in after for r in i.reasons)


def test_a_brand_new_matching_post_reaches_an_interested_user(world, rec) -> None:
    reds = world.with_colour("red")[:5]
    world.log(rec, [world.event("red-fan", EventKind.LIKE, media_id=m) for m in reds])
    attrs = world.attributes[reds[0]]  # the look of a post they liked, by someone new
    world.index([("brand-new-red", "newcomer", attrs, NOW - 60, False)])
    slate = rec.recommend(RecRequest("red-fan", k=20)).items
    assert "brand-new-red" in ids(slate)
    item = next(i for i in slate if i.media_id == "brand-new-red")
    assert item.breakdown.get(b.CONTENT, 0.0) > 0
    assert b.COENGAGEMENT not in item.breakdown  # nobody engaged with it yet


def test_declared_interests_seed_a_new_user(world, rec) -> None:
    assert rec.set_interests("declarer", "blue things, #blue") == ["blue things", "blue"]
    slate = rec.recommend(RecRequest("declarer", k=12)).items
    assert colour_share(world, slate, "blue") >= 0.5
    assert any(r.startswith("matches your interest in") or r == "because you like #blue"
               for i in slate for r in i.reasons)


def test_set_interests_without_any_interest_is_invalid(rec) -> None:
    with pytest.raises(InvalidArgumentError):
        rec.set_interests("someone", " , ; ")


def test_steering_text_steers_one_request(world, rec) -> None:
    slate = rec.recommend(RecRequest("steerer", k=12, steering_text="green")).items
    assert colour_share(world, slate, "green") >= 0.5


def test_a_seed_post_steers_one_request_by_its_look_and_its_fans(world, rec) -> None:
    """A seeded request ("more like this") leans toward the seed: posts that look like it and
    posts its fans also liked (co-engagement from the seed, which the user never liked)."""
    blues = world.with_colour("blue")[:4]
    world.log(rec, [world.event("seeker", EventKind.LIKE, media_id=m) for m in blues])
    seed = world.with_colour("red")[0]
    plain = rec.recommend(RecRequest("seeker", k=12)).items
    # A dry run logs no impressions, whose fatigue would also lower the next request's reds.
    seeded = rec.recommend(
        RecRequest("seeker", k=12, seed_media_id=seed, dry_run=True)
    ).items
    assert seed not in ids(seeded)
    assert colour_share(world, seeded, "red") >= colour_share(world, plain, "red") + 0.25
    assert any(b.SEED in i.breakdown for i in seeded)
    fans_also_liked = [
        i for i in seeded
        if "coengagement" in i.sources and world.attributes[i.media_id].colour == "red"
    ]
    assert fans_also_liked
    assert all(i.breakdown.get(b.COENGAGEMENT, 0.0) > 0 for i in fans_also_liked)
    after = rec.recommend(RecRequest("seeker", k=12)).items  # the seed steers one request only
    assert colour_share(world, after, "red") <= colour_share(world, seeded, "red") - 0.25


# -- feedback and filtering --------------------------------------------------------------------


def test_hiding_a_creator_removes_the_creator(world, rec) -> None:
    first = rec.recommend(RecRequest("hider", k=20, context=EVENING)).items
    victim = world.creator[first[0].media_id]
    world.log(rec, [world.event("hider", EventKind.HIDE, creator_id=victim)])
    for surface in Surface:
        slate = rec.recommend(RecRequest("hider", k=40, surface=surface)).items
        assert victim not in {world.creator[m] for m in ids(slate)}


def test_seen_items_do_not_come_back(world, rec) -> None:
    first = rec.recommend(RecRequest("viewer", k=10)).items
    world.log(rec, [world.event("viewer", EventKind.VIEW, media_id=m, dwell_ms=1200)
                    for m in ids(first)])
    again = rec.recommend(RecRequest("viewer", k=40)).items
    assert not set(ids(first)) & set(ids(again))
    everything = rec.recommend(RecRequest("viewer", k=40, exclude_seen=False)).items
    assert set(ids(first)) & set(ids(everything))


def test_impressions_add_fatigue_and_drop_an_item_after_three(world) -> None:
    rec = make_recommender(world, explore_fraction=0.0)

    def slate() -> dict[str, RecItem]:
        items = rec.recommend(RecRequest("scroller", k=100, context=EVENING, dry_run=True)).items
        return {i.media_id: i for i in items}

    try:
        target = next(iter(slate()))
        for n in range(1, 4):
            world.log(rec, [world.event("scroller", EventKind.IMPRESSION, media_id=target,
                                        request_id=f"elsewhere-{n}")])
            shown = slate()
            if n < 3:  # impressions never make an item seen; they only demote it
                assert shown[target].breakdown[b.FATIGUE] < 0
        assert target not in shown
    finally:
        rec.close()


def test_served_pages_count_as_impressions(world) -> None:
    r = make_recommender(world, explore_fraction=0.0, page_cache_ttl_s=600.0)
    try:
        first = r.recommend(RecRequest("repeat-viewer", k=5)).items
        second = r.recommend(RecRequest("repeat-viewer", k=100)).items
        again = [i for i in second if i.media_id in ids(first)]
        assert again and all(i.breakdown[b.FATIGUE] < 0 for i in again)
    finally:
        r.close()


def test_skips_push_down_similar_content(world, rec) -> None:
    greens = world.with_colour("green")
    before = rec.recommend(RecRequest("skipper", k=20)).items
    world.log(rec, [world.event("skipper", EventKind.SKIP, media_id=m) for m in greens[:6]])
    after = rec.recommend(RecRequest("skipper", k=20)).items
    assert colour_share(world, after, "green") < colour_share(world, before, "green")
    assert any(i.breakdown.get(b.NEGATIVE, 0.0) < 0 for i in after)


def test_own_posts_are_never_recommended(world, rec) -> None:
    slate = rec.recommend(RecRequest("creator3", k=60)).items
    assert "creator3" not in {world.creator[m] for m in ids(slate)}


def test_a_cached_user_does_not_keep_a_replaced_snapshot_graph_alive(world) -> None:
    # A cached user's kept work belongs to the snapshot it was computed on. When a rebuild
    # replaces the snapshot, its co-engagement graph and id index must go with it, even while
    # the user stays cached: otherwise every rebuild within the cache's TTL stays in memory.
    r = make_recommender(world, refresh_min_events=1, refresh_min_interval_s=0.0,
                         precompute_users=0)  # fmt: skip
    try:
        r.recommend(RecRequest("bg0", k=10, context=EVENING))  # keeps bg0's snapshot work
        assert r.wait_for_refresh(60)  # the constructor's own rebuild, if still running
        gc.collect()
        graphs = sum(type(o) is CoEngagement for o in gc.get_objects())
        version = r.state_info().version
        world.log(r, [world.event("snapshot-probe", EventKind.VIEW, media_id="c0-p0")])
        deadline = time.monotonic() + 60
        while r.state_info().version == version and time.monotonic() < deadline:
            time.sleep(0.05)
        assert r.state_info().version > version  # a rebuild replaced the snapshot
        assert r.wait_for_refresh(60)
        gc.collect()
        assert sum(type(o) is CoEngagement for o in gc.get_objects()) == graphs
    finally:
        r.close()


def test_serving_without_events_still_rebuilds_after_the_longest_interval(world) -> None:
    # Served pages wait in memory (fatigue, the served log) until a rebuild takes them in.
    r = make_recommender(world, refresh_max_interval_s=0.5, precompute_users=0)
    try:
        assert r.wait_for_refresh(60)  # the constructor's own rebuild, if still running
        version = r.state_info().version
        r.recommend(RecRequest("bg1", k=10, context=EVENING))  # served, no event logged
        deadline = time.monotonic() + 30
        while r.state_info().version == version and time.monotonic() < deadline:
            time.sleep(0.05)
        assert r.state_info().version > version
    finally:
        r.close()


def test_a_ranking_kept_for_paging_does_not_keep_the_profile_alive(world) -> None:
    # A ranking stays in the page cache for its cursor; the profile it was ranked for (with its
    # vectors) must go once the user cache lets go of it.
    r = make_recommender(world, precompute_users=0)
    try:
        assert r.recommend(RecRequest("bg2", k=5, context=EVENING)).next_cursor
        world.log(r, [world.event("bg2", EventKind.VIEW, media_id="c1-p1")])  # drops bg2's entry
        gc.collect()
        profiles = [o for o in gc.get_objects() if type(o) is UserProfile]
        assert not [p for p in profiles if p.user_id == "bg2"]
    finally:
        r.close()


def test_a_rebuild_reads_pages_served_up_to_its_start_only(world, tmp_path) -> None:
    # Pages served while a rebuild scans the log are counted live, and those counts stay when
    # it finishes: the rebuild must not read them too.
    engagement = open_engagement_store(tmp_path)
    try:
        served = [
            ServedItem(f"r{n}", "u", "c0-p0", 0, 1.0, 1.0, (), {}, NOW + n - 1) for n in range(3)
        ]
        engagement.log_served(served)  # at NOW - 1, NOW and NOW + 1
        state = build_state(engagement, world.store, RecommendSettings(), NOW)
        assert state.impression_rows.at(state.rows_of(["c0-p0"])).tolist() == [2.0]
    finally:
        engagement.close()


def test_deleted_posts_disappear(world, rec) -> None:
    world.index([("doomed", "creator8", unused_attributes(world), NOW - 30, False)])
    slate = rec.recommend(RecRequest("mourner", k=60, filter=RecFilter(creator_ids=("creator8",))))
    assert "doomed" in ids(slate.items)
    # The page comes with the payloads it was checked against, so the service need not
    # read the store again to build its response.
    assert set(slate.payloads) == set(ids(slate.items))
    assert slate.payloads["doomed"]["creator_id"] == "creator8"
    world.store.delete(["doomed"])
    slate = rec.recommend(RecRequest("mourner", k=60, filter=RecFilter(creator_ids=("creator8",))))
    assert "doomed" not in ids(slate.items)
    assert "doomed" not in slate.payloads


def test_filters_constrain_every_source(world, rec) -> None:
    request = RecRequest("filterer", k=30, context=EVENING,
                         filter=RecFilter(tags=("red",), max_age_s=10 * DAY_S))
    slate = rec.recommend(request).items
    assert slate
    for item in slate:
        assert world.attributes[item.media_id].colour == "red"
    for point in world.store.get(ids(slate)).values():
        assert point.payload[schema.CREATED_AT] >= NOW - 10 * DAY_S


# -- surfaces --------------------------------------------------------------------------------


def test_surfaces(world, rec) -> None:
    follows = ["creator1", "creator2"]
    world.log(rec, [world.event("fan", EventKind.FOLLOW, creator_id=c) for c in follows])
    feed = rec.recommend(RecRequest("fan", k=12, surface=Surface.FEED)).items
    explore = rec.recommend(RecRequest("fan", k=40, surface=Surface.EXPLORE)).items
    reels = rec.recommend(RecRequest("fan", k=40, surface=Surface.REELS)).items
    followed_in_feed = sum(world.creator[m] in follows for m in ids(feed))
    assert followed_in_feed >= 3  # favoured (each creator is capped at 2 per page)
    assert any("from a creator you follow" in r for i in feed for r in i.reasons)
    assert explore and not {world.creator[m] for m in ids(explore)} & set(follows)
    assert reels and set(ids(reels)) <= world.videos


def test_video_items_carry_their_best_matching_frame(world, rec) -> None:
    video = sorted(world.videos)[0]
    colour = world.attributes[video].colour
    liked = [m for m in world.with_colour(colour) if m not in world.videos][:4]
    world.log(rec, [world.event("watcher", EventKind.LIKE, media_id=m) for m in liked])
    reels = rec.recommend(RecRequest("watcher", k=10, surface=Surface.REELS)).items
    assert reels
    assert all(i.matched_frame_timestamp_s in (0.0, 2.0) for i in reels)


# -- diversity and exploration ---------------------------------------------------------------------


def test_the_creator_cap_holds_in_a_small_catalogue(world, rec) -> None:
    """A followed, liked creator leads, but takes at most 2 of a page even when a filter leaves
    few candidates: the exploration pool must not take the other creators out of reach."""
    creators = tuple(f"creator{c}" for c in range(5))
    images = [m for m in sorted(world.creator) if world.creator[m] == "creator0"
              and m not in world.videos]
    liked = images[:3]
    world.log(rec, [world.event("small", EventKind.FOLLOW, creator_id="creator0")]
              + [world.event("small", EventKind.LIKE, media_id=m) for m in liked])
    small = RecFilter(creator_ids=creators, max_age_s=8 * DAY_S)
    response = rec.recommend(RecRequest("small", k=6, filter=small))
    page = Counter(world.creator[m] for m in ids(response.items))
    assert len(response.items) == 6 and set(page) <= set(creators)
    assert page["creator0"] == 2, page
    assert max(page.values()) <= 2, page


def test_pages_too_small_for_an_exploration_slot_set_nothing_aside(world) -> None:
    """Exploitation never sees the exploration pool; on pages under explore_min_k there is no
    slot to draw the pool into, so setting it aside would drop its items, the best-matching
    little-known ones, from every page of the ranking. (The test needs explorable candidates
    under a narrow filter, so items with a few likes count as explorable here.)"""
    rec = make_recommender(world, explore_max_engagements=9)
    greens = world.with_colour("green")[:3]
    world.log(rec, [world.event("no-slots", EventKind.LIKE, media_id=m) for m in greens])
    small = RecFilter(creator_ids=tuple(f"creator{c}" for c in range(5)), max_age_s=8 * DAY_S)

    def whole_ranking(k: int) -> tuple[list[str], list[RecItem]]:
        items: list[RecItem] = []
        cursor = ""
        while True:
            response = rec.recommend(
                RecRequest("no-slots", k=k, filter=small, cursor=cursor)
            )
            items += response.items
            cursor = response.next_cursor
            if not cursor:
                return ids(items), items

    tiny, _ = whole_ranking(4)  # below explore_min_k (5): no exploration slot
    _, explored_too = whole_ranking(10)  # one slot a page
    drawn = [i.media_id for i in explored_too if i.explored]
    rec.close()
    assert drawn and set(drawn) <= set(tiny)
    assert len(tiny) >= len(explored_too)


# -- paging, provenance, logging ----------------------------------------------------------------


def test_pages_continue_one_ranking_without_repeats(world, rec) -> None:
    pages, cursor, request_ids = [], "", set()
    for _ in range(4):
        response = rec.recommend(RecRequest("pager", k=8, cursor=cursor, context=MORNING))
        pages.append(ids(response.items))
        request_ids.add(response.request_id)
        cursor = response.next_cursor
        if not cursor:
            break
    flat = [m for page in pages for m in page]
    assert len(pages) == 4 and all(len(p) == 8 for p in pages)
    assert len(flat) == len(set(flat))
    assert len(request_ids) == 1  # one ranking, one request id


def test_cursor_errors(world, rec) -> None:
    response = rec.recommend(RecRequest("pager2", k=5))
    with pytest.raises(InvalidArgumentError):
        rec.recommend(RecRequest("pager2", k=5, cursor="garbage"))
    with pytest.raises(PreconditionError):  # someone else's cursor looks expired
        rec.recommend(RecRequest("intruder", k=5, cursor=response.next_cursor))
    with pytest.raises(PreconditionError):
        rec.recommend(RecRequest("pager2", k=5, cursor="0" * 32 + ".5"))


def test_every_item_explains_its_score(world) -> None:
    # A cap of 4 leaves this ten-creator world room for exploration beside the exploited items;
    # a weak prior keeps the draw random, so an explored item's propensity is below 1.
    rec = make_recommender(world, creator_cap=4, explore_prior_strength=20.0)
    try:
        reds = world.with_colour("red")[:3]
        world.log(rec, [world.event("curious", EventKind.LIKE, media_id=m) for m in reds])
        response = rec.recommend(RecRequest("curious", k=20, context=EVENING))
    finally:
        rec.close()
    assert response.request_id
    for item in response.items:
        assert sum(item.breakdown.values()) == pytest.approx(item.score, abs=1e-9)
        assert item.sources and item.reasons and len(item.reasons) <= 3
        assert 0 < item.propensity <= 1
    explored = [i for i in response.items if i.explored]
    assert len(explored) == 2  # the exploration budget of a 20-item page
    assert all(0 < i.propensity < 1 for i in explored)
    assert all(i.reasons[0] in ("exploring a new creator", "trying something new")
               for i in explored)
    assert any(r.startswith("similar to") for i in response.items for r in i.reasons)


def test_served_items_are_logged_for_training(world, rec) -> None:
    response = rec.recommend(RecRequest("logged", k=6, context=EVENING))
    rec.flush_served()
    served = [s for s in world.engagement.iter_served() if s.request_id == response.request_id]
    assert [s.media_id for s in sorted(served, key=lambda s: s.position)] == ids(response.items)
    for s, item in zip(sorted(served, key=lambda s: s.position), response.items, strict=True):
        assert s.propensity == pytest.approx(item.propensity)
        assert set(b.FEATURES) <= set(s.features)
        assert "user_confidence" in s.features and "item_confidence" in s.features


def test_k_limits(rec) -> None:
    assert len(rec.recommend(RecRequest("k-user", k=0)).items) == 20  # default_k
    with pytest.raises(InvalidArgumentError):
        rec.recommend(RecRequest("k-user", k=-1))
    with pytest.raises(Exception, match="over the limit"):
        rec.recommend(RecRequest("k-user", k=10_000))


# -- similar media, forgetting, derived state, ranker ---------------------------------------------


def test_similar_media_blends_content_and_coengagement(world, rec) -> None:
    engaged = world.evening_hits | world.morning_hits
    anchor = next(m for m in world.with_colour("red") if m in engaged)
    items = rec.similar(anchor, "", 8, RecFilter())
    assert items and anchor not in ids(items)
    assert colour_share(world, items, "red") >= 0.5
    assert any(b.COENGAGEMENT in i.breakdown for i in items)
    with pytest.raises(NotFoundError):
        rec.similar("no-such-post", "", 5, RecFilter())


def test_forget_user_leaves_no_trace(world, rec) -> None:
    reds = world.with_colour("red")[:4]
    world.log(rec, [world.event("leaver", EventKind.LIKE, media_id=m) for m in reds])
    world.log(rec, [world.event("leaver", EventKind.FOLLOW, creator_id="creator4")])
    rec.set_interests("leaver", "blue")
    rec.recommend(RecRequest("leaver", k=5))
    report = rec.forget_user("leaver")
    assert report.events == 5 and report.interests == 1 and report.impressions == 5
    assert report.other >= 1  # derived in-memory state
    assert world.engagement.user_events("leaver") == []
    assert not [s for s in world.engagement.iter_served() if s.user_id == "leaver"]
    rec.refresh()
    assert "leaver" not in rec.state.recent_positives and "leaver" not in rec.state.served
    slate = rec.recommend(RecRequest("leaver", k=10)).items
    assert not any(r.startswith(("similar to", "matches your interest")) for i in slate
                   for r in i.reasons)


def test_a_request_in_flight_when_its_user_is_forgotten_stores_nothing(
    world, rec, monkeypatch
) -> None:
    """Forgetting a user while their Recommend call ranks: the call is answered, but its page
    is neither logged as served nor kept for paging once the user's data is gone."""
    world.log(rec, [world.event("midway", EventKind.LIKE, media_id=world.with_colour("red")[0])])
    ranked, forgotten = threading.Event(), threading.Event()
    real_page = rec._page

    def page_then_wait(*args, **kwargs):
        out = real_page(*args, **kwargs)
        ranked.set()
        assert forgotten.wait(30)
        return out

    monkeypatch.setattr(rec, "_page", page_then_wait)
    responses = []
    caller = threading.Thread(
        target=lambda: responses.append(rec.recommend(RecRequest("midway", k=5)))
    )
    caller.start()
    assert ranked.wait(30)
    rec.forget_user("midway")
    forgotten.set()
    caller.join(30)
    assert responses and responses[0].items
    assert not responses[0].next_cursor  # a cursor into a ranking that is kept nowhere
    rec.flush_served()
    assert not [s for s in world.engagement.iter_served() if s.user_id == "midway"]
    assert not rec._live.served_keys(rec.state, "midway")


def test_a_request_that_starts_while_its_user_is_forgotten_stores_nothing(
    world, rec, monkeypatch
) -> None:
    """A call that starts while the forget deletes may rank on rows being deleted: it stores
    nothing either, not even after the forget returns."""
    world.log(rec, [world.event("halfway", EventKind.LIKE, media_id=world.with_colour("red")[0])])
    deleting = threading.Event()
    real_forget = world.engagement.forget_user
    responses = []

    def forget_while_a_request_runs(user_id):
        deleting.set()
        caller = threading.Thread(
            target=lambda: responses.append(rec.recommend(RecRequest("halfway", k=5)))
        )
        caller.start()
        caller.join(30)
        return real_forget(user_id)

    monkeypatch.setattr(world.engagement, "forget_user", forget_while_a_request_runs)
    rec.forget_user("halfway")
    assert deleting.is_set() and responses and responses[0].items
    assert not responses[0].next_cursor
    rec.flush_served()
    assert not [s for s in world.engagement.iter_served() if s.user_id == "halfway"]
    fresh = rec.recommend(RecRequest("halfway", k=5))  # a request after the forget stores
    assert fresh.next_cursor
    rec.flush_served()
    assert [s for s in world.engagement.iter_served() if s.user_id == "halfway"]


def test_active_users_are_warmed_ahead_and_their_events_drop_the_warm_work(
    world, rec, monkeypatch
) -> None:
    assert rec.wait_for_precompute(timeout=60)  # refresh() warmed every user with events
    searches: list[str] = []
    real_search_batch = world.store.search_batch

    def counting_search_batch(vector_name, *args, **kwargs):
        searches.append(vector_name)
        return real_search_batch(vector_name, *args, **kwargs)

    monkeypatch.setattr(world.store, "search_batch", counting_search_batch)
    warm = rec.recommend(RecRequest("bg4", k=12, context=EVENING)).items
    warm_searches = len(searches)
    # The tastes' neighbours and the fresh posts near them were found ahead of the request.
    assert warm_searches == 0, searches
    assert colour_share(world, warm, COLOURS[2]) >= 0.5  # bg4 loves the third colour

    searches.clear()
    world.log(rec, [world.event("bg4", EventKind.SKIP, media_id=ids(warm)[0])])
    cold = rec.recommend(RecRequest("bg4", k=12, context=EVENING)).items
    assert len(searches) > warm_searches  # the event dropped the warm work: searched again
    assert ids(warm)[0] not in ids(cold)
    searches.clear()
    rec.recommend(RecRequest("bg4", k=12, context=EVENING, filter=RecFilter(tags=("x",))))
    assert len(searches) > warm_searches  # a filtered request never reuses the default's
    # (the fresh and following sources' reuse: the test below)


def test_the_snapshot_sources_are_kept_until_a_rebuild_swaps_the_snapshot(
    world, rec, monkeypatch
) -> None:
    reds = world.with_colour("red")[10:15]
    world.log(rec, [world.event("snap", EventKind.LIKE, media_id=m) for m in reds])
    rec.recommend(RecRequest("snap", k=20))  # computes and keeps the user's snapshot work
    scored: list[int] = []  # co-engagement scorings of this user's positives
    real_scores = CoEngagement.scores

    def counting_scores(self, positives):
        if set(positives) == set(reds):  # not the background warming of other users
            scored.append(len(positives))
        return real_scores(self, positives)

    monkeypatch.setattr(CoEngagement, "scores", counting_scores)
    kept = rec.recommend(RecRequest("snap", k=20)).items
    assert scored == []  # the scores and the co-engagement, cohort and cold proposals: kept
    assert any("coengagement" in item.sources for item in kept)
    rec.recommend(RecRequest("snap", k=20, steering_text="red things"))
    assert len(scored) == 1  # any other request computes them itself
    # A new snapshot, swapped in by a background rebuild, which keeps the user's entry: the
    # work in it is for the old snapshot.
    rec.refresh_in_background()
    assert rec.wait_for_refresh(timeout=60)
    assert rec.wait_for_precompute(timeout=60)
    rec.recommend(RecRequest("snap", k=20))
    assert len(scored) == 2
    rec.recommend(RecRequest("snap", k=20))
    assert len(scored) == 2  # ... and is kept again for the new one


def test_posts_indexed_after_a_users_candidates_were_kept_reach_their_next_request(
    world, rec, monkeypatch
) -> None:
    reds = world.with_colour("red")[5:10]
    world.log(rec, [world.event("keeper", EventKind.LIKE, media_id=m) for m in reds])
    world.log(rec, [world.event("keeper", EventKind.FOLLOW, creator_id="late-creator")])
    rec.recommend(RecRequest("keeper", k=20))  # builds and keeps their candidates
    assert rec.wait_for_precompute(timeout=60)  # the background warming of other users is done
    fresh_searches: list[str] = []  # searches limited to recent posts: the fresh source
    scrolls: list[tuple[str, ...]] = []  # list_media: the creators asked for (following)
    real_search_batch, real_list_media = world.store.search_batch, world.store.list_media

    def search_batch(vector_name, queries, k, filter=None, **kwargs):
        if filter is not None and filter.created_at_from is not None:
            fresh_searches.append(vector_name)
        return real_search_batch(vector_name, queries, k, filter, **kwargs)

    def list_media(filter=None, *args, **kwargs):
        scrolls.append(filter.creator_ids if filter is not None else ())
        return real_list_media(filter, *args, **kwargs)

    monkeypatch.setattr(world.store, "search_batch", search_batch)
    monkeypatch.setattr(world.store, "list_media", list_media)
    kept = rec.recommend(RecRequest("keeper", k=20)).items
    assert (fresh_searches, scrolls) == ([], [])  # both kept for the default request
    # Any other request searches both itself: the kept lists answer the default one only.
    for other in (
        RecRequest("keeper", k=20, filter=RecFilter(tags=("red",))),
        RecRequest("keeper", k=20, exclude_seen=False),
        RecRequest("keeper", k=20, steering_text="red things"),
        RecRequest("keeper", k=20, surface=Surface.REELS),
    ):
        fresh_searches.clear()
        scrolls.clear()
        rec.recommend(other)
        assert fresh_searches and ("late-creator",) in scrolls, other

    attrs = world.attributes[reds[0]]  # the look of a post they liked, by someone new
    world.index([
        ("late-red", "late-newcomer", attrs, NOW - 60, False),
        ("late-follow", "late-creator", unused_attributes(world), NOW - 60, False),
    ])  # fmt: skip
    fresh_searches.clear()
    scrolls.clear()
    slate = rec.recommend(RecRequest("keeper", k=20)).items
    # The store's content changed: both were searched again, and found the new posts.
    assert fresh_searches and ("late-creator",) in scrolls
    assert "late-red" in ids(kept + slate) and "late-red" not in ids(kept)
    by_id = {i.media_id: i for i in slate}
    assert "fresh" in by_id["late-red"].sources
    assert "following" in by_id["late-follow"].sources


def test_events_trigger_a_background_rebuild(world) -> None:
    r = make_recommender(world, refresh_min_events=3, refresh_min_interval_s=0.0)
    try:
        before = r.state.events
        world.log(r, [world.event("busy", EventKind.LIKE, media_id=m)
                      for m in world.with_colour("yellow")[:3]])
        assert r.wait_for_refresh(30)
        assert r.state.events >= before + 3
    finally:
        r.close()


def test_reload_ranker_swaps_the_weights(world, tmp_path: Path) -> None:
    path = tmp_path / "ranker.json"
    r = make_recommender(world, ranker_path=str(path))
    try:
        assert not r.ranker.trained and r.reload_ranker() is False
        weights = {name: 0.0 for name in b.FEATURES} | {b.POPULARITY: 1.0}
        save_ranker(RankerModel(weights=weights, bias=-2.0, trained=True), path)
        assert r.reload_ranker() is True
        item = r.recommend(RecRequest("ranked", k=3, context=EVENING)).items[0]
        assert set(item.breakdown) <= {b.POPULARITY, b.BIAS}
        assert item.breakdown[b.BIAS] == -2.0
    finally:
        r.close()


# -- co-engagement (pure) -----------------------------------------------------------------------


@pytest.mark.parametrize("faded", [False, True])
def test_coengagement_neighbours_match_a_brute_force_count(faded: bool) -> None:
    rng = random.Random(3)
    users = [[f"i{rng.randrange(40)}" for _ in range(rng.randrange(1, 12))] for _ in range(60)]
    recency = [[rng.uniform(0.1, 1.0) if faded else 1.0 for _ in u] for u in users]
    graph = build_coengagement(users, 5, 2.0, 50, 0.5, recency=recency if faded else None,
                               pair_budget=7, dense_cells=90)
    # A user's first (newest) entry of an item is the one that counts.
    firsts = [dict(reversed(list(zip(u, r, strict=True)))) for u, r in zip(users, recency,
                                                                             strict=True)]
    weight = [1 / np.log2(2 + len(f)) for f in firsts]
    fans, fans_now = Counter(), Counter()  # the query item's fans count in full
    for f, w in zip(firsts, weight, strict=True):
        for m, r in f.items():
            fans[m] += w
            fans_now[m] += w * r
    for item in ("i1", "i7", "i30"):
        cooc = Counter()
        for f, w in zip(firsts, weight, strict=True):
            if item in f:
                for m, r in f.items():
                    if m != item:
                        cooc[m] += w * r
        expected = sorted(
            (c / (np.sqrt(fans[item] * fans_now[m]) + 2.0) for m, c in cooc.items()), reverse=True
        )[:5]
        idx, sims = graph.neighbours_of(item)
        assert sims == pytest.approx(expected)


def test_old_coengagement_fades_behind_what_fans_engage_with_now() -> None:
    # Three fans of "a" liked "old" with it long ago; three others like "new" with it today.
    users = [["a", "old"]] * 3 + [["new", "a"]] * 3
    recency = [[0.1, 0.1]] * 3 + [[1.0, 1.0]] * 3
    faded = build_coengagement(users, 2, 0.0, 10, recency=recency)
    idx, sims = faded.neighbours_of("a")
    assert [faded.ids[int(i)] for i in idx] == ["new", "old"]
    assert sims[0] > 3 * sims[1]
    plain = build_coengagement(users, 2, 0.0, 10)
    plain_sims = plain.neighbours_of("a")[1]
    assert plain_sims[0] == pytest.approx(plain_sims[1])  # without fading they tie


def test_fading_an_items_own_engagements_never_raises_its_similarities() -> None:
    # The same co-engagements, once all recent and once with every like of "a" a month old:
    # an old like must not make "a"'s neighbours look stronger than a new one would.
    users = [["a", "b"], ["a", "b", "c"], ["a", "c"], ["b", "c"]]
    fresh = build_coengagement(users, 3, 1.0, 10, recency=[[1.0] * len(u) for u in users])
    aged = build_coengagement(
        users, 3, 1.0, 10, recency=[[0.02 if m == "a" else 1.0 for m in u] for u in users]
    )
    _, fresh_sims = fresh.neighbours_of("a")
    _, aged_sims = aged.neighbours_of("a")
    assert np.all(aged_sims <= fresh_sims + 1e-12)


def test_items_liked_together_become_neighbours() -> None:
    users = [["a", "b", "x"], ["a", "b"], ["a", "b", "y"], ["c", "d"], ["c", "d", "a"]]
    graph = build_coengagement(users, 2, 0.0, 10)
    idx, _ = graph.neighbours_of("a")
    assert graph.ids[int(idx[0])] == "b"
    ids, scores = graph.top(graph.scores({"c": 1.0}), 3, {"c"})
    assert ids[0] == "d"
