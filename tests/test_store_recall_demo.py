"""HNSW on Qdrant Edge keeps recall@10 >= 0.98 against exact search on demo-model vectors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from mediarec.encoders import load_encoder
from mediarec.encoders.synthetic.world import WorldGenerator
from mediarec.server.store import MediaPoint, SearchFilter, schema
from mediarec.server.store.edge import EdgeStore, EdgeTuning

N_POSTS = 2500
N_QUERIES = 60


@pytest.fixture(scope="module")
def demo_vectors() -> tuple[np.ndarray, np.ndarray, list[str]]:
    encoder = load_encoder("mediarec-demo")
    world = WorldGenerator(seed=913, image_size=64)
    posts = world.posts(N_POSTS)
    visual = encoder.embed_images([post.image for post in posts])
    # Queries: fresh pictures and captions of the same world, i.e. what users really send.
    fresh = WorldGenerator(seed=914, image_size=64).posts(N_QUERIES // 2)
    queries = np.concatenate(
        [
            encoder.embed_images([post.image for post in fresh]),
            encoder.embed_texts([post.caption for post in fresh]),
        ]
    )
    colours = [post.attributes.colour for post in posts]
    return visual, queries, colours


def test_hnsw_recall_on_demo_model_vectors(tmp_path: Path, demo_vectors) -> None:
    visual, queries, colours = demo_vectors
    # Small thresholds so that 2.5k points get a real HNSW graph (the defaults index from ~20k).
    tuning = EdgeTuning(
        indexing_threshold_kb=64, full_scan_threshold_kb=16, build_after_writes=10**9
    )
    store = EdgeStore(tmp_path / "edge", tuning)
    try:
        store.ensure_collection("mediarec-demo", {schema.VISUAL: visual.shape[1]})
        points = [
            MediaPoint(
                f"post-{i}",
                {schema.VISUAL: vector},
                {schema.MEDIA_TYPE: "image", schema.TAGS: [colours[i]]},
            )
            for i, vector in enumerate(visual)
        ]
        for start in range(0, len(points), 500):
            store.upsert(points[start : start + 500])
        store.request_optimize()
        assert store.wait_optimized(timeout=300)
        assert store.stats().indexed_vectors >= N_POSTS
        for search_filter in (None, SearchFilter(tags=("red",))):
            recalls = []
            for query in queries:
                exact = store.search(schema.VISUAL, query, 10, search_filter, exact=True)
                approx = store.search(schema.VISUAL, query, 10, search_filter)
                assert len(exact) == 10
                recalls.append(len({h.media_id for h in exact} & {h.media_id for h in approx}) / 10)
            assert float(np.mean(recalls)) >= 0.98, (search_filter, float(np.mean(recalls)))
    finally:
        store.close()
