"""What a request knows about its user: interest clusters, text interests, negatives, social.

``summarize_events`` (pure) turns a user's event history into weights and sets;
``cluster_interests`` (pure) turns positively engaged media vectors into up to N taste vectors
with importances, PinnerSage-style (Ward agglomerative clustering, importance = the
time-decayed engagement mass of the cluster); ``ProfileBuilder`` adds vectors from the store and
text vectors from the CLIP text tower.
"""

from __future__ import annotations

import functools
import logging
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace

import numpy as np

from mediarec.encoders import EmbeddingUnsupportedError, l2_normalize
from mediarec.server.recommend.blend import user_confidence
from mediarec.server.recommend.items import ItemCache
from mediarec.server.recommend.settings import RecommendSettings
from mediarec.server.recommend.texts import TextEmbedder, parse_interests
from mediarec.server.recommend.types import SEEN_KINDS, EngagementStore, Event, EventKind
from mediarec.server.store import MediaPoint, schema

logger = logging.getLogger(__name__)

# How strongly each kind says "more like this".
POSITIVE_WEIGHTS: Mapping[EventKind, float] = {
    EventKind.LIKE: 1.0,
    EventKind.COMMENT: 1.5,
    EventKind.SHARE: 2.0,
    EventKind.SAVE: 2.0,
}
LONG_VIEW_WEIGHT = 0.5
REWATCH_WEIGHT = 0.8  # watch_fraction > 1: watched again
# How strongly each kind says "less like this".
NEGATIVE_WEIGHTS: Mapping[EventKind, float] = {EventKind.SKIP: 0.5, EventKind.HIDE: 1.0}
PROFILE_VISIT_AFFINITY = 1.0
ENGAGEMENT_AFFINITY = 0.5
MAX_SEARCH_INTERESTS = 5
MIN_TEXT_WEIGHT = 0.05

# TextInterest kinds.
DECLARED = "declared"
SEARCH = "search"
HASHTAG = "hashtag"
STEERING = "steering"


def decay(age_s: float, half_life_s: float) -> float:
    """2^(-age / half_life); events from the future count fully."""
    if half_life_s <= 0:
        return 1.0
    return math.pow(0.5, max(0.0, age_s) / half_life_s)


def is_long_view(event: Event, settings: RecommendSettings) -> bool:
    return event.kind is EventKind.VIEW and (
        event.watch_fraction >= settings.long_view_watch_fraction
        or event.dwell_ms >= settings.long_view_dwell_ms
    )


def positive_weight(event: Event, settings: RecommendSettings) -> float:
    """How much this event says the user liked its media (0 when it says nothing positive)."""
    if event.kind in POSITIVE_WEIGHTS:
        return POSITIVE_WEIGHTS[event.kind]
    if is_long_view(event, settings):
        return REWATCH_WEIGHT if event.watch_fraction > 1.0 else LONG_VIEW_WEIGHT
    return 0.0


@dataclass(frozen=True)
class EngagementSummary:
    """A user's history reduced to what ranking needs (no vectors)."""

    positives: Mapping[str, float] = field(default_factory=dict)  # media -> decayed weight
    positive_at: Mapping[str, float] = field(default_factory=dict)  # media -> last positive time
    positive_items: int = 0  # distinct positively engaged media (all time)
    negatives: Mapping[str, float] = field(default_factory=dict)  # media -> decayed weight
    seen: frozenset[str] = frozenset()
    recent_seen: tuple[str, ...] = ()  # seen media, most recent first
    recent_seen_at: tuple[float, ...] = ()  # ... and when each was last seen
    impressions: Mapping[str, frozenset[str]] = field(default_factory=dict)  # media -> keys
    hidden_creators: frozenset[str] = frozenset()
    creator_affinity: Mapping[str, float] = field(default_factory=dict)
    searches: tuple[tuple[str, str, float], ...] = ()  # (kind, text, decayed weight)

    def __post_init__(self) -> None:
        if len(self.recent_seen) != len(self.recent_seen_at):
            raise ValueError(
                f"recent_seen has {len(self.recent_seen)} media but recent_seen_at "
                f"{len(self.recent_seen_at)} times; they must pair up"
            )


def summarize_events(
    events: Sequence[Event], settings: RecommendSettings, now: float
) -> EngagementSummary:
    """Reduce one user's events: positives, negatives, seen, impressions, hides, affinity."""
    positives: dict[str, float] = {}
    positive_at: dict[str, float] = {}
    negatives: dict[str, float] = {}
    seen: dict[str, float] = {}  # media -> last time seen
    impressions: dict[str, set[str]] = {}
    hidden: set[str] = set()
    affinity: dict[str, float] = {}
    searches: dict[tuple[str, str], float] = {}
    for e in events:
        age = now - e.timestamp
        if e.media_id and e.kind in SEEN_KINDS:
            seen[e.media_id] = max(seen.get(e.media_id, e.timestamp), e.timestamp)
        weight = positive_weight(e, settings)
        if weight > 0 and e.media_id:
            # (Engagement raises creator affinity too; ProfileBuilder adds that from payloads.)
            positives[e.media_id] = positives.get(e.media_id, 0.0) + weight * decay(
                age, settings.positive_half_life_s
            )
            positive_at[e.media_id] = max(positive_at.get(e.media_id, e.timestamp), e.timestamp)
        elif e.kind in NEGATIVE_WEIGHTS and e.media_id:
            negatives[e.media_id] = negatives.get(e.media_id, 0.0) + NEGATIVE_WEIGHTS[
                e.kind
            ] * decay(age, settings.negative_half_life_s)
        elif e.kind is EventKind.HIDE and e.creator_id:
            hidden.add(e.creator_id)
        elif e.kind is EventKind.IMPRESSION and e.media_id:
            # One impression per response: an event naming its request counts once with the
            # served log's entry for the same request.
            key = f"request:{e.request_id}" if e.request_id else f"event:{e.event_id}"
            impressions.setdefault(e.media_id, set()).add(key)
        elif e.kind is EventKind.PROFILE_VISIT and e.creator_id:
            affinity[e.creator_id] = affinity.get(e.creator_id, 0.0) + (
                PROFILE_VISIT_AFFINITY * decay(age, settings.affinity_half_life_s)
            )
        elif e.kind is EventKind.SEARCH:
            w = decay(age, settings.search_half_life_s)
            for kind, text in ((SEARCH, e.query.strip()), (HASHTAG, e.hashtag.strip().lstrip("#"))):
                if text:
                    key2 = (kind, text.lower())
                    searches[key2] = searches.get(key2, 0.0) + w
    recent_searches = sorted(
        ((kind, text, min(1.0, w)) for (kind, text), w in searches.items() if w >= MIN_TEXT_WEIGHT),
        key=lambda s: -s[2],
    )[:MAX_SEARCH_INTERESTS]
    newest_first = sorted(seen, key=lambda m: -seen[m])
    return EngagementSummary(
        positives=positives,
        positive_at=positive_at,
        positive_items=len(positives),
        negatives={m: w for m, w in negatives.items() if m not in positives},
        seen=frozenset(seen),
        recent_seen=tuple(newest_first),
        recent_seen_at=tuple(seen[m] for m in newest_first),
        impressions={m: frozenset(keys) for m, keys in impressions.items()},
        hidden_creators=frozenset(hidden),
        creator_affinity=affinity,
        searches=tuple(recent_searches),
    )


@dataclass(frozen=True)
class InterestCluster:
    vector: np.ndarray  # unit
    importance: float  # share of the user's positive mass, clusters sum to 1
    media_ids: tuple[str, ...]


def cluster_interests(
    media_ids: Sequence[str],
    vectors: np.ndarray,
    weights: np.ndarray,
    max_clusters: int,
    merge_margin: float,
) -> tuple[InterestCluster, ...]:
    """Agglomerative clustering of unit ``vectors`` into at most ``max_clusters`` tastes.

    First the most alike clusters merge (centroid linkage) while their centroids' cosine is at
    least ``baseline + merge_margin * (1 - baseline)``, where the baseline is the mean cosine
    between the user's items, so the rule adapts to how spread the embedding space is. Then,
    while there are more than ``max_clusters``, the pair whose merge adds least weighted
    within-cluster variance merges (Ward). Clusters come back by importance (their share of
    the time-decayed engagement mass), highest first; each is represented by its normalised
    weighted mean.
    """
    n = len(media_ids)
    if n == 0 or max_clusters <= 0:
        return ()
    x = np.asarray(vectors, dtype=np.float64)
    mass = np.maximum(np.asarray(weights, dtype=np.float64), 1e-9)
    pairwise = x @ x.T
    baseline = float((pairwise.sum() - np.trace(pairwise)) / (n * (n - 1))) if n > 1 else 1.0
    threshold = baseline + merge_margin * (1.0 - baseline)
    means = x.copy()
    members: list[list[int]] = [[i] for i in range(n)]
    active = np.ones(n, dtype=bool)

    def merge(i: int, j: int) -> None:
        total = mass[i] + mass[j]
        means[i] = (means[i] * mass[i] + means[j] * mass[j]) / total
        mass[i] = total
        members[i].extend(members[j])
        active[j] = False

    similarity = pairwise.copy()
    np.fill_diagonal(similarity, -np.inf)
    while active.sum() > 1:
        i, j = divmod(int(np.argmax(similarity)), n)
        if similarity[i, j] < threshold:
            break
        merge(i, j)
        similarity[j, :] = similarity[:, j] = -np.inf
        unit = means / np.maximum(np.linalg.norm(means, axis=1, keepdims=True), 1e-12)
        row = unit @ unit[i]
        row[~active] = -np.inf
        row[i] = -np.inf
        similarity[i, :] = similarity[:, i] = row
    if active.sum() > max_clusters:
        cost = _ward_costs(means, mass)
        cost[~active, :] = np.inf
        cost[:, ~active] = np.inf
    while active.sum() > max_clusters:
        i, j = divmod(int(np.argmin(cost)), n)
        merge(i, j)
        cost[j, :] = cost[:, j] = np.inf
        row = mass[i] * mass / (mass[i] + mass) * np.sum((means - means[i]) ** 2, axis=1)
        row[~active] = np.inf
        row[i] = np.inf
        cost[i, :] = cost[:, i] = row
    kept = sorted(np.flatnonzero(active), key=lambda c: -mass[c])
    total_mass = float(sum(mass[c] for c in kept))
    return tuple(
        InterestCluster(
            vector=l2_normalize(means[c][None, :])[0],
            importance=float(mass[c] / total_mass),
            media_ids=tuple(media_ids[m] for m in members[c]),
        )
        for c in kept
    )


def likes_centroid(clusters: Sequence[InterestCluster]) -> np.ndarray | None:
    """The importance-weighted mean of a user's taste clusters, when there are several.

    Why: a few likes that share one attribute (five red posts of different shapes and scenes)
    stay apart as clusters, and each cluster's nearest neighbours are its look-alikes in every
    attribute; their mean keeps what the likes have in common.
    """
    if len(clusters) < 2:
        return None
    return l2_normalize(np.sum([c.importance * c.vector for c in clusters], axis=0)[None, :])[0]


def _ward_costs(means: np.ndarray, mass: np.ndarray) -> np.ndarray:
    sq = np.sum(means**2, axis=1)
    dist = np.maximum(sq[:, None] + sq[None, :] - 2.0 * means @ means.T, 0.0)
    cost = (mass[:, None] * mass[None, :]) / (mass[:, None] + mass[None, :]) * dist
    np.fill_diagonal(cost, np.inf)
    return cost


@dataclass(frozen=True)
class TextInterest:
    kind: str  # DECLARED, SEARCH, HASHTAG or STEERING
    text: str
    weight: float  # in (0, 1]
    vector: np.ndarray


@dataclass(frozen=True)
class UserProfile:
    user_id: str
    summary: EngagementSummary
    clusters: tuple[InterestCluster, ...]
    interests: tuple[TextInterest, ...]
    follows: frozenset[str]
    negative_vectors: np.ndarray  # (m, dim) unit rows
    negative_weights: np.ndarray  # (m,)
    positive_vectors: Mapping[str, np.ndarray]  # the clustered positives, for reasons
    liked_topics: Mapping[str, float]  # topic label -> weight, from liked media
    liked_tags: Mapping[str, float]
    engaged_creators: frozenset[str]
    confidence: float  # user_confidence in [0, 1)
    taste: np.ndarray | None  # one unit vector for cohort assignment; None: nothing known
    built_at: float

    @property
    def hashtags(self) -> tuple[str, ...]:
        """Tags the user showed interest in: searched, declared, then most liked."""
        found = [t.text for t in self.interests if t.kind in (HASHTAG, DECLARED)]
        found += sorted(self.liked_tags, key=lambda t: -self.liked_tags[t])[:5]
        return tuple(dict.fromkeys(found))

    @functools.cached_property
    def centroid(self) -> np.ndarray | None:
        """:func:`likes_centroid` of the clusters, once per (cached) profile."""
        return likes_centroid(self.clusters)

    def affinity(self, creator_id: str) -> float:
        base = self.summary.creator_affinity.get(creator_id, 0.0)
        return base + (PROFILE_VISIT_AFFINITY if creator_id in self.follows else 0.0)


class ProfileBuilder:
    """Builds a :class:`UserProfile` from the engagement store, the vector store and the text
    tower. Called on a profile-cache miss only."""

    def __init__(
        self, items: ItemCache, texts: TextEmbedder, settings: RecommendSettings
    ) -> None:
        self._items = items
        self._texts = texts
        self._settings = settings

    def build(self, user_id: str, engagement: EngagementStore, now: float) -> UserProfile:
        s = self._settings
        summary = summarize_events(engagement.user_events(user_id), s, now)
        top_positive = sorted(summary.positives, key=lambda m: -summary.positives[m])
        top_positive = top_positive[: s.profile_max_items]
        negatives = sorted(summary.negatives, key=lambda m: -summary.negatives[m])[:100]
        infos = self._items.get(top_positive + negatives)  # deleted media drop out here
        pos_ids = [m for m in top_positive if m in infos]
        pos_vectors = np.stack([infos[m].vector for m in pos_ids]) if pos_ids else None
        clusters: tuple[InterestCluster, ...] = ()
        if pos_vectors is not None:
            weights = np.array([summary.positives[m] for m in pos_ids])
            clusters = cluster_interests(
                pos_ids, pos_vectors, weights, s.max_clusters, s.cluster_merge_margin
            )
        neg_ids = [m for m in negatives if m in infos]
        liked_topics: dict[str, float] = {}
        liked_tags: dict[str, float] = {}
        creators: set[str] = set()
        affinity = dict(summary.creator_affinity)
        for m in pos_ids:
            info = infos[m]
            w = summary.positives[m]
            for topic in info.topics:
                liked_topics[topic] = liked_topics.get(topic, 0.0) + w
            for tag in info.tags:
                liked_tags[tag] = liked_tags.get(tag, 0.0) + w
            if info.creator_id:
                creators.add(info.creator_id)
                affinity[info.creator_id] = (
                    affinity.get(info.creator_id, 0.0) + ENGAGEMENT_AFFINITY * w
                )
        summary = _with_affinity(summary, affinity)
        interests = self._text_interests(user_id, engagement, summary, now)
        dim = self._texts.dim
        return UserProfile(
            user_id=user_id,
            summary=summary,
            clusters=clusters,
            interests=interests,
            follows=frozenset(engagement.follows(user_id)),
            negative_vectors=(
                np.stack([infos[m].vector for m in neg_ids])
                if neg_ids else np.zeros((0, dim), dtype=np.float32)
            ),
            negative_weights=np.array([summary.negatives[m] for m in neg_ids]),
            positive_vectors=(
                dict(zip(pos_ids, pos_vectors, strict=True)) if pos_vectors is not None else {}
            ),
            liked_topics=liked_topics,
            liked_tags=liked_tags,
            engaged_creators=frozenset(creators),
            confidence=user_confidence(summary.positive_items, s.user_prior),
            taste=_taste(clusters, interests),
            built_at=now,
        )

    def _text_interests(
        self, user_id: str, engagement: EngagementStore, summary: EngagementSummary, now: float
    ) -> tuple[TextInterest, ...]:
        s = self._settings
        wanted: list[tuple[str, str, float]] = []
        # Newest declaration first; each older one counts half as much ("later calls steer").
        declared = sorted(engagement.interests(user_id), key=lambda item: -item[1])
        for rank, (text, timestamp) in enumerate(declared):
            weight = 0.5**rank * decay(now - timestamp, s.interest_half_life_s)
            for phrase in parse_interests(text, s.max_interests):
                wanted.append((DECLARED, phrase, weight))
        wanted.extend(summary.searches)
        best: dict[tuple[str, str], float] = {}
        for kind, text, weight in wanted:
            if weight >= MIN_TEXT_WEIGHT:
                best[(kind, text)] = max(best.get((kind, text), 0.0), weight)
        if not best:
            return ()
        keys = list(best)
        try:
            vectors = self._texts.embed([text for _, text in keys])
        except EmbeddingUnsupportedError:
            logger.debug("user %s has text interests but the model cannot embed text", user_id)
            return ()
        return tuple(
            TextInterest(kind, text, best[(kind, text)], vector)
            for (kind, text), vector in zip(keys, vectors, strict=True)
        )


def _with_affinity(summary: EngagementSummary, affinity: dict[str, float]) -> EngagementSummary:
    return replace(summary, creator_affinity=affinity)


def item_vector(point: MediaPoint | None) -> np.ndarray | None:
    """The vector that stands for an item: its visual one, else its caption's."""
    if point is None:
        return None
    vector = point.vectors.get(schema.VISUAL)
    if vector is None:
        vector = point.vectors.get(schema.CAPTION)
    return None if vector is None else np.asarray(vector, dtype=np.float32)


def _taste(
    clusters: Sequence[InterestCluster], interests: Sequence[TextInterest]
) -> np.ndarray | None:
    parts = [c.importance * c.vector for c in clusters]
    parts += [0.5 * t.weight * t.vector for t in interests]
    if not parts:
        return None
    return l2_normalize(np.sum(parts, axis=0)[None, :])[0]
