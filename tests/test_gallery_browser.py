"""The gallery clicked through in headless Chromium (Debian's, installed by `make browser`,
driven by Playwright), against a real server: what a person sees is what the API answers.

With MEDIAREC_SCREENSHOTS=DIR (``make screenshots``) the pages are also saved as PNGs there.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from mediarec.client import Surface
from tests.gallery_world import API_KEY, USER, GalleryWorld, gallery_world

CHROMIUM = os.environ.get("MEDIAREC_CHROMIUM", "/usr/bin/chromium")
# Chromium's own network chatter (updates, sync, QUIC probes) has nowhere to go here.
CHROMIUM_ARGS = [
    "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]  # fmt: skip

if not (os.access(CHROMIUM, os.X_OK) or shutil.which(CHROMIUM)):
    if os.environ.get("CI"):
        pytest.fail(f"{CHROMIUM} is missing: `make browser` installs Debian's chromium")
    pytest.skip(f"{CHROMIUM} is missing (make browser installs it)", allow_module_level=True)

from playwright.sync_api import Browser, Page, expect, sync_playwright  # noqa: E402


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[GalleryWorld]:
    with gallery_world(tmp_path_factory.mktemp("browser")) as served:
        yield served


@pytest.fixture(scope="module")
def chromium() -> Iterator[Browser]:
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()


@pytest.fixture
def page(chromium: Browser, world: GalleryWorld) -> Iterator[Page]:
    context = chromium.new_context(base_url=world.base_url, viewport={"width": 1280, "height": 900})
    context.set_default_timeout(20_000)
    page = context.new_page()
    page.goto("/search")
    expect(page).to_have_url(f"{world.base_url}/login?next=%2Fsearch")
    page.get_by_label("API key").fill(API_KEY)
    page.get_by_role("button", name="Log in").click()
    expect(page).to_have_url(f"{world.base_url}/search")
    try:
        yield page
    finally:
        context.close()


def screenshot(page: Page, name: str) -> None:
    folder = os.environ.get("MEDIAREC_SCREENSHOTS")
    if folder:
        page.screenshot(path=str(Path(folder) / name), full_page=False)


def tile_ids(page: Page, section: str) -> list[str]:
    return page.locator(f"#{section} .tile").evaluate_all(
        "tiles => tiles.map(t => t.dataset.mediaId)"
    )


def test_searching_a_held_out_caption_shows_its_photo_first_then_more_like_it(
    page: Page, world: GalleryWorld
) -> None:
    query, wanted = world.held_out_query()
    page.get_by_label("query text").fill(query)
    page.get_by_label("what the text matches").select_option("pixels")
    page.get_by_role("button", name="Search", exact=True).click()
    first = page.locator("#results .tile").first
    expect(first).to_have_attribute("data-media-id", wanted)
    loaded = first.locator("img").evaluate("img => img.complete && img.naturalWidth > 0")
    assert loaded, "the thumbnail was shown"
    screenshot(page, "gallery-search.png")

    first.get_by_role("link", name="more like this").click()
    expect(page.locator("#source .tile")).to_have_attribute("data-media-id", wanted)
    api = [h.item.media_id for h in world.client.search_similar(wanted, k=25)]
    assert tile_ids(page, "results") == [m for m in api if m != wanted]


def test_a_users_page_shows_the_apis_recommendations_and_reasons(
    page: Page, world: GalleryWorld
) -> None:
    page.get_by_role("link", name="Users").click()
    page.get_by_label("user id").fill(USER)
    page.get_by_role("button", name="Show").click()
    for surface, name in ((Surface.FEED, "feed"), (Surface.EXPLORE, "explore")):
        page.locator(".tabs").get_by_role("link", name=name).click()
        expect(page.locator(".tabs a.here")).to_have_text(name)
        api = world.client.recommend(USER, k=12, surface=surface, dry_run=True)
        assert tile_ids(page, "recommendations") == [r.media_id for r in api.items]
        shown = page.locator("li.reason:not(.muted)").all_inner_texts()
        assert shown == [reason for r in api.items for reason in r.reasons] and shown
        assert page.locator(".bar").count() == sum(len(r.score_breakdown) for r in api.items)
    expect(page.locator("#events")).to_contain_text(world.liked[0])
    page.locator(".tabs").get_by_role("link", name="feed").click()
    screenshot(page, "gallery-user.png")


def test_the_status_page_shows_counts_and_logging_out_locks_the_gallery(
    page: Page, world: GalleryWorld
) -> None:
    page.get_by_role("link", name="Status").click()
    expect(page.locator("#media-count")).to_have_text(str(world.client.server_info().media_count))
    screenshot(page, "gallery-status.png")
    page.get_by_role("button", name="Log out").click()
    expect(page).to_have_url(f"{world.base_url}/login")
    page.goto("/status")
    expect(page).to_have_url(f"{world.base_url}/login?next=%2Fstatus")
