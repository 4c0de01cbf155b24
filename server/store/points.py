"""Engine-neutral point preparation shared by the adapters, so both write identical points."""

from __future__ import annotations

import numbers
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import replace
from typing import Any

import numpy as np

from mediarec.server.store import schema
from mediarec.server.store.base import (
    DimensionMismatchError,
    Frame,
    FrameMatch,
    InvalidVectorError,
    MediaPoint,
    SearchHit,
    StoreError,
)


def check_vector(vector: Any, dim: int, what: str) -> np.ndarray:
    """``vector`` as a finite 1-d float32 array of ``dim`` values, else a typed error."""
    return _checked_array(vector, dim, what, "a 1-d vector", ndim=1)


def check_matrix(vectors: Any, dim: int, what: str) -> np.ndarray:
    """``vectors`` as a finite (n, dim) float32 array, else a typed error."""
    return _checked_array(vectors, dim, what, f"an (n, {dim}) array", ndim=2)


def _checked_array(values: Any, dim: int, what: str, expected: str, ndim: int) -> np.ndarray:
    array = np.asarray(values, dtype=np.float32)
    if array.ndim != ndim:
        raise InvalidVectorError(f"{what}: expected {expected}, got shape {array.shape}")
    if array.shape[-1] != dim:
        raise DimensionMismatchError(what, dim, array.shape[-1])
    if not np.all(np.isfinite(array)):
        raise InvalidVectorError(f"{what}: values contain NaN or infinity")
    return array


def check_vector_name(name: str, dims: Mapping[str, int]) -> int:
    """The dimension of named vector ``name``, or InvalidVectorError naming the valid names."""
    if name not in dims:
        raise InvalidVectorError(f"unknown vector name {name!r}; the collection has {sorted(dims)}")
    return dims[name]


def check_k(k: int) -> None:
    if k < 1:
        raise ValueError(f"k must be at least 1, got {k}")


def query_limits(k: int | Sequence[int], queries: int) -> list[int]:
    """One limit per query: ``k`` for all, or ``k[i]`` for query ``i``."""
    one = isinstance(k, numbers.Integral)  # numpy integers too
    limits = [int(k)] * queries if one else [int(x) for x in k]  # type: ignore[arg-type, union-attr]
    if len(limits) != queries:
        raise ValueError(f"got {len(limits)} limits for {queries} query vectors")
    for limit in limits:
        check_k(limit)
    return limits


def with_keys(payload_keys: Sequence[str]) -> list[str]:
    """Payload keys to read: the asked ones plus ``media_id``, which every point needs."""
    return list(dict.fromkeys([schema.MEDIA_ID, *payload_keys]))


def checked_vectors(point: MediaPoint, dims: Mapping[str, int]) -> dict[str, np.ndarray]:
    """The point's named vectors, each checked against the collection's dims."""
    if not point.media_id:
        raise InvalidVectorError("media_id must be a non-empty string")
    if not point.vectors:
        raise InvalidVectorError(f"media {point.media_id!r} has no vectors")
    return {
        name: check_vector(vector, check_vector_name(name, dims), f"{point.media_id}/{name}")
        for name, vector in point.vectors.items()
    }


def media_payload(point: MediaPoint) -> dict[str, Any]:
    """The stored payload: the caller's fields plus the original media_id."""
    return {**point.payload, schema.MEDIA_ID: point.media_id}


def frame_payloads(
    media_id: str, timestamps_s: Sequence[float], extra: Mapping[str, Any] | None
) -> list[dict[str, Any]]:
    """Payload of each frame point: the caller's fields plus media_id, index and timestamp."""
    base = dict(extra or {})
    return [
        {
            **base,
            schema.MEDIA_ID: media_id,
            schema.FRAME_INDEX: index,
            schema.FRAME_TIMESTAMP_S: float(timestamp),
        }
        for index, timestamp in enumerate(timestamps_s)
    ]


def check_frames(
    frame_vectors: Any, timestamps_s: Sequence[float], dim: int, media_id: str
) -> np.ndarray:
    """Frame vectors as an (n, dim) array with one timestamp per row."""
    vectors = check_matrix(frame_vectors, dim, f"{media_id}/frames")
    if len(timestamps_s) != vectors.shape[0]:
        raise InvalidVectorError(
            f"{media_id}: {vectors.shape[0]} frame vectors but {len(timestamps_s)} timestamps"
        )
    return vectors


# Reciprocal-rank fusion scores tie exactly (first in one ranking and absent from the other is
# 1/rrf_k for everyone), and the engine orders ties arbitrarily; fused searches read this many
# extra hits so ties at the cut are settled the same way every time.
FUSION_TIE_SLACK = 10


def settle_fused_ties(hits: Sequence[SearchHit], k: int) -> list[SearchHit]:
    """The best ``k`` fused hits, equal scores ordered by media id (deterministic)."""
    return sorted(hits, key=lambda h: (-round(h.score, 9), h.media_id))[:k]


def video_ids(hits: Sequence[SearchHit]) -> list[str]:
    """Ids of the hits that are videos (only videos have frame points)."""
    return [h.media_id for h in hits if h.payload.get(schema.MEDIA_TYPE) == schema.MEDIA_TYPE_VIDEO]


def frames_of(payloads: Iterable[Mapping[str, Any] | None]) -> list[Frame]:
    """A video's stored frames from its frame points' payloads, in frame order."""
    found = [
        Frame(int(p[schema.FRAME_INDEX]), float(p[schema.FRAME_TIMESTAMP_S]))
        for p in payloads
        if p
    ]
    return sorted(found, key=lambda f: f.frame_index)


def vectors_of(vector: Any) -> dict[str, np.ndarray]:
    """A point's named vectors as the engine returned them, as float32 arrays."""
    if not isinstance(vector, dict):
        return {}
    return {name: as_float32(values) for name, values in vector.items()}


def attach_frames(hits: Sequence[SearchHit], matches: Mapping[str, FrameMatch]) -> list[SearchHit]:
    """``hits`` with each video's best frame filled in."""
    return [replace(h, frame=matches[h.media_id]) if h.media_id in matches else h for h in hits]


def frame_match(payload: Mapping[str, Any], score: float) -> FrameMatch:
    return FrameMatch(
        frame_index=int(payload[schema.FRAME_INDEX]),
        timestamp_s=float(payload[schema.FRAME_TIMESTAMP_S]),
        score=float(score),
    )


def as_float32(vector: Any) -> np.ndarray:
    return np.asarray(vector, dtype=np.float32)


def check_dims(dims: Mapping[str, int]) -> None:
    """Dims name known vectors, include visual (frames use it), and are positive ints."""
    if schema.VISUAL not in dims:
        raise StoreError(f"dims must include {schema.VISUAL!r} (frames use it), got {dict(dims)}")
    unknown = set(dims) - set(schema.VECTOR_NAMES)
    if unknown:
        raise StoreError(f"unknown vector names {sorted(unknown)}; use {schema.VECTOR_NAMES}")
    for vector, dim in dims.items():
        if not isinstance(dim, int) or dim < 1:
            raise StoreError(f"dimension of {vector!r} must be a positive int, got {dim!r}")


def compare_dims(
    collection: str, model_id: str, stored: Mapping[str, int], wanted: Mapping[str, int]
) -> None:
    """Raise unless the stored collection has exactly the vectors the model produces."""
    for vector in sorted(set(stored) | set(wanted)):
        have, want = stored.get(vector), wanted.get(vector)
        if have is None or want is None:
            raise StoreError(
                f"collection {collection} has vectors {sorted(stored)} but model {model_id} "
                f"produces {sorted(wanted)}"
            )
        if have != want:
            raise DimensionMismatchError(
                f"collection {collection}, vector {vector!r}, model {model_id}", have, want
            )
