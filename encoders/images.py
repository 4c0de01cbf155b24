"""Bytes to an upright RGB picture: format sniffing, bomb guard, JPEG draft mode, EXIF orientation.

Every failure caused by the bytes themselves raises :class:`MediaDecodeError` with a
:class:`DecodeFailure` reason; nothing here mutates Pillow's global settings.
"""

from __future__ import annotations

import io
import logging
import struct
import zlib
from typing import Literal

import numpy as np
from PIL import ExifTags, Image, UnidentifiedImageError

from mediarec.encoders.media_errors import DecodeFailure, MediaDecodeError

logger = logging.getLogger(__name__)

# 80 MP covers 8K x 8K scans and every common camera, and stays under Pillow's own
# warning threshold (~89.5 MP). Pillow's hard limit (~179 MP) still applies above that.
DEFAULT_MAX_PIXELS = 80_000_000
# The model sees a centred square of the short side, so past this ratio it sees a sliver of the
# picture; 32:1 still admits panoramas and long comic strips. Together with the pixel cap it
# also bounds every intermediate size (see mediarec.encoders.preprocess.resize_and_crop).
MAX_ASPECT_RATIO = 32

SUPPORTED_IMAGE_EXTENSIONS = frozenset(
    {".jpg", ".jpeg", ".png", ".webp", ".gif", ".bmp", ".tif", ".tiff"}
)
SUPPORTED_VIDEO_EXTENSIONS = frozenset({".mp4", ".mov", ".webm", ".mkv"})

MediaKind = Literal["image", "video"]

# Our sniffed format name -> the Pillow plugin that decodes it. Only these plugins are tried,
# so bytes never reach Pillow's lenient, magic-less readers (TGA, ICO, ...).
_PIL_PLUGINS = {
    "jpeg": "JPEG",
    "png": "PNG",
    "gif": "GIF",
    "webp": "WEBP",
    "bmp": "BMP",
    "tiff": "TIFF",
}
_IMAGE_FORMATS = frozenset(_PIL_PLUGINS) | {"heif", "avif"}
_VIDEO_FORMATS = frozenset({"mp4", "matroska", "avi"})
_HEIF_BRANDS = frozenset({b"heic", b"heix", b"heim", b"heis", b"hevc", b"hevx", b"mif1", b"msf1"})
_AVIF_BRANDS = frozenset({b"avif", b"avis"})
_ISO_BMFF_BOXES = frozenset({b"ftyp", b"moov", b"mdat", b"wide", b"free", b"skip"})
_BMP_INFO_HEADER_SIZES = frozenset({12, 16, 40, 52, 56, 64, 108, 124})

# EXIF orientation -> the transpose that makes the picture upright (the EXIF 2.3 table).
_ORIENTATION_FIX = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}
_AXES_SWAPPING_ORIENTATIONS = frozenset({5, 6, 7, 8})

# What Pillow raises from inside its decoders on bad bytes (it has no single error type).
_PIL_DECODE_ERRORS = (OSError, SyntaxError, ValueError, EOFError, struct.error, zlib.error)


def sniff_format(data: bytes) -> str | None:
    """The container format named by the leading magic bytes, or ``None`` when unrecognised.

    Returns one of ``jpeg png gif webp bmp tiff heif avif`` (images) or
    ``mp4 matroska avi`` (videos; ``mp4`` includes MOV, ``matroska`` includes WebM).
    """
    head = data[:32]
    if head.startswith(b"\xff\xd8\xff"):
        return "jpeg"
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return "png"
    if head.startswith((b"GIF87a", b"GIF89a")):
        return "gif"
    if head.startswith(b"RIFF") and head[8:12] == b"WEBP":
        return "webp"
    if head.startswith(b"RIFF") and head[8:12] == b"AVI ":
        return "avi"
    if head.startswith((b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+")):
        return "tiff"
    # "BM" alone is too weak a signature; the DIB header size must be a known one as well.
    if (
        head.startswith(b"BM")
        and len(head) >= 18
        and struct.unpack_from("<I", head, 14)[0] in _BMP_INFO_HEADER_SIZES
    ):
        return "bmp"
    if head.startswith(b"\x1a\x45\xdf\xa3"):
        return "matroska"
    if head[4:8] in _ISO_BMFF_BOXES:
        brand = head[8:12]
        if head[4:8] == b"ftyp" and brand in _HEIF_BRANDS:
            return "heif"
        if head[4:8] == b"ftyp" and brand in _AVIF_BRANDS:
            return "avif"
        return "mp4"
    return None


def sniff_media_kind(data: bytes) -> MediaKind | None:
    """``"image"`` or ``"video"`` from the magic bytes, or ``None`` when unrecognised.

    A recognised kind is not a promise of support: HEIF/AVIF sniff as images but
    :func:`decode_image` rejects them with ``unsupported_format``.
    """
    fmt = sniff_format(data)
    if fmt in _IMAGE_FORMATS:
        return "image"
    if fmt in _VIDEO_FORMATS:
        return "video"
    return None


def decode_image(
    data: bytes,
    *,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    draft_size: tuple[int, int] | None = None,
) -> Image.Image:
    """Decode JPEG, PNG, WebP, GIF (first frame), BMP or TIFF bytes to an upright RGB image.

    ``max_pixels`` is checked against the size the header declares, before any pixel is decoded.
    ``draft_size`` (width, height, in upright orientation) lets JPEGs decode at a reduced DCT
    scale; the result stays at least that large on both sides, so a later resize to that size
    loses nothing. Other formats ignore it. Transparent areas are composited onto white.
    """
    if max_pixels <= 0:
        raise ValueError(f"max_pixels must be positive, got {max_pixels}")
    if draft_size is not None and min(draft_size) <= 0:
        raise ValueError(f"draft_size must be two positive ints, got {draft_size!r}")
    fmt = _supported_image_format(data)
    _check_declared_length(fmt, data)
    try:
        img = Image.open(io.BytesIO(data), formats=[_PIL_PLUGINS[fmt]])
        check_dimensions(img.size, max_pixels, what=f"the {fmt} image")
        orientation = _exif_orientation(img)
        if draft_size is not None and img.format in ("JPEG", "MPO"):
            if orientation in _AXES_SWAPPING_ORIENTATIONS:
                draft_size = (draft_size[1], draft_size[0])
            img.draft("RGB", draft_size)
        img.load()
        rgb = _to_rgb(img)
        img.close()
    except MediaDecodeError:
        raise
    except Image.DecompressionBombError as exc:
        raise MediaDecodeError(
            DecodeFailure.TOO_MANY_PIXELS, f"the {fmt} image is a decompression bomb: {exc}"
        ) from exc
    except UnidentifiedImageError as exc:
        raise MediaDecodeError(
            DecodeFailure.CORRUPT, f"the {fmt} signature is followed by an unreadable header"
        ) from exc
    except _PIL_DECODE_ERRORS as exc:
        reason = DecodeFailure.TRUNCATED if _looks_truncated(exc) else DecodeFailure.CORRUPT
        raise MediaDecodeError(reason, f"the {fmt} image could not be decoded: {exc}") from exc
    fix = _ORIENTATION_FIX.get(orientation)
    return rgb.transpose(fix) if fix is not None else rgb


def _supported_image_format(data: bytes) -> str:
    if not data:
        raise MediaDecodeError(DecodeFailure.EMPTY, "the image is empty (0 bytes)")
    fmt = sniff_format(data)
    if fmt is None:
        raise MediaDecodeError(
            DecodeFailure.UNKNOWN_FORMAT,
            "the bytes are not a recognised image format (JPEG, PNG, WebP, GIF, BMP, TIFF)",
        )
    if fmt not in _PIL_PLUGINS:
        raise MediaDecodeError(
            DecodeFailure.UNSUPPORTED_FORMAT,
            f"{fmt} is not a supported image format (JPEG, PNG, WebP, GIF, BMP, TIFF)",
        )
    return fmt


def _check_declared_length(fmt: str, data: bytes) -> None:
    # libwebp reports a cut-off file only as "could not create decoder object"; the RIFF
    # header states the full length, so a short file is recognisably truncated.
    if fmt == "webp" and len(data) >= 8:
        declared = struct.unpack_from("<I", data, 4)[0] + 8
        if len(data) < declared:
            raise MediaDecodeError(
                DecodeFailure.TRUNCATED,
                f"the webp image is truncated: {len(data)} of {declared} bytes present",
            )


def check_dimensions(size: tuple[int, int], max_pixels: int, *, what: str) -> None:
    """Refuse a declared ``(width, height)`` over the pixel cap or past :data:`MAX_ASPECT_RATIO`.

    Called on header sizes, before any pixel is decoded; ``what`` names the media in the message.
    """
    width, height = size
    if width <= 0 or height <= 0:
        raise MediaDecodeError(DecodeFailure.CORRUPT, f"{what} declares a size of {width}x{height}")
    if width * height > max_pixels:
        raise MediaDecodeError(
            DecodeFailure.TOO_MANY_PIXELS,
            f"{what} declares {width}x{height} = {width * height} pixels, "
            f"over the limit of {max_pixels}",
        )
    if max(width, height) > MAX_ASPECT_RATIO * min(width, height):
        raise MediaDecodeError(
            DecodeFailure.EXTREME_ASPECT_RATIO,
            f"{what} is {width}x{height}, an aspect ratio over the limit of "
            f"{MAX_ASPECT_RATIO}:1",
        )


def _exif_orientation(img: Image.Image) -> int:
    # A damaged EXIF block must not cost us an otherwise good picture: treat it as upright.
    try:
        value = img.getexif().get(ExifTags.Base.Orientation, 1)
    except _PIL_DECODE_ERRORS as exc:
        logger.debug("ignoring unreadable EXIF data: %s", exc)
        return 1
    return value if isinstance(value, int) and value in _ORIENTATION_FIX else 1


def _to_rgb(img: Image.Image) -> Image.Image:
    """A new RGB image; alpha composited on white, high bit depths scaled rather than clipped."""
    mode = img.mode
    if mode.startswith("I;16") or mode in ("I", "F"):
        return Image.fromarray(_to_uint8(np.asarray(img), mode), mode="L").convert("RGB")
    has_alpha = "A" in mode or "a" in mode or "transparency" in img.info
    if has_alpha:
        rgba = img.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    return img.convert("RGB")


def _to_uint8(pixels: np.ndarray, mode: str) -> np.ndarray:
    if mode.startswith("I;16"):
        return (pixels.astype(np.uint32) >> 8).astype(np.uint8)
    if mode == "F":
        scale = 255.0 if float(np.nanmax(pixels, initial=0.0)) <= 1.0 else 1.0
        return np.clip(np.nan_to_num(pixels) * scale, 0, 255).astype(np.uint8)
    # 32-bit "I": 16-bit data stored wide (e.g. some TIFFs) is scaled, 8-bit data kept.
    if int(pixels.max(initial=0)) > 255:
        return (np.clip(pixels, 0, 65535).astype(np.uint32) >> 8).astype(np.uint8)
    return np.clip(pixels, 0, 255).astype(np.uint8)


def _looks_truncated(exc: BaseException) -> bool:
    # Pillow has no dedicated exception for short files; its messages are the only signal.
    text = str(exc).lower()
    return isinstance(exc, EOFError) or "truncated" in text or "end of file" in text
