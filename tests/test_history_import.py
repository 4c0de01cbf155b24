"""Importing history, knowing the state is current, and previewing without side effects.

End to end over gRPC: a real server on 127.0.0.1:0 with Qdrant Edge, SQLite and the bundled
demo CLIP. One corpus and one imported history are built once; the tests then restart the
service on the same data, or on copies of it, to compare slates across processes.
"""

from __future__ import annotations

import io
import random
import shutil
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from PIL import Image

from mediarec.client import (
    Embeddings,
    Event,
    EventKind,
    MediaMetadata,
    MediarecClient,
    MediaType,
    PermissionDenied,
    RecommendPage,
    ResourceExhausted,
    ServerInfo,
    Unauthenticated,
)
from mediarec.encoders.synthetic.world import ATTRIBUTE_FAMILIES, WorldGenerator
from mediarec.server.app import RunningServer, build_server
from mediarec.server.config import Settings, load_settings
from mediarec.server.engagement import DATABASE_NAME
from mediarec.server.recommend.types import RecRequest
from mediarec.server.runtime import ServiceDeps, ServiceState, open_deps

MODEL_ID = "mediarec-demo"
SEED = 515
CREATORS = 8
POSTS_PER_CREATOR = 8
USERS = 30
YEAR_1995 = datetime(1995, 6, 1, tzinfo=UTC).timestamp()
USER_KEY, ADMIN_KEY = "user-key", "admin-key"


@dataclass
class Service:
    deps: ServiceDeps
    running: RunningServer
    client: MediarecClient

    def stop(self) -> None:
        self.client.close()
        self.running.stop(0)


def settings_for(data_dir: Path, **extra: object) -> Settings:
    values: dict[str, object] = {
        "model_id": MODEL_ID,
        "data_dir": str(data_dir),
        "port": 0,
        "explore_seed": 1,
        **extra,
    }
    return load_settings(values, {}, None)


def start(data_dir: Path, *, api_key: str | None = None, **extra: object) -> Service:
    settings = settings_for(data_dir, **extra)
    deps = open_deps(settings)
    deps.recommender.wait_for_refresh(60)  # the first snapshot builds in the background
    running = build_server(settings, ServiceState(deps))
    return Service(deps, running, MediarecClient(f"127.0.0.1:{running.port}", api_key=api_key))


def jpeg(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.convert("RGB").save(buffer, "JPEG", quality=90)
    return buffer.getvalue()


def history(posts: dict[str, str], now: float) -> list[Event]:
    """Users who each like posts of one colour, over the last 60 days, plus a 1995 archive."""
    rng = random.Random(SEED)
    colours = ATTRIBUTE_FAMILIES["colour"]
    events = []
    for u in range(USERS):
        favourite = colours[u % len(colours)]
        liked = [m for m, colour in posts.items() if colour == favourite]
        for i, media_id in enumerate(rng.sample(liked, min(5, len(liked)))):
            ts = now - rng.uniform(1, 60) * 86_400
            events.append(Event(f"u{u}-view-{i}", f"u{u}", EventKind.VIEW, ts, media_id=media_id,
                                dwell_ms=8000))  # fmt: skip
            events.append(Event(f"u{u}-like-{i}", f"u{u}", EventKind.LIKE, ts + 5, media_id))
        old = rng.choice(sorted(posts))
        events.append(Event(f"u{u}-1995", f"u{u}", EventKind.LIKE, YEAR_1995 + u, old))
    rng.shuffle(events)
    return events


@dataclass(frozen=True)
class Imported:
    data_dir: Path
    posts: dict[str, str]  # media_id -> colour
    slate_after_import: RecommendPage
    versions: tuple[int, int]  # derived-state version before and after the import
    accepted: int
    valid_rows: int
    errors: tuple[tuple[int, str], ...]
    info_after_import: ServerInfo


@pytest.fixture(scope="module")
def imported(tmp_path_factory: pytest.TempPathFactory) -> Imported:
    data_dir = tmp_path_factory.mktemp("history-import") / "data"
    # A long interval: without the rebuild at the end of the import, nothing would be rebuilt.
    service = start(data_dir, refresh_min_interval_s=3600)
    try:
        generator = WorldGenerator(SEED, image_size=96)
        now = datetime.now(UTC)
        posts = {}
        for c in range(CREATORS):
            for i in range(POSTS_PER_CREATOR):
                attrs = generator.sample_attributes()
                post = generator.post(attrs)
                media_id = f"p-{c}-{i}"
                metadata = MediaMetadata(
                    media_id=media_id,
                    creator_id=f"creator-{c}",
                    caption=post.caption,
                    created_at=now - timedelta(days=70 + i),
                )
                service.client.index_media(metadata, jpeg(post.image))
                posts[media_id] = attrs.colour
        before = service.client.server_info().recommend_state
        assert before is not None
        rows = history(posts, now.timestamp())
        bad = Event("bad-row", "u0", EventKind.LIKE, -5.0, media_id="p-0-0")  # before 1970
        rows.insert(7, bad)
        rows.insert(120, Event("bad-later", "u0", EventKind.LIKE, 1.0))  # no media_id; chunk 3
        result = service.client.import_events(iter(rows), chunk_events=50)
        slate = service.client.recommend("u3", k=10, dry_run=True)
        info = service.client.server_info()
    finally:
        service.stop()
    return Imported(
        data_dir,
        posts,
        slate,
        (before.version, result.state.version),
        result.accepted_count,
        len(rows) - 2,
        tuple((e.row, e.event_id) for e in result.errors),
        info,
    )


def ids(page: RecommendPage) -> list[str]:
    return [item.media_id for item in page.items]


def test_an_import_reports_each_bad_row_and_stores_the_rest(imported: Imported) -> None:
    assert imported.errors == ((7, "bad-row"), (120, "bad-later"))
    assert imported.accepted == imported.valid_rows


def test_history_from_1995_is_accepted(imported: Imported) -> None:
    with sqlite3.connect(imported.data_dir / DATABASE_NAME) as db:
        (old,) = db.execute(
            "SELECT COUNT(*) FROM events WHERE ts < ?", (YEAR_1995 + 86_400,)
        ).fetchone()
    assert old == USERS


def test_the_import_ends_with_a_rebuild_that_includes_every_event(imported: Imported) -> None:
    before, after = imported.versions
    assert after > before
    state = imported.info_after_import.recommend_state
    assert state is not None
    assert state.version == after
    assert state.events_included == imported.accepted and state.events_pending == 0
    assert state.built_at is not None


def test_recommend_right_after_an_import_equals_recommend_after_a_restart(
    imported: Imported,
) -> None:
    assert imported.slate_after_import.items, "the imported history must produce a slate"
    service = start(imported.data_dir)
    try:
        after_restart = service.client.recommend("u3", k=10, dry_run=True)
        cold = service.client.recommend("someone-new", k=10, dry_run=True)
    finally:
        service.stop()
    assert ids(after_restart) == ids(imported.slate_after_import)
    assert ids(after_restart) != ids(cold), "the imported history must shape the slate"


def _copy(imported: Imported, tmp_path: Path, name: str) -> Path:
    target = tmp_path / name
    shutil.copytree(imported.data_dir, target)
    return target


def _rows(data_dir: Path) -> tuple[int, int, int]:
    with sqlite3.connect(data_dir / DATABASE_NAME) as db:
        return tuple(  # type: ignore[return-value]
            db.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0]
            for table in ("events", "served", "rankings")
        )


def _without_age(info: ServerInfo) -> ServerInfo:
    assert info.recommend_state is not None
    return replace(info, recommend_state=replace(info.recommend_state, age_s=0.0))


def test_a_dry_run_changes_no_row_no_server_info_and_not_the_next_slate(
    imported: Imported, tmp_path: Path
) -> None:
    with_dry_runs, without = _copy(imported, tmp_path, "a"), _copy(imported, tmp_path, "b")
    service = start(with_dry_runs)
    try:
        rows_before, info_before = _rows(with_dry_runs), service.client.server_info()
        preview = service.client.recommend("u5", k=10, dry_run=True)
        assert preview.items and not preview.next_page_cursor
        service.client.similar_media("p-1-1", user_id="u5", k=5, dry_run=True)
        service.deps.recommender.flush_served()
        assert _rows(with_dry_runs) == rows_before
        assert _without_age(service.client.server_info()) == _without_age(info_before)
        after_dry_runs = service.client.recommend("u5", k=10)
        assert after_dry_runs.next_page_cursor
        page_two = service.client.recommend(
            "u5", k=10, page_cursor=after_dry_runs.next_page_cursor, dry_run=True
        )
        assert page_two.items and not page_two.next_page_cursor
    finally:
        service.stop()
    service = start(without)
    try:
        untouched = service.client.recommend("u5", k=10)
    finally:
        service.stop()
    assert ids(after_dry_runs) == ids(untouched)
    assert [i.explored for i in after_dry_runs.items] == [i.explored for i in untouched.items]


@pytest.fixture
def keyed(imported: Imported, tmp_path: Path) -> Iterator[Service]:
    service = start(
        _copy(imported, tmp_path, "keyed"),
        api_key=ADMIN_KEY,
        api_keys=(USER_KEY,),
        admin_api_keys=(ADMIN_KEY,),
    )
    try:
        yield service
    finally:
        service.stop()


def test_refresh_needs_an_admin_key_and_grows_the_state_version(keyed: Service) -> None:
    target = f"127.0.0.1:{keyed.running.port}"
    with MediarecClient(target) as anonymous, pytest.raises(Unauthenticated):
        anonymous.refresh()
    with MediarecClient(target, api_key="nobody") as unknown, pytest.raises(Unauthenticated):
        unknown.refresh()
    with MediarecClient(target, api_key=USER_KEY) as user:
        with pytest.raises(PermissionDenied):
            user.refresh()
        before = user.server_info().recommend_state
        assert user.recommend("u1", k=3, dry_run=True).items  # the user key still works
    assert before is not None
    refreshed = keyed.client.refresh()
    assert refreshed.version > before.version
    assert refreshed.events_pending == 0


def test_a_caption_only_post_with_its_own_vector_reaches_an_interested_user(
    imported: Imported, tmp_path: Path
) -> None:
    service = start(_copy(imported, tmp_path, "caption"))
    try:
        text = "two striped purple hearts in a snowy field"
        vector = service.deps.encoder.embed_texts([text])[0]
        service.client.index_embeddings(
            MediaMetadata(
                media_id="words-only",
                creator_id="writer",
                caption=text,
                created_at=datetime.now(UTC) - timedelta(days=80),
                media_type=MediaType.TEXT,
            ),
            Embeddings(model_id=MODEL_ID, caption=[float(x) for x in vector]),
        )
        service.client.set_interests("newcomer", "striped purple hearts")
        slate = service.client.recommend("newcomer", k=10, dry_run=True)
    finally:
        service.stop()
    assert "words-only" in ids(slate)


@pytest.mark.parametrize("content_signals", [True, False])
def test_likes_of_caption_only_posts_find_more_of_them_through_content(
    imported: Imported, tmp_path: Path, content_signals: bool
) -> None:
    # A text catalogue (articles, films described in words) has caption vectors only: the
    # content source must search them, or liking such posts finds nothing like them.
    # recommend.content_signals = false switches content off (bench-real's content_off).
    service = start(
        _copy(imported, tmp_path, "text-catalogue"), content_signals=content_signals
    )
    try:
        captions = {
            f"red-{i}": f"{n} solid red circles at the beach"
            for i, n in enumerate(("one", "two", "three", "four"))
        } | {
            f"blue-{i}": f"{n} striped blue squares in a forest"
            for i, n in enumerate(("one", "two", "three", "four"))
        }
        vectors = service.deps.encoder.embed_texts(list(captions.values()))
        for (media_id, caption), vector in zip(captions.items(), vectors, strict=True):
            service.client.index_embeddings(
                MediaMetadata(
                    media_id=media_id,
                    creator_id=f"writer-{media_id}",
                    caption=caption,
                    created_at=datetime.now(UTC) - timedelta(days=80),
                    media_type=MediaType.TEXT,
                ),
                Embeddings(model_id=MODEL_ID, caption=[float(x) for x in vector]),
            )
        now = datetime.now(UTC).timestamp()
        service.client.log_events(
            [Event(f"r{i}", "reader", EventKind.LIKE, now - i, f"red-{i}") for i in (0, 1)]
        )
        slate = service.client.recommend("reader", k=20, dry_run=True)
        union = service.deps.recommender.candidate_ranking(RecRequest("reader"))
    finally:
        service.stop()
    assert not {"red-0", "red-1"} & set(union), "liked posts are no candidates"
    found = {i.media_id: i.sources for i in slate.items if i.media_id.startswith("red-")}
    if not content_signals:
        assert not any("content" in i.sources for i in slate.items)
        assert all(dict(i.score_breakdown).get("content", 0.0) == 0.0 for i in slate.items)
        return
    assert {"red-2", "red-3"} <= set(union)
    assert found, ids(slate)
    assert any("content" in sources for sources in found.values()), found


def test_an_import_message_over_the_chunk_limit_is_refused(
    imported: Imported, tmp_path: Path
) -> None:
    service = start(_copy(imported, tmp_path, "chunks"), import_chunk_events=10)
    try:
        before = service.client.server_info().recommend_state
        rows = [Event(f"c{i}", "chunky", EventKind.VIEW, 1e9 + i, "p-0-1") for i in range(11)]
        with pytest.raises(ResourceExhausted):
            service.client.import_events(iter(rows), chunk_events=11)
        assert service.client.import_events(iter(rows), chunk_events=10).accepted_count == 11
        duplicates = service.client.import_events(iter(rows[:10]), chunk_events=10)
        after = service.client.server_info().recommend_state
    finally:
        service.stop()
    assert duplicates.duplicate_count == 10
    assert before is not None and after is not None
    # The refused message stored nothing; the import rebuilt once; the duplicates did not.
    assert after.version == before.version + 1 == duplicates.state.version
