"""Indexing: bytes, vectors or a caption in; vectors, topics and payload in the store.

Work is split in two so callers can overlap them: :meth:`MediaIndexer.prepare` validates,
hashes and decodes (CPU work without the model, safe in worker threads), and
:meth:`MediaIndexer.commit` embeds a whole batch in one forward pass and writes it.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import math
import re
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

from mediarec.encoders import Encoder, l2_normalize
from mediarec.encoders.images import decode_image, sniff_media_kind
from mediarec.encoders.media_errors import DecodeFailure, MediaDecodeError
from mediarec.server.media import IndexedItem, ItemMetadata, MediaType, Outcome, StoredItem
from mediarec.server.payload import FINGERPRINT, build_payload, stored_item, unchanged_result
from mediarec.server.service_errors import InvalidArgumentError, ResourceLimitError
from mediarec.server.store import MediaPoint, SearchFilter, VectorStore, schema
from mediarec.server.thumbnails import THUMBNAIL_MAX_SIDE, Thumbnails, make_thumbnail
from mediarec.server.topics import Topic, TopicLabeler

logger = logging.getLogger(__name__)

MEDIA_ID_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:/@+=-]{0,255}$")
MAX_TAG_CHARS = 100
MAX_CREATOR_ID_CHARS = 256
MAX_SOURCE_CHARS = 4096  # PATH_MAX on Linux
MAX_REGION_CHARS = 200


@dataclass(frozen=True)
class IndexLimits:
    max_caption_chars: int = 2200
    max_tags: int = 30
    max_image_pixels: int = 80_000_000
    video_frames: int = 8
    topics_top_k: int = 3
    near_duplicate_cosine: float = 0.95


@dataclass
class PreparedItem:
    """An item ready for the model: validated, hashed and decoded, or already vectorised."""

    metadata: ItemMetadata
    media_type: MediaType
    content_sha256: str = ""
    images: list[Image.Image] = field(default_factory=list)  # one photo, or the video frames
    frame_timestamps_s: tuple[float, ...] = ()
    duration_s: float = 0.0
    visual: np.ndarray | None = None  # precomputed ("bring your own vectors")
    caption_vector: np.ndarray | None = None
    frame_vectors: np.ndarray | None = None
    unchanged: IndexedItem | None = None  # set when nothing needs writing
    fingerprint: str = ""
    existed: bool = False
    existing_type: MediaType | None = None
    existing_created_at: int | None = None
    # JPEGs of the photo or of each frame; None leaves stored ones as they are (only the
    # metadata changed), an empty list removes them (the item no longer has pictures).
    thumbnails: list[bytes] | None = None


def validate_media_id(media_id: str, field_name: str) -> str:
    """``media_id`` if it is one IndexMedia accepts, else INVALID_ARGUMENT naming the field."""
    if not MEDIA_ID_PATTERN.match(media_id or ""):
        raise InvalidArgumentError(
            field_name,
            "media_id must be 1-256 characters of letters, digits and ._:/@+=- "
            "starting with a letter or digit",
        )
    return media_id


def validate_metadata(metadata: ItemMetadata, limits: IndexLimits) -> None:
    validate_media_id(metadata.media_id, "metadata.media_id")
    if len(metadata.creator_id) > MAX_CREATOR_ID_CHARS:
        raise InvalidArgumentError("metadata.creator_id", "creator_id is over 256 characters")
    if len(metadata.source) > MAX_SOURCE_CHARS:
        raise InvalidArgumentError("metadata.source", "source is over 4096 characters")
    _validate_location(metadata)
    if len(metadata.caption) > limits.max_caption_chars:
        raise ResourceLimitError(
            "metadata.caption",
            f"caption has {len(metadata.caption)} characters, over the limit of "
            f"{limits.max_caption_chars}",
        )
    if len(metadata.tags) > limits.max_tags:
        raise ResourceLimitError(
            "metadata.tags", f"{len(metadata.tags)} tags is over the limit of {limits.max_tags}"
        )
    if any(not tag or len(tag) > MAX_TAG_CHARS for tag in metadata.tags):
        raise InvalidArgumentError("metadata.tags", "tags must be 1-100 characters each")


def _validate_location(metadata: ItemMetadata) -> None:
    location = metadata.location
    if len(location.region) > MAX_REGION_CHARS:
        raise InvalidArgumentError(
            "metadata.location.region", f"region is over {MAX_REGION_CHARS} characters"
        )
    for name, value, bound in (("latitude", location.latitude, 90.0),
                               ("longitude", location.longitude, 180.0)):  # fmt: skip
        if value is not None and not (math.isfinite(value) and -bound <= value <= bound):
            raise InvalidArgumentError(
                f"metadata.location.{name}", f"{name} must be a number in [-{bound:g}, {bound:g}]"
            )


def check_vector(vector: Sequence[float] | np.ndarray, dim: int, field_name: str) -> np.ndarray:
    """A client-sent vector as a unit float32 array, or a clear INVALID_ARGUMENT."""
    array = np.asarray(vector, dtype=np.float32).reshape(-1)
    if array.shape[0] != dim:
        raise InvalidArgumentError(
            field_name, f"vector has {array.shape[0]} dimensions but the model has {dim}"
        )
    if not np.all(np.isfinite(array)):
        raise InvalidArgumentError(field_name, "vector contains NaN or infinite values")
    if float(np.linalg.norm(array)) < 1e-6:
        raise InvalidArgumentError(field_name, "vector has zero norm")
    return l2_normalize(array[None, :])[0]


def jpeg_draft_size(encoder: Encoder) -> tuple[int, int] | None:
    """The size JPEGs are draft-decoded to: the model's input size (quality holds, decode gets
    cheap). Indexing and image queries must both use it, or one picture embeds two ways."""
    preprocess = getattr(encoder, "preprocess_spec", None)
    return (preprocess.size, preprocess.size) if preprocess else None


def _fingerprint(content_sha256: str, metadata: ItemMetadata, extra: str = "") -> str:
    doc = {
        "content": content_sha256,
        "creator": metadata.creator_id,
        "caption": metadata.caption,
        "tags": list(metadata.tags),
        "created_at": metadata.created_at,
        "location": [
            metadata.location.region,
            metadata.location.latitude,
            metadata.location.longitude,
        ],
        "extra": extra,
    }
    if metadata.source:  # only when set, so items indexed without one keep their fingerprint
        doc["source"] = metadata.source
    return hashlib.sha256(json.dumps(doc, sort_keys=True).encode()).hexdigest()


def _no_pictures(item: PreparedItem) -> list[bytes] | None:
    """Thumbnails of an item stored without pictures: an item it replaces loses its own, and
    a new one has none to remove (so a caption-only catalogue never touches the file)."""
    return [] if item.existed else None


def decode_failure(exc: MediaDecodeError, field_name: str) -> Exception:
    if exc.reason in (DecodeFailure.TOO_MANY_PIXELS, DecodeFailure.TOO_LONG):
        return ResourceLimitError(field_name, str(exc))
    return InvalidArgumentError(field_name, str(exc))


class MediaIndexer:
    def __init__(
        self,
        encoder: Encoder,
        store: VectorStore,
        labeler: TopicLabeler | None,
        limits: IndexLimits,
        thumbnails: Thumbnails | None = None,
    ) -> None:
        self._encoder = encoder
        self._store = store
        self._thumbnails = thumbnails
        self._labeler = labeler
        self._limits = limits
        # Writes are serialised: "unchanged"/"duplicate" checks and the upsert must not interleave.
        self.write_lock = threading.Lock()
        self._draft_size = jpeg_draft_size(encoder)

    @property
    def limits(self) -> IndexLimits:
        return self._limits

    # -- prepare: no model, safe to run in worker threads -------------------------------------
    def prepare_bytes(
        self,
        metadata: ItemMetadata,
        data: bytes | Path,
        content_sha256: str | None = None,
        *,
        check_existing: Callable[[StoredItem, str], None] | None = None,
    ) -> PreparedItem:
        """Validate, hash and decode an image or video given as bytes or a server-owned file.

        ``check_existing(stored, sha)`` sees the item this one would replace, if any, before
        any decoding, and may raise to refuse it (the folder indexer's id guard)."""
        validate_metadata(metadata, self._limits)
        sha = content_sha256 or _sha256_of(data)
        item = self._start(metadata, sha, check_existing=check_existing)
        if item.unchanged is not None:
            self._backfill_thumbnails(item, data)
            return item
        if self._reuse_stored_vectors(item):
            if self._lacks_thumbnails(metadata.media_id, sha):
                self._decode(item, data)  # for its thumbnails: the vectors are reused
                item.images = []
            return item
        self._decode(item, data)
        return item

    def _lacks_thumbnails(self, media_id: str, sha: str) -> bool:
        return self._thumbnails is not None and self._thumbnails.get(media_id, 0, sha) is None

    def _backfill_thumbnails(self, item: PreparedItem, data: bytes | Path) -> None:
        """Thumbnails for an unchanged item stored before they were made: indexing its folder
        again makes them, without embedding it again."""
        stored = item.unchanged
        thumbnails = self._thumbnails
        if thumbnails is None or stored is None or stored.media_type is MediaType.TEXT:
            return
        sha = item.content_sha256
        if not self._lacks_thumbnails(stored.media_id, sha):
            return
        self._decode(item, data)
        item.images = []
        with self.write_lock:  # only if the item is still this content: a newer one may have won
            current = self._store.get([stored.media_id]).get(stored.media_id)
            if current is not None and current.payload.get(schema.CONTENT_HASH) == sha:
                thumbnails.put(stored.media_id, sha, item.thumbnails or [])

    def _decode(self, item: PreparedItem, data: bytes | Path) -> None:
        """Sniff, check and decode the bytes into ``item``: its pictures and thumbnails."""
        metadata = item.metadata
        head = data[:64] if isinstance(data, bytes) else _read_head(data)
        if not head:
            raise InvalidArgumentError("data", "the media is empty")
        kind = sniff_media_kind(head)
        if kind is None:
            raise InvalidArgumentError(
                "data", "the bytes are not a supported image or video format"
            )
        media_type = MediaType.IMAGE if kind == "image" else MediaType.VIDEO
        if metadata.media_type not in (None, media_type):
            raise InvalidArgumentError(
                "metadata.media_type",
                f"media_type says {metadata.media_type.value} but the bytes are a {kind}",
            )
        item.media_type = media_type
        try:
            if media_type is MediaType.IMAGE:
                raw = data if isinstance(data, bytes) else data.read_bytes()
                image = decode_image(
                    raw, max_pixels=self._limits.max_image_pixels, draft_size=self._draft_size
                )
                item.images = [image]
                if self._thumbnails is not None:
                    item.thumbnails = [make_thumbnail(self._thumbnail_source(raw, image))]
            else:
                # Imported here: PyAV loads FFmpeg's libraries, which photo-only work never needs.
                from mediarec.encoders.video import sample_frames

                info, frames = sample_frames(
                    data, self._limits.video_frames, max_pixels=self._limits.max_image_pixels
                )
                item.images = [frame.image for frame in frames]
                item.frame_timestamps_s = tuple(frame.timestamp_s for frame in frames)
                item.duration_s = info.duration_s
        except MediaDecodeError as exc:
            raise decode_failure(exc, "data") from exc
        if self._thumbnails is not None and media_type is MediaType.VIDEO:
            item.thumbnails = [make_thumbnail(image) for image in item.images]

    def _thumbnail_source(self, raw: bytes, decoded: Image.Image) -> Image.Image:
        """The picture a photo's thumbnail is made from: the decoded one, unless a JPEG was
        draft-decoded below the thumbnail's size for a small model, then a second draft."""
        draft = self._draft_size
        if draft is None or min(draft) >= THUMBNAIL_MAX_SIDE or not raw.startswith(b"\xff\xd8"):
            return decoded
        if max(decoded.size) >= THUMBNAIL_MAX_SIDE:  # the thumbnail's longer side fits
            return decoded
        side = (THUMBNAIL_MAX_SIDE, THUMBNAIL_MAX_SIDE)
        return decode_image(raw, max_pixels=self._limits.max_image_pixels, draft_size=side)

    def prepare_caption_only(self, metadata: ItemMetadata) -> PreparedItem:
        validate_metadata(metadata, self._limits)
        if not metadata.caption.strip():
            raise InvalidArgumentError(
                "metadata.caption", "a post without media needs a non-empty caption"
            )
        if metadata.media_type not in (None, MediaType.TEXT):
            raise InvalidArgumentError(
                "metadata.media_type", "a post without media bytes or vectors is a text post"
            )
        item = self._start(metadata, "")
        item.media_type = MediaType.TEXT
        item.thumbnails = _no_pictures(item)
        return item

    def prepare_vectors(
        self,
        metadata: ItemMetadata,
        *,
        model_id: str,
        visual: Sequence[float] | None,
        caption: Sequence[float] | None,
        frames: Sequence[tuple[float, Sequence[float]]],
    ) -> PreparedItem:
        """Bring-your-own vectors, checked for model, dimension, finiteness and norm."""
        validate_metadata(metadata, self._limits)
        if model_id and model_id != self._encoder.model_id:
            raise InvalidArgumentError(
                "embeddings.model_id",
                f"vectors are for model {model_id!r} but the server uses "
                f"{self._encoder.model_id!r}",
            )
        dim = self._encoder.dim
        vectors = [
            check_vector(vector, dim, f"embeddings.frames[{i}]")
            for i, (_, vector) in enumerate(frames)
        ]
        timestamps = tuple(float(t) for t, _ in frames)
        if any(not math.isfinite(t) or t < 0 for t in timestamps) or any(
            b <= a for a, b in zip(timestamps, timestamps[1:], strict=False)
        ):
            raise InvalidArgumentError(
                "embeddings.frames",
                "frame timestamps must be finite, non-negative and increasing",
            )
        # A vector that is present but empty is a wrong dimension, not an absent vector.
        visual_vector = None if visual is None else check_vector(visual, dim, "embeddings.visual")
        caption_vector = (
            None if caption is None else check_vector(caption, dim, "embeddings.caption")
        )
        if visual_vector is None and vectors:
            visual_vector = l2_normalize(np.mean(vectors, axis=0)[None, :])[0]
        if visual_vector is None and caption_vector is None and not metadata.caption.strip():
            raise InvalidArgumentError(
                "embeddings", "send a visual vector, frame vectors, or a caption"
            )
        sent = [v for v in (visual_vector, caption_vector, *vectors) if v is not None]
        extra = hashlib.sha256(b"".join(v.tobytes() for v in sent) + repr(timestamps).encode())
        extra_hex = extra.hexdigest()
        item = self._start(metadata, "", extra=extra_hex)
        if item.unchanged is not None:
            return item
        item.media_type = (
            MediaType.VIDEO if vectors else MediaType.IMAGE if visual_vector is not None
            else MediaType.TEXT
        )
        item.visual = visual_vector
        item.caption_vector = caption_vector
        item.frame_vectors = np.stack(vectors) if vectors else None
        item.frame_timestamps_s = timestamps
        item.duration_s = timestamps[-1] if timestamps else 0.0
        item.thumbnails = _no_pictures(item)  # no pictures came with the vectors
        return item

    def _start(
        self,
        metadata: ItemMetadata,
        sha: str,
        extra: str = "",
        check_existing: Callable[[StoredItem, str], None] | None = None,
    ) -> PreparedItem:
        fingerprint = _fingerprint(sha, metadata, extra)
        item = PreparedItem(metadata, MediaType.TEXT, content_sha256=sha, fingerprint=fingerprint)
        existing = self._store.get([metadata.media_id]).get(metadata.media_id)
        if existing is None:
            return item
        item.existed = True
        stored = stored_item(metadata.media_id, existing.payload)
        if check_existing is not None:
            check_existing(stored, sha)
        item.existing_type = stored.media_type
        item.existing_created_at = stored.metadata.created_at
        same_model = stored.model_id == self._encoder.model_id
        if existing.payload.get(FINGERPRINT) == fingerprint and same_model:
            # The stored item has this very hash; only *another* item makes it a duplicate.
            twin = self._duplicate_of(sha, exclude=metadata.media_id)
            item.unchanged = unchanged_result(stored, self._encoder.dim, twin)
        return item

    def _reuse_stored_vectors(self, item: PreparedItem) -> bool:
        """For a stored photo whose bytes and model are unchanged (only its metadata changed),
        take its stored vectors instead of decoding and embedding it again: the picture vector
        always, the caption vector while the caption is the same. Videos keep their frames in
        a collection of their own, so they are embedded again."""
        if not item.existed or item.existing_type is not MediaType.IMAGE:
            return False
        if item.metadata.media_type not in (None, MediaType.IMAGE):
            return False  # the normal path refuses the wrong hint after sniffing the bytes
        media_id = item.metadata.media_id
        point = self._store.get([media_id], with_vectors=True).get(media_id)
        if point is None or schema.VISUAL not in point.vectors:
            return False
        stored = stored_item(media_id, point.payload)
        same_model = stored.model_id == self._encoder.model_id
        if stored.content_sha256 != item.content_sha256 or not same_model:
            return False
        item.media_type = MediaType.IMAGE
        item.visual = np.asarray(point.vectors[schema.VISUAL], dtype=np.float32)
        if item.metadata.caption and item.metadata.caption == stored.metadata.caption:
            caption = point.vectors.get(schema.CAPTION)
            item.caption_vector = None if caption is None else np.asarray(caption, np.float32)
        return True

    def _duplicate_of(self, sha: str, exclude: str = "") -> str:
        """media_id of a stored item with byte-identical content (prefers another item)."""
        if not sha:
            return ""
        same = SearchFilter(content_hashes=(sha,), exclude_media_ids=(exclude,) if exclude else ())
        for media_id in self._store.iter_ids(same, batch_size=8):
            return media_id
        return ""

    # -- commit: one forward pass per modality for the whole batch ----------------------------
    def commit(self, items: Sequence[PreparedItem]) -> list[IndexedItem]:
        results: list[IndexedItem | None] = [item.unchanged for item in items]
        todo = [i for i, item in enumerate(items) if item.unchanged is None]
        if not todo:
            return [r for r in results if r is not None]
        self._embed([items[i] for i in todo])
        with self.write_lock:
            written = self._write([items[i] for i in todo])
        for i, result in zip(todo, written, strict=True):
            results[i] = result
        return [r for r in results if r is not None]

    def index(self, item: PreparedItem) -> IndexedItem:
        return self.commit([item])[0]

    def _embed(self, items: Sequence[PreparedItem]) -> None:
        images = [img for item in items if item.visual is None for img in item.images]
        vectors = self._encoder.embed_images(images) if images else None
        offset = 0
        for item in items:
            if item.visual is not None or not item.images:
                continue
            own = vectors[offset : offset + len(item.images)]  # type: ignore[index]
            offset += len(item.images)
            if item.media_type is MediaType.VIDEO:
                item.frame_vectors = own
                item.visual = l2_normalize(own.mean(axis=0, keepdims=True))[0]
            else:
                item.visual = own[0]
            item.images = []  # decoded pixels are not needed past this point
        captions = [item for item in items if item.caption_vector is None and item.metadata.caption]
        if captions:
            embedded = self._encoder.embed_texts([item.metadata.caption for item in captions])
            for item, vector in zip(captions, embedded, strict=True):
                item.caption_vector = vector

    def _write(self, items: Sequence[PreparedItem]) -> list[IndexedItem]:
        """Store a batch: each video's frames first, then the media points in one upsert, so
        an item becomes visible only once all of it is durable, and the photos of a batch
        share one sync (a video adds one for its frames). Duplicates are also looked for among
        the batch's earlier items, which the store does not hold yet."""
        near = self._near_duplicates(items)
        same = self._duplicates(items)
        records = [
            self._record(item, near_of, same_as)
            for item, near_of, same_as in zip(items, near, same, strict=True)
        ]
        batched = []
        for item, (_, point) in zip(items, records, strict=True):
            if self._thumbnails is not None and item.thumbnails is not None:
                # Keyed by the content hash, so a read never pairs them with other vectors.
                self._thumbnails.put(point.media_id, item.content_sha256, item.thumbnails)
            if item.existing_type is MediaType.VIDEO and item.frame_vectors is None:
                # A video replaced by a non-video: its old frames must not survive, so it is
                # deleted, and stored again at once to keep the gap short. (An upsert replaces
                # the whole media point, vectors included, so nothing else is stale.)
                self._store.delete([point.media_id])
                self._store.upsert([point])
                continue
            if item.frame_vectors is not None:
                self._store.upsert_frames(
                    point.media_id, item.frame_vectors, item.frame_timestamps_s
                )
            batched.append(point)
        self._store.upsert(batched)
        return [result for result, _ in records]

    def _record(
        self, item: PreparedItem, near_duplicate_of: str, duplicate_of: str
    ) -> tuple[IndexedItem, MediaPoint]:
        """What ``item`` is stored as, and its result."""
        media_id = item.metadata.media_id
        anchor = item.visual if item.visual is not None else item.caption_vector
        topics: tuple[Topic, ...] = ()
        if self._labeler is not None and anchor is not None:
            topics = tuple(self._labeler.top(anchor, self._limits.topics_top_k))
        result = IndexedItem(
            media_id=media_id,
            outcome=Outcome.UPDATED if item.existed else Outcome.CREATED,
            media_type=item.media_type,
            model_id=self._encoder.model_id,
            dims=self._encoder.dim,
            frame_timestamps_s=item.frame_timestamps_s,
            content_sha256=item.content_sha256,
            duplicate=bool(duplicate_of),
            duplicate_of=duplicate_of,
            near_duplicate_of=near_duplicate_of,
            topics=topics,
        )
        vectors = {}
        if item.visual is not None:
            vectors[schema.VISUAL] = item.visual
        if item.caption_vector is not None:
            vectors[schema.CAPTION] = item.caption_vector
        indexed_at = int(time.time())
        metadata = item.metadata
        if metadata.created_at is None:
            # A post without a creation time counts as created when first indexed, so recency
            # (fresh posts, max-age filters, newest-first listings) applies to it too.
            created_at = item.existing_created_at or indexed_at
            metadata = dataclasses.replace(metadata, created_at=created_at)
        payload = build_payload(
            result,
            metadata,
            fingerprint=item.fingerprint,
            duration_s=item.duration_s,
            indexed_at=indexed_at,
        )
        return result, MediaPoint(media_id, vectors, payload)

    def _near_duplicates(self, items: Sequence[PreparedItem]) -> list[str]:
        """For each item, the most similar *other* item at or above the threshold, stored or
        earlier in the batch, or "". One batched search serves the whole batch: with k = 2 the
        best other item is always among the hits, even when the first is the item's own
        stored version."""
        found = [""] * len(items)
        with_visual = [n for n, item in enumerate(items) if item.visual is not None]
        if not with_visual:
            return found
        visuals = np.stack([items[n].visual for n in with_visual])  # type: ignore[misc]
        stored = self._store.search_batch(schema.VISUAL, visuals, 2, with_payload=False)
        # Cosine to the batch's *earlier* items only (the later ones are not stored yet), never
        # to another copy of the same media_id.
        ids = np.array([items[n].metadata.media_id for n in with_visual], dtype=object)
        within = visuals @ visuals.T
        within[np.triu_indices(len(ids))] = -np.inf
        within[ids[:, None] == ids[None, :]] = -np.inf
        earlier = within.argmax(axis=1)
        threshold = self._limits.near_duplicate_cosine
        for row, (n, hits) in enumerate(zip(with_visual, stored, strict=True)):
            others = [(h.score, h.media_id) for h in hits if h.media_id != ids[row]][:1]
            if row > 0:
                others.append((float(within[row, earlier[row]]), ids[earlier[row]]))
            score, best = max(others, default=(-1.0, ""))
            found[n] = best if score >= threshold else ""
        return found

    def _duplicates(self, items: Sequence[PreparedItem]) -> list[str]:
        """For each item, another item with byte-identical content (stored, else earlier in the
        batch), or "". One filtered scroll tells whether any stored item shares a hash with
        the batch; only then is each item looked up on its own."""
        hashes = tuple({item.content_sha256 for item in items if item.content_sha256})
        sharing = self._store.iter_ids(SearchFilter(content_hashes=hashes), batch_size=1)
        any_stored = bool(hashes) and next(iter(sharing), None) is not None
        found = []
        earlier: dict[str, list[str]] = {}  # hash -> media_ids of the batch so far, in order
        for item in items:
            media_id, sha = item.metadata.media_id, item.content_sha256
            stored = self._duplicate_of(sha, media_id) if any_stored else ""
            in_batch = next((other for other in earlier.get(sha, ()) if other != media_id), "")
            found.append(stored or in_batch)
            if sha:
                earlier.setdefault(sha, []).append(media_id)
        return found


def _sha256_of(data: bytes | Path) -> str:
    if isinstance(data, bytes):
        return hashlib.sha256(data).hexdigest()
    digest = hashlib.sha256()
    with data.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _read_head(path: Path) -> bytes:
    with path.open("rb") as handle:
        return handle.read(64)
