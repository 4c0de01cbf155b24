"""A served demo catalogue for the gallery's tests: a real server with an API key and its
operators' HTTP port, the demo sample folder indexed through the client, and one user with
likes and declared interests."""

from __future__ import annotations

import random
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from mediarec.client import Event, EventKind, MediaMetadata, MediarecClient
from mediarec.encoders.synthetic.sample_folder import SampleItem, write_sample_folder
from mediarec.encoders.synthetic.world import WorldGenerator
from mediarec.server.app import RunningServer
from tests.servers import serve_demo

API_KEY = "gallery-test-key"
ADMIN_KEY = "gallery-admin-key"
USER = "ana"
INTERESTS = "red circles, striped hearts"


@dataclass(frozen=True)
class GalleryWorld:
    server: RunningServer
    client: MediarecClient
    items: dict[str, SampleItem]  # media_id -> what was indexed
    liked: tuple[str, ...]

    @property
    def base_url(self) -> str:
        assert self.server.http is not None
        return f"http://127.0.0.1:{self.server.http.port}"

    def held_out_query(self) -> tuple[str, str]:
        """(a fresh wording of a photo's attributes, that photo's id), for a photo whose
        attributes no other photo shares, so exactly one item fits the query."""
        photos = {m: s for m, s in self.items.items() if s.kind == "image"}
        counts: dict[object, int] = {}
        for sample in photos.values():
            counts[sample.attributes] = counts.get(sample.attributes, 0) + 1
        media_id, sample = next((m, s) for m, s in sorted(photos.items())
                                if counts[s.attributes] == 1)  # fmt: skip
        world = WorldGenerator(seed=2026)  # another seed: a wording never indexed
        caption = world.caption(sample.attributes)
        while caption == sample.caption:
            caption = world.caption(sample.attributes)
        return caption, media_id


@contextmanager
def gallery_world(root: Path) -> Iterator[GalleryWorld]:
    server = serve_demo(
        root / "data", http_port=0, api_keys=[API_KEY], admin_api_keys=[ADMIN_KEY]
    )
    client = MediarecClient(f"127.0.0.1:{server.port}", api_key=API_KEY)
    try:
        items: dict[str, SampleItem] = {}
        for sample in write_sample_folder(root / "media", n_photos=12):
            media_id = f"{sample.kind}/{sample.path.stem}"
            client.index_file(
                sample.path, MediaMetadata(media_id, caption=sample.caption, creator_id="demo")
            )
            items[media_id] = sample
        liked = tuple(sorted(m for m in items if m.startswith("image/"))[:3])
        rng = random.Random(5)
        client.log_events([
            Event(f"like-{n}-{rng.random()}", USER, EventKind.LIKE, media_id=media_id)
            for n, media_id in enumerate(liked)
        ])  # fmt: skip
        client.set_interests(USER, INTERESTS)
        with MediarecClient(f"127.0.0.1:{server.port}", api_key=ADMIN_KEY) as admin:
            admin.refresh()
        yield GalleryWorld(server, client, items, liked)
    finally:
        client.close()
        server.stop(0)
