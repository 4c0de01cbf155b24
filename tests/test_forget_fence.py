"""The fence that keeps a request in flight from storing data of a user forgotten meanwhile."""

from __future__ import annotations

import threading

from mediarec.server.recommend.forget_fence import ForgetFence


def may_store(fence: ForgetFence, user_id: str, ticket: int) -> bool:
    with fence.storing(user_id, ticket) as allowed:
        return allowed


def test_requests_that_start_before_a_forget_ends_are_fenced() -> None:
    fence = ForgetFence()
    before = fence.ticket()
    with fence.forgetting("ann"):
        during = fence.ticket()
        assert not may_store(fence, "ann", during)  # the delete is under way
        assert may_store(fence, "bob", during)  # someone else's request
    assert not may_store(fence, "ann", before)
    assert not may_store(fence, "ann", during)  # it may have ranked on the deleted rows
    assert may_store(fence, "bob", before)
    assert may_store(fence, "ann", fence.ticket())  # started after the forget


def test_forgetting_again_moves_the_fence() -> None:
    fence = ForgetFence()
    with fence.forgetting("ann"):
        pass
    between = fence.ticket()
    assert may_store(fence, "ann", between)
    with fence.forgetting("ann"):
        pass
    assert not may_store(fence, "ann", between)


def test_a_forget_waits_for_the_users_requests_already_storing() -> None:
    fence = ForgetFence()
    storing, release, forgot = threading.Event(), threading.Event(), threading.Event()

    def request() -> None:
        with fence.storing("ann", fence.ticket()) as allowed:
            assert allowed
            storing.set()
            release.wait(10)

    def forget() -> None:
        with fence.forgetting("ann"):
            forgot.set()

    threads = [threading.Thread(target=request)]
    threads[0].start()
    assert storing.wait(10)
    threads.append(threading.Thread(target=forget))
    threads[1].start()
    assert not forgot.wait(0.2)  # what the request stores must precede the delete
    release.set()
    assert forgot.wait(10)
    for thread in threads:
        thread.join(10)


def test_a_request_older_than_every_kept_tombstone_stores_nothing() -> None:
    fence = ForgetFence(max_tombstones=2)
    oldest = fence.ticket()
    for user in ("ann", "bob", "cid"):  # ann's tombstone is dropped for room
        with fence.forgetting(user):
            pass
    assert not may_store(fence, "ann", oldest)  # cannot tell: fenced
    assert not may_store(fence, "dan", oldest)
    assert may_store(fence, "ann", fence.ticket())
