"""The page and text caches are bounded in bytes as well as in entries (pure logic)."""

from __future__ import annotations

import numpy as np
import pytest

from mediarec.server.recommend.paging import RankedEntry, Ranking, RankingCache, ranking_bytes
from mediarec.server.recommend.texts import TextEmbedder
from mediarec.server.recommend.types import RecItem
from mediarec.server.service_errors import PreconditionError


def ranking(request_id: str, user_id: str, items: int) -> Ranking:
    entries = [
        RankedEntry(RecItem(f"m{i}", 1.0, {"x": 1.0}, ("content",), ()), {"f1": 0.5, "f2": 0.1})
        for i in range(items)
    ]
    return Ranking(request_id.ljust(32, "0"), user_id, entries)


def test_rankings_past_the_byte_bound_leave_oldest_first() -> None:
    one = ranking_bytes(ranking("a", "u", 50))
    cache = RankingCache(600.0, 1000, max_bytes=int(2.5 * one))
    for name in "abc":
        cache.put(ranking(name, "u", 50))
    assert cache.size_bytes == 2 * one  # "a" went: three would be over the bound
    with pytest.raises(PreconditionError):
        cache.get(f"{'a'.ljust(32, '0')}.0", "u")
    assert cache.get(f"{'c'.ljust(32, '0')}.20", "u")[1] == 20
    assert cache.forget_user("u") == 2 and cache.size_bytes == 0


def test_a_ranking_stored_again_is_counted_once() -> None:
    cache = RankingCache(600.0, 10)
    cache.put(ranking("a", "u", 10))
    cache.put(ranking("a", "u", 10))
    assert cache.size_bytes == ranking_bytes(ranking("a", "u", 10))


def test_an_expired_ranking_gives_back_its_bytes() -> None:
    now = [0.0]
    cache = RankingCache(1.0, 10, monotonic=lambda: now[0])
    cache.put(ranking("a", "u", 10))
    now[0] = 5.0
    with pytest.raises(PreconditionError):
        cache.get(f"{'a'.ljust(32, '0')}.0", "u")
    assert cache.size_bytes == 0


def test_expired_rankings_leave_when_another_is_stored() -> None:
    # Not only when their own cursor comes back, which may be never.
    now = [0.0]
    cache = RankingCache(1.0, 10, monotonic=lambda: now[0])
    cache.put(ranking("a", "u", 10))
    now[0] = 0.5
    cache.put(ranking("b", "u", 10))
    now[0] = 1.2  # "a" has expired, "b" has not
    cache.put(ranking("c", "u", 10))
    assert cache.size_bytes == 2 * ranking_bytes(ranking("b", "u", 10))
    assert cache.forget_user("u") == 2


class CountingEncoder:
    """Deterministic 64-d text vectors; counts the texts it embeds."""

    dim = 64

    def __init__(self) -> None:
        self.embedded = 0

    def embed_texts(self, texts: list[str]) -> np.ndarray:
        self.embedded += len(texts)
        rng = np.random.default_rng(len(texts))
        return rng.standard_normal((len(texts), self.dim)).astype(np.float32)


def test_text_vectors_past_the_byte_bound_are_embedded_again() -> None:
    encoder = CountingEncoder()
    per_text = 64 * 4 + len("text-00") + 200
    texts = TextEmbedder(encoder, max_entries=100, max_bytes=3 * per_text)  # type: ignore[arg-type]
    texts.embed([f"text-{i:02d}" for i in range(5)])
    assert texts.size_bytes == 3 * per_text  # the two oldest went
    encoder.embedded = 0
    texts.embed(["text-04", "text-00"])
    assert encoder.embedded == 1  # text-04 was kept, text-00 was not
    # text-00 came back in and pushed text-02 out: text-03, text-04 and text-00 remain.
    assert texts.forget(["text-00", "text-04", "never"]) == 2
    assert texts.size_bytes == per_text


def test_a_kept_text_vector_does_not_hold_its_whole_batch() -> None:
    texts = TextEmbedder(CountingEncoder(), max_entries=1)  # type: ignore[arg-type]
    texts.embed([f"text-{i:02d}" for i in range(50)])  # one batch; only the last is kept
    (kept,) = texts._cache.values()
    assert kept.base is None and kept.nbytes == 64 * 4


class ForgettingEncoder(CountingEncoder):
    """While ``cache`` is set, forgets the texts it embeds as it embeds them, as a ForgetUser
    running meanwhile would."""

    def __init__(self) -> None:
        super().__init__()
        self.cache: TextEmbedder | None = None

    def embed_texts(self, texts: list[str]) -> np.ndarray:
        if self.cache is not None:
            self.cache.forget(texts)
        return super().embed_texts(texts)


def test_texts_forgotten_while_they_are_embedded_are_not_kept() -> None:
    """A forgotten user's interests, read before their rows went and embedded after, must not
    come back into the cache; the call that embeds them still gets their vectors."""
    encoder = ForgettingEncoder()
    texts = TextEmbedder(encoder, max_entries=100)  # type: ignore[arg-type]
    encoder.cache = texts
    assert texts.embed(["hiking", "cats"]).shape == (2, 64)
    assert texts.size_bytes == 0 and not texts._cache
    encoder.cache = None  # no forget meanwhile: kept
    texts.embed(["hiking"])
    assert list(texts._cache) == ["hiking"]
