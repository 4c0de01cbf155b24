"""Image decoding on real Pillow encodes: formats, modes, orientation, draft mode, bad bytes."""

from __future__ import annotations

import io
import struct
import zlib

import numpy as np
import pytest
from PIL import Image

from mediarec.encoders.images import (
    SUPPORTED_IMAGE_EXTENSIONS,
    SUPPORTED_VIDEO_EXTENSIONS,
    decode_image,
    sniff_media_kind,
)
from mediarec.encoders.media_errors import DecodeFailure, MediaDecodeError

WIDTH, HEIGHT = 64, 48


def _picture() -> Image.Image:
    """A smooth RGB test card: gradients compress well and survive lossy formats."""
    ys, xs = np.mgrid[0:HEIGHT, 0:WIDTH]
    pixels = np.stack([xs * 4, ys * 5, (xs + ys) * 2], axis=-1).astype(np.uint8)
    return Image.fromarray(pixels)


def _encode(image: Image.Image, fmt: str, **params: object) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, fmt, **params)
    return buffer.getvalue()


def _png_chunk(kind: bytes, payload: bytes) -> bytes:
    body = kind + payload
    return struct.pack(">I", len(payload)) + body + struct.pack(">I", zlib.crc32(body))


def _mean_abs_diff(a: Image.Image, b: Image.Image) -> float:
    return float(np.abs(np.asarray(a, dtype=np.int16) - np.asarray(b, dtype=np.int16)).mean())


@pytest.mark.parametrize(
    ("fmt", "tolerance"),
    [("JPEG", 4.0), ("PNG", 0.0), ("WEBP", 4.0), ("GIF", 12.0), ("BMP", 0.0), ("TIFF", 0.0)],
)
def test_every_supported_format_decodes_to_rgb_at_its_size(fmt: str, tolerance: float) -> None:
    original = _picture()
    decoded = decode_image(_encode(original, fmt))
    assert decoded.mode == "RGB"
    assert decoded.size == (WIDTH, HEIGHT)
    assert _mean_abs_diff(decoded, original) <= tolerance


def test_animated_gif_gives_its_first_frame() -> None:
    red = Image.new("RGB", (WIDTH, HEIGHT), (255, 0, 0))
    blue = Image.new("RGB", (WIDTH, HEIGHT), (0, 0, 255))
    data = _encode(red, "GIF", save_all=True, append_images=[blue], duration=100, loop=0)
    pixel = decode_image(data).getpixel((5, 5))
    assert pixel == (255, 0, 0)


def test_transparent_pixels_become_white() -> None:
    rgba = Image.new("RGBA", (WIDTH, HEIGHT), (0, 0, 0, 0))
    rgba.paste((200, 10, 10, 255), (0, 0, WIDTH // 2, HEIGHT))
    decoded = decode_image(_encode(rgba, "PNG"))
    assert decoded.getpixel((1, 1)) == (200, 10, 10)
    assert decoded.getpixel((WIDTH - 1, 1)) == (255, 255, 255)


def test_palette_png_with_transparency_becomes_white_where_transparent() -> None:
    palette = Image.new("P", (WIDTH, HEIGHT), 1)
    palette.putpalette([0, 0, 0, 0, 128, 0] + [0] * 762)
    palette.info["transparency"] = 0
    palette.paste(0, (0, 0, 8, 8))
    decoded = decode_image(_encode(palette, "PNG", transparency=0))
    assert decoded.getpixel((1, 1)) == (255, 255, 255)
    assert decoded.getpixel((20, 20)) == (0, 128, 0)


def test_sixteen_bit_greyscale_is_scaled_not_clipped() -> None:
    ramp = np.tile(np.linspace(0, 65535, WIDTH, dtype=np.uint16), (HEIGHT, 1))
    decoded = decode_image(_encode(Image.fromarray(ramp), "PNG"))
    row = np.asarray(decoded)[0, :, 0]
    assert row[0] == 0 and row[-1] == 255
    assert 120 <= row[WIDTH // 2] <= 135  # mid-grey, not saturated white


@pytest.mark.parametrize("mode", ["CMYK", "L", "1"])
def test_non_rgb_jpeg_and_bmp_modes_convert_to_rgb(mode: str) -> None:
    image = _picture().convert(mode)
    fmt = "BMP" if mode == "1" else "JPEG"
    decoded = decode_image(_encode(image, fmt))
    assert decoded.mode == "RGB"
    assert decoded.size == (WIDTH, HEIGHT)


def test_exif_orientation_six_turns_the_picture_upright() -> None:
    stored = Image.new("RGB", (WIDTH, HEIGHT), (0, 0, 255))
    stored.paste((255, 0, 0), (0, 0, 8, 8))  # a marker in the stored top-left corner
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 degrees clockwise to display"
    decoded = decode_image(_encode(stored, "JPEG", exif=exif, quality=95))
    assert decoded.size == (HEIGHT, WIDTH)
    marker = np.asarray(decoded)[2, HEIGHT - 3]  # the stored top-left is now top-right
    assert marker[0] > 200 and marker[2] < 60


def test_draft_mode_decodes_a_large_jpeg_at_reduced_scale() -> None:
    photo = Image.new("RGB", (4000, 3000), (90, 140, 200))
    data = _encode(photo, "JPEG", quality=80)
    decoded = decode_image(data, draft_size=(224, 224))
    assert decoded.size == (500, 375)  # 1/8 DCT scale, still >= 224 on both sides
    assert decode_image(data).size == (4000, 3000)


def test_draft_mode_accounts_for_exif_rotation() -> None:
    exif = Image.Exif()
    exif[0x0112] = 6
    data = _encode(Image.new("RGB", (4000, 3000), (50, 50, 50)), "JPEG", exif=exif)
    width, height = decode_image(data, draft_size=(300, 400)).size
    assert (width, height) == (375, 500)
    assert width >= 300 and height >= 400


def test_draft_size_is_ignored_for_formats_without_draft_mode() -> None:
    decoded = decode_image(_encode(_picture(), "PNG"), draft_size=(8, 8))
    assert decoded.size == (WIDTH, HEIGHT)


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"", DecodeFailure.EMPTY),
        (b"definitely not a picture", DecodeFailure.UNKNOWN_FORMAT),
        (b"\x00\x00\x00\x18ftypisom\x00\x00\x02\x00isomiso2", DecodeFailure.UNSUPPORTED_FORMAT),
        (b"\x00\x00\x00\x18ftypheic\x00\x00\x00\x00mif1heic", DecodeFailure.UNSUPPORTED_FORMAT),
    ],
)
def test_unusable_bytes_raise_with_reason(data: bytes, reason: DecodeFailure) -> None:
    with pytest.raises(MediaDecodeError) as caught:
        decode_image(data)
    assert caught.value.reason == reason


@pytest.mark.parametrize("fmt", ["JPEG", "PNG", "WEBP", "GIF", "BMP", "TIFF"])
def test_truncated_images_raise_truncated(fmt: str) -> None:
    noise = np.random.default_rng(0).integers(0, 256, (HEIGHT, WIDTH, 3), dtype=np.uint8)
    data = _encode(Image.fromarray(noise), fmt)
    with pytest.raises(MediaDecodeError) as caught:
        decode_image(data[: len(data) * 3 // 4])
    assert caught.value.reason == DecodeFailure.TRUNCATED


def test_jpeg_missing_only_its_last_bytes_is_still_truncated() -> None:
    data = _encode(_picture(), "JPEG")
    with pytest.raises(MediaDecodeError) as caught:
        decode_image(data[:-2])
    assert caught.value.reason == DecodeFailure.TRUNCATED


@pytest.mark.parametrize("fmt", ["JPEG", "PNG", "WEBP", "BMP", "TIFF"])
def test_scrambled_header_raises_corrupt(fmt: str) -> None:
    data = bytearray(_encode(_picture(), fmt))
    data[20:220] = np.random.default_rng(0).bytes(200)  # keeps the magic, wrecks the header
    with pytest.raises(MediaDecodeError) as caught:
        decode_image(bytes(data))
    assert caught.value.reason == DecodeFailure.CORRUPT


@pytest.mark.parametrize("fmt", ["JPEG", "PNG", "WEBP", "GIF", "BMP", "TIFF"])
def test_damaged_bytes_give_an_image_or_media_decode_error_and_nothing_else(fmt: str) -> None:
    # Entropy-coded damage often decodes to wrong pixels without any error (libjpeg and zlib
    # conceal it), so the contract is: an RGB image of the declared size, or our typed error.
    data = _encode(_picture(), fmt)
    rng = np.random.default_rng(3)
    for _ in range(25):
        damaged = bytearray(data)
        start = int(rng.integers(0, len(data)))
        length = int(rng.integers(1, 64))
        damaged[start : start + length] = rng.bytes(len(damaged[start : start + length]))
        try:
            decoded = decode_image(bytes(damaged), max_pixels=1_000_000)
        except MediaDecodeError as error:
            assert error.reason in set(DecodeFailure)
        else:
            assert decoded.mode == "RGB"


def test_png_header_claiming_billions_of_pixels_is_rejected_before_decoding() -> None:
    # A valid signature and IHDR for 50000 x 50000, then a token IDAT: decoding would fail as
    # truncated, so a too_many_pixels reason proves the header check came first.
    ihdr = struct.pack(">IIBBBBB", 50_000, 50_000, 8, 2, 0, 0, 0)
    data = (
        b"\x89PNG\r\n\x1a\n"
        + _png_chunk(b"IHDR", ihdr)
        + _png_chunk(b"IDAT", zlib.compress(b"\x00" * 1000))
        + _png_chunk(b"IEND", b"")
    )
    with pytest.raises(MediaDecodeError) as caught:
        decode_image(data)
    assert caught.value.reason == DecodeFailure.TOO_MANY_PIXELS


def test_blank_png_that_inflates_past_the_cap_is_rejected() -> None:
    # 9000 x 9000 one-bit pixels compress to a few KB but decode to 81 MP (> the 80 MP default).
    data = _encode(Image.new("1", (9000, 9000), 0), "PNG")
    assert len(data) < 200_000
    with pytest.raises(MediaDecodeError) as caught:
        decode_image(data)
    assert caught.value.reason == DecodeFailure.TOO_MANY_PIXELS


def test_pixel_cap_is_configurable() -> None:
    data = _encode(_picture(), "PNG")
    with pytest.raises(MediaDecodeError) as caught:
        decode_image(data, max_pixels=WIDTH * HEIGHT - 1)
    assert caught.value.reason == DecodeFailure.TOO_MANY_PIXELS
    assert decode_image(data, max_pixels=WIDTH * HEIGHT).size == (WIDTH, HEIGHT)


@pytest.mark.parametrize(
    ("data", "kind"),
    [
        (_encode(_picture(), "JPEG"), "image"),
        (_encode(_picture(), "PNG"), "image"),
        (_encode(_picture(), "GIF"), "image"),
        (_encode(_picture(), "WEBP"), "image"),
        (_encode(_picture(), "BMP"), "image"),
        (_encode(_picture(), "TIFF"), "image"),
        (b"\x00\x00\x00\x20ftypisom\x00\x00\x02\x00isomiso2avc1mp41", "video"),
        (b"\x00\x00\x00\x14ftypqt  \x00\x00\x00\x00qt  ", "video"),
        (b"\x1a\x45\xdf\xa3\x9f\x42\x86\x81\x01webm", "video"),
        (b"RIFF\x00\x10\x00\x00AVI LIST", "video"),
        (b"BMnot really a bitmap at all", None),
        (b"plain text", None),
        (b"", None),
    ],
)
def test_sniff_media_kind_reads_magic_bytes(data: bytes, kind: str | None) -> None:
    assert sniff_media_kind(data) == kind


def test_extension_sets_cover_the_supported_formats() -> None:
    assert {".jpg", ".jpeg", ".png", ".webp", ".gif", ".bmp", ".tif", ".tiff"} == set(
        SUPPORTED_IMAGE_EXTENSIONS
    )
    assert {".mp4", ".mov", ".webm", ".mkv"} == set(SUPPORTED_VIDEO_EXTENSIONS)


@pytest.mark.media
def test_real_photos_decode_upright_in_draft_mode(test_media_dir) -> None:
    paths = sorted((test_media_dir / "images").glob("*.jpg"))
    assert paths, "the real-media folder holds no JPEGs"
    for path in paths:
        data = path.read_bytes()
        full = decode_image(data)
        draft = decode_image(data, draft_size=(224, 224))
        assert full.mode == draft.mode == "RGB"
        assert min(draft.size) >= min(224, min(full.size))
        # Draft scaling keeps the aspect ratio (to within DCT rounding).
        assert abs(draft.width / draft.height - full.width / full.height) < 0.05


@pytest.mark.parametrize(
    ("size", "reason"),
    [
        ((1_000_000, 2), DecodeFailure.EXTREME_ASPECT_RATIO),
        ((2, 1_000_000), DecodeFailure.EXTREME_ASPECT_RATIO),
        ((3300, 100), DecodeFailure.EXTREME_ASPECT_RATIO),
        ((3200, 100), None),
        ((100, 3200), None),
    ],
    ids=["wide-bomb", "tall-bomb", "just-over", "at-limit-wide", "at-limit-tall"],
)
def test_aspect_ratio_is_refused_from_the_header_past_32_to_1(
    size: tuple[int, int], reason: DecodeFailure | None
) -> None:
    data = _encode(Image.new("RGB", size, (10, 200, 30)), "PNG")
    if reason is None:
        assert decode_image(data).size == size
        return
    with pytest.raises(MediaDecodeError) as caught:
        decode_image(data)
    assert caught.value.reason == reason
