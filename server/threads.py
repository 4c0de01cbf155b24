"""Process-wide thread pools of native libraries, limited once when a server starts."""

from __future__ import annotations

import logging

logger = logging.getLogger(__name__)


def limit_numpy_blas_threads(threads: int) -> None:
    """Cap numpy's OpenBLAS pool at ``threads`` (0: leave it alone); torch's pools are untouched.

    The recommender multiplies a few hundred vectors per request: products far too small to
    gain from a second thread. With OpenBLAS's default pool, its idle threads spin-wait against
    the RPC threads for the same cores, and a tiny product's tail latency grows by orders of
    magnitude; `make bench-speed` measures Recommend with this cap.
    """
    if threads <= 0:
        return
    from threadpoolctl import ThreadpoolController

    controller = ThreadpoolController().select(internal_api="openblas")
    controller.limit(limits=threads)
    logger.info(
        "numpy BLAS limited to %d thread(s) (%d pool(s))", threads, len(controller.lib_controllers)
    )
