"""The gallery's pure parts: sessions, CSRF tokens and what a tile or a score bar shows."""

from __future__ import annotations

import pytest

from mediarec.client.types import MediaItem, MediaMetadata, MediaType
from mediarec.server.gallery import views
from mediarec.server.gallery.sessions import Sessions, csrf_matches


def test_a_session_maps_its_token_to_the_key_until_it_expires_or_closes() -> None:
    sessions = Sessions(ttl_s=10)
    token = sessions.open("key-1", now=100)
    assert sessions.api_key(token, now=105) == "key-1"
    assert sessions.api_key("forged", now=105) is None
    assert sessions.api_key(None) is None
    assert sessions.api_key(token, now=110) is None  # expired, and forgotten
    again = sessions.open("key-1", now=200)
    sessions.close(again)
    assert sessions.api_key(again, now=201) is None


def test_sessions_are_capped_and_the_oldest_go_first() -> None:
    sessions = Sessions(ttl_s=100, max_sessions=2)
    first, second, third = (sessions.open(f"k{n}", now=0) for n in range(3))
    assert sessions.api_key(first, now=1) is None
    assert sessions.api_key(second, now=1) == "k1" and sessions.api_key(third, now=1) == "k2"


@pytest.mark.parametrize(
    ("cookie", "submitted", "ok"),
    [("abc", "abc", True), ("abc", "abd", False), ("", "", False), (None, "abc", False),
     ("abc", None, False)],
)  # fmt: skip
def test_a_form_token_must_equal_its_cookie(
    cookie: str | None, submitted: str | None, ok: bool
) -> None:
    assert csrf_matches(cookie, submitted) is ok


@pytest.mark.parametrize(
    ("timestamps", "moment", "frame"),
    [((), 3.0, 0), ((0.0, 2.0, 4.0), None, 0), ((0.0, 2.0, 4.0), 2.9, 1),
     ((0.0, 2.0, 4.0), 3.0, 1), ((0.0, 2.0, 4.0), 99.0, 2)],
)  # fmt: skip
def test_the_tile_of_a_video_shows_the_frame_nearest_the_matched_moment(
    timestamps: tuple[float, ...], moment: float | None, frame: int
) -> None:
    assert views.nearest_frame(timestamps, moment) == frame


@pytest.mark.parametrize(("seconds", "shown"), [(0.0, "0:00"), (59.6, "1:00"), (125.2, "2:05")])
def test_moments_read_as_minutes_and_seconds(seconds: float, shown: str) -> None:
    assert views.clock(seconds) == shown


def test_score_bars_keep_the_apis_order_and_scale_to_the_largest() -> None:
    bars = views.breakdown_bars((("content", 0.5), ("fatigue", -0.25), ("trending", 0.0)))
    assert [(b.signal, b.width, b.negative) for b in bars] == [
        ("content", 100.0, False), ("fatigue", 50.0, True), ("trending", 0.0, False)
    ]  # fmt: skip
    assert views.breakdown_bars(()) == ()
    assert views.breakdown_bars((("x", 0.0),))[0].width == 0.0


def item(media_id: str, media_type: MediaType, frames: tuple[float, ...] = ()) -> MediaItem:
    return MediaItem(MediaMetadata(media_id, caption="a cat", media_type=media_type), (), "",
                     frames, 0.0, "", None, "m")  # fmt: skip


@pytest.mark.parametrize(
    ("media_type", "frames", "moment", "thumb", "shown_moment"),
    [(MediaType.IMAGE, (), None, "/thumb/a%2Fb", ""),
     (MediaType.VIDEO, (0.0, 5.0), 4.0, "/thumb/a%2Fb?frame=1", "0:04"),
     (MediaType.VIDEO, (0.0, 5.0), 0.5, "/thumb/a%2Fb", "0:00"),
     (MediaType.TEXT, (), None, "", "")],
)  # fmt: skip
def test_a_tile_links_the_right_thumbnail(
    media_type: MediaType, frames: tuple[float, ...], moment: float | None, thumb: str,
    shown_moment: str,
) -> None:
    tile = views.tile(item("a/b", media_type, frames), 0.5, moment)
    assert (tile.thumb_url, tile.moment) == (thumb, shown_moment)
    assert tile.similar_url == "/similar/a%2Fb"


@pytest.mark.parametrize(
    ("target", "kept"),
    [("/users/ana?surface=reels", True), ("/status", True), (None, False), ("", False),
     ("https://evil.example/", False), ("//evil.example/", False), ("/\\evil.example", False),
     ("/\nSet-Cookie:x", False), ("status", False)],
)  # fmt: skip
def test_after_a_login_only_a_path_of_this_site_is_followed(
    target: str | None, kept: bool
) -> None:
    from mediarec.server.gallery.app import local_target

    assert local_target(target) == (target if kept else "/search")
