"""``make smoke``: the demo's steps with assertions instead of tables; exit 0 only if all work."""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

from mediarec.client import IndexOutcome, MediarecClient, NotFound, ServingStatus
from mediarec.encoders.synthetic.sample_folder import write_sample_folder
from mediarec.server.demo import DEMO_MODEL, DEMO_SERVER_ARGS, index_sample, running_server
from mediarec.server.demo_engagement import NEW_USER, WARM_USER, replay


def check(condition: bool, what: str) -> None:
    if not condition:
        raise AssertionError(what)
    print(f"ok  {what}")


def run(root: Path) -> None:
    items = write_sample_folder(root / "sample", n_photos=16)
    with running_server(root / "store", DEMO_SERVER_ARGS) as server:
        with MediarecClient(server.target) as client:
            check(client.health() == ServingStatus.SERVING, "health is SERVING")
            info = client.server_info()
            check(info.model_id == DEMO_MODEL and info.dims > 0, "server runs the demo model")
            results = index_sample(client, items, root / "sample")
            check(len(results) == len(items), f"indexed {len(items)} items")
            check(
                all(r.outcome == IndexOutcome.CREATED for r in results), "every item was created"
            )
            videos = [r for r in results if r.frame_count]
            check(
                len(videos) == 2 and all(r.frame_count == info.video_frames for r in videos),
                "two streamed videos with all frames",
            )
            again = index_sample(client, items[:3], root / "sample")
            check(
                all(r.outcome == IndexOutcome.UNCHANGED for r in again), "re-indexing is a no-op"
            )
            check(client.server_info().media_count == len(items), "store count matches")
            hits = client.search_text("red circles", k=5)
            check(len(hits) == 5 and hits[0].score >= hits[-1].score, "text search ranks results")
            seed = results[0].media_id
            similar = client.search_similar(seed, k=5)
            check(
                bool(similar) and all(h.item.metadata.media_id != seed for h in similar),
                "more-like-this excludes its seed",
            )
            summary = replay(client, items, root / "sample")
            check(summary.accepted == summary.events > 0, f"logged {summary.events} events")
            again_log = replay(client, items, root / "sample")
            check(again_log.accepted == 0, "re-sent event ids are not counted twice")
            cold = client.recommend(NEW_USER, k=6)
            check(len(cold.items) == 6 and bool(cold.request_id), "a new user gets a full slate")
            warm = client.recommend(WARM_USER, k=6)
            warm_ids = {rec.media_id for rec in warm.items}
            check(len(warm.items) == 6, "a warm user gets a full slate")
            check(not warm_ids & set(summary.warm_liked), "liked (seen) items do not come back")
            check(all(rec.reasons for rec in warm.items), "every recommendation has reasons")
            check(client.get_media(seed).metadata.media_id == seed, "get returns the item")
            check(client.delete_media(seed), "delete removes the item")
            try:
                client.get_media(seed)
                check(False, "deleted item is gone")
            except NotFound:
                check(True, "deleted item is gone (NOT_FOUND)")
        check(server.stop() == 0, "server shuts down cleanly on SIGTERM")


def main() -> int:
    with tempfile.TemporaryDirectory(prefix="mediarec-smoke-") as tmp:
        try:
            run(Path(tmp))
        except AssertionError as exc:
            print(f"FAIL {exc}", file=sys.stderr)
            return 1
    print("smoke: all checks passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
