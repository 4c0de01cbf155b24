"""Stalled streaming clients cannot freeze the server (a real server on 127.0.0.1:0).

Uploads that send a header and then nothing once held every worker thread, so even health
checks timed out. Now streaming calls are capped below the worker count, refused beyond the
cap, and a stream that goes quiet ends after the idle timeout.
"""

from __future__ import annotations

import contextlib
import hashlib
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest

from mediarec.client import DeadlineExceeded, MediarecClient, ServingStatus
from mediarec.server.app import RunningServer
from mediarec.v1 import common_pb2, media_pb2, media_pb2_grpc
from tests.servers import serve_demo

IDLE_S = 1.5


@pytest.fixture(scope="module")
def running(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    server = serve_demo(
        tmp_path_factory.mktemp("stalls") / "data",
        workers=4,
        max_concurrent_uploads=2,
        max_uploads_per_key=2,
        stream_idle_timeout_s=IDLE_S,
    )
    try:
        yield server
    finally:
        server.stop(0)


def stalled_upload(release: threading.Event) -> Iterator[media_pb2.UploadMediaRequest]:
    header = media_pb2.UploadMediaHeader(
        metadata=common_pb2.MediaMetadata(media_id="stalled"),
        total_size_bytes=10,
        sha256=hashlib.sha256(b"0123456789").hexdigest(),
    )
    yield media_pb2.UploadMediaRequest(header=header)
    release.wait(30)  # then nothing: a slow-loris client


def test_stalled_uploads_are_capped_and_time_out_while_other_calls_stay_fast(
    running: RunningServer, tmp_path: Path
) -> None:
    target = f"127.0.0.1:{running.port}"
    release = threading.Event()
    outcomes: list[grpc.StatusCode] = []
    channel = grpc.insecure_channel(target)
    stub = media_pb2_grpc.MediaServiceStub(channel)

    def upload() -> None:
        try:
            stub.UploadMedia(stalled_upload(release), timeout=30)
        except grpc.RpcError as error:
            outcomes.append(error.code())  # type: ignore[attr-defined]

    threads = [threading.Thread(target=upload) for _ in range(6)]
    started = time.monotonic()
    for thread in threads:
        thread.start()
    try:
        time.sleep(0.5)  # the streams are open and stalled
        with MediarecClient(target) as client:
            t0 = time.monotonic()
            assert client.server_info(timeout_s=5).model_id == "mediarec-demo"
            assert client.health(timeout_s=5) is ServingStatus.SERVING
            assert time.monotonic() - t0 < 2.0
        for thread in threads:
            thread.join(IDLE_S + 10)
    finally:
        release.set()
        channel.close()
    assert time.monotonic() - started < IDLE_S + 10
    # Two were let in and ended at the idle timeout; the other four were refused at once.
    assert sorted(outcomes, key=str) == sorted(
        [grpc.StatusCode.DEADLINE_EXCEEDED] * 2 + [grpc.StatusCode.RESOURCE_EXHAUSTED] * 4,
        key=str,
    )
    # The gate is free again: a real upload goes through.
    upload_file = tmp_path / "note.jpg"
    from PIL import Image

    Image.new("RGB", (64, 48), (10, 120, 200)).save(upload_file)
    with MediarecClient(target) as client:
        from mediarec.client import MediaMetadata

        assert client.index_file(upload_file, MediaMetadata(media_id="after")).media_id == "after"


def test_health_and_server_info_answer_while_every_worker_is_busy(tmp_path: Path) -> None:
    """One worker, held by a stalled upload: the control calls run on threads of their own."""
    server = serve_demo(
        tmp_path / "data", workers=1, max_concurrent_uploads=1, stream_idle_timeout_s=30
    )
    target = f"127.0.0.1:{server.port}"
    release = threading.Event()
    channel = grpc.insecure_channel(target)
    stub = media_pb2_grpc.MediaServiceStub(channel)
    def hold() -> None:
        with contextlib.suppress(grpc.RpcError):
            stub.UploadMedia(stalled_upload(release), timeout=30)

    holder = threading.Thread(target=hold)
    holder.start()
    try:
        time.sleep(0.5)  # the only worker now waits on the stalled stream
        with MediarecClient(target) as client:
            t0 = time.monotonic()
            assert client.health(timeout_s=3) is ServingStatus.SERVING
            assert client.server_info(timeout_s=3).model_id == "mediarec-demo"
            assert time.monotonic() - t0 < 2.0
            with pytest.raises(DeadlineExceeded):  # an ordinary call waits for the worker
                client.get_media("anything", timeout_s=1)
    finally:
        release.set()
        holder.join(35)
        channel.close()
        server.stop(0)
