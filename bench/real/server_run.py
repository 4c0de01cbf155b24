"""mediarec in bench-real: the real server over gRPC, exactly as a deployment would use it.

Each run gets a fresh data dir and a server on 127.0.0.1:0 in this process (``serve``'s default
configuration plus the run's overrides; the model is ``external:DIM``, because the vectors come
from outside). Items are indexed as caption-only posts with their text vectors, the history is
loaded through ImportEvents, the learned ranker is trained on it (the deployment step after an
import), and every user is asked for a dry-run page.
"""

from __future__ import annotations

import logging
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from bench.real.data import Dataset
from mediarec.client import Embeddings, Event, EventKind, MediaMetadata, MediarecClient, MediaType

logger = logging.getLogger(__name__)

IMPORT_CHUNK = 5000


def media_id(item: int) -> str:
    return f"m{item}"


def user_id(user: int) -> str:
    return f"u{user}"


@dataclass
class Running:
    client: MediarecClient
    recommender: Any  # the server's Recommender, in this process (candidate recall only)


@contextmanager
def mediarec(
    data: Dataset, vectors: np.ndarray, overrides: Mapping[str, Any] | None = None
) -> Iterator[Running]:
    """A fresh server with every item indexed; stopped (and its data dir removed) on exit."""
    from mediarec.server.app import build_server
    from mediarec.server.config import load_settings
    from mediarec.server.runtime import ServiceState, open_deps

    dim = int(vectors.shape[1])
    with tempfile.TemporaryDirectory(prefix="mediarec-bench-real-") as tmp:
        settings = load_settings(
            {
                "model_id": f"external:{dim}",
                "data_dir": str(Path(tmp) / "data"),
                "port": 0,
                **(overrides or {}),
            },
            {},
            None,
        )
        deps = open_deps(settings)
        running = build_server(settings, ServiceState(deps))
        client = MediarecClient(f"127.0.0.1:{running.port}", default_timeout_s=600)
        try:
            index_items(client, data, vectors)
            yield Running(client, deps.recommender)
        finally:
            client.close()
            running.stop(0)


def index_items(client: MediarecClient, data: Dataset, vectors: np.ndarray) -> None:
    model_id = client.server_info().model_id
    for movie, vector in zip(data.movies, vectors, strict=True):
        created = datetime(movie.year, 1, 1, tzinfo=UTC) if movie.year else None
        client.index_embeddings(
            MediaMetadata(
                media_id=media_id(movie.item),
                caption=movie.title,
                tags=tuple(g.lower() for g in movie.genres[:10]),
                created_at=created,
                media_type=MediaType.TEXT,
            ),
            Embeddings(model_id=model_id, caption=vector.tolist()),
        )


def events_of(
    data: Dataset, rows: np.ndarray, *, shift_s: float = 0.0, positive: float = 4.0
) -> Iterator[Event]:
    """One event per rating: a like when it is a positive, else a view."""
    for row in rows:
        rating = float(data.ratings[row])
        yield Event(
            event_id=f"r{int(row)}",
            user_id=user_id(int(data.users[row])),
            kind=EventKind.LIKE if rating >= positive else EventKind.VIEW,
            timestamp=float(data.timestamps[row]) - shift_s,
            media_id=media_id(int(data.items[row])),
        )


def import_rows(client: MediarecClient, events: Iterator[Event]) -> None:
    result = client.import_events(events, chunk_events=IMPORT_CHUNK)
    if result.rejected_count:
        raise RuntimeError(f"the server rejected {result.rejected_count} rows: {result.errors[:3]}")


def import_history(running: Running, events: Iterator[Event]) -> None:
    """Import the history, then train the learned ranker on it, as a deployment does after
    importing (``mediarec train-ranker``; here the same code, in the server's process)."""
    import_rows(running.client, events)
    running.recommender.train_learned_ranker()


def top_items(client: MediarecClient, users: Sequence[int] | np.ndarray, k: int) -> np.ndarray:
    """Each user's dry-run page of ``k`` as item indices (-1 where the page is short)."""
    out = np.full((len(users), k), -1, dtype=np.int64)
    for row, user in enumerate(users):
        page = client.recommend(user_id(int(user)), k=k, dry_run=True)
        items = [int(item.media_id[1:]) for item in page.items][:k]
        out[row, : len(items)] = items
    return out


def candidate_unions(recommender: Any, users: Sequence[int] | np.ndarray, k: int) -> np.ndarray:
    """Each user's candidate union (best blended score first), its first ``k`` as items."""
    from mediarec.server.recommend.types import RecRequest

    out = np.full((len(users), k), -1, dtype=np.int64)
    for row, user in enumerate(users):
        ids = recommender.candidate_ranking(RecRequest(user_id(int(user))))[:k]
        out[row, : len(ids)] = [int(m[1:]) for m in ids]
    return out
