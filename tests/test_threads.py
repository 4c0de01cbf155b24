"""The server caps numpy's BLAS pool; torch's thread pools are left alone."""

from __future__ import annotations

import torch
from threadpoolctl import threadpool_info, threadpool_limits

from mediarec.server.threads import limit_numpy_blas_threads


def openblas_threads() -> set[int]:
    return {i["num_threads"] for i in threadpool_info() if i["internal_api"] == "openblas"}


def test_limit_caps_numpy_openblas_and_leaves_torch_alone() -> None:
    torch_threads = torch.get_num_threads()
    with threadpool_limits(limits=2, user_api="blas"):  # restored afterwards
        assert openblas_threads() == {2}
        limit_numpy_blas_threads(1)
        assert openblas_threads() == {1}
        assert torch.get_num_threads() == torch_threads


def test_zero_keeps_the_library_default() -> None:
    with threadpool_limits(limits=2, user_api="blas"):
        limit_numpy_blas_threads(0)
        assert openblas_threads() == {2}
