"""The quality benchmark's parts on hand-made cases, and a miniature end-to-end run.

The miniature run uses the real pieces (demo CLIP, Qdrant Edge, SQLite, the Recommender and
train-ranker) on a tiny world, and checks the machine-readable summary's exact keys.
"""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from bench import baselines as bl
from bench.engagement_sim import POSITIVE_CODES, Simulator
from bench.metrics import bootstrap_ci, coverage, ndcg_at_k, recall_at_k
from bench.world_sim import NOT_NEW

# -- metrics ---------------------------------------------------------------------------------


def test_ndcg_and_recall_match_hand_computed_values():
    ranked = np.array([[5, 1, 7, -1], [2, 3, 4, 6]])
    relevant = [{1, 9}, {6}]
    k = 4
    ndcg = ndcg_at_k(ranked, relevant, k)
    # user 0: one hit at rank 2 out of an ideal of two hits at ranks 1 and 2
    assert ndcg[0] == pytest.approx((1 / math.log2(3)) / (1 + 1 / math.log2(3)))
    # user 1: its only relevant item at rank 4
    assert ndcg[1] == pytest.approx(1 / math.log2(5))
    recall = recall_at_k(ranked, relevant, k)
    assert recall.tolist() == [0.5, 1.0]


def test_recall_divides_by_k_when_more_items_are_relevant_than_k():
    ranked = np.array([[0, 1]])
    relevant = [{0, 1, 2, 3, 4}]
    assert recall_at_k(ranked, relevant, 2)[0] == 1.0
    assert ndcg_at_k(ranked, relevant, 2)[0] == pytest.approx(1.0)


def test_users_without_relevant_items_are_nan_not_zero():
    ranked = np.array([[0, 1]])
    assert math.isnan(ndcg_at_k(ranked, [set()], 2)[0])
    assert math.isnan(recall_at_k(ranked, [set()], 2)[0])


def test_coverage_counts_pool_items_shown_to_anyone():
    ranked = np.array([[0, 1, -1], [1, 2, 9]])
    assert coverage(ranked, np.array([0, 1, 2, 3]), 3) == 0.75
    assert coverage(ranked, np.array([0, 1, 2, 3]), 1) == 0.5  # only the first slot counts


def test_bootstrap_interval_contains_the_mean_and_narrows_with_more_users():
    rng = np.random.default_rng(0)
    small = bootstrap_ci(rng.random(50), np.random.default_rng(1))
    large = bootstrap_ci(rng.random(5000), np.random.default_rng(1))
    assert small.low < small.mean < small.high
    assert large.low < large.mean < large.high
    assert (large.high - large.low) < (small.high - small.low) / 5
    constant = bootstrap_ci(np.full(30, 0.25), np.random.default_rng(1))
    assert (constant.low, constant.mean, constant.high) == (0.25, 0.25, 0.25)


def test_bootstrap_drops_nan_and_beats_means_non_overlapping_intervals():
    a = bootstrap_ci(np.array([1.0, 1.0, np.nan, 0.9]), np.random.default_rng(1))
    b = bootstrap_ci(np.array([0.1, 0.2, 0.0]), np.random.default_rng(1))
    assert a.n == 3
    assert a.above(b) and not b.above(a)
    assert not a.above(a)


# -- EASE ------------------------------------------------------------------------------------


def test_ease_via_woodbury_equals_the_textbook_closed_form():
    rng = np.random.default_rng(3)
    x = (rng.random((12, 30)) < 0.25).astype(float)
    x[:, 7] = 0.0  # an item nobody engaged with scores exactly 0
    for lam in (0.5, 10.0, 300.0):
        b = bl.ease_direct(x, lam)
        assert np.allclose(np.diag(b), 0.0)
        expected = x @ b
        got = bl.Ease.from_matrix(x).scorer(lam)(np.arange(12))
        assert np.allclose(got, expected, atol=1e-8)
        assert np.allclose(got[:, 7], 0.0)


def test_ease_direct_matches_a_direct_numpy_solve():
    x = np.array([[1, 1, 0, 0], [0, 1, 1, 0], [1, 0, 1, 1], [0, 0, 1, 1]], dtype=float)
    lam = 2.0
    p = np.linalg.solve(x.T @ x + lam * np.eye(4), np.eye(4))
    expected = np.eye(4) - p @ np.diag(1.0 / np.diag(p))
    assert np.allclose(bl.ease_direct(x, lam), expected)


# -- ranking ---------------------------------------------------------------------------------


def _view(n_posts: int, seen: dict[int, np.ndarray], catalog: np.ndarray) -> bl.TrainView:
    z = np.zeros(0, dtype=np.int64)
    return bl.TrainView(n_posts=n_posts, split=0.0, post_time=np.zeros(n_posts),
                        catalog=catalog, pos_user=z, pos_post=z, pos_ts=np.zeros(0), seen=seen,
                        positives={}, recent={})


def test_rank_top_k_excludes_seen_and_off_catalogue_items_and_breaks_ties_by_popularity():
    catalog = np.array([True, True, True, True, False, True])
    view = _view(6, {0: np.array([1])}, catalog)
    scores = np.array([[0.0, 5.0, 1.0, 0.0, 9.0, 0.0], [0.0, 0.0, 0.0, 0.0, 0.0, 0.0]])
    popularity = bl.popularity_rank(np.array([1.0, 0.0, 0.0, 3.0, 0.0, 2.0]))
    ranked = bl.rank_top_k(np.array([0, 1]), view, lambda users: scores[users], popularity, 4)
    assert ranked[0].tolist() == [2, 3, 5, 0]  # 1 is seen, 4 is off the catalogue
    assert ranked[1].tolist() == [3, 5, 0, 1]  # no signal at all: popularity order


def test_popularity_half_life_weights_recent_positives_more():
    view = bl.TrainView(
        n_posts=2, split=10 * bl.DAY_S, post_time=np.zeros(2), catalog=np.ones(2, bool),
        pos_user=np.array([0, 1, 2]), pos_post=np.array([0, 0, 1]),
        pos_ts=np.array([0.0, 0.0, 9.5 * bl.DAY_S]), seen={}, positives={}, recent={},
    )
    assert bl.popularity_scores(view, None).tolist() == [2.0, 1.0]
    decayed = bl.popularity_scores(view, 1.0)
    assert decayed[1] > decayed[0]


# -- the miniature run -----------------------------------------------------------------------

TINY = dict(posts=400, creators=25, established_users=30, users_per_bucket=4, days=12,
            val_days=3, test_days=3, communities=4)


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("cache")


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory, cache_dir):
    from bench.quality import Options, run_seed

    options = Options(cache_dir=cache_dir, val_users=12, propensity_users=1,
                      propensity_repeats=3, world=TINY, workdir=tmp_path_factory.mktemp("bench"))
    return run_seed(5, options)


def test_simulated_engagement_never_reads_content_vectors(tiny_run, cache_dir):
    from bench.world_sim import WorldConfig, build_world
    from mediarec.encoders import load_encoder

    world = build_world(WorldConfig(seed=5, **TINY), load_encoder("mediarec-demo"), cache_dir)
    baseline = Simulator(world).run()
    world.visual = np.full_like(world.visual, np.nan)  # any read would poison the log
    world.caption_vectors = np.full_like(world.caption_vectors, np.nan)
    again = Simulator(world).run()
    assert np.array_equal(baseline.post, again.post)
    assert np.array_equal(baseline.kind, again.kind)
    assert np.isin(baseline.kind, POSITIVE_CODES).any()


def test_tiny_run_evaluates_every_method_on_the_same_users(tiny_run):
    r = tiny_run
    assert set(r.ranked) == {"popularity", "content", "coengagement", "ease", "blend",
                             "blend_trained"}
    for ranked in r.ranked.values():
        assert ranked.shape == (r.users.size, 20)
    assert (r.bucket == NOT_NEW).any()
    assert set(r.bucket[r.bucket != NOT_NEW].tolist()) <= {0, 1, 3, 10}
    # every blend slate is non-empty and never repeats an item
    for row in r.ranked["blend"]:
        shown = row[row >= 0]
        assert shown.size > 0 and np.unique(shown).size == shown.size
    assert r.cold.any() and r.warm.any() and not (r.cold & r.warm).any()


def test_tiny_run_summary_line_has_exactly_the_issue_keys(tiny_run):
    from bench.report import summarize

    summary = summarize([tiny_run], np.random.default_rng(0))
    line = json.loads(json.dumps(summary.json))
    assert set(line) == {"ndcg20", "warm_item_ndcg20", "cold_item_recall_ratio",
                         "new_user_ndcg20", "popularity_new_user_ndcg20",
                         "beats_all_single_sources_ci95"}
    assert set(line["ndcg20"]) == {"popularity", "content", "coengagement", "ease", "blend",
                                   "blend_trained"}
    assert set(line["warm_item_ndcg20"]) == {"coengagement", "ease"}
    assert set(line["new_user_ndcg20"]) == {"0", "1", "3", "10"}
    assert isinstance(line["beats_all_single_sources_ci95"], bool)
    for value in line["ndcg20"].values():
        assert 0.0 <= value <= 1.0


def test_docs_section_is_replaced_not_duplicated(tiny_run, tmp_path):
    import argparse

    from bench.report import SECTION, summarize, write_docs

    fragments = tmp_path / "bench"
    fragments.mkdir()
    (fragments / "speed.md").write_text("## Speed\n\nfast\n")
    path = fragments / "quality.md"
    summary = summarize([tiny_run], np.random.default_rng(0))
    args = argparse.Namespace(jobs=1)
    write_docs(path, summary, [tiny_run], 1.0, args)
    write_docs(path, summary, [tiny_run], 2.0, args)
    text = (tmp_path / "benchmarks.md").read_text()  # assembled beside, not in docs/
    assert text.count(SECTION) == 1 and path.read_text().count(SECTION) == 1
    assert "## Speed\n\nfast" in text
    assert "| segment (users) |" in text


def test_the_blend_runs_with_the_models_own_near_duplicate_threshold():
    from bench.blend_runner import recommend_settings
    from mediarec.server.recommend.settings import RecommendSettings

    assert recommend_settings("mediarec-demo").near_duplicate_cosine == 0.985
    default = RecommendSettings().near_duplicate_cosine
    assert recommend_settings("external:16").near_duplicate_cosine == default
    explicit = recommend_settings("mediarec-demo", near_duplicate_cosine=0.9)
    assert explicit.near_duplicate_cosine == 0.9
