"""Short human-readable reasons, derived from the same contributions that made the score."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from mediarec.server.recommend import blend as b
from mediarec.server.recommend.profile import DECLARED, HASHTAG, SEARCH, STEERING
from mediarec.server.recommend.state import hour_bucket

MAX_REASONS = 3
MIN_CONTRIBUTION = 0.02  # smaller parts of a score are not worth a sentence


@dataclass(frozen=True)
class ReasonInfo:
    """What a reason may mention about one item, beside its score breakdown."""

    explored: bool = False
    new_creator: bool = False  # the user never followed or engaged with the creator
    cluster_size: int = 0  # liked posts in the taste cluster the item matched
    query_kind: str = ""  # kind of the text interest the item matched best
    query_text: str = ""
    coeng_count: int = 0  # liked posts whose co-engagement neighbours include the item
    popular_in: str = ""  # "location_hour", "location", "hour", "device", "global" or ""
    local_hour: int | None = None
    device: str = ""
    recent: bool = False  # posted within the fresh window
    topic: str = ""  # a topic of the item the user likes


def _when(local_hour: int | None) -> str:
    bucket = hour_bucket(local_hour)
    return {"night": "tonight", "": ""}.get(bucket, f"this {bucket}")


def _phrase(feature: str, info: ReasonInfo) -> str:
    if feature == b.CONTENT:
        n = info.cluster_size
        return "similar to a post you liked" if n <= 1 else f"similar to {n} posts you liked"
    if feature == b.COENGAGEMENT:
        if info.coeng_count > 1:
            return f"liked by people who liked {info.coeng_count} of the posts you liked"
        return "liked by people who liked a post you liked"
    if feature == b.POPULARITY:
        when = _when(info.local_hour)
        return {
            "location_hour": f"popular near you {when}",
            "location": "popular near you",
            "hour": f"popular {when}",
            "device": f"popular on {info.device}",
        }.get(info.popular_in, "trending now")
    if feature == b.COHORT:
        return "popular with people who share your taste"
    if feature == b.INTEREST:
        text = info.query_text
        return {
            DECLARED: f"matches your interest in {text}",
            SEARCH: f'because you searched for "{text}"',
            HASHTAG: f"because you like #{text.replace(' ', '')}",
            STEERING: f'matches "{text}"',
        }.get(info.query_kind, "matches your interests")
    if feature == b.SEED:
        return "similar to the post you started from"
    if feature == b.FOLLOWING:
        return "new from a creator you follow" if info.recent else "from a creator you follow"
    if feature == b.CREATOR_AFFINITY:
        return "from a creator you often visit"
    if feature == b.SOCIAL:
        return "liked by people you follow"
    if feature == b.FRESHNESS:
        return "new post"
    return ""


def reasons_for(contributions: Mapping[str, float], info: ReasonInfo) -> tuple[str, ...]:
    """Up to three reasons: exploration first, then the largest positive contributions."""
    out: list[str] = []
    if info.explored:
        out.append("exploring a new creator" if info.new_creator else "trying something new")
    ranked = sorted(
        (f for f, c in contributions.items() if f in b.FEATURE_INDEX and c >= MIN_CONTRIBUTION),
        key=lambda f: -contributions[f],
    )
    for feature in ranked:
        phrase = _phrase(feature, info)
        if phrase and phrase not in out:
            out.append(phrase)
        if feature in (b.CONTENT, b.INTEREST) and info.topic:
            # A label the model gave the item, not a hashtag anyone wrote: no "#", and not
            # said twice when the user's hashtag of the same name was the reason already.
            topic = f"because you like {info.topic}"
            hashtag = f"because you like #{info.topic.replace(' ', '')}".lower()
            if topic not in out and hashtag not in (r.lower() for r in out):
                out.append(topic)
    if not out:
        out.append("new post" if info.recent else "picked for variety")
    return tuple(out[:MAX_REASONS])
