"""Restart: a new server on the same data dir sees every item, vector and search result."""

from __future__ import annotations

import io
import json
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from mediarec.client import (
    Embeddings,
    IndexOutcome,
    Location,
    MediaFilter,
    MediaItem,
    MediaMetadata,
    MediarecClient,
    MediaType,
    NotFound,
)
from mediarec.encoders import Encoder, load_encoder
from mediarec.encoders.synthetic.world import WorldGenerator
from mediarec.encoders.synthetic_video import write_video
from mediarec.server.app import RunningServer, build_server
from mediarec.server.config import Settings, load_settings
from mediarec.server.runtime import ServiceDeps, ServiceState, open_deps
from mediarec.server.store import Frame, schema

MODEL_ID = "mediarec-demo"


@dataclass
class Server:
    deps: ServiceDeps
    running: RunningServer
    client: MediarecClient

    def stop(self) -> None:
        self.client.close()
        self.running.stop(0)  # graceful: closes the store


def start(settings: Settings, encoder: Encoder | None = None) -> Server:
    """A server over ``settings.data_dir``; the store is reopened from disk every time."""
    deps = open_deps(settings, encoder)
    running = build_server(settings, ServiceState(deps))
    return Server(deps, running, MediarecClient(f"127.0.0.1:{running.port}"))


def jpeg(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.convert("RGB").save(buffer, "JPEG", quality=90)
    return buffer.getvalue()


@pytest.fixture(scope="module")
def encoder() -> Encoder:
    """The demo model, loaded once: a restart here is about the store, not the weights."""
    return load_encoder(MODEL_ID)


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return load_settings(
        {"model_id": MODEL_ID, "data_dir": str(tmp_path / "data"), "port": 0, "video_frames": 4},
        {},
        None,
    )


def _index_some(client: MediarecClient, folder: Path) -> tuple[list[str], bytes]:
    gen = WorldGenerator(31, image_size=128)
    ids = []
    for i, post in enumerate(gen.posts(12)):
        client.index_media(
            MediaMetadata(
                media_id=f"photo-{i}",
                creator_id=f"creator-{i % 3}",
                caption=post.caption,
                tags=(post.attributes.colour,),
                created_at=datetime(2026, 5, 1, i, tzinfo=UTC),
                location=Location(region="Porto", latitude=41.15, longitude=-8.61),
            ),
            jpeg(post.image),
        )
        ids.append(f"photo-{i}")
    post = gen.post()
    canvas = np.asarray(post.image.resize((160, 128)))
    frames = [np.roll(canvas, shift, axis=1) for shift in range(0, 48, 2)]
    video = write_video(folder / "clip.mp4", frames, fps=12, gop=12)
    client.index_file(video, MediaMetadata(media_id="video-0", caption=post.caption))
    client.index_media(MediaMetadata(media_id="text-0", caption="two red circles at the beach"))
    vector = np.random.default_rng(0).normal(size=client.server_info().dims)
    client.index_embeddings(
        MediaMetadata(media_id="byo-0"), Embeddings(model_id=MODEL_ID, visual=vector.tolist())
    )
    client.index_media(MediaMetadata(media_id="deleted-0", caption="short-lived"))
    client.delete_media("deleted-0")
    return [*ids, "video-0", "text-0", "byo-0"], jpeg(gen.posts(1)[0].image)


@dataclass(frozen=True)
class Observation:
    items: dict[str, MediaItem]
    searches: dict[str, list[tuple[str, float, float | None]]]
    media_count: int
    visual: dict[str, np.ndarray]
    caption: dict[str, np.ndarray]
    frames: list[Frame]


def _observe(server: Server, ids: list[str], query_image: bytes) -> Observation:
    client = server.client
    searches = {
        "text": client.search_text("red shapes on a sandy beach", k=10),
        "text-filtered": client.search_text(
            "shapes", k=10, media_filter=MediaFilter(creator_ids=("creator-1",))
        ),
        "image": client.search_image(query_image, k=10),
        "similar": client.search_similar("photo-3", k=10),
        "video-only": client.search_text(
            "shapes", k=5, media_filter=MediaFilter(media_types=(MediaType.VIDEO,))
        ),
    }
    store = server.deps.store
    return Observation(
        items={media_id: client.get_media(media_id) for media_id in ids},
        searches={
            name: [(h.item.media_id, round(h.score, 5), h.matched_frame_timestamp_s) for h in hits]
            for name, hits in searches.items()
        },
        media_count=client.server_info().media_count,
        visual=store.retrieve_vectors(ids, schema.VISUAL),
        caption=store.retrieve_vectors(ids, schema.CAPTION),
        frames=store.get_frames("video-0"),
    )


def _assert_same_vectors(old: dict[str, np.ndarray], new: dict[str, np.ndarray]) -> None:
    assert old.keys() == new.keys()
    for media_id, vector in old.items():
        np.testing.assert_allclose(new[media_id], vector, atol=1e-6)


def test_restart_keeps_items_vectors_and_search_results(
    settings: Settings, encoder: Encoder, tmp_path: Path
) -> None:
    first = start(settings, encoder)
    try:
        ids, query_image = _index_some(first.client, tmp_path)
        before = _observe(first, ids, query_image)
    finally:
        first.stop()

    second = start(settings, encoder)
    try:
        after = _observe(second, ids, query_image)
        assert after.items == before.items
        assert after.searches == before.searches
        assert after.media_count == before.media_count == len(ids)
        assert after.frames == before.frames and len(before.frames) == 4
        assert set(before.visual) == set(ids) - {"text-0"}
        _assert_same_vectors(before.visual, after.visual)
        _assert_same_vectors(before.caption, after.caption)
        assert before.searches["video-only"][0][2] is not None  # frames matched after restart
        with pytest.raises(NotFound):
            second.client.get_media("deleted-0")
        # Re-sending an item after the restart is recognised as unchanged.
        again = second.client.index_media(
            MediaMetadata(media_id="text-0", caption="two red circles at the beach")
        )
        assert again.outcome is IndexOutcome.UNCHANGED
    finally:
        second.stop()


def _serve_process(
    settings: Settings, *extra: str
) -> tuple[subprocess.Popen[str], str]:
    """``mediarec serve`` in a child process; returns it and its address once it serves."""
    command = [
        sys.executable, "-m", "mediarec.server.cli", "serve",
        "--model-id", MODEL_ID,
        "--data-dir", str(settings.storage.data_dir),
        "--port", "0",
        "--log-level", "WARNING",
        *extra,
    ]
    child = subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        cwd=Path(__file__).resolve().parent.parent,
    )
    assert child.stdout is not None
    lines = []
    for line in child.stdout:
        lines.append(line)
        if line.startswith("mediarec serving on "):
            return child, line.split()[-1]
    child.wait(timeout=10)
    raise AssertionError("serve exited before serving:\n" + "".join(lines))


def _stop_child(child: subprocess.Popen[str], sig: signal.Signals) -> int:
    child.send_signal(sig)
    try:
        return child.wait(timeout=60)
    finally:
        if child.poll() is None:
            child.kill()
            child.wait(timeout=10)
        if child.stdout is not None:
            child.stdout.close()


@pytest.mark.slow  # two `mediarec serve` processes, each loading torch and the model
def test_killed_server_keeps_acknowledged_writes_and_sigterm_exits_cleanly(
    settings: Settings, encoder: Encoder
) -> None:
    child, address = _serve_process(settings)
    try:
        with MediarecClient(address) as client:
            client.wait_until_serving(timeout_s=60)
            for i, post in enumerate(WorldGenerator(32, image_size=128).posts(5)):
                client.index_media(
                    MediaMetadata(media_id=f"k-{i}", caption=post.caption), jpeg(post.image)
                )
            client.index_media(MediaMetadata(media_id="k-text", caption="three white stars"))
            client.delete_media("k-0")
    finally:
        _stop_child(child, signal.SIGKILL)  # no graceful shutdown, no flush on close

    child, address = _serve_process(settings)  # starts from the crashed process's files
    try:
        with MediarecClient(address) as client:
            client.wait_until_serving(timeout_s=60)
            assert client.server_info().media_count == 5
            assert client.get_media("k-text").metadata.media_type is MediaType.TEXT
            with pytest.raises(NotFound):
                client.get_media("k-0")
            hits = client.search_similar("k-1", k=10)
            assert {h.item.media_id for h in hits} == {"k-2", "k-3", "k-4"}
            client.index_media(MediaMetadata(media_id="t-0", caption="one green heart"))
    finally:
        exit_code = _stop_child(child, signal.SIGTERM)
    assert exit_code == 0

    server = start(settings, encoder)  # the lock was released and the last write kept
    try:
        assert server.client.get_media("t-0").metadata.caption == "one green heart"
        assert server.client.server_info().media_count == 6
    finally:
        server.stop()


@pytest.mark.slow  # a `mediarec serve` process, loading torch and the model
def test_sighup_with_a_bad_ranker_file_keeps_serving_with_the_ranker_in_use(
    settings: Settings, tmp_path: Path
) -> None:
    from mediarec.server.recommend import blend as b
    from mediarec.server.recommend.ranker import RankerModel, save_ranker

    ranker = tmp_path / "ranker.json"
    weights = {name: 0.0 for name in b.FEATURES} | {b.FRESHNESS: 1.0}
    save_ranker(RankerModel(weights=weights, bias=-2.0, trained=True), ranker)
    child, address = _serve_process(settings, "--ranker-path", str(ranker))

    def bias_in_use(client: MediarecClient, user: str) -> float:
        page = client.recommend(user, k=3)
        assert page.items
        return dict(page.items[0].score_breakdown)["bias"]

    try:
        with MediarecClient(address) as client:
            client.wait_until_serving(timeout_s=60)
            for i in range(4):
                client.index_media(MediaMetadata(media_id=f"h-{i}", caption=f"{i + 1} red stars"))
            assert bias_in_use(client, "before") == -2.0
            ranker.write_text(json.dumps({"format": "mediarec-ranker", "version": 1,
                                          "weights": {"content": 1.0}}))
            child.send_signal(signal.SIGHUP)
            assert child.stdout is not None
            said = next((line for line in child.stdout if "SIGHUP" in line), "")
            assert "the ranker in use stays" in said, said or "the server exited"
            assert child.poll() is None
            assert bias_in_use(client, "after") == -2.0
    finally:
        exit_code = _stop_child(child, signal.SIGTERM)
    assert exit_code == 0


@pytest.mark.slow  # a `mediarec serve` process, loading torch and the model
def test_sigterm_exits_within_the_grace_while_cpu_heavy_calls_run(settings: Settings) -> None:
    # An 8,900 x 8,900 PNG (79 MP, under the pixel cap) takes seconds to decode and resize.
    # A handler busy with it does not notice the cancellation, and the executor's exit handler
    # would wait for it.
    buffer = io.BytesIO()
    Image.new("RGB", (8900, 8900), (30, 60, 90)).save(buffer, "PNG")
    heavy = buffer.getvalue()
    grace_s = 0.5
    child, address = _serve_process(settings, "--shutdown-grace-s", str(grace_s))
    errors: list[BaseException] = []

    def index(i: int) -> None:
        try:
            with MediarecClient(address) as client:
                client.index_media(MediaMetadata(media_id=f"heavy-{i}"), heavy, timeout_s=60)
        except BaseException as exc:  # the server goes away mid-call: expected
            errors.append(exc)

    threads = [threading.Thread(target=index, args=(i,)) for i in range(3)]
    try:
        with MediarecClient(address) as client:
            client.wait_until_serving(timeout_s=60)
        for thread in threads:
            thread.start()
        time.sleep(1.0)  # the calls are decoding
        started = time.monotonic()
        exit_code = _stop_child(child, signal.SIGTERM)
        took = time.monotonic() - started
    finally:
        if child.poll() is None:
            child.kill()
        for thread in threads:
            thread.join(30)
    assert exit_code == 0
    assert took < grace_s + 2.5, f"shutdown took {took:.1f} s"


@pytest.mark.slow  # a `mediarec serve` process, loading torch and the model
def test_sighup_during_shutdown_is_ignored(settings: Settings, tmp_path: Path) -> None:
    # A reload runs its handler on the main thread, which is the thread shutting the service
    # down (and holding its locks): once a stop signal came, SIGHUP must do nothing.
    from mediarec.server.recommend import blend as b
    from mediarec.server.recommend.ranker import RankerModel, save_ranker

    ranker = tmp_path / "ranker.json"
    save_ranker(RankerModel(weights=dict.fromkeys(b.FEATURES, 1.0), trained=True), ranker)
    buffer = io.BytesIO()
    Image.new("RGB", (8900, 8900), (30, 60, 90)).save(buffer, "PNG")  # seconds to decode
    heavy = buffer.getvalue()
    child, address = _serve_process(
        settings, "--ranker-path", str(ranker), "--shutdown-grace-s", "3"
    )

    def index(i: int) -> None:
        try:
            with MediarecClient(address) as client:
                client.index_media(MediaMetadata(media_id=f"heavy-{i}"), heavy, timeout_s=60)
        except Exception:  # the server goes away mid-call: expected
            pass

    # Three decodes on two cores: the shutdown waits for them, up to the grace.
    threads = [threading.Thread(target=index, args=(i,)) for i in range(3)]
    try:
        with MediarecClient(address) as client:
            client.wait_until_serving(timeout_s=60)
        ranker.write_text("not a ranker")  # a reload would log that it keeps the ranker
        for thread in threads:
            thread.start()
        time.sleep(1.0)  # the calls are decoding
        child.send_signal(signal.SIGTERM)
        time.sleep(0.3)  # the shutdown has started, and waits for the calls
        child.send_signal(signal.SIGHUP)
        assert child.poll() is None, "the server exited before the SIGHUP: nothing was tested"
        exit_code = child.wait(timeout=60)
        assert child.stdout is not None
        said = child.stdout.read()
    finally:
        if child.poll() is None:
            child.kill()
        for thread in threads:
            if thread.ident is not None:
                thread.join(30)
    assert exit_code == 0
    assert "SIGHUP" not in said, said
