"""``make demo``: the whole service, offline, with the bundled demo model.

Starts ``mediarec serve`` as a real process on localhost (embedded Qdrant Edge, model
``mediarec-demo`` named explicitly so no model hub is ever tried), indexes a generated sample
folder through the Python client (one video is streamed with UploadMedia), runs text searches
and a "more like this", prints readable tables and shuts the server down with SIGTERM.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from mediarec.client import MediaMetadata, MediarecClient, Recommendation, SearchHit
from mediarec.client.types import IndexResult
from mediarec.encoders.synthetic.sample_folder import SampleItem, write_sample_folder
from mediarec.server.demo_engagement import (
    INTERESTS_TEXT,
    INTERESTS_USER,
    NEW_USER,
    WARM_USER,
    creator_of,
    replay,
)

DEMO_MODEL = "mediarec-demo"
# Worded like the demo world's captions, which the demo model understands family by family
# (see model_cards/mediarec-demo.md).
DEMO_QUERIES = (
    "red shapes",
    "striped shapes in a snowy field",
    "yellow shapes under a night sky",
    "dotted blue shapes on a city street",
)
SERVER_START_TIMEOUT_S = 180
# The demo's log is small: let the server rebuild trending/co-engagement after a few events
# instead of the production default of 200.
DEMO_SERVER_ARGS = (
    "--refresh-min-events", "20", "--refresh-min-interval-s", "1",
    # The demo model's near-duplicate threshold (see its model card): the default 0.95 suits
    # real CLIP models but would merge distinct posts of the synthetic world.
    "--near-duplicate-cosine", "0.985", "--rec-near-duplicate-cosine", "0.985",
    # The sample folder is the demo model's own synthetic world, the one place its world's
    # attributes fit as topics (the registry's "auto" labels nothing with this model).
    "--topics", "demo-world",
)
REFRESH_WAIT_S = 3.0


@dataclass
class ServerProcess:
    process: subprocess.Popen[str]
    target: str
    log_lines: list[str]

    def stop(self) -> int:
        """SIGTERM and wait: graceful shutdown must exit 0."""
        self.process.send_signal(signal.SIGTERM)
        return self.process.wait(timeout=60)


@contextmanager
def running_server(data_dir: Path, extra_args: Sequence[str] = ()) -> Iterator[ServerProcess]:
    """``mediarec serve`` on 127.0.0.1 with a free port; yields once health says SERVING."""
    command = [
        sys.executable, "-m", "mediarec.server.cli", "serve",
        "--model-id", DEMO_MODEL, "--data-dir", str(data_dir), "--host", "127.0.0.1",
        "--port", "0", "--log-level", "WARNING", *extra_args,
    ]
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONUNBUFFERED": "1"}
    process = subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env
    )
    log_lines: list[str] = []
    ready = threading.Event()
    target: list[str] = []

    def pump() -> None:
        assert process.stdout is not None
        for line in process.stdout:
            log_lines.append(line.rstrip())
            if line.startswith("mediarec serving on "):
                target.append(line.split()[-1])
                ready.set()

    threading.Thread(target=pump, daemon=True).start()
    try:
        if not ready.wait(SERVER_START_TIMEOUT_S) or not target:
            raise RuntimeError("server did not start:\n" + "\n".join(log_lines[-20:]))
        server = ServerProcess(process, target[0], log_lines)
        with MediarecClient(server.target) as client:
            client.wait_until_serving(timeout_s=60)
        yield server
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


def metadata_for(item: SampleItem, root: Path, index: int) -> MediaMetadata:
    return MediaMetadata(
        media_id=item.path.relative_to(root).as_posix(),
        caption=item.caption,
        creator_id=creator_of(index),
    )


def index_sample(
    client: MediarecClient, items: Sequence[SampleItem], root: Path
) -> list[IndexResult]:
    """Photos go inline (IndexMedia); videos are streamed in chunks (UploadMedia)."""
    results = []
    for index, item in enumerate(items):
        metadata = metadata_for(item, root, index)
        if item.kind == "video":
            results.append(client.index_file(item.path, metadata))
        else:
            results.append(client.index_media(metadata, item.path.read_bytes()))
    return results


def _table(title: str, hits: Sequence[SearchHit]) -> str:
    lines = [title, f"  {'#':>2}  {'score':>6}  {'media':<22} {'frame':>6}  caption"]
    for rank, hit in enumerate(hits, 1):
        frame = hit.matched_frame_timestamp_s
        frame_text = f"{frame:5.2f}s" if frame is not None else ""
        caption = hit.item.metadata.caption
        caption = caption if len(caption) <= 60 else caption[:57] + "..."
        lines.append(
            f"  {rank:>2}  {hit.score:6.3f}  {hit.item.metadata.media_id:<22} {frame_text:>6}"
            f"  {caption}"
        )
    return "\n".join(lines)


def _recommendation_table(title: str, items: Sequence[Recommendation]) -> str:
    lines = [title, f"  {'#':>2}  {'score':>6}  {'media':<22} {'creator':<10} reasons"]
    for rank, rec in enumerate(items, 1):
        reasons = "; ".join(rec.reasons) or ", ".join(rec.sources)
        lines.append(
            f"  {rank:>2}  {rec.score:6.3f}  {rec.media_id:<22} "
            f"{rec.item.metadata.creator_id:<10} {reasons}"
        )
    return "\n".join(lines)


def show_recommendations(client: MediarecClient, items: Sequence[SampleItem], root: Path) -> None:
    summary = replay(client, items, root)
    print(
        f"Replayed {summary.events} engagement events ({summary.accepted} accepted): "
        f"{WARM_USER} liked {len(summary.warm_liked)} {summary.warm_colour} posts, "
        "skipped two others and followed a creator.\n"
    )
    time.sleep(REFRESH_WAIT_S)  # the background rebuild of popularity and co-engagement
    interests = client.set_interests(INTERESTS_USER, INTERESTS_TEXT)
    slates = (
        (f"For you, {WARM_USER} (warm: likes {summary.warm_colour})", WARM_USER),
        (f"For you, {NEW_USER} (brand-new user, no history)", NEW_USER),
        (f"For you, {INTERESTS_USER} (just set interests: {', '.join(interests)})",
         INTERESTS_USER),
    )
    for title, user in slates:
        page = client.recommend(user, k=6)
        print(_recommendation_table(title, page.items) + "\n")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--data-dir", type=Path, default=Path("demo-data"))
    parser.add_argument("--photos", type=int, default=40)
    args = parser.parse_args(argv)
    root: Path = args.data_dir
    shutil.rmtree(root, ignore_errors=True)  # a fresh, predictable demo every run
    sample_dir = root / "sample"
    items = write_sample_folder(sample_dir, n_photos=args.photos)
    print(f"Generated {len(items)} sample media in {sample_dir} (synthetic photos + 2 videos)")
    with running_server(root / "store", DEMO_SERVER_ARGS) as server:
        print(f"Server up at {server.target} with model {DEMO_MODEL} (embedded Qdrant Edge)\n")
        with MediarecClient(server.target) as client:
            results = index_sample(client, items, sample_dir)
            videos = [r for r in results if r.frame_count]
            print(f"Indexed {len(results)} items ({len(videos)} videos, streamed); e.g.:")
            for result in results[:3] + videos[:1]:
                topics = ", ".join(f"{t.label} {t.score:.2f}" for t in result.topics)
                print(f"  {result.media_id:<22} {result.outcome.name.lower():<8} topics: {topics}")
            print()
            for query in DEMO_QUERIES:
                print(_table(f"Search: {query!r}", client.search_text(query, k=5)) + "\n")
            seed = results[0].media_id
            seed_caption = client.get_media(seed).metadata.caption
            similar = client.search_similar(seed, k=5)
            print(_table(f"More like {seed} ({seed_caption!r})", similar) + "\n")
            show_recommendations(client, items, sample_dir)
        code = server.stop()
    print(f"Server stopped cleanly (exit {code}).")
    return 0 if code == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
