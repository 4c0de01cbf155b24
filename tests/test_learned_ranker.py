"""The learned ranker: its model file, training from a log, and serving it in the Recommender
over the real stores (the synthetic world of test_recommender)."""

from __future__ import annotations

import json
import signal
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from mediarec.server.recommend import blend as b
from mediarec.server.recommend.collab import CollabSettings, Interactions, build_collab
from mediarec.server.recommend.learned import (
    LearnedRankerFileError,
    load_learned_or_none,
    load_learned_ranker,
    save_learned_ranker,
)
from mediarec.server.recommend.ltr_features import FEATURES
from mediarec.server.recommend.ltr_train import (
    LtrConfig,
    NotEnoughHistoryError,
    Shown,
    examples,
    history_at,
    train_learned_ranker,
)
from mediarec.server.recommend.recommender import Recommender
from mediarec.server.recommend.settings import RecommendSettings
from mediarec.server.recommend.types import RecRequest, ServedItem
from tests.test_recommender import NOW, World, world  # noqa: F401  (the module's fixture)

SMALL = CollabSettings(als_factors=8, als_iterations=5, knn_neighbours=20, rp3_neighbours=20)
QUICK = LtrConfig(cuts=2, rounds=20, min_data_in_leaf=5, min_groups=5, content_candidates=10,
                  candidates_per_source=20)  # fmt: skip


def taste_log(users: int = 60, items: int = 40, seed: int = 0):
    """Users like items of one of four groups (10 each), in time order, and view a few others."""
    rng = np.random.default_rng(seed)
    rows = []
    for u in range(users):
        group = u % 4
        liked = rng.permutation(np.arange(group * 10, group * 10 + 10))[:8]
        viewed = rng.choice(items, 3, replace=False)
        for n, item in enumerate(liked):
            rows.append((u, int(item), 1000.0 * n + u, True))
        for n, item in enumerate(viewed):
            rows.append((u, int(item), 1000.0 * n + 500 + u, False))
    users_a, items_a, ts, pos = (np.array(c) for c in zip(*rows, strict=True))
    data = Interactions(users, items, users_a.astype(np.int64), items_a.astype(np.int64),
                        ts.astype(float), pos.astype(bool))  # fmt: skip
    vectors = np.zeros((items, 4), dtype=np.float32)
    vectors[np.arange(items), np.arange(items) // 10] = 1.0  # content knows the groups too
    return data, [f"m{i}" for i in range(items)], vectors


def test_training_learns_the_groups_and_the_file_round_trips(tmp_path: Path) -> None:
    data, ids, vectors = taste_log()
    model = train_learned_ranker(data, ids, vectors, SMALL, QUICK)
    assert model.features == FEATURES
    assert model.info["groups"] >= QUICK.min_groups
    path = tmp_path / "learned.json"
    save_learned_ranker(model, path)
    again = load_learned_ranker(path)
    x = np.random.default_rng(1).random((5, len(FEATURES))).astype(np.float32)
    assert again.score(x).tolist() == pytest.approx(model.score(x).tolist())
    contrib, base = again.contributions(x)
    assert (contrib.sum(axis=1) + base).tolist() == pytest.approx(again.score(x).tolist())


def served(user: str, media: str, at: float) -> ServedItem:
    return ServedItem(request_id="r", user_id=user, media_id=media, position=0, score=0.0,
                      propensity=1.0, sources=(), features={}, timestamp=at)  # fmt: skip


def test_shown_maps_known_ids_and_finds_a_users_impressions_in_a_window() -> None:
    shown = Shown.of(
        [served("u1", "m2", 30.0), served("u0", "m1", 10.0), served("u1", "m0", 20.0),
         served("u1", "m2", 25.0), served("ghost", "m0", 5.0), served("u0", "gone", 5.0)],
        user_ids=["u0", "u1"], item_ids=["m0", "m1", "m2"],
    )  # fmt: skip
    assert shown.users.tolist() == [0, 1, 1, 1]  # unknown users and items left out
    assert shown.between(1, 20.0, 30.0).tolist() == [2]  # (start, end]: 20 is out
    assert shown.between(1, 0.0, 30.0).tolist() == [0, 2]
    assert shown.between(0, 10.0, 99.0).tolist() == []
    assert shown.between(7, 0.0, 99.0).tolist() == []


def test_items_shown_in_the_label_window_join_the_list_unless_already_engaged() -> None:
    data, ids, vectors = taste_log()
    core = build_collab(data, ids, SMALL)
    rows = np.flatnonzero(data.users == 0)
    history = history_at(data.items[rows], data.timestamps[rows], data.positive[rows])
    config = replace(QUICK, candidates_per_source=1, content_candidates=0)
    _, plain = examples(core, history, vectors, config)
    outside = int(np.setdiff1d(np.arange(len(ids)), np.union1d(plain, history.interactions))[0])
    engaged = int(history.interactions[0])
    _, cands = examples(core, history, vectors, config, np.array([outside, engaged]))
    assert outside in cands.tolist()
    assert engaged not in cands.tolist()


def test_too_little_history_is_refused_with_the_reason() -> None:
    data, ids, vectors = taste_log(users=2)
    with pytest.raises(NotEnoughHistoryError, match="at least 5 are needed"):
        train_learned_ranker(data, ids, vectors, SMALL, QUICK)


def doc(path: Path) -> dict:
    data, ids, vectors = taste_log()
    save_learned_ranker(train_learned_ranker(data, ids, vectors, SMALL, QUICK), path)
    return json.loads(path.read_text())


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda d: d.update(features=d["features"][::-1]), "trained on other features"),
        (lambda d: d.update(features=d["features"][:-1]), r"missing \['content_recent'\]"),
        (lambda d: d.update(version=99), "format version 99"),
        (lambda d: d.update(format="other"), "not a mediarec-learned-ranker file"),
        (lambda d: d.update(model="tree soup"), "does not load"),
    ],
)
def test_a_file_of_other_features_or_format_is_refused(tmp_path: Path, change, message) -> None:
    path = tmp_path / "learned.json"
    d = doc(path)
    change(d)
    path.write_text(json.dumps(d))
    with pytest.raises(LearnedRankerFileError, match=message):
        load_learned_or_none(path)


def test_no_file_means_the_blend(tmp_path: Path) -> None:
    assert load_learned_or_none(tmp_path / "absent.json") is None
    assert load_learned_or_none("") is None


@pytest.fixture
def learned_rec(world: World, tmp_path: Path) -> Iterator[Recommender]:  # noqa: F811
    settings = RecommendSettings(
        refresh_min_events=10_000, learned_ranker_path=str(tmp_path / "learned.json"),
        collab_als_factors=8, collab_als_iterations=5, collab_candidates=30,
    )  # fmt: skip
    r = Recommender(world.encoder, world.store, world.engagement, settings, clock=lambda: NOW,
                    seed=5)  # fmt: skip
    r.refresh()
    yield r
    r.close()


def test_a_trained_ranker_serves_with_a_breakdown_that_adds_up(
    world: World, learned_rec: Recommender, tmp_path: Path  # noqa: F811
) -> None:
    user = "bg0"
    before = learned_rec.recommend(RecRequest(user, k=10, dry_run=True))
    assert learned_rec.learned_ranker is None
    learned_rec.train_learned_ranker(
        LtrConfig(cuts=1, rounds=10, min_data_in_leaf=3, min_groups=5, min_user_events=3)
    )
    assert (tmp_path / "learned.json").is_file()
    assert learned_rec.state.collab.n_items > 0
    page = learned_rec.recommend(RecRequest(user, k=10, dry_run=True))
    assert page.items and [i.media_id for i in page.items] != [i.media_id for i in before.items]
    liked = {e.media_id for e in world.engagement.user_events(user) if e.media_id}
    for item in page.items:
        assert item.media_id not in liked
        if not item.explored:
            assert sum(item.breakdown.values()) == pytest.approx(item.score, abs=1e-6)
            assert set(item.breakdown) <= {*b.FEATURES, b.BIAS}
    # A user with no positive yet is ranked by popularity, which the breakdown says.
    newcomer = learned_rec.recommend(RecRequest("newcomer", k=10, dry_run=True))
    exploited = [i for i in newcomer.items if not i.explored]
    assert exploited and all(set(i.breakdown) == {b.POPULARITY} for i in exploited)
    counts = learned_rec.state.collab.positives
    index = learned_rec.state.collab.index
    assert all(counts[index[i.media_id]] > 0 for i in exploited)
    # A new Recommender on the same settings loads the file and serves it.
    settings = learned_rec._settings
    again = Recommender(world.encoder, world.store, world.engagement, settings,
                        clock=lambda: NOW, seed=5)  # fmt: skip
    try:
        again.refresh()
        assert again.learned_ranker is not None
        assert again.state.collab.n_items == learned_rec.state.collab.n_items
        same = again.recommend(RecRequest(user, k=10, dry_run=True))
        assert [i.media_id for i in same.items] == [i.media_id for i in page.items]
    finally:
        again.close()


def external_data_dir(data_dir: Path) -> list[str]:
    """A data dir of 40 caption-only items with their own 4-d vectors and the taste log's
    events, written through the service's own indexer and store; the flags that open it."""
    from mediarec.server.config import load_settings
    from mediarec.server.media import ItemMetadata
    from mediarec.server.recommend.types import Event, EventKind
    from mediarec.server.runtime import open_deps

    flags = ["--model-id", "external:4", "--data-dir", str(data_dir)]
    settings = load_settings({"model_id": "external:4", "data_dir": str(data_dir)}, {}, None)
    deps = open_deps(settings)
    try:
        data, ids, vectors = taste_log()
        for media_id, vector in zip(ids, vectors, strict=True):
            prepared = deps.indexer.prepare_vectors(
                ItemMetadata(media_id=media_id, caption=media_id), model_id="external:4",
                visual=None, caption=vector.tolist(), frames=(),
            )  # fmt: skip
            deps.indexer.index(prepared)
        events = [
            Event(event_id=f"e{n}", user_id=f"u{u}", media_id=ids[i], timestamp=NOW - 1e6 + t,
                  kind=EventKind.LIKE if p else EventKind.VIEW)
            for n, (u, i, t, p) in enumerate(zip(data.users.tolist(), data.items.tolist(),
                                                 data.timestamps.tolist(),
                                                 data.positive.tolist(), strict=True))
        ]  # fmt: skip
        deps.engagement.log_events(events)
    finally:
        deps.close()
    return flags


def test_train_ranker_command_writes_the_model_and_its_card_and_serve_refuses_a_bad_one(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from mediarec.server.cli import main

    data_dir = tmp_path / "data"
    flags = external_data_dir(data_dir)
    assert main(["train-ranker", *flags, "--collab-als-factors", "8"]) == 0
    out = capsys.readouterr().out
    assert "learned ranker:" in out and "held-out NDCG@10" in out
    assert "blend weights: too little training data" in out  # nothing was served yet
    model = load_learned_ranker(data_dir / "learned_ranker.json")
    assert model.info["events"] == 60 * 11
    card = (data_dir / "learned_ranker.md").read_text()
    assert "| `als` |" in card and "NDCG@10" in card
    # A file trained on other features is refused by serve, and replaced by train-ranker.
    d = json.loads((data_dir / "learned_ranker.json").read_text())
    d["features"] = d["features"][:-1]
    (data_dir / "learned_ranker.json").write_text(json.dumps(d))
    handlers = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        assert main(["serve", *flags, "--host", "127.0.0.1", "--port", "0"]) == 2
    finally:  # serve() installs its own shutdown handlers
        for sig, handler in handlers.items():
            signal.signal(sig, handler)
    err = capsys.readouterr().err.strip()
    assert err.startswith("mediarec serve:") and "trained on other features" in err
    assert len(err.splitlines()) == 1
    assert main(["train-ranker", *flags, "--collab-als-factors", "8"]) == 0
    assert "replacing an unusable model" in capsys.readouterr().err
    assert load_learned_ranker(data_dir / "learned_ranker.json").features == FEATURES


def test_train_ranker_on_an_empty_log_says_why_and_exits_1(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from mediarec.server.cli import main

    flags = ["--model-id", "external:4", "--data-dir", str(tmp_path / "data")]
    assert main(["train-ranker", *flags]) == 1
    out = capsys.readouterr().out
    assert "learned ranker: not trained: only 0 users" in out
    assert not (tmp_path / "data" / "learned_ranker.json").exists()


def test_what_the_core_makes_of_a_user_is_kept_until_a_rebuild_swaps_the_snapshot(
    learned_rec: Recommender, monkeypatch: pytest.MonkeyPatch
) -> None:
    from mediarec.server.recommend.collab import CollabModel

    learned_rec.train_learned_ranker(
        LtrConfig(cuts=1, rounds=10, min_data_in_leaf=3, min_groups=5, min_user_events=3)
    )
    user = "bg0"
    fresh = learned_rec.candidate_ranking(RecRequest(user))  # a dry run: nothing kept
    learned_rec.recommend(RecRequest(user, k=10))  # computes and keeps the user's core work
    assert learned_rec.wait_for_precompute(timeout=60)  # the warming of other users is done
    entry = learned_rec._users.get(user, NOW)
    assert entry is not None and entry.snapshot is not None and entry.snapshot.collab is not None
    positives = entry.snapshot.collab.history.positives.tolist()
    tastes: list[int] = []  # fold-ins of this user into the core's ALS models
    real_taste = CollabModel._taste

    def counting_taste(self, history):  # type: ignore[no-untyped-def]
        if history.positives.tolist() == positives:
            tastes.append(1)
        return real_taste(self, history)

    monkeypatch.setattr(CollabModel, "_taste", counting_taste)
    assert learned_rec.candidate_ranking(RecRequest(user)) == fresh  # kept: the same ranking
    learned_rec.recommend(RecRequest(user, k=10))
    assert tastes == []
    # A new snapshot (and core), swapped in by a background rebuild, which keeps the user's
    # entry: the work in it is for the old snapshot.
    learned_rec.refresh_in_background()
    assert learned_rec.wait_for_refresh(timeout=60)
    assert learned_rec.wait_for_precompute(timeout=60)
    learned_rec.recommend(RecRequest(user, k=10))
    computed = len(tastes)
    assert computed >= 1  # by the request, or by the warming the rebuild scheduled
    learned_rec.recommend(RecRequest(user, k=10))
    assert len(tastes) == computed  # ... and kept again for the new one
