"""A real mediarec server on 127.0.0.1:0 in this process, for benchmarks that measure the
service through its own API."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from mediarec.client import MediarecClient


class Server:
    """The real server over ``data_dir``; ``overrides`` are configuration keys (flag names)."""

    def __init__(self, data_dir: Path, model_id: str, **overrides: Any) -> None:
        from mediarec.server.app import build_server
        from mediarec.server.config import load_settings
        from mediarec.server.runtime import ServiceState, open_deps

        values = {"model_id": model_id, "data_dir": str(data_dir), "port": 0, **overrides}
        settings = load_settings(values, {}, None)
        self.deps = open_deps(settings)
        self.deps.recommender.wait_for_refresh()
        self.running = build_server(settings, ServiceState(self.deps))
        self.client = MediarecClient(f"127.0.0.1:{self.running.port}", default_timeout_s=600)

    def close(self) -> None:
        self.client.close()
        self.running.stop(0)
