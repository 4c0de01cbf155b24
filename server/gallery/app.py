"""The web gallery (Starlette + Jinja2): search, "more like this", a user's page and status.

Every page is built from calls to the gRPC service through the client (see ``clients``); the
gallery holds no state of its own but logins. When the server has API keys, nothing but the
login page is served without one; when it has none, the gallery is as open as the API.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

from jinja2 import Environment, FileSystemLoader, select_autoescape
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import BaseRoute, Route

from mediarec.client.errors import (
    InvalidArgument,
    MediarecError,
    NotFound,
    PermissionDenied,
    ResourceExhausted,
    Unauthenticated,
    Unavailable,
)
from mediarec.client.types import MediaFilter, MediaType, Surface, TextMatch
from mediarec.server.gallery import views
from mediarec.server.gallery.clients import GalleryClient
from mediarec.server.gallery.sessions import (
    CSRF_COOKIE,
    CSRF_FIELD,
    SESSION_COOKIE,
    SESSION_TTL_S,
    KeyCheck,
    Sessions,
    csrf_matches,
    new_csrf_token,
)

logger = logging.getLogger(__name__)

TEMPLATES = Path(__file__).parent / "templates"
GRID_K = 24  # results per search page
REC_K = 12  # recommendations per surface
RECENT_EVENTS = 20
MAX_UPLOAD_BYTES = 16 * 1024 * 1024  # a query image; the API's own limits apply after this
MAX_FORM_BYTES = 64 * 1024  # a form's other fields
MATCHES = {"hybrid": TextMatch.HYBRID, "pixels": TextMatch.PIXELS, "captions": TextMatch.CAPTIONS}
TYPES = {"image": MediaType.IMAGE, "video": MediaType.VIDEO, "text": MediaType.TEXT}
SURFACES = {"feed": Surface.FEED, "explore": Surface.EXPLORE, "reels": Surface.REELS}
# A failed call's page status: what went wrong, as HTTP says it.
_HTTP_STATUS: dict[type[MediarecError], int] = {
    InvalidArgument: 400,
    Unauthenticated: 401,
    NotFound: 404,
    PermissionDenied: 403,
    ResourceExhausted: 413,
    Unavailable: 503,
}


class _LoginRequired(Exception):
    pass


@dataclass(frozen=True)
class GalleryConfig:
    # The server's API keys (admin keys included); with any, every page but the login needs one.
    keys: frozenset[str] = frozenset()

    @property
    def keys_required(self) -> bool:
        return bool(self.keys)


class Gallery:
    """The gallery's routes over one ``client_for(api_key)`` factory."""

    def __init__(
        self,
        client_for: Callable[[str | None], GalleryClient],
        config: GalleryConfig,
        sessions: Sessions | None = None,
    ) -> None:
        self._client_for = client_for
        self._config = config
        self._keys = KeyCheck(config.keys)
        self._sessions = sessions or Sessions()
        self._templates = Environment(
            loader=FileSystemLoader(TEMPLATES), autoescape=select_autoescape(["html"])
        )

    def routes(self) -> list[BaseRoute]:
        return [
            Route("/", self.home),
            Route("/login", self.login_page, methods=["GET"]),
            Route("/login", self.login, methods=["POST"]),
            Route("/logout", self.logout, methods=["POST"]),
            Route("/search", self.search),
            Route("/search/image", self.search_image, methods=["POST"]),
            Route("/similar/{media_id:path}", self.similar),
            Route("/thumb/{media_id:path}", self.thumbnail),
            Route("/users", self.users),
            Route("/users/{user_id:path}", self.user),
            Route("/status", self.status),
        ]

    # -- pages ---------------------------------------------------------------------------------
    def home(self, request: Request) -> Response:
        return RedirectResponse("/search", status_code=303)

    def search(self, request: Request) -> Response:
        query = request.query_params.get("q", "").strip()
        match = request.query_params.get("match", "hybrid")
        media_type = request.query_params.get("type", "")
        context: dict[str, Any] = {"q": query, "match": match, "type": media_type, "tiles": None}
        if not query:  # the empty form, still only for someone logged in
            return self._page(request, "search.html", context, lambda client: None)
        if match not in MATCHES or (media_type and media_type not in TYPES):
            context["error"] = "match is one of hybrid, pixels, captions; type one of " \
                "image, video, text."
            context["q"], context["match"], context["type"] = query, "hybrid", ""
            return self._page(request, "search.html", context, lambda client: None, status=400)

        def run(client: GalleryClient) -> None:
            hits = client.search_text(
                query, k=GRID_K, media_filter=_type_filter(media_type), match=MATCHES[match]
            )
            context["tiles"] = views.hit_tiles(hits)
            context["heading"] = f"“{query}”"

        return self._page(request, "search.html", context, run)

    async def search_image(self, request: Request) -> Response:
        if self._config.keys_required and self._session_token(request) is None:
            # Before the body is read: nobody without a login gets to upload anything.
            return RedirectResponse("/login?next=%2Fsearch", status_code=303)
        refused = _body_refused(request, MAX_UPLOAD_BYTES + MAX_FORM_BYTES)
        if refused is not None:
            return refused
        context: dict[str, Any] = {"q": "", "match": "hybrid", "type": "", "tiles": None}
        async with request.form(max_files=1, max_fields=4) as form:
            if not self._csrf_ok(request, form.get(CSRF_FIELD)):
                return _forbidden()
            upload = form.get("image")
            if not isinstance(upload, UploadFile):
                context["error"] = "Choose an image file to search with."
                return self._render(request, "search.html", context, status_code=400)
            data = await upload.read(MAX_UPLOAD_BYTES + 1)
            filename = upload.filename
        if len(data) > MAX_UPLOAD_BYTES:
            context["error"] = f"The image is over {MAX_UPLOAD_BYTES // (1024 * 1024)} MiB."
            return self._render(request, "search.html", context, status_code=413)

        def run(client: GalleryClient) -> None:
            context["tiles"] = views.hit_tiles(client.search_image(data, k=GRID_K))
            context["heading"] = f"like {filename or 'your image'}"

        return await run_in_threadpool(self._page, request, "search.html", context, run)

    def similar(self, request: Request) -> Response:
        media_id = request.path_params["media_id"]
        context: dict[str, Any] = {"q": "", "match": "hybrid", "type": "", "tiles": None}

        def run(client: GalleryClient) -> None:
            item = client.get_media(media_id)
            context["source"] = views.tile(item, 1.0, None)
            hits = client.search_similar(media_id, k=GRID_K + 1)
            context["tiles"] = [t for t in views.hit_tiles(hits) if t.media_id != media_id]
            context["heading"] = f"more like {media_id}"

        return self._page(request, "search.html", context, run)

    def thumbnail(self, request: Request) -> Response:
        try:
            client = self._client(request)
        except _LoginRequired:
            return Response("log in first\n", status_code=401, media_type="text/plain")
        try:
            frame = int(request.query_params.get("frame", "0"))
        except ValueError:
            return Response("frame must be a number\n", status_code=400, media_type="text/plain")
        try:
            jpeg = client.get_thumbnail(request.path_params["media_id"], frame)
        except MediarecError as exc:
            status = _HTTP_STATUS.get(type(exc), 502)
            return Response(f"{exc}\n", status_code=status, media_type="text/plain")
        # Private: a thumbnail is only for whoever may call the API.
        return Response(jpeg, media_type="image/jpeg",
                        headers={"Cache-Control": "private, max-age=300"})  # fmt: skip

    def users(self, request: Request) -> Response:
        user_id = request.query_params.get("user", "").strip()
        if user_id:
            return RedirectResponse(views.item_url("/users", user_id), status_code=303)
        return self._page(request, "users.html", {}, lambda client: None)

    def user(self, request: Request) -> Response:
        user_id = request.path_params["user_id"]
        surface = request.query_params.get("surface", "feed")
        if surface not in SURFACES:
            surface = "feed"
        context: dict[str, Any] = {"user_id": user_id, "surface": surface,
                                   "surfaces": list(SURFACES), "user_path": quote(user_id, "")}

        def run(client: GalleryClient) -> None:
            # A dry run: looking at a user's page must not count as showing them anything.
            page = client.recommend(user_id, k=REC_K, surface=SURFACES[surface], dry_run=True)
            context["recs"] = views.rec_tiles(page.items)
            context["info"] = client.get_user(user_id, recent_events=RECENT_EVENTS)

        return self._page(request, "user.html", context, run)

    def status(self, request: Request) -> Response:
        context: dict[str, Any] = {}

        def run(client: GalleryClient) -> None:
            context["info"] = client.server_info()

        return self._page(request, "status.html", context, run)

    # -- login ---------------------------------------------------------------------------------
    def login_page(self, request: Request) -> Response:
        next_url = local_target(request.query_params.get("next"))
        return self._render(request, "login.html", {"next": next_url})

    async def login(self, request: Request) -> Response:
        refused = _body_refused(request, MAX_FORM_BYTES)
        if refused is not None:
            return refused
        async with request.form(max_files=0, max_fields=4) as form:
            if not csrf_matches(request.cookies.get(CSRF_COOKIE), _text(form.get(CSRF_FIELD))):
                return _forbidden()
            key = _text(form.get("api_key")).strip()
            next_url = local_target(_text(form.get("next")))
        context = {"next": next_url}
        if not key:
            context["error"] = "Enter an API key."
            return self._render(request, "login.html", context, status_code=400)
        # Checked here, against the server's keys: a wrong key never opens a channel.
        if self._config.keys_required and not self._keys.accepts(key):
            context["error"] = "The server does not accept this API key."
            return self._render(request, "login.html", context, status_code=403)
        response = RedirectResponse(next_url, status_code=303)
        response.set_cookie(
            SESSION_COOKIE, self._sessions.open(key), max_age=int(SESSION_TTL_S),
            httponly=True, samesite="strict", secure=_secure(request),
        )  # fmt: skip
        return response

    async def logout(self, request: Request) -> Response:
        refused = _body_refused(request, MAX_FORM_BYTES)
        if refused is not None:
            return refused
        async with request.form(max_files=0, max_fields=2) as form:
            if not self._csrf_ok(request, form.get(CSRF_FIELD)):
                return _forbidden()
        self._sessions.close(request.cookies.get(SESSION_COOKIE))
        response = RedirectResponse("/login", status_code=303)
        response.delete_cookie(SESSION_COOKIE)
        return response

    def may_scrape(self, request: Request) -> bool:
        """Whether ``/metrics`` may answer: always without keys; with keys, for a logged-in
        browser or a scraper that sends one as ``Authorization: Bearer KEY``."""
        if not self._config.keys_required:
            return True
        if self._session_token(request) is not None:
            return True
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        return scheme.lower() == "bearer" and self._keys.accepts(token)

    # -- plumbing ------------------------------------------------------------------------------
    def _session_token(self, request: Request) -> str | None:
        """The request's session token when it names a live session."""
        token = request.cookies.get(SESSION_COOKIE)
        return token if self._sessions.api_key(token) is not None else None

    def _expected_csrf(self, request: Request) -> str | None:
        """The token this request's forms must carry: the session's, or (before a login) the
        one in the CSRF cookie, if any."""
        session = self._session_token(request)
        if session is not None:
            return self._sessions.csrf_token(session)
        return request.cookies.get(CSRF_COOKIE)

    def _csrf_ok(self, request: Request, submitted: object) -> bool:
        return csrf_matches(self._expected_csrf(request), _text(submitted))

    def _client(self, request: Request) -> GalleryClient:
        if not self._config.keys_required:
            return self._client_for(None)
        key = self._sessions.api_key(request.cookies.get(SESSION_COOKIE))
        if key is None:
            raise _LoginRequired
        return self._client_for(key)

    def _page(
        self,
        request: Request,
        template: str,
        context: dict[str, Any],
        run: Callable[[GalleryClient], None],
        status: int = 200,
    ) -> Response:
        """``run`` fills ``context`` through the client; a failed call becomes the page's error
        message with the matching HTTP status, and a missing login a redirect to it."""
        try:
            run(self._client(request))
        except (_LoginRequired, Unauthenticated):
            target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
            return RedirectResponse(f"/login?next={quote(target, '')}", status_code=303)
        except MediarecError as exc:
            context["error"] = str(exc)
            return self._render(
                request, template, context, status_code=_HTTP_STATUS.get(type(exc), 502)
            )
        return self._render(request, template, context, status_code=status)

    def _render(
        self, request: Request, template: str, context: dict[str, Any], status_code: int = 200
    ) -> Response:
        csrf = self._expected_csrf(request) or new_csrf_token()
        logged_in = self._session_token(request) is not None
        html = self._templates.get_template(template).render(
            **context, csrf=csrf, csrf_field=CSRF_FIELD, path=request.url.path,
            keys_required=self._config.keys_required, logged_in=logged_in,
        )  # fmt: skip
        response = HTMLResponse(html, status_code=status_code)
        if not logged_in and request.cookies.get(CSRF_COOKIE) != csrf:
            response.set_cookie(CSRF_COOKIE, csrf, httponly=True, samesite="strict",
                                secure=_secure(request))  # fmt: skip
        return response


def _secure(request: Request) -> bool:
    """Cookies are Secure when the browser came over HTTPS (uvicorn reads a local proxy's
    X-Forwarded-Proto into the scheme)."""
    return request.url.scheme == "https"


def _type_filter(media_type: str) -> MediaFilter | None:
    chosen = TYPES.get(media_type)
    return MediaFilter(media_types=(chosen,)) if chosen is not None else None


def _text(value: object) -> str:
    return value if isinstance(value, str) else ""


def local_target(target: str | None) -> str:
    """``target`` if it is a path of this site, else the home page (no open redirects:
    browsers read ``//host`` and ``/\\host`` as another site)."""
    if (
        target
        and target.startswith("/")
        and not target.startswith("//")
        and "\\" not in target
        and target.isprintable()
    ):
        return target
    return "/search"


def _body_refused(request: Request, limit: int) -> Response | None:
    """A 411 or 413 for a body without a declared length or over ``limit``: the form parser
    would otherwise spool whatever arrives to disk before anything could look at it."""
    declared = request.headers.get("content-length")
    if declared is None or not declared.isdigit():
        return Response("Send the form with a Content-Length.\n", status_code=411,
                        media_type="text/plain")  # fmt: skip
    if int(declared) > limit:
        return Response(f"The form is over {limit // 1024} KiB.\n", status_code=413,
                        media_type="text/plain")  # fmt: skip
    return None


def _forbidden() -> Response:
    return Response(
        "The form is stale or came from another site; reload the page and try again.\n",
        status_code=403,
        media_type="text/plain",
    )
