"""Observability end to end: a real server with its operators' HTTP port, real calls, and the
metrics, log lines and request ids those calls must leave behind."""

from __future__ import annotations

import logging
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from prometheus_client.parser import text_string_to_metric_families

from mediarec.client import (
    Embeddings,
    Event,
    EventKind,
    MediaMetadata,
    MediarecClient,
    MediaType,
    ServingStatus,
)
from mediarec.client.errors import MediarecError
from mediarec.server.app import RunningServer, build_server
from mediarec.server.config import load_settings
from mediarec.server.observability.requests import REQUEST_ID_KEY, request_id_of
from mediarec.server.runtime import ServiceState
from mediarec.v1 import media_pb2, media_pb2_grpc
from tests.servers import serve_demo

GET_INFO = "/mediarec.v1.MediaService/GetServerInfo"
GET_MEDIA = "/mediarec.v1.MediaService/GetMedia"
LOG_EVENTS = "/mediarec.v1.RecommendationService/LogEvents"
RECOMMEND = "/mediarec.v1.RecommendationService/Recommend"
HEALTH = "/grpc.health.v1.Health/Check"
WATCH = "/grpc.health.v1.Health/Watch"
IMPORT_EVENTS = "/mediarec.v1.RecommendationService/ImportEvents"
SEARCH = "/mediarec.v1.MediaService/SearchMedia"


@pytest.fixture(scope="module")
def running(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    server = serve_demo(tmp_path_factory.mktemp("observed") / "data", http_port=0)
    try:
        yield server
    finally:
        server.stop(0)


def scrape(server: RunningServer, path: str = "/metrics") -> str:
    assert server.http is not None
    with urllib.request.urlopen(f"http://127.0.0.1:{server.http.port}{path}", timeout=10) as r:
        return r.read().decode()


Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def samples(text: str) -> Samples:
    out: Samples = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def rpc_count(found: Samples, method: str, code: str) -> float:
    key = ("mediarec_rpc_duration_seconds_count", (("code", code), ("method", method)))
    return found.get(key, 0.0)


def watch_until_deadline(port: int) -> int:
    """Health/Watch (grpc's non-blocking handler) until a short deadline ends it."""
    channel = grpc.insecure_channel(f"127.0.0.1:{port}")
    received = 0
    try:
        stream = health_pb2_grpc.HealthStub(channel).Watch(
            health_pb2.HealthCheckRequest(), timeout=0.5
        )
        with pytest.raises(grpc.RpcError) as ended:
            for _ in stream:
                received += 1
        assert ended.value.code() is grpc.StatusCode.DEADLINE_EXCEEDED
    finally:
        channel.close()
    return received


def test_calls_of_each_kind_move_their_counters_and_histograms(running: RunningServer) -> None:
    before = samples(scrape(running))
    client = MediarecClient(f"127.0.0.1:{running.port}")
    try:
        assert client.health() is ServingStatus.SERVING
        client.server_info()
        client.server_info()
        with pytest.raises(MediarecError):
            client.get_media("no-such-item")  # NOT_FOUND
        events = [Event(event_id=f"e{i}", user_id="u1", kind=EventKind.VIEW, timestamp=1.0e9,
                        media_id=f"m{i}") for i in range(3)]  # fmt: skip
        client.log_events(events + events[:1])  # the repeat is a duplicate
        more = [Event(event_id=f"i{i}", user_id="u2", kind=EventKind.LIKE, timestamp=1.0e9,
                      media_id="m0") for i in range(2)]  # fmt: skip
        client.import_events(more + events[:1])  # a client stream: 2 new, 1 duplicate
        info = client.server_info()
        client.index_embeddings(
            MediaMetadata(media_id="p1", caption="a red circle", media_type=MediaType.TEXT),
            Embeddings(model_id=info.model_id, caption=[1.0] + [0.0] * (info.dims - 1)),
        )
        client.search_text("a red circle", k=3)  # one forward pass of the text tower
        client.recommend("u1", k=5, dry_run=True)
        with pytest.raises(MediarecError):
            client.recommend("u1", k=10_000, dry_run=True)  # over max_k: INVALID_ARGUMENT
    finally:
        client.close()
    watched = watch_until_deadline(running.port)
    # The server sees the watcher's deadline pass a moment after the client does.
    for _ in range(50):
        after = samples(scrape(running))
        ended = rpc_count(after, WATCH, "DEADLINE_EXCEEDED")
        if ended > rpc_count(before, WATCH, "DEADLINE_EXCEEDED"):
            break
        time.sleep(0.1)

    def moved(method: str, code: str) -> float:
        return rpc_count(after, method, code) - rpc_count(before, method, code)

    def grew(name: str, labels: tuple[tuple[str, str], ...] = ()) -> float:
        return after.get((name, labels), 0.0) - before.get((name, labels), 0.0)

    assert moved(HEALTH, "OK") == 1
    assert moved(GET_INFO, "OK") == 3
    assert moved(GET_MEDIA, "NOT_FOUND") == 1
    assert moved(LOG_EVENTS, "OK") == 1
    assert moved(IMPORT_EVENTS, "OK") == 1
    assert moved(SEARCH, "OK") == 1
    assert moved(RECOMMEND, "OK") == 1
    assert moved(RECOMMEND, "INVALID_ARGUMENT") == 1
    assert watched >= 1 and moved(WATCH, "DEADLINE_EXCEEDED") == 1
    for method in (RECOMMEND, IMPORT_EVENTS, WATCH):
        assert after[("mediarec_rpc_in_flight", (("method", method),))] == 0

    assert grew("mediarec_events_total", (("outcome", "accepted"),)) == 5
    assert grew("mediarec_events_total", (("outcome", "duplicate"),)) == 2
    assert grew("mediarec_media_indexed_total", (("outcome", "created"),)) == 1
    user_lookups = sum(
        grew("mediarec_cache_requests_total", (("cache", "users"), ("result", result)))
        for result in ("hit", "miss")
    )
    assert user_lookups >= 1  # Recommend looked u1's profile up (precompute may have warmed it)
    demo = (("model", "mediarec-demo"), ("precision", "fp32"))
    assert grew("mediarec_embed_batch_items_count", demo) >= 1
    assert grew("mediarec_embed_forward_seconds_sum", demo) > 0
    assert ("mediarec_embed_queue_depth", demo) in after
    assert after[("process_resident_memory_bytes", ())] > 0
    assert not any("u1" in str(labels) or "u2" in str(labels) for _, labels in after)


def test_one_log_line_per_call_with_the_clients_request_id(
    running: RunningServer, caplog: pytest.LogCaptureFixture
) -> None:
    channel = grpc.insecure_channel(f"127.0.0.1:{running.port}")
    stub = media_pb2_grpc.MediaServiceStub(channel)
    try:
        with caplog.at_level(logging.INFO, logger="mediarec.server.observability.requests"):
            _, call = stub.GetServerInfo.with_call(
                media_pb2.GetServerInfoRequest(), metadata=[(REQUEST_ID_KEY, "trace-abc-1")]
            )
            with pytest.raises(grpc.RpcError) as failed:
                stub.GetMedia(media_pb2.GetMediaRequest(media_id="missing"),
                              metadata=[(REQUEST_ID_KEY, "trace-abc-2")])  # fmt: skip
    finally:
        channel.close()
    assert (REQUEST_ID_KEY, "trace-abc-1") in call.trailing_metadata()
    assert (REQUEST_ID_KEY, "trace-abc-2") in failed.value.trailing_metadata()
    lines = [
        r.getMessage()
        for r in caplog.records
        if r.name == "mediarec.server.observability.requests"
    ]
    assert len([line for line in lines if "id=trace-abc-1" in line]) == 1
    assert len([line for line in lines if "id=trace-abc-2" in line]) == 1
    ok = next(line for line in lines if "id=trace-abc-1" in line)
    assert ok.startswith(f"rpc {GET_INFO} OK ")
    assert "NOT_FOUND" in next(line for line in lines if "id=trace-abc-2" in line)


@pytest.mark.parametrize(
    ("metadata", "kept"),
    [
        ([(REQUEST_ID_KEY, "abc-123")], True),
        ([(REQUEST_ID_KEY, "has space")], False),
        ([(REQUEST_ID_KEY, "x" * 129)], False),
        ([("other", "abc")], False),
        (None, False),
    ],
)
def test_a_clients_request_id_is_kept_only_when_it_is_safe_to_echo(
    metadata: list[tuple[str, str]] | None, kept: bool
) -> None:
    got = request_id_of(metadata)
    assert (bool(metadata) and got == metadata[0][1]) is kept
    assert 1 <= len(got) <= 128


def test_the_operators_port_serves_the_gallery_and_404s_the_rest(running: RunningServer) -> None:
    assert 'href="/metrics"' in scrape(running, "/")  # the gallery's search page links it
    with pytest.raises(urllib.error.HTTPError) as missing:
        scrape(running, "/nothing")
    assert missing.value.code == 404


def test_the_operators_port_is_off_by_default(tmp_path: Path) -> None:
    settings = load_settings(
        {"model_id": "mediarec-demo", "data_dir": str(tmp_path / "data"), "port": 0}, {}, None
    )
    server = build_server(settings, ServiceState())
    try:
        assert settings.server.http_port == -1 and settings.server.http_host == "127.0.0.1"
        assert server.http is None
    finally:
        server.stop(0)


@pytest.mark.parametrize("log_format", ["text", "json"])
def test_log_lines_carry_the_same_fields_as_text_or_json(log_format: str) -> None:
    import json

    from mediarec.server.cli import log_formatter

    record = logging.LogRecord("mediarec.server.observability.requests", logging.INFO, __file__, 1,
                               "rpc %s OK id=%s", ("/m", "abc"), None)  # fmt: skip
    record.request_id = "abc"  # as the call's `extra` sets it
    line = log_formatter(log_format).format(record)
    if log_format == "json":
        fields = json.loads(line)
        assert fields["message"] == "rpc /m OK id=abc"
        assert fields["request_id"] == "abc"  # a field of its own, not only inside the text
        assert fields["level"] == "INFO"
        assert fields["logger"] == "mediarec.server.observability.requests"
        assert "asctime" in fields
    else:
        assert line.endswith("INFO mediarec.server.observability.requests: rpc /m OK id=abc")


class _Ended:
    """Just what _code_of reads of a finished call's context."""

    def __init__(self, code: grpc.StatusCode | None, remaining: float | None) -> None:
        self._code, self._remaining = code, remaining

    def code(self) -> grpc.StatusCode | None:
        return self._code

    def time_remaining(self) -> float | None:
        return self._remaining


@pytest.mark.parametrize(
    ("code", "remaining", "ended", "expected"),
    [
        (grpc.StatusCode.NOT_FOUND, 5.0, "RAISED", "NOT_FOUND"),  # what a handler set wins
        (None, 5.0, "RETURNED", "OK"),
        (None, None, "RETURNED", "OK"),  # no deadline
        (None, -0.1, "RETURNED", "DEADLINE_EXCEEDED"),  # finished after the client gave up
        (None, 5.0, "RAISED", "UNKNOWN"),
        (None, 5.0, "ABANDONED", "CANCELLED"),
        (None, -0.1, "ABANDONED", "DEADLINE_EXCEEDED"),
        (None, 5.0, "TERMINATED", "CANCELLED"),
    ],
)
def test_a_calls_status_follows_how_it_ended(
    code: grpc.StatusCode | None, remaining: float | None, ended: str, expected: str
) -> None:
    from mediarec.server.observability.requests import Ended, _code_of

    assert _code_of(_Ended(code, remaining), Ended[ended]).name == expected  # type: ignore[arg-type]
