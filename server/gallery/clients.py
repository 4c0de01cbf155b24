"""The gallery's way to the gRPC service: one client per API key, over a local socket.

The gallery never reads the stores: every page is made of the same calls any client makes, with
the logged-in user's key, so the API's auth, limits and errors apply to it too. It reaches the
service through a Unix socket in the abstract namespace that ``serve`` binds beside its TCP
port: no file to clean up, and no certificate to check when the TCP port serves TLS.
"""

from __future__ import annotations

import logging
import os
import secrets
import threading
from collections import OrderedDict
from collections.abc import Sequence
from typing import Protocol

from mediarec.client.mediarec_client import MediarecClient
from mediarec.client.types import (
    MediaFilter,
    MediaItem,
    RecommendPage,
    SearchHit,
    ServerInfo,
    Surface,
    TextMatch,
    UserInfo,
)

logger = logging.getLogger(__name__)

MAX_CLIENTS = 16  # one channel per distinct key; the least recently used is closed beyond this


class GalleryClient(Protocol):
    """The calls the gallery makes (``MediarecClient`` has them)."""

    def search_text(
        self,
        text: str,
        *,
        k: int = 10,
        media_filter: MediaFilter | None = None,
        match: TextMatch = TextMatch.UNSPECIFIED,
        timeout_s: float | None = None,
    ) -> list[SearchHit]: ...

    def search_image(
        self,
        image: bytes,
        *,
        k: int = 10,
        media_filter: MediaFilter | None = None,
        timeout_s: float | None = None,
    ) -> list[SearchHit]: ...

    def search_similar(
        self,
        media_id: str,
        *,
        k: int = 10,
        media_filter: MediaFilter | None = None,
        timeout_s: float | None = None,
    ) -> list[SearchHit]: ...

    def get_media(self, media_id: str, *, timeout_s: float | None = None) -> MediaItem: ...

    def get_thumbnail(
        self, media_id: str, frame_index: int = 0, *, timeout_s: float | None = None
    ) -> bytes: ...

    def recommend(
        self, user_id: str, *, k: int = 0, surface: Surface = Surface.FEED, dry_run: bool = False
    ) -> RecommendPage: ...

    def get_user(
        self, user_id: str, *, recent_events: int = 0, timeout_s: float | None = None
    ) -> UserInfo: ...

    def server_info(self, *, timeout_s: float | None = None) -> ServerInfo: ...


def local_socket_address() -> str:
    """A fresh abstract-namespace socket name for this process's gallery channel."""
    return f"unix-abstract:mediarec-{os.getpid()}-{secrets.token_hex(6)}"


class ClientPool:
    """Clients of one target, keyed by API key (None: no key)."""

    def __init__(self, target: str, max_clients: int = MAX_CLIENTS) -> None:
        self.target = target
        self._max = max_clients
        self._lock = threading.Lock()
        self._clients: OrderedDict[str | None, MediarecClient] = OrderedDict()

    def for_key(self, api_key: str | None) -> GalleryClient:
        with self._lock:
            client = self._clients.get(api_key)
            if client is None:
                client = MediarecClient(self.target, api_key=api_key)
                self._clients[api_key] = client
                while len(self._clients) > self._max:
                    _, oldest = self._clients.popitem(last=False)
                    oldest.close()
            self._clients.move_to_end(api_key)
            return client

    def close(self) -> None:
        with self._lock:
            clients: Sequence[MediarecClient] = list(self._clients.values())
            self._clients.clear()
        for client in clients:
            client.close()
