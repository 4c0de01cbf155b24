"""Whether the model hub can be reached, asked once and quickly before downloading weights.

Without network, huggingface_hub retries each file for most of a minute before it gives up.
A short connection probe decides up front: when the hub is unreachable, weights load from the
local cache only, and a cache miss fails at once.
"""

from __future__ import annotations

import contextlib
import logging
import socket
import threading
from collections.abc import Iterator
from urllib.parse import urlsplit

logger = logging.getLogger(__name__)

# Long enough for a real connection across the world, short enough that a user without
# network hears so within seconds (the probe runs in its own thread, so a resolver that hangs
# cannot stretch it).
HUB_PROBE_TIMEOUT_S = 3.0


def hub_endpoint() -> str:
    from huggingface_hub import constants

    return str(constants.ENDPOINT)


def hub_reachable(timeout_s: float = HUB_PROBE_TIMEOUT_S) -> bool:
    """Whether a TCP connection to the hub's endpoint (``HF_ENDPOINT``) opens in time."""
    url = urlsplit(hub_endpoint())
    host = url.hostname or ""
    port = url.port or (443 if url.scheme == "https" else 80)
    reached: list[bool] = []

    def probe() -> None:
        try:
            socket.create_connection((host, port), timeout=timeout_s).close()
            reached.append(True)
        except OSError:
            reached.append(False)

    thread = threading.Thread(target=probe, name="hub-probe", daemon=True)
    thread.start()
    thread.join(timeout_s)
    return bool(reached and reached[0])


def is_cached(repo: str, filename: str, cache_dir: str | None = None) -> bool:
    """Whether the Hugging Face cache holds ``filename`` of ``repo`` (no network involved)."""
    from huggingface_hub import try_to_load_from_cache

    return isinstance(try_to_load_from_cache(repo, filename, cache_dir=cache_dir), str)


@contextlib.contextmanager
def cache_only_when_offline() -> Iterator[bool]:
    """Within the block, hub downloads are off when the hub cannot be reached; yields whether
    they are (True: only the local cache is read)."""
    from huggingface_hub import constants

    if constants.HF_HUB_OFFLINE:
        yield True
        return
    if hub_reachable():
        yield False
        return
    logger.info("%s is unreachable: loading weights from the local cache only", hub_endpoint())
    constants.HF_HUB_OFFLINE = True  # read at call time by huggingface_hub and transformers
    try:
        yield True
    finally:
        constants.HF_HUB_OFFLINE = False
