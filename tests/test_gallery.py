"""The web gallery over HTTP against a real server: logins, CSRF, and pages whose content is
what the API answers for the same question."""

from __future__ import annotations

import io
import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest
from PIL import Image

from mediarec.client import Surface, TextMatch
from tests.gallery_world import API_KEY, INTERESTS, USER, GalleryWorld, gallery_world


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[GalleryWorld]:
    with gallery_world(tmp_path_factory.mktemp("gallery")) as served:
        yield served


def browser(world: GalleryWorld) -> httpx.Client:
    return httpx.Client(base_url=world.base_url, timeout=30, follow_redirects=False)


def csrf_of(client: httpx.Client, path: str = "/login") -> str:
    page = client.get(path)
    token = re.search(r'name="csrf" value="([^"]+)"', page.text)
    assert token is not None, page.text
    return token.group(1)


@contextmanager
def logged_in(world: GalleryWorld) -> Iterator[httpx.Client]:
    with browser(world) as client:
        response = client.post("/login", data={"csrf": csrf_of(client), "api_key": API_KEY,
                                               "next": "/status"})  # fmt: skip
        assert response.status_code == 303 and response.headers["location"] == "/status"
        yield client


def tile_ids(html: str, section: str = "results") -> list[str]:
    start = html.index(f'id="{section}"')
    return re.findall(r'class="tile" data-media-id="([^"]+)"', html[start:])


def test_with_keys_nothing_but_the_login_is_served_without_one(world: GalleryWorld) -> None:
    with browser(world) as client:
        page = client.get("/search?q=red")
        assert page.status_code == 303
        assert page.headers["location"] == "/login?next=%2Fsearch%3Fq%3Dred"
        assert client.get("/users/ana").status_code == 303
        for path in ("/search", "/users", "/status", "/"):
            assert client.get(path, follow_redirects=True).url.path == "/login", path
        assert client.get("/thumb/image/photo_000").status_code == 401
        assert "API key" in client.get("/login").text
        refused = client.get("/metrics")
        assert refused.status_code == 401 and refused.headers["www-authenticate"] == "Bearer"
        assert client.get("/metrics", headers={"authorization": "Bearer wrong"}).status_code == 401
        scraped = client.get("/metrics", headers={"authorization": f"Bearer {API_KEY}"})
        assert scraped.status_code == 200 and "mediarec_rpc_duration_seconds" in scraped.text


def test_a_login_needs_the_forms_token_and_a_key_the_server_accepts(
    world: GalleryWorld,
) -> None:
    with browser(world) as client:
        token = csrf_of(client)
        refused = client.post("/login", data={"api_key": API_KEY})  # no token
        assert refused.status_code == 403
        forged = client.post("/login", data={"csrf": "guess", "api_key": API_KEY})
        assert forged.status_code == 403
        wrong = client.post("/login", data={"csrf": token, "api_key": "not-the-key"})
        assert wrong.status_code == 403 and "does not accept this API key" in wrong.text
        elsewhere = client.post("/login", data={"csrf": token, "api_key": API_KEY,
                                                "next": "https://evil.example/"})  # fmt: skip
        assert elsewhere.status_code == 303 and elsewhere.headers["location"] == "/search"
        cookie = elsewhere.headers["set-cookie"].lower()
        assert "mediarec_session=" in cookie and "httponly" in cookie
        assert "samesite=strict" in cookie
        assert API_KEY not in elsewhere.headers["set-cookie"]  # the key stays on the server
        assert client.get("/search").status_code == 200


def test_logging_out_ends_the_session(world: GalleryWorld) -> None:
    with logged_in(world) as client:
        assert client.get("/metrics").status_code == 200  # a logged-in browser may look
        token = csrf_of(client, "/status")
        assert client.post("/logout", data={}).status_code == 403  # without the token
        assert client.post("/logout", data={"csrf": token}).status_code == 303
        assert client.get("/status").status_code == 303


def test_a_text_search_shows_the_apis_hits_in_its_order(world: GalleryWorld) -> None:
    query, wanted = world.held_out_query()
    with logged_in(world) as client:
        page = client.get("/search", params={"q": query, "match": "pixels"})
        assert page.status_code == 200
    api = world.client.search_text(query, k=24, match=TextMatch.PIXELS)
    assert tile_ids(page.text) == [hit.item.media_id for hit in api]
    assert tile_ids(page.text)[0] == wanted  # the photo the held-out caption describes


def test_search_by_an_uploaded_image_finds_that_photo_first(world: GalleryWorld) -> None:
    media_id, sample = next((m, s) for m, s in sorted(world.items.items()) if s.kind == "image")
    with logged_in(world) as client:
        token = csrf_of(client, "/search")
        files = {"image": ("query.jpg", sample.path.read_bytes(), "image/jpeg")}
        page = client.post("/search/image", data={"csrf": token}, files=files)
        assert page.status_code == 200, page.text
        assert tile_ids(page.text)[0] == media_id
        forged = client.post("/search/image", data={"csrf": "guess"}, files=files)
        assert forged.status_code == 403
        huge = {"image": ("huge.jpg", b"\0" * (17 << 20), "image/jpeg")}
        too_large = client.post("/search/image", data={"csrf": token}, files=huge)
        assert too_large.status_code == 413


def test_more_like_this_shows_the_item_and_the_apis_neighbours(world: GalleryWorld) -> None:
    media_id = sorted(world.items)[0]
    with logged_in(world) as client:
        page = client.get(f"/similar/{media_id}")
    assert page.status_code == 200
    assert tile_ids(page.text, "source") [:1] == [media_id]
    api = [h.item.media_id for h in world.client.search_similar(media_id, k=25)]
    assert tile_ids(page.text) == [m for m in api if m != media_id]


def test_thumbnails_are_the_jpegs_made_at_index_time(world: GalleryWorld) -> None:
    photo = next(m for m in sorted(world.items) if m.startswith("image/"))
    video = next(m for m in sorted(world.items) if m.startswith("video/"))
    with logged_in(world) as client:
        for path in (f"/thumb/{photo}", f"/thumb/{video}?frame=2"):
            response = client.get(path)
            assert response.status_code == 200 and response.headers["content-type"] == "image/jpeg"
            with Image.open(io.BytesIO(response.content)) as image:
                assert image.format == "JPEG" and max(image.size) <= 320
        assert client.get("/thumb/image/nothing-here").status_code == 404
        assert client.get(f"/thumb/{video}?frame=99").status_code == 404
        assert client.get(f"/thumb/{photo}?frame=x").status_code == 400


def test_a_users_page_shows_the_apis_reasons_events_and_interests(world: GalleryWorld) -> None:
    with logged_in(world) as client:
        page = client.get(f"/users/{USER}", params={"surface": "explore"})
    assert page.status_code == 200
    api = world.client.recommend(USER, k=12, surface=Surface.EXPLORE, dry_run=True)
    assert tile_ids(page.text, "recommendations") == [r.media_id for r in api.items]
    shown = re.findall(r'<li class="reason">([^<]*)</li>', page.text)
    assert shown == [reason for r in api.items for reason in r.reasons]
    assert shown, "the demo user's recommendations come with reasons"
    events = page.text[page.text.index('id="events"'):]
    assert all(media_id in events for media_id in world.liked)
    assert INTERESTS in page.text


def test_the_status_page_shows_the_servers_counts(world: GalleryWorld) -> None:
    with logged_in(world) as client:
        page = client.get("/status")
    info = world.client.server_info()
    assert f'<td id="media-count">{info.media_count}</td>' in page.text
    assert info.model_id in page.text


def test_a_failed_call_is_a_page_with_its_reason(world: GalleryWorld) -> None:
    with logged_in(world) as client:
        page = client.get("/similar/image/nothing-here")
        assert page.status_code == 404 and 'class="error"' in page.text
        unknown = client.get("/search", params={"q": "red", "match": "bogus"})
        assert unknown.status_code == 400 and "match is one of" in unknown.text


def test_without_keys_the_gallery_needs_no_login(tmp_path: Path) -> None:
    from tests.servers import serve_demo

    server = serve_demo(tmp_path / "data", http_port=0)
    try:
        assert server.http is not None
        with httpx.Client(base_url=f"http://127.0.0.1:{server.http.port}") as client:
            page = client.get("/status")
            assert page.status_code == 200 and '<td id="media-count">0</td>' in page.text
    finally:
        server.stop(0)


def test_a_logged_in_form_needs_the_sessions_token_not_a_cookie_anyone_can_set(
    world: GalleryWorld,
) -> None:
    with logged_in(world) as client:
        # Another page on this host can set cookies for it, so a token that merely equals
        # a cookie is not enough once there is a session.
        client.cookies.set("mediarec_csrf", "planted")
        assert client.post("/logout", data={"csrf": "planted"}).status_code == 403
        assert client.get("/status").status_code == 200  # still logged in


def test_an_upload_without_a_login_is_refused_before_it_is_read(world: GalleryWorld) -> None:
    with browser(world) as client:
        token = csrf_of(client)
        files = {"image": ("query.jpg", b"\xff\xd8" + b"\0" * 1000, "image/jpeg")}
        refused = client.post("/search/image", data={"csrf": token}, files=files)
        assert refused.status_code == 303 and refused.headers["location"].startswith("/login")


def test_the_port_answers_only_to_localhost_and_forbids_framing(world: GalleryWorld) -> None:
    with browser(world) as client:
        page = client.get("/login")
        assert page.headers["x-frame-options"] == "DENY"
        assert "frame-ancestors 'none'" in page.headers["content-security-policy"]
        rebound = client.get("/login", headers={"host": f"evil.example:{world.server.http.port}"})  # type: ignore[union-attr]
        assert rebound.status_code == 421


def test_with_admin_keys_only_a_login_still_needs_one_of_them(tmp_path: Path) -> None:
    from tests.servers import serve_demo

    server = serve_demo(tmp_path / "data", http_port=0, admin_api_keys=["admin-only"])
    try:
        assert server.http is not None
        with httpx.Client(base_url=f"http://127.0.0.1:{server.http.port}") as client:
            token = csrf_of(client)
            wrong = client.post("/login", data={"csrf": token, "api_key": "anything"})
            assert wrong.status_code == 403
            right = client.post("/login", data={"csrf": token, "api_key": "admin-only"})
            assert right.status_code == 303
    finally:
        server.stop(0)
