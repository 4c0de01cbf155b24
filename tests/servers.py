"""A real server in the test process: the demo model, a data dir, 127.0.0.1 on a free port."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from mediarec.server.app import RunningServer, build_server
from mediarec.server.config import load_settings
from mediarec.server.runtime import ServiceState, open_deps


def serve_demo(data_dir: Path, **overrides: Any) -> RunningServer:
    """A started, ready server over ``data_dir``; ``overrides`` are configuration keys."""
    settings = load_settings(
        {"model_id": "mediarec-demo", "data_dir": str(data_dir), "port": 0, **overrides},
        {},
        None,
    )
    return build_server(settings, ServiceState(open_deps(settings)))
