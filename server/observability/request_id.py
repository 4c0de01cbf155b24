"""The id of the call a thread is serving, so any error message can quote it."""

from __future__ import annotations

from contextvars import ContextVar

CURRENT_REQUEST_ID: ContextVar[str] = ContextVar("mediarec_request_id", default="")
