"""A short synthetic engagement log for the demo and smoke: who liked what in the sample folder.

Users like posts by the demo world's latent attributes (never by anything mediarec computed),
so the recommendations printed afterwards can be judged against those attributes.
"""

from __future__ import annotations

import random
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from mediarec.client import ClientContext, Event, EventKind, Location, MediarecClient
from mediarec.encoders.synthetic.sample_folder import SampleItem

WARM_USER = "alice"
NEW_USER = "bob"
INTERESTS_USER = "carol"
INTERESTS_TEXT = "striped shapes, snowy field"
BACKGROUND_USERS = tuple(f"user_{i}" for i in range(8))
EVENING_IN_PARIS = ClientContext(device="ios", local_hour=20, location=Location(region="FR-75"))


@dataclass(frozen=True)
class ReplaySummary:
    events: int
    accepted: int
    warm_colour: str  # the colour the warm user likes
    warm_liked: tuple[str, ...]  # media ids the warm user engaged with


def creator_of(index: int) -> str:
    return f"creator_{index % 5}"


def replay(
    client: MediarecClient, items: Sequence[SampleItem], root: Path, seed: int = 3
) -> ReplaySummary:
    """Log views, likes, saves, skips and a follow for a warm user and a few background users."""
    rng = random.Random(seed)
    ids = [item.path.relative_to(root).as_posix() for item in items]
    colours = [item.attributes.colour for item in items]
    favourite = Counter(colours).most_common(1)[0][0]
    now = time.time()
    events: list[Event] = []

    def add(user: str, kind: EventKind, index: int, minutes_ago: float, **extra: object) -> None:
        events.append(
            Event(
                event_id=f"demo-{user}-{kind.name.lower()}-{index}",
                user_id=user,
                kind=kind,
                timestamp=now - 60 * minutes_ago,
                media_id=ids[index] if kind is not EventKind.FOLLOW else "",
                creator_id=creator_of(index),
                context=EVENING_IN_PARIS,
                **extra,  # type: ignore[arg-type]
            )
        )

    liked = [i for i, colour in enumerate(colours) if colour == favourite][:4]
    for step, index in enumerate(liked):
        add(WARM_USER, EventKind.VIEW, index, 30 - step, dwell_ms=8000)
        add(WARM_USER, EventKind.LIKE, index, 29 - step)
    add(WARM_USER, EventKind.FOLLOW, liked[0], 20)
    disliked = [i for i, colour in enumerate(colours) if colour != favourite][:2]
    for index in disliked:
        add(WARM_USER, EventKind.SKIP, index, 15)
    for user in BACKGROUND_USERS:
        taste = rng.choice(sorted(set(colours)))
        for index in [i for i, colour in enumerate(colours) if colour == taste][:3]:
            add(user, EventKind.VIEW, index, rng.uniform(5, 120), dwell_ms=5000)
            add(user, rng.choice([EventKind.LIKE, EventKind.SAVE]), index, rng.uniform(5, 120))
    result = client.log_events(events)
    return ReplaySummary(
        len(events), result.accepted_count, favourite, tuple(ids[i] for i in liked)
    )
