"""What the gallery's user and status pages read, on a real server: GetUser (a user's newest
events and declared interests) and the running imports in GetServerInfo."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest

from mediarec.client import Event, EventKind, InvalidArgument, MediarecClient
from tests.servers import serve_demo


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MediarecClient]:
    server = serve_demo(tmp_path_factory.mktemp("users") / "data")
    try:
        with MediarecClient(f"127.0.0.1:{server.port}") as connected:
            yield connected
    finally:
        server.stop(0)


def test_get_user_returns_the_newest_events_first_and_the_interests(
    client: MediarecClient,
) -> None:
    events = [
        Event(f"gu-{n}", "gu-user", EventKind.LIKE, timestamp=1_700_000_000.0 + n,
              media_id=f"m{n}")
        for n in range(30)
    ]  # fmt: skip
    client.log_events(events)
    client.set_interests("gu-user", "cats, boats")
    info = client.get_user("gu-user", recent_events=5)
    assert [e.media_id for e in info.recent_events] == ["m29", "m28", "m27", "m26", "m25"]
    assert info.recent_events[0].kind is EventKind.LIKE
    assert info.recent_events[0].timestamp is not None
    assert info.recent_events[0].timestamp.timestamp() == 1_700_000_029.0
    assert info.event_count == 30
    assert [i.text for i in info.interests] == ["cats, boats"]
    assert len(client.get_user("gu-user").recent_events) == 20  # the default
    empty = client.get_user("nobody-at-all")
    assert (empty.recent_events, empty.event_count, empty.interests) == ((), 0, ())
    with pytest.raises(InvalidArgument, match="maximum of 200"):
        client.get_user("gu-user", recent_events=201)


def test_server_info_shows_a_running_imports_progress(client: MediarecClient) -> None:
    first_sent = threading.Event()
    release = threading.Event()

    def history() -> Iterator[Event]:
        for n in range(10):
            yield Event(f"imp-{n}", "importer", EventKind.VIEW, timestamp=1.7e9, media_id="x")
        first_sent.set()
        assert release.wait(30)  # the stream stays open while the test looks
        yield Event("imp-last", "importer", EventKind.VIEW, timestamp=1.7e9, media_id="x")

    done: list[object] = []
    worker = threading.Thread(
        target=lambda: done.append(client.import_events(history(), chunk_events=10))
    )
    worker.start()
    try:
        assert first_sent.wait(30)
        for _ in range(200):  # the server stores the first chunk soon after it arrives
            running = client.server_info().imports
            if running and running[0].rows == 10:
                break
            threading.Event().wait(0.05)
        assert len(running) == 1 and running[0].accepted == 10 and running[0].started_at
    finally:
        release.set()
        worker.join(60)
    assert done and client.server_info().imports == ()
