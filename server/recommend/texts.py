"""Short texts (interests, searches, steering) through the CLIP text tower, with a small cache.

The same few interest phrases and queries come back on every request of a user, so their
vectors are kept in a bounded LRU instead of re-running the text tower.
"""

from __future__ import annotations

import re
import threading
from collections import OrderedDict
from collections.abc import Sequence

import numpy as np

from mediarec.encoders import Encoder, l2_normalize

_SPLIT = re.compile(r"[,;\n\r\t|]+|\s+(?:and|&)\s+")
MAX_INTEREST_CHARS = 100


class TextEmbedder:
    """``embed(texts)`` -> unit rows ``(n, dim)``; thread-safe, cached by exact text."""

    def __init__(self, encoder: Encoder, max_entries: int = 4096, max_bytes: int = 0) -> None:
        self._encoder = encoder
        self._max_entries = max_entries
        self._max_bytes = max_bytes  # 0: no bound in bytes
        self._cache: OrderedDict[str, np.ndarray] = OrderedDict()
        self._bytes = 0
        self._forgets = 0  # calls of forget() so far
        self._lock = threading.Lock()

    @property
    def size_bytes(self) -> int:
        with self._lock:
            return self._bytes

    @property
    def dim(self) -> int:
        return self._encoder.dim

    def embed(self, texts: Sequence[str], *, cache: bool = True) -> np.ndarray:
        """Raises the encoder's EmbeddingUnsupportedError for a vectors-only model.

        ``cache=False`` neither reads nor keeps cached vectors (one-off, request-scoped text).
        """
        if not cache:
            if not texts:
                return np.zeros((0, self._encoder.dim), dtype=np.float32)
            return l2_normalize(self._encoder.embed_texts(list(texts)))
        if not texts:
            return np.zeros((0, self._encoder.dim), dtype=np.float32)
        found: dict[str, np.ndarray] = {}
        with self._lock:
            forgets = self._forgets
            for text in texts:
                if text in self._cache:
                    self._cache.move_to_end(text)
                    found[text] = self._cache[text]
        missing = list(dict.fromkeys(t for t in texts if t not in found))
        if missing:
            vectors = l2_normalize(self._encoder.embed_texts(missing))
            with self._lock:
                # A forget meanwhile may have been of these texts (a forgotten user's, read
                # before their rows were deleted): this call uses them but keeps none.
                keep = self._forgets == forgets
                for text, vector in zip(missing, vectors, strict=True):
                    found[text] = vector
                    if not keep:
                        continue
                    old = self._cache.pop(text, None)
                    if old is not None:  # another request embedded it meanwhile
                        self._bytes -= _entry_bytes(text, old)
                    # A copy: a row view would keep its whole batch alive, counted as one row.
                    self._cache[text] = vector.copy()
                    self._bytes += _entry_bytes(text, vector)
                while self._cache and (
                    len(self._cache) > self._max_entries
                    or (self._max_bytes and self._bytes > self._max_bytes)
                ):
                    evicted, evicted_vector = self._cache.popitem(last=False)
                    self._bytes -= _entry_bytes(evicted, evicted_vector)
        return np.stack([found[t] for t in texts]).astype(np.float32, copy=False)


    def forget(self, texts: Sequence[str]) -> int:
        """Drop cached vectors of ``texts`` (a forgotten user's interests and searches)."""
        dropped = 0
        with self._lock:
            self._forgets += 1
            for text in set(texts):
                vector = self._cache.pop(text, None)
                if vector is not None:
                    self._bytes -= _entry_bytes(text, vector)
                    dropped += 1
        return dropped


# A cached text costs its vector, its key and the dict slot that holds them.
_ENTRY_OVERHEAD_BYTES = 200


def _entry_bytes(text: str, vector: np.ndarray) -> int:
    return int(vector.nbytes) + len(text.encode("utf-8", "surrogatepass")) + _ENTRY_OVERHEAD_BYTES


def parse_interests(text: str, limit: int) -> list[str]:
    """"hiking, street food and cats" -> ["hiking", "street food", "cats"] (lowercased, unique).

    Separators are commas, semicolons, newlines, tabs, pipes and the words "and" / "&";
    a leading "#" is dropped; phrases are cut at 100 characters.
    """
    phrases = []
    for part in _SPLIT.split(text or ""):
        phrase = " ".join(part.strip().lstrip("#").split()).lower()[:MAX_INTEREST_CHARS]
        if phrase and phrase not in phrases:
            phrases.append(phrase)
    return phrases[:limit]
