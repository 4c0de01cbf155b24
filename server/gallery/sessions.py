"""Logins and CSRF tokens of the gallery: pure bookkeeping, no HTTP.

A login trades an API key for a random session token that the browser keeps in an HttpOnly
cookie, so the key itself never sits in the browser where a script could read it. Sessions live
in memory: a restart of the server logs everyone out, which is the safe direction. A form
carries a CSRF token that must equal the one in its (SameSite=Strict, HttpOnly) cookie: a page
of another origin can make the browser send the cookie, but cannot read it to fill the form.
"""

from __future__ import annotations

import hmac
import secrets
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass

SESSION_COOKIE = "mediarec_session"
CSRF_COOKIE = "mediarec_csrf"
CSRF_FIELD = "csrf"
SESSION_TTL_S = 12 * 3600.0
MAX_SESSIONS = 1000  # the oldest go first: memory stays bounded whatever logs in


@dataclass(frozen=True)
class Session:
    api_key: str
    expires_at: float


class Sessions:
    """Session token -> API key, with expiry and a cap on how many are held."""

    def __init__(self, ttl_s: float = SESSION_TTL_S, max_sessions: int = MAX_SESSIONS) -> None:
        self._ttl_s = ttl_s
        self._max = max_sessions
        self._lock = threading.Lock()
        self._sessions: OrderedDict[str, Session] = OrderedDict()

    def open(self, api_key: str, now: float | None = None) -> str:
        """A new session for ``api_key``; returns its token."""
        token = secrets.token_urlsafe(32)
        now = time.time() if now is None else now
        with self._lock:
            self._sessions[token] = Session(api_key, now + self._ttl_s)
            while len(self._sessions) > self._max:
                self._sessions.popitem(last=False)
        return token

    def api_key(self, token: str | None, now: float | None = None) -> str | None:
        """The key of a live session, or None for a missing, unknown or expired token."""
        if not token:
            return None
        now = time.time() if now is None else now
        with self._lock:
            session = self._sessions.get(token)
            if session is None:
                return None
            if session.expires_at <= now:
                del self._sessions[token]
                return None
            return session.api_key

    def close(self, token: str | None) -> None:
        if token:
            with self._lock:
                self._sessions.pop(token, None)


def new_csrf_token() -> str:
    return secrets.token_urlsafe(24)


def csrf_matches(cookie: str | None, submitted: str | None) -> bool:
    """True when a form's token equals its cookie's (compared in constant time)."""
    if not cookie or not submitted:
        return False
    return hmac.compare_digest(cookie.encode(), submitted.encode())
