"""When and where a photo was taken, from its EXIF tags (read by Pillow, header only)."""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from PIL import ExifTags, Image, UnidentifiedImageError

from mediarec.server.media import Location

logger = logging.getLogger(__name__)

DATETIME_ORIGINAL = 0x9003
OFFSET_TIME_ORIGINAL = 0x9011
GPS_LATITUDE_REF, GPS_LATITUDE, GPS_LONGITUDE_REF, GPS_LONGITUDE = 1, 2, 3, 4
# Two decimals of a degree is about a kilometre: enough for "near here", not a doorstep.
COARSE_DECIMALS = 2


def read_exif(path: Path) -> tuple[int | None, Location | None]:
    """(created_at in unix seconds, coarse location) from ``path``'s EXIF; None where absent.

    ``DateTimeOriginal`` carries no zone unless ``OffsetTimeOriginal`` gives one; without it the
    time is taken as UTC, as everywhere else in mediarec. A file without readable EXIF (or not
    an image Pillow knows) gives (None, None): the caller falls back to the file's mtime.
    """
    try:
        with Image.open(path) as image:  # parses the header only, never the pixels
            exif = image.getexif()
    except (OSError, UnidentifiedImageError, ValueError, SyntaxError):
        return None, None
    try:
        details = exif.get_ifd(ExifTags.IFD.Exif)
        gps = exif.get_ifd(ExifTags.IFD.GPSInfo)
    except (KeyError, ValueError, TypeError):
        return None, None
    taken = _taken_at(details.get(DATETIME_ORIGINAL), details.get(OFFSET_TIME_ORIGINAL))
    return taken, _coarse_location(gps)


def _taken_at(stamp: Any, offset: Any) -> int | None:
    if not isinstance(stamp, str):
        return None
    try:
        moment = datetime.strptime(stamp.strip("\x00 "), "%Y:%m:%d %H:%M:%S")
    except ValueError:
        return None  # "0000:00:00 00:00:00" and other placeholders cameras write
    zone: timezone = UTC
    offset = offset.strip("\x00 ") if isinstance(offset, str) else ""
    if len(offset) == 6:  # "+02:00"
        try:
            sign = -1 if offset[0] == "-" else 1
            hours, minutes = int(offset[1:3]), int(offset[4:6])
            zone = timezone(sign * timedelta(hours=hours, minutes=minutes))
        except ValueError:
            pass
    return int(moment.replace(tzinfo=zone).timestamp())


def _coarse_location(gps: Any) -> Location | None:
    try:
        latitude = _degrees(gps[GPS_LATITUDE], gps.get(GPS_LATITUDE_REF), "S")
        longitude = _degrees(gps[GPS_LONGITUDE], gps.get(GPS_LONGITUDE_REF), "W")
    except (KeyError, TypeError, ValueError, ZeroDivisionError, IndexError):
        return None
    if not (-90 <= latitude <= 90 and -180 <= longitude <= 180):
        return None
    return Location(
        latitude=round(latitude, COARSE_DECIMALS), longitude=round(longitude, COARSE_DECIMALS)
    )


def _degrees(value: Any, ref: Any, negative_ref: str) -> float:
    degrees, minutes, seconds = (float(part) for part in value)
    result = degrees + minutes / 60 + seconds / 3600
    return -result if isinstance(ref, str) and ref.strip().upper() == negative_ref else result
