"""Fixtures shared across the suite."""

from __future__ import annotations

import os
from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def test_media_dir() -> Path:
    """The real-media folder named by ``MEDIAREC_TEST_MEDIA``; tests using it skip when unset."""
    value = os.environ.get("MEDIAREC_TEST_MEDIA")
    if not value:
        pytest.skip("MEDIAREC_TEST_MEDIA is not set")
    path = Path(value)
    if not path.is_dir():
        pytest.skip(f"MEDIAREC_TEST_MEDIA={value} is not a directory")
    return path


@pytest.fixture(autouse=True)
def _private_state_home(
    tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Reports of runs through a server go to $XDG_STATE_HOME: never the tester's own."""
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path_factory.getbasetemp() / "state"))
