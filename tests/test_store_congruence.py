"""The same operations and queries through every store adapter, checked against each other and
against a numpy brute-force oracle.

Adapters: Qdrant Edge (the embedded default) and qdrant-client local mode (the congruence
partner of the server adapter); a Qdrant server too when QDRANT_URL is set (marker
``qdrant_server``). Vectors are clustered random unit vectors in 128-d, like the demo model's.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from mediarec.server.store import (
    CollectionNotReadyError,
    DimensionMismatchError,
    Fusion,
    InvalidVectorError,
    MediaPoint,
    SearchFilter,
    SearchHit,
    VectorStore,
    schema,
)
from mediarec.server.store.edge import EdgeStore, EdgeTuning
from mediarec.server.store.remote import RemoteStore

DIM = 128
DIMS = {schema.VISUAL: DIM, schema.CAPTION: DIM}
N_POINTS = 2000
TAGS = [f"tag{i}" for i in range(12)]
TOPICS = ["hiking", "food", "cats", "city", "beach", "music", "sport", "art"]
T0 = 1_700_000_000
SCORE_TOL = 1e-5
FRAMES_PER_VIDEO = 5
FRAME_TIMES = [0.5 + 2.0 * j for j in range(FRAMES_PER_VIDEO)]

ADAPTERS = ["edge", "local", pytest.param("server", marks=pytest.mark.qdrant_server)]


# ------------------------------------------------------------------- the world


def unit_rows(x: np.ndarray) -> np.ndarray:
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def clustered_unit_vectors(
    rng: np.random.Generator, n: int, clusters: int = 24, spread: float = 0.35
) -> np.ndarray:
    centers = rng.standard_normal((clusters, DIM))
    return unit_rows(
        centers[rng.integers(clusters, size=n)] + spread * rng.standard_normal((n, DIM))
    )


@dataclass
class World:
    """Media with payloads like the service writes; some lack a visual or a caption vector."""

    ids: list[str]
    vectors: dict[str, np.ndarray]  # name -> (n, DIM); rows without that vector are unused
    present: dict[str, np.ndarray]  # name -> (n,) bool
    payloads: list[dict[str, Any]]
    frames: dict[str, np.ndarray]  # video media_id -> (FRAMES_PER_VIDEO, DIM) frame vectors

    def point(self, i: int) -> MediaPoint:
        vectors = {name: self.vectors[name][i] for name in DIMS if self.present[name][i]}
        return MediaPoint(self.ids[i], vectors, self.payloads[i])

    def points(self) -> list[MediaPoint]:
        return [self.point(i) for i in range(len(self.ids))]


def make_world(seed: int = 7, n: int = N_POINTS) -> World:
    rng = np.random.default_rng(seed)
    kinds = rng.choice(
        [schema.MEDIA_TYPE_IMAGE, schema.MEDIA_TYPE_VIDEO, schema.MEDIA_TYPE_TEXT],
        size=n,
        p=[0.7, 0.12, 0.18],
    )
    has_visual = kinds != schema.MEDIA_TYPE_TEXT
    has_caption = (kinds == schema.MEDIA_TYPE_TEXT) | (rng.random(n) < 0.7)
    payloads = [
        {
            schema.MEDIA_TYPE: str(kinds[i]),
            schema.CREATOR_ID: f"creator-{i % 17}",
            schema.TAGS: sorted(map(str, rng.choice(TAGS, int(rng.integers(1, 4)), replace=False))),
            schema.TOPICS: sorted(
                map(str, rng.choice(TOPICS, int(rng.integers(1, 3)), replace=False))
            ),
            schema.CREATED_AT: T0 + int(rng.integers(0, 86_400 * 30)),
            schema.CONTENT_HASH: f"sha-{i:05d}",
            schema.CAPTION_TEXT: f"post number {i}",
        }
        for i in range(n)
    ]
    ids = [f"media-{i:05d}" for i in range(n)]
    visual = clustered_unit_vectors(rng, n)
    frames = {
        ids[i]: unit_rows(visual[i] + 0.6 * rng.standard_normal((FRAMES_PER_VIDEO, DIM)))
        for i in np.flatnonzero(kinds == schema.MEDIA_TYPE_VIDEO)
    }
    return World(
        ids=ids,
        vectors={schema.VISUAL: visual, schema.CAPTION: clustered_unit_vectors(rng, n)},
        present={schema.VISUAL: has_visual, schema.CAPTION: has_caption},
        payloads=payloads,
        frames=frames,
    )


def matches(world: World, i: int, f: SearchFilter | None) -> bool:
    """The filter semantics, written independently of the adapters."""
    if f is None:
        return True
    p, media_id = world.payloads[i], world.ids[i]

    def any_of(values: tuple[str, ...], have: str | list[str]) -> bool:
        have_set = {have} if isinstance(have, str) else set(have)
        return not values or bool(have_set & set(values))

    created = p[schema.CREATED_AT]
    return (
        any_of(f.media_types, p[schema.MEDIA_TYPE])
        and any_of(f.creator_ids, p[schema.CREATOR_ID])
        and any_of(f.tags, p[schema.TAGS])
        and any_of(f.topics, p[schema.TOPICS])
        and any_of(f.content_hashes, p[schema.CONTENT_HASH])
        and (not f.media_ids or media_id in f.media_ids)
        and (f.created_at_from is None or created >= f.created_at_from)
        and (f.created_at_to is None or created <= f.created_at_to)
        and media_id not in f.exclude_media_ids
        and p[schema.CREATOR_ID] not in f.exclude_creator_ids
    )


def oracle_search(
    world: World, vector_name: str, query: np.ndarray, k: int, f: SearchFilter | None = None
) -> list[tuple[str, float]]:
    rows = [
        i for i in range(len(world.ids)) if world.present[vector_name][i] and matches(world, i, f)
    ]
    scores = world.vectors[vector_name][rows] @ unit_rows(query[None, :])[0]
    order = np.argsort(-scores, kind="stable")[:k]
    return [(world.ids[rows[j]], float(scores[j])) for j in order]


def assert_same_ranking(
    hits: list[SearchHit],
    expected: list[tuple[str, float]],
    tie_pool: list[tuple[str, float]] | None = None,
) -> None:
    """Same ids in the same order and scores within SCORE_TOL; near-ties may swap places.

    ``tie_pool`` (default ``expected``) holds the results a tie may bring in from past the end.
    """
    assert len(hits) == len(expected)
    got_scores = np.array([h.score for h in hits])
    want_scores = np.array([s for _, s in expected])
    np.testing.assert_allclose(got_scores, want_scores, atol=SCORE_TOL, rtol=0)
    for pos, (hit, (want_id, want_score)) in enumerate(zip(hits, expected, strict=True)):
        if hit.media_id != want_id:
            tied = [e for e in tie_pool or expected if abs(e[1] - want_score) <= SCORE_TOL]
            assert hit.media_id in {e[0] for e in tied}, (
                f"position {pos}: {hit.media_id} vs {want_id}"
            )


# ------------------------------------------------------------------ adapters


@pytest.fixture(scope="module")
def scratch(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A directory for stores whose disk speed is beside the point: tmpfs when there is one.

    The congruence suite tests what the engines answer, not fsync latency, and every fresh
    Edge store costs ~1.5 s of fsyncs on this machine's disk (25 ms on tmpfs).
    """
    shm = Path("/dev/shm")
    if shm.is_dir() and os.access(shm, os.W_OK):
        directory = Path(tempfile.mkdtemp(prefix="mediarec-store-", dir=shm))
        yield directory
        shutil.rmtree(directory, ignore_errors=True)
    else:
        yield tmp_path_factory.mktemp("stores")


def open_adapter(kind: str, directory: Path) -> VectorStore:
    if kind == "edge":
        return EdgeStore(directory / "edge")
    if kind == "local":
        return RemoteStore.local()
    url = os.environ.get("QDRANT_URL")
    if not url:
        pytest.skip("QDRANT_URL is not set")
    return RemoteStore.connect(url, os.environ.get("QDRANT_API_KEY"))


def fresh_model_id(kind: str) -> str:
    # A shared server keeps collections between runs; local engines start empty.
    return f"test-model-{uuid.uuid4().hex[:8]}" if kind == "server" else "test-model"


def discard(store: VectorStore) -> None:
    if isinstance(store, RemoteStore) and store.engine == "qdrant-server" and store.collection:
        store.drop_collection()
    store.close()


class StoreOpener:
    """Opens fresh, collection-bound stores of a kind and remembers their model ids."""

    def __init__(self, directory: Path) -> None:
        self._directory = directory
        self.opened: list[tuple[VectorStore, str]] = []

    def __call__(self, kind: str) -> VectorStore:
        store = open_adapter(kind, self._directory / f"{kind}-{len(self.opened)}")
        model_id = fresh_model_id(kind)
        store.ensure_collection(model_id, DIMS)
        self.opened.append((store, model_id))
        return store

    def model_id_of(self, store: VectorStore) -> str:
        return next(m for s, m in self.opened if s is store)


@pytest.fixture
def open_store_of(scratch: Path) -> Iterator[StoreOpener]:
    opener = StoreOpener(Path(tempfile.mkdtemp(dir=scratch)))
    yield opener
    for store, _ in opener.opened:
        discard(store)


@pytest.fixture(scope="module")
def world() -> World:
    return make_world()


def load(store: VectorStore, world: World) -> None:
    store.upsert(world.points())
    for media_id, frames in world.frames.items():
        store.upsert_frames(media_id, frames, FRAME_TIMES)


@pytest.fixture(scope="module")
def loaded_stores(world: World, scratch: Path) -> Iterator[Callable[[str], VectorStore]]:
    """Stores holding the whole world, one per kind, opened on first use and shared by the
    read-only tests of this module."""
    stores: dict[str, VectorStore] = {}

    def get(kind: str) -> VectorStore:
        if kind not in stores:
            store = open_adapter(kind, scratch / f"loaded-{kind}")
            store.ensure_collection(fresh_model_id(kind), DIMS)
            load(store, world)
            stores[kind] = store
        return stores[kind]

    yield get
    for store in stores.values():
        discard(store)


@pytest.fixture(params=ADAPTERS)
def loaded(
    request: pytest.FixtureRequest, loaded_stores: Callable[[str], VectorStore]
) -> VectorStore:
    return loaded_stores(request.param)


def queries(world: World, vector_name: str, n: int, seed: int = 3) -> np.ndarray:
    """Perturbed copies of stored vectors: realistic queries that land inside clusters."""
    rng = np.random.default_rng(seed)
    rows = rng.choice(np.flatnonzero(world.present[vector_name]), size=n, replace=False)
    return unit_rows(world.vectors[vector_name][rows] + 0.3 * rng.standard_normal((n, DIM)))


FILTER_CASES = {
    "media_type": SearchFilter(media_types=("video",)),
    "two_media_types": SearchFilter(media_types=("video", "text")),
    "creator": SearchFilter(creator_ids=("creator-3",)),
    "creators": SearchFilter(creator_ids=("creator-1", "creator-2", "creator-16")),
    "tags_any_of": SearchFilter(tags=("tag1", "tag7")),
    "topics_any_of": SearchFilter(topics=("cats",)),
    "created_from": SearchFilter(created_at_from=T0 + 86_400 * 20),
    "created_to": SearchFilter(created_at_to=T0 + 86_400 * 5),
    "created_between": SearchFilter(
        created_at_from=T0 + 86_400 * 10, created_at_to=T0 + 86_400 * 12
    ),
    "only_ids": SearchFilter(media_ids=tuple(f"media-{i:05d}" for i in range(0, N_POINTS, 7))),
    "content_hash": SearchFilter(content_hashes=("sha-00010", "sha-00011", "sha-01999")),
    "exclude_ids": SearchFilter(
        exclude_media_ids=tuple(f"media-{i:05d}" for i in range(0, N_POINTS, 2))
    ),
    "exclude_creators": SearchFilter(exclude_creator_ids=tuple(f"creator-{i}" for i in range(12))),
    "combined": SearchFilter(
        media_types=("image", "video"),
        tags=("tag2", "tag3", "tag4"),
        created_at_from=T0 + 86_400 * 3,
        exclude_creator_ids=("creator-0",),
        exclude_media_ids=("media-00001",),
    ),
    "matches_nothing": SearchFilter(creator_ids=("nobody",)),
}


# -------------------------------------------------------------- read-only suite


@pytest.mark.parametrize("vector_name", [schema.VISUAL, schema.CAPTION])
def test_exact_search_equals_the_numpy_oracle(
    loaded: VectorStore, world: World, vector_name: str
) -> None:
    for query in queries(world, vector_name, 12):
        hits = loaded.search(vector_name, query, 10, exact=True)
        assert_same_ranking(hits, oracle_search(world, vector_name, query, 10))


@pytest.mark.parametrize("case", sorted(FILTER_CASES))
def test_every_filter_kind_matches_the_oracle(loaded: VectorStore, world: World, case: str) -> None:
    f = FILTER_CASES[case]
    for query in queries(world, schema.VISUAL, 3):
        hits = loaded.search(schema.VISUAL, query, 15, f, exact=True)
        assert_same_ranking(hits, oracle_search(world, schema.VISUAL, query, 15, f))
    assert loaded.count(f) == sum(matches(world, i, f) for i in range(len(world.ids)))


def test_search_batch_equals_single_searches(loaded: VectorStore, world: World) -> None:
    batch = queries(world, schema.CAPTION, 5)
    f = FILTER_CASES["tags_any_of"]
    results = loaded.search_batch(schema.CAPTION, batch, 8, f, exact=True)
    assert len(results) == 5
    for query, hits in zip(batch, results, strict=True):
        assert_same_ranking(hits, oracle_search(world, schema.CAPTION, query, 8, f))


def test_search_batch_takes_a_limit_per_query(loaded: VectorStore, world: World) -> None:
    batch = queries(world, schema.VISUAL, 3)
    limits = [2, 9, np.int64(5)]  # numpy integers are limits too
    results = loaded.search_batch(schema.VISUAL, batch, limits, exact=True)
    assert [len(hits) for hits in results] == [2, 9, 5]
    for query, hits, k in zip(batch, results, limits, strict=True):
        assert_same_ranking(hits, oracle_search(world, schema.VISUAL, query, int(k)))
    with pytest.raises(ValueError, match="2 limits for 3 query vectors"):
        loaded.search_batch(schema.VISUAL, batch, [2, 9])
    with pytest.raises(ValueError, match="at least 1"):
        loaded.search_batch(schema.VISUAL, batch, [2, 0, 1])


def test_a_wider_search_beam_per_call_finds_at_least_as_much(
    loaded: VectorStore, world: World
) -> None:
    batch = queries(world, schema.VISUAL, 8)
    exact = [{h.media_id for h in hits} for hits in loaded.search_batch(
        schema.VISUAL, batch, 10, exact=True)]  # fmt: skip

    def recall(hnsw_ef: int) -> float:
        found = loaded.search_batch(schema.VISUAL, batch, 10, hnsw_ef=hnsw_ef)
        return float(np.mean([len({h.media_id for h in hits} & truth) / 10
                              for hits, truth in zip(found, exact, strict=True)]))  # fmt: skip

    assert recall(10) <= recall(512) and recall(512) >= 0.95


def test_list_media_reads_only_the_payload_keys_asked_for(
    loaded: VectorStore, world: World
) -> None:
    f = SearchFilter(creator_ids=("creator-5",))
    full = loaded.list_media(f, limit=5)
    lean = loaded.list_media(f, limit=5, payload_keys=[schema.CREATED_AT])
    assert [p.media_id for p in lean] == [p.media_id for p in full]
    for point, whole in zip(lean, full, strict=True):
        assert dict(point.payload) == {
            schema.MEDIA_ID: point.media_id, schema.CREATED_AT: whole.payload[schema.CREATED_AT]
        }


def test_hits_carry_the_stored_payload(loaded: VectorStore, world: World) -> None:
    query = queries(world, schema.VISUAL, 1)[0]
    for hit in loaded.search(schema.VISUAL, query, 5, exact=True):
        i = world.ids.index(hit.media_id)
        assert dict(hit.payload) == {**world.payloads[i], schema.MEDIA_ID: hit.media_id}
    lean = loaded.search(schema.VISUAL, query, 5, exact=True, with_payload=False)
    assert {frozenset(h.payload) for h in lean} == {frozenset({schema.MEDIA_ID, schema.MEDIA_TYPE})}


def test_caption_search_sees_only_media_with_captions(loaded: VectorStore, world: World) -> None:
    query = queries(world, schema.CAPTION, 1)[0]
    hits = loaded.search(schema.CAPTION, query, 200, exact=True)
    assert all(world.present[schema.CAPTION][world.ids.index(h.media_id)] for h in hits)
    no_visual = {world.ids[i] for i in np.flatnonzero(~world.present[schema.VISUAL])}
    visual_hits = loaded.search(schema.VISUAL, query, 200, exact=True)
    assert not no_visual & {h.media_id for h in visual_hits}


def test_get_returns_payload_and_vectors(loaded: VectorStore, world: World) -> None:
    wanted = [world.ids[0], world.ids[1], "no-such-media"]
    got = loaded.get(wanted, with_vectors=True)
    assert set(got) == {world.ids[0], world.ids[1]}
    for i in (0, 1):
        point = got[world.ids[i]]
        assert point.payload[schema.MEDIA_ID] == world.ids[i]
        assert set(point.vectors) == {n for n in DIMS if world.present[n][i]}
        for name, vector in point.vectors.items():
            np.testing.assert_allclose(vector, world.vectors[name][i], atol=1e-6)
    assert loaded.get(wanted)[world.ids[0]].vectors == {}


def test_retrieve_vectors_skips_media_without_that_vector(
    loaded: VectorStore, world: World
) -> None:
    ids = world.ids[:40]
    got = loaded.retrieve_vectors(ids + ["no-such-media"], schema.CAPTION)
    assert set(got) == {m for i, m in enumerate(ids) if world.present[schema.CAPTION][i]}
    for media_id, vector in got.items():
        np.testing.assert_allclose(
            vector, world.vectors[schema.CAPTION][world.ids.index(media_id)], atol=1e-6
        )


def test_iter_payloads_reads_every_point_with_only_the_keys_asked_for(
    loaded: VectorStore, world: World
) -> None:
    points = list(loaded.iter_payloads([schema.CREATOR_ID], batch_size=300))
    assert sorted(p.media_id for p in points) == sorted(world.ids)
    assert all(set(p.payload) == {schema.MEDIA_ID, schema.CREATOR_ID} for p in points)
    videos = list(loaded.iter_payloads([], FILTER_CASES["media_type"]))
    assert {p.media_id for p in videos} == set(world.frames)


def test_iter_ids_and_count_cover_everything(loaded: VectorStore, world: World) -> None:
    assert loaded.count() == len(world.ids)
    assert sorted(loaded.iter_ids(batch_size=333)) == sorted(world.ids)
    f = FILTER_CASES["topics_any_of"]
    assert sorted(loaded.iter_ids(f, batch_size=100)) == sorted(
        m for i, m in enumerate(world.ids) if matches(world, i, f)
    )


def test_list_media_orders_by_created_at(loaded: VectorStore, world: World) -> None:
    f = SearchFilter(creator_ids=("creator-5",))
    rows = [i for i in range(len(world.ids)) if matches(world, i, f)]
    by_time = sorted(rows, key=lambda i: world.payloads[i][schema.CREATED_AT])
    newest = loaded.list_media(f, limit=10)
    assert [p.media_id for p in newest] == [world.ids[i] for i in by_time[::-1][:10]]
    oldest = loaded.list_media(f, limit=10, newest_first=False)
    assert [p.media_id for p in oldest] == [world.ids[i] for i in by_time[:10]]


def test_video_hits_name_their_best_frame(loaded: VectorStore, world: World) -> None:
    video_id = next(iter(world.frames))
    query = world.vectors[schema.VISUAL][world.ids.index(video_id)]
    hits = loaded.search(schema.VISUAL, query, 20, exact=True, match_frames=True)
    assert hits[0].media_id == video_id
    videos = [h for h in hits if h.payload[schema.MEDIA_TYPE] == "video"]
    assert len(videos) >= 3
    assert all(h.frame is None for h in hits if h not in videos)
    for hit in videos:
        scores = world.frames[hit.media_id] @ query
        best = int(np.argmax(scores))
        assert hit.frame is not None
        assert hit.frame.frame_index == best
        assert hit.frame.timestamp_s == FRAME_TIMES[best]
        assert hit.frame.score == pytest.approx(float(scores[best]), abs=SCORE_TOL)
    stored = loaded.get_frames(video_id)
    assert [(f.frame_index, f.timestamp_s) for f in stored] == list(enumerate(FRAME_TIMES))
    not_a_video = next(m for m in world.ids if m not in world.frames)
    assert loaded.get_frames(not_a_video) == []


def oracle_fused(
    world: World, query: np.ndarray, fusion: Fusion, f: SearchFilter | None = None
) -> list[tuple[str, float]]:
    """Weighted reciprocal-rank fusion of the exact visual and caption rankings, best first."""
    fused: dict[str, float] = {}
    weights = fusion.weights or (1.0, 1.0)
    for name, weight in zip((schema.VISUAL, schema.CAPTION), weights, strict=True):
        for rank, (media_id, _) in enumerate(oracle_search(world, name, query, fusion.depth, f)):
            share = 1.0 / (fusion.rrf_k - 1 + (rank + 1) / weight)
            fused[media_id] = fused.get(media_id, 0.0) + share
    return sorted(fused.items(), key=lambda item: -item[1])


FUSIONS = {
    "equal": Fusion(rrf_k=2, depth=40),
    "weighted": Fusion(rrf_k=60, weights=(1.0, 3.0), depth=30),
}


@pytest.mark.parametrize("fusion_case", sorted(FUSIONS))
@pytest.mark.parametrize("filter_case", [None, "combined", "exclude_ids"])
def test_fused_search_equals_reciprocal_rank_fusion(
    loaded: VectorStore, world: World, fusion_case: str, filter_case: str | None
) -> None:
    fusion = FUSIONS[fusion_case]
    f = FILTER_CASES[filter_case] if filter_case else None
    for query in queries(world, schema.CAPTION, 6, seed=23):
        hits = loaded.search_fused(query, DIMS, 10, f, fusion=fusion)
        expected = oracle_fused(world, query, fusion, f)
        assert_same_ranking(hits, expected[:10], tie_pool=expected)


def test_fused_search_counts_a_repeated_vector_as_two_rankings(
    loaded: VectorStore, world: World
) -> None:
    """Each vector name is one ranking, so a repeated name doubles every fused score."""
    query = queries(world, schema.VISUAL, 1, seed=29)[0]
    once = loaded.search_fused(query, [schema.VISUAL], 10, fusion=Fusion())
    twice = loaded.search_fused(
        query, [schema.VISUAL, schema.VISUAL], 10, fusion=Fusion(weights=(1.0, 1.0))
    )
    assert [h.media_id for h in twice] == [h.media_id for h in once]
    np.testing.assert_allclose([h.score for h in twice], [2 * h.score for h in once], rtol=1e-5)


def test_fused_search_finds_items_with_only_one_vector(loaded: VectorStore, world: World) -> None:
    """A caption-only post and a picture without a caption both reach the fused results."""
    for name in DIMS:
        other = schema.CAPTION if name == schema.VISUAL else schema.VISUAL
        lonely = next(i for i in range(len(world.ids)) if not world.present[other][i])
        query = world.vectors[name][lonely]
        hits = loaded.search_fused(query, DIMS, 5, fusion=Fusion())
        assert world.ids[lonely] in [h.media_id for h in hits]


def test_edge_and_qdrant_client_agree(
    loaded_stores: Callable[[str], VectorStore], world: World
) -> None:
    """The explicit congruence check: identical answers from both engines, side by side."""
    edge, local = loaded_stores("edge"), loaded_stores("local")
    for name in DIMS:
        for query in queries(world, name, 6, seed=19):
            for f in (None, FILTER_CASES["combined"], FILTER_CASES["exclude_ids"]):
                a = edge.search(name, query, 10, f, exact=True, match_frames=True)
                b = local.search(name, query, 10, f, exact=True, match_frames=True)
                assert [h.media_id for h in a] == [h.media_id for h in b]
                np.testing.assert_allclose(
                    [h.score for h in a], [h.score for h in b], atol=SCORE_TOL, rtol=0
                )
                assert [h.frame and h.frame.frame_index for h in a] == [
                    h.frame and h.frame.frame_index for h in b
                ]
                assert [dict(h.payload) for h in a] == [dict(h.payload) for h in b]
    some = world.ids[::97]
    assert edge.get(some, with_vectors=False) == local.get(some, with_vectors=False)
    assert sorted(edge.iter_ids()) == sorted(local.iter_ids())
    creator = FILTER_CASES["creator"]
    assert edge.list_media(creator, 7) == local.list_media(creator, 7)
    video_id = next(iter(world.frames))
    assert edge.get_frames(video_id) == local.get_frames(video_id)
    assert edge.count(FILTER_CASES["combined"]) == local.count(FILTER_CASES["combined"])


# --------------------------------------------------------------- write suite


@pytest.mark.parametrize("kind", ADAPTERS)
def test_upsert_is_idempotent(open_store_of: StoreOpener, kind: str) -> None:
    world = make_world(seed=5, n=300)
    store = open_store_of(kind)
    store.upsert(world.points())
    query = queries(world, schema.VISUAL, 1)[0]
    before = store.search(schema.VISUAL, query, 10, exact=True)
    store.upsert(world.points())
    store.upsert(world.points()[:50])
    assert store.count() == 300
    assert store.search(schema.VISUAL, query, 10, exact=True) == before


@pytest.mark.parametrize("kind", ADAPTERS)
def test_upsert_replaces_the_whole_point(open_store_of: StoreOpener, kind: str) -> None:
    world = make_world(seed=5, n=50)
    store = open_store_of(kind)
    store.upsert(world.points())
    i = int(np.flatnonzero(world.present[schema.CAPTION] & world.present[schema.VISUAL])[0])
    media_id = world.ids[i]
    store.upsert([MediaPoint(media_id, {schema.VISUAL: world.vectors[schema.VISUAL][i]}, {"x": 1})])
    point = store.get([media_id], with_vectors=True)[media_id]
    assert set(point.vectors) == {schema.VISUAL}
    assert dict(point.payload) == {"x": 1, schema.MEDIA_ID: media_id}
    assert media_id not in store.retrieve_vectors([media_id], schema.CAPTION)


@pytest.mark.parametrize("kind", ADAPTERS)
def test_frames_are_replaced_not_accumulated(open_store_of: StoreOpener, kind: str) -> None:
    rng = np.random.default_rng(2)
    store = open_store_of(kind)
    video = unit_rows(rng.standard_normal((1, DIM)))[0]
    store.upsert([MediaPoint("v1", {schema.VISUAL: video}, {schema.MEDIA_TYPE: "video"})])
    frames = unit_rows(rng.standard_normal((6, DIM)))
    store.upsert_frames("v1", frames, [0.0, 1.0, 2.0, 3.0, 4.0, 5.0])
    assert len(store.get_frames("v1")) == 6
    best = store.search_frames(frames[4], ["v1", "not-a-video"])
    assert set(best) == {"v1"}
    assert (best["v1"].frame_index, best["v1"].timestamp_s) == (4, 4.0)
    assert best["v1"].score == pytest.approx(1.0, abs=1e-5)
    store.upsert_frames("v1", frames[:2], [0.25, 0.75])
    assert [(f.frame_index, f.timestamp_s) for f in store.get_frames("v1")] == [
        (0, 0.25),
        (1, 0.75),
    ]
    assert store.search_frames(frames[4], ["v1"])["v1"].frame_index in (0, 1)
    store.upsert_frames("v1", np.zeros((0, DIM), np.float32), [])
    assert store.get_frames("v1") == []


@pytest.mark.parametrize("kind", ADAPTERS)
def test_delete_removes_points_and_their_frames(open_store_of: StoreOpener, kind: str) -> None:
    world = make_world(seed=9, n=200)
    store = open_store_of(kind)
    load(store, world)
    videos = list(world.frames)
    gone = videos[:3] + world.ids[:5]
    store.delete(gone + ["never-existed"])
    assert store.count() == 200 - len(set(gone))
    assert store.get(gone) == {}
    assert all(store.get_frames(m) == [] for m in videos[:3])
    assert store.get_frames(videos[3]) != []
    query = world.vectors[schema.VISUAL][world.ids.index(videos[0])]
    hits = store.search(schema.VISUAL, query, 200, exact=True)
    assert not set(gone) & {h.media_id for h in hits}
    store.delete([])


@pytest.mark.parametrize("kind", ADAPTERS)
def test_content_version_changes_with_every_write_or_is_unknown(
    open_store_of: StoreOpener, kind: str
) -> None:
    """Readers keep search results while the version is unchanged: every kind of write must
    change it, and a store that other clients write to must not claim one."""
    world = make_world(seed=4, n=20)
    store = open_store_of(kind)
    if kind != "edge":  # a Qdrant server (or qdrant-client's stand-in for one)
        load(store, world)
        assert store.content_version() is None
        return
    seen = [store.content_version()]
    store.upsert(world.points()[:10])
    seen.append(store.content_version())
    store.upsert_frames(world.ids[0], np.ones((2, DIM), np.float32) / DIM**0.5, FRAME_TIMES[:2])
    seen.append(store.content_version())
    store.delete(world.ids[:1])
    seen.append(store.content_version())
    assert len(set(seen)) == len(seen), seen
    store.search(schema.VISUAL, world.vectors[schema.VISUAL][3], 5)
    store.get(world.ids[:3])
    assert store.content_version() == seen[-1]  # reads leave it alone


@pytest.mark.parametrize("kind", ADAPTERS)
def test_dimension_mismatch_names_both_dims(open_store_of: StoreOpener, kind: str) -> None:
    store = open_store_of(kind)
    model_id = open_store_of.model_id_of(store)
    store.ensure_collection(model_id, DIMS)  # same dims: fine, repeatedly
    with pytest.raises(DimensionMismatchError) as err:
        store.ensure_collection(model_id, {schema.VISUAL: 512, schema.CAPTION: 512})
    assert (err.value.expected, err.value.got) == (DIM, 512)
    assert "128" in str(err.value) and "512" in str(err.value)
    store.ensure_collection(model_id, DIMS)
    bad = np.ones(DIM + 1, np.float32)
    with pytest.raises(DimensionMismatchError):
        store.upsert([MediaPoint("m", {schema.VISUAL: bad})])
    with pytest.raises(DimensionMismatchError):
        store.search(schema.VISUAL, bad, 3)
    with pytest.raises(DimensionMismatchError):
        store.upsert_frames("m", np.ones((2, 64), np.float32), [0.0, 1.0])
    assert store.count() == 0


@pytest.mark.parametrize("kind", ADAPTERS)
def test_invalid_vectors_are_rejected_before_writing(open_store_of: StoreOpener, kind: str) -> None:
    store = open_store_of(kind)
    nan = np.full(DIM, np.nan, np.float32)
    ok = unit_rows(np.ones((1, DIM)))[0]
    for bad in (
        [MediaPoint("a", {schema.VISUAL: nan})],
        [MediaPoint("a", {"depth": ok})],
        [MediaPoint("a", {})],
        [MediaPoint("", {schema.VISUAL: ok})],
        [MediaPoint("a", {schema.VISUAL: ok}), MediaPoint("b", {schema.VISUAL: np.ones((2, DIM))})],
    ):
        with pytest.raises(InvalidVectorError):
            store.upsert(bad)
    with pytest.raises(InvalidVectorError):
        store.search("depth", ok, 3)
    with pytest.raises(InvalidVectorError):
        store.upsert_frames("v", np.ones((2, DIM), np.float32), [0.0])
    with pytest.raises(ValueError):
        store.search(schema.VISUAL, ok, 0)
    assert store.count() == 0


@pytest.mark.parametrize("kind", ["edge", "local"])
def test_operations_need_a_collection_first(kind: str, scratch: Path) -> None:
    store = open_adapter(kind, Path(tempfile.mkdtemp(dir=scratch)))
    try:
        with pytest.raises(CollectionNotReadyError):
            store.count()
        with pytest.raises(CollectionNotReadyError):
            store.upsert([])
    finally:
        store.close()


@pytest.mark.parametrize("kind", ["edge", "local"])
def test_each_model_gets_its_own_collection(kind: str, scratch: Path) -> None:
    store = open_adapter(kind, Path(tempfile.mkdtemp(dir=scratch)))
    try:
        ok = unit_rows(np.ones((1, DIM)))[0]
        store.ensure_collection("vendor/model-a", DIMS)
        store.upsert([MediaPoint("a1", {schema.VISUAL: ok})])
        collection_a = store.collection
        store.ensure_collection("vendor/model-b", {schema.VISUAL: 64})
        assert store.collection != collection_a
        assert store.count() == 0
        store.ensure_collection("vendor/model-a", DIMS)
        assert store.collection == collection_a and store.count() == 1
    finally:
        store.close()


def test_collection_names_are_safe_and_distinct() -> None:
    a, b = schema.collection_name("ViT-B-32/openai"), schema.collection_name("vit_b_32_openai")
    assert a != b
    for name in (a, b, schema.collection_name("hf-hub:org/x" * 20)):
        assert name.replace("_", "").isalnum() and len(name) <= 70
    with pytest.raises(ValueError):
        schema.collection_name(" ")


# ------------------------------------------------------------------ Edge only


def test_edge_store_persists_across_close_and_reopen(tmp_path: Path) -> None:
    world = make_world(seed=13, n=400)
    store = EdgeStore(tmp_path)
    store.ensure_collection("test-model", DIMS)
    load(store, world)
    store.delete(world.ids[:10])
    query = queries(world, schema.VISUAL, 1)[0]
    before = store.search(schema.VISUAL, query, 10, exact=True, match_frames=True)
    store.close()
    reopened = EdgeStore(tmp_path)
    try:
        reopened.ensure_collection("test-model", DIMS)
        assert reopened.count() == len(world.ids) - 10
        assert reopened.search(schema.VISUAL, query, 10, exact=True, match_frames=True) == before
        with pytest.raises(DimensionMismatchError):
            reopened.ensure_collection("test-model", {schema.VISUAL: 64, schema.CAPTION: 64})
    finally:
        reopened.close()


def test_edge_hnsw_reaches_recall_098_after_optimize(scratch: Path) -> None:
    # Tiny thresholds so that 6k points get a real HNSW graph (the defaults index from 20k).
    tuning = EdgeTuning(
        indexing_threshold_kb=64, full_scan_threshold_kb=16, build_after_writes=10**9
    )
    store = EdgeStore(Path(tempfile.mkdtemp(dir=scratch)), tuning)
    try:
        store.ensure_collection("test-model", DIMS)
        world = make_world(seed=21, n=5000)
        store.upsert(world.points())
        assert store.stats().indexed_vectors == 0
        store.request_optimize()
        assert store.wait_optimized(timeout=120)
        assert store.stats().indexed_vectors >= 5000
        for f in (None, SearchFilter(media_types=("image",))):
            recalls = []
            for query in queries(world, schema.VISUAL, 60, seed=4):
                exact = {h.media_id for h in store.search(schema.VISUAL, query, 10, f, exact=True)}
                approx = {h.media_id for h in store.search(schema.VISUAL, query, 10, f)}
                recalls.append(len(exact & approx) / 10)
            assert np.mean(recalls) >= 0.98, (f, np.mean(recalls))
    finally:
        store.close()


# ------------------------------------------------------------------ numbers


@pytest.mark.slow
def test_report_upsert_and_search_speed_edge_vs_local_mode(tmp_path: Path) -> None:
    """Prints upserts/s and exact-search p50 at 10k x 128-d (numbers go in docs/storage.md)."""
    world = make_world(seed=1, n=10_000)
    points = world.points()
    results = {}
    stores: dict[str, Callable[[], VectorStore]] = {
        "edge": lambda: EdgeStore(tmp_path / "edge"),
        "local-mode-on-disk": lambda: RemoteStore.local(tmp_path / "local"),
        "local-mode-in-memory": RemoteStore.local,
    }
    for kind, opener in stores.items():
        store = opener()
        store.ensure_collection("bench-model", DIMS)
        start = time.perf_counter()
        for i in range(0, len(points), 500):
            store.upsert(points[i : i + 500])
        upserts_per_s = len(points) / (time.perf_counter() - start)
        latencies = {}
        for label, f in (("none", None), ("one_filter", SearchFilter(tags=("tag3",)))):
            times = []
            for query in queries(world, schema.VISUAL, 100, seed=8):
                t = time.perf_counter()
                store.search(schema.VISUAL, query, 10, f, exact=True)
                times.append(time.perf_counter() - t)
            latencies[label] = 1000 * float(np.median(times))
        store.close()
        results[kind] = (upserts_per_s, latencies)
        print(
            f"\n{kind}: {upserts_per_s:,.0f} upserts/s (batches of 500), exact search "
            f"p50 {latencies['none']:.2f} ms, with one filter {latencies['one_filter']:.2f} ms"
        )
    assert results["edge"][1]["none"] < results["local-mode-in-memory"][1]["none"]
