"""Logins and CSRF tokens of the gallery: pure bookkeeping, no HTTP.

A login trades an API key for a random session token that the browser keeps in an HttpOnly
cookie, so the key itself never sits in the browser where a script could read it. Sessions live
in memory: a restart of the server logs everyone out, which is the safe direction. A logged-in
form carries a CSRF token derived from the session (an HMAC under a secret of this process), so
no other page can compute it, not even one on another port of the same host, which can set
cookies for this one. The login form itself, before any session, carries a token that must
equal its (SameSite=Strict, HttpOnly) cookie.
"""

from __future__ import annotations

import hashlib
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
        self._secret = secrets.token_bytes(32)

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

    def csrf_token(self, session_token: str) -> str:
        """The CSRF token of a session's forms."""
        return hmac.new(self._secret, session_token.encode(), hashlib.sha256).hexdigest()


class KeyCheck:
    """Whether a key is one of the server's, compared as digests: the time taken says neither
    which key nearly matched nor how long the keys are."""

    def __init__(self, keys: frozenset[str]) -> None:
        self._digests = tuple(_digest(key) for key in keys)

    def __bool__(self) -> bool:
        return bool(self._digests)

    def accepts(self, key: str | None) -> bool:
        if not key:
            return False
        candidate = _digest(key)
        matches = [hmac.compare_digest(candidate, known) for known in self._digests]
        return any(matches)


def _digest(key: str) -> bytes:
    return hashlib.sha256(key.encode("utf-8")).digest()


def new_csrf_token() -> str:
    return secrets.token_urlsafe(24)


def csrf_matches(cookie: str | None, submitted: str | None) -> bool:
    """True when a form's token equals its cookie's (compared in constant time)."""
    if not cookie or not submitted:
        return False
    return hmac.compare_digest(cookie.encode(), submitted.encode())
