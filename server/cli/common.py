"""What the local CLI commands share: exit codes, one-sentence errors, opening the store."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from mediarec.server.config import Settings
    from mediarec.server.runtime import ServiceDeps


logger = logging.getLogger(__name__)


EXIT_OK = 0
EXIT_FAILED = 1
EXIT_UNUSABLE = 2  # bad folder, locked store: nothing was attempted
EXIT_INTERRUPTED = 130  # the shell convention for "stopped by SIGINT"


class CommandError(Exception):
    """A command cannot start; the message is one sentence for the user."""

    def __init__(self, message: str, exit_code: int) -> None:
        super().__init__(message)
        self.exit_code = exit_code


def server_error(exc: Exception, api_key: str | None) -> str:
    """A failed call to a server, as a command line says it: a key problem names the flag
    that fixes it rather than the gRPC metadata the server's message speaks of."""
    from mediarec.client import PermissionDenied, Unauthenticated

    if isinstance(exc, Unauthenticated) and not api_key:
        return "the server wants an API key: pass --api-key KEY or set MEDIAREC_API_KEY"
    if isinstance(exc, Unauthenticated | PermissionDenied):
        return f"the server refused this API key ({exc})"
    return str(exc)


def locked_store_message(settings: Settings) -> str:
    return (
        f"the store in {settings.storage.data_dir} is in use by a running server; stop it, or "
        "send the work to that server with --server HOST:PORT"
    )


def open_local_deps(settings: Settings, locked_message: str | None = None) -> ServiceDeps:
    """``open_deps`` with its expected failures turned into one-sentence :class:`CommandError`.

    The store lock and the ranker file are checked before the (slow) model load, so a running
    server or a ranker that must be trained again is named at once. ``locked_message`` replaces
    the local commands' advice (``--server``) where it does not apply.
    """
    from mediarec.encoders.base import EncoderError
    from mediarec.server.engagement.schema import SchemaVersionError
    from mediarec.server.recommend.learned import LearnedRankerFileError
    from mediarec.server.recommend.ranker import RankerFileError, load_or_default
    from mediarec.server.runtime import open_deps
    from mediarec.server.store import EDGE_SUBDIR, StoreError, StoreLockedError
    from mediarec.server.store.lock import DirLock

    try:
        if not settings.storage.qdrant_url:
            probe = DirLock(Path(settings.storage.data_dir) / EDGE_SUBDIR)
            probe.acquire()
            probe.release()
        load_or_default(settings.recommend.ranker_path or "")
        return open_deps(settings)
    except StoreLockedError as exc:
        logger.debug("store locked: %s", exc)
        message = locked_message or locked_store_message(settings)
        raise CommandError(message, EXIT_UNUSABLE) from exc
    # files this version cannot use
    except (RankerFileError, LearnedRankerFileError, SchemaVersionError) as exc:
        raise CommandError(str(exc), EXIT_UNUSABLE) from exc
    except (EncoderError, StoreError) as exc:
        raise CommandError(str(exc), EXIT_FAILED) from exc
