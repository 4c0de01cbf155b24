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
import urllib.request
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
    """Whether a TCP connection to the hub's endpoint (``HF_ENDPOINT``) opens in time.

    Behind a proxy the direct connection proves nothing, so the hub counts as reachable and
    huggingface_hub goes through the proxy as usual.
    """
    url = urlsplit(hub_endpoint())
    host = url.hostname or ""
    if urllib.request.getproxies().get(url.scheme) and not urllib.request.proxy_bypass(host):
        return True
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


def is_cache_miss(exc: BaseException) -> bool:
    """Whether a loader failed because files were missing offline (not for another reason)."""
    from huggingface_hub.errors import LocalEntryNotFoundError, OfflineModeIsEnabled

    chain: BaseException | None = exc
    seen: set[int] = set()
    while chain is not None and id(chain) not in seen:  # loaders wrap the hub's error
        if isinstance(chain, LocalEntryNotFoundError | OfflineModeIsEnabled | FileNotFoundError):
            return True
        seen.add(id(chain))
        chain = chain.__cause__ or chain.__context__
    return False


def is_cached(repo: str, filename: str, cache_dir: str | None = None) -> bool:
    """Whether the Hugging Face cache holds ``filename`` of ``repo`` (no network involved)."""
    from huggingface_hub import try_to_load_from_cache

    return isinstance(try_to_load_from_cache(repo, filename, cache_dir=cache_dir), str)


# huggingface_hub's offline switch is process-wide: one load at a time may flip it.
_OFFLINE_SWITCH = threading.Lock()


@contextlib.contextmanager
def cache_only_when_offline() -> Iterator[bool]:
    """Within the block, hub downloads are off when the hub cannot be reached; yields whether
    they are (True: only the local cache is read).

    huggingface_hub (2.x) and transformers (5.x) read ``constants.HF_HUB_OFFLINE`` at call
    time, so switching it for the block is enough; the lock keeps two loads from undoing each
    other's switch, and the value before is restored.
    """
    from huggingface_hub import constants

    with _OFFLINE_SWITCH:
        if constants.HF_HUB_OFFLINE:
            yield True
            return
        if hub_reachable():
            yield False
            return
        logger.info("%s is unreachable: loading weights from the local cache only", hub_endpoint())
        previous = constants.HF_HUB_OFFLINE
        constants.HF_HUB_OFFLINE = True
        try:
            yield True
        finally:
            constants.HF_HUB_OFFLINE = previous
