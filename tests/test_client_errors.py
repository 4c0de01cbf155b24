"""Status codes end to end: server errors map to codes in one table, the client maps codes to types.

A real gRPC server on 127.0.0.1:0 runs a tiny MediaService whose methods abort or raise on
command, behind the real auth and error-mapping interceptors; the real client talks to it.
"""

from __future__ import annotations

import hashlib
import pickle
import socket
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import grpc
import pytest
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

from mediarec import client
from mediarec.client import MediaMetadata, MediarecClient, ServingStatus, UploadSourceChangedError
from mediarec.client.errors import ERROR_BY_CODE, MediarecError, error_for, from_rpc_error
from mediarec.encoders.base import EmbeddingUnsupportedError, ModelIdError, WeightsUnavailableError
from mediarec.encoders.media_errors import DecodeFailure, MediaDecodeError
from mediarec.server.grpc.auth import ApiKeyAuthInterceptor, bearer_token
from mediarec.server.grpc.errors import (
    ErrorMappingInterceptor,
    default_status_table,
    lookup_status,
    maps_errors,
)
from mediarec.server.service_errors import (
    InvalidArgumentError,
    NotFoundError,
    PreconditionError,
    ResourceLimitError,
    UnauthenticatedError,
)
from mediarec.server.store.base import (
    CollectionNotReadyError,
    DimensionMismatchError,
    InvalidVectorError,
    StoreLockedError,
)
from mediarec.v1 import common_pb2, media_pb2, media_pb2_grpc

NON_OK_CODES = [code for code in grpc.StatusCode if code is not grpc.StatusCode.OK]
SECRET_DETAIL = "s3cret-internal-detail"

# What each domain error must become on the wire.
DOMAIN_ERRORS: dict[str, tuple[Exception, grpc.StatusCode, type[MediarecError]]] = {
    "invalid": (
        InvalidArgumentError("metadata.media_id", "must not be empty"),
        grpc.StatusCode.INVALID_ARGUMENT,
        client.InvalidArgument,
    ),
    "not-found": (NotFoundError("no media 'x'"), grpc.StatusCode.NOT_FOUND, client.NotFound),
    "limit": (
        ResourceLimitError("data", "over 4194304 bytes"),
        grpc.StatusCode.RESOURCE_EXHAUSTED,
        client.ResourceExhausted,
    ),
    "precondition": (
        PreconditionError("not ready"),
        grpc.StatusCode.FAILED_PRECONDITION,
        client.FailedPrecondition,
    ),
    "unauthenticated": (
        UnauthenticatedError("who are you"),
        grpc.StatusCode.UNAUTHENTICATED,
        client.Unauthenticated,
    ),
    "model-id": (
        ModelIdError("embeddings.model_id: 'x' is not the server's model"),
        grpc.StatusCode.INVALID_ARGUMENT,
        client.InvalidArgument,
    ),
    "weights": (
        WeightsUnavailableError("weights missing"),
        grpc.StatusCode.FAILED_PRECONDITION,
        client.FailedPrecondition,
    ),
    "unsupported": (
        EmbeddingUnsupportedError("external:512 embeds no images"),
        grpc.StatusCode.FAILED_PRECONDITION,
        client.FailedPrecondition,
    ),
    "too-many-pixels": (
        MediaDecodeError(DecodeFailure.TOO_MANY_PIXELS, "image too large"),
        grpc.StatusCode.RESOURCE_EXHAUSTED,
        client.ResourceExhausted,
    ),
    "corrupt": (
        MediaDecodeError(DecodeFailure.CORRUPT, "data: not an image"),
        grpc.StatusCode.INVALID_ARGUMENT,
        client.InvalidArgument,
    ),
    "unknown-format": (
        MediaDecodeError(DecodeFailure.UNKNOWN_FORMAT, "data: unknown format"),
        grpc.StatusCode.INVALID_ARGUMENT,
        client.InvalidArgument,
    ),
    "dims": (
        DimensionMismatchError("visual", 512, 768),
        grpc.StatusCode.FAILED_PRECONDITION,
        client.FailedPrecondition,
    ),
    "locked": (
        StoreLockedError("store is open in pid 1"),
        grpc.StatusCode.FAILED_PRECONDITION,
        client.FailedPrecondition,
    ),
    "bad-vector": (
        InvalidVectorError("embeddings.visual: not finite"),
        grpc.StatusCode.INVALID_ARGUMENT,
        client.InvalidArgument,
    ),
    "not-ready": (
        CollectionNotReadyError("store opening"),
        grpc.StatusCode.UNAVAILABLE,
        client.Unavailable,
    ),
    "bug": (RuntimeError(SECRET_DETAIL), grpc.StatusCode.INTERNAL, client.Internal),
    "bare-value-error": (ValueError(SECRET_DETAIL), grpc.StatusCode.INTERNAL, client.Internal),
}


class CommandServicer(media_pb2_grpc.MediaServiceServicer):
    """GetMedia obeys ``media_id``: "code:NAME" aborts with NAME, "raise:KEY" raises a domain
    error, "sleep" sleeps. SearchMedia raises without the decorator, so only the interceptor
    maps its errors. UploadMedia verifies the stream like the real server must."""

    def __init__(self) -> None:
        self.completed_uploads: list[str] = []

    @maps_errors
    def GetMedia(self, request: media_pb2.GetMediaRequest, context: Any) -> Any:
        command, _, argument = request.media_id.partition(":")
        if command == "code":
            context.abort(grpc.StatusCode[argument], f"details of {argument}")
        if command == "raise":
            raise DOMAIN_ERRORS[argument][0]
        if command == "sleep":
            time.sleep(float(argument))
        metadata = common_pb2.MediaMetadata(media_id=request.media_id)
        return media_pb2.GetMediaResponse(media=common_pb2.MediaItem(metadata=metadata))

    def SearchMedia(self, request: media_pb2.SearchMediaRequest, context: Any) -> Any:
        raise DOMAIN_ERRORS[request.text][0]

    @maps_errors
    def UploadMedia(self, request_iterator: Iterator[Any], context: Any) -> Any:
        first = next(request_iterator)
        if first.WhichOneof("part") != "header":
            raise InvalidArgumentError("header", "the first message must be the header")
        header = first.header
        digest, size = hashlib.sha256(), 0
        for message in request_iterator:
            digest.update(message.chunk)
            size += len(message.chunk)
        if size != header.total_size_bytes or digest.hexdigest() != header.sha256:
            raise InvalidArgumentError("header.sha256", "the bytes do not match the header")
        self.completed_uploads.append(header.metadata.media_id)
        result = media_pb2.IndexResult(
            media_id=header.metadata.media_id, content_sha256=digest.hexdigest()
        )
        return media_pb2.UploadMediaResponse(result=result)


class Running:
    def __init__(self, server: grpc.Server, port: int, servicer: CommandServicer) -> None:
        self.server, self.port, self.servicer = server, port, servicer
        self.health = health.HealthServicer()

    @property
    def target(self) -> str:
        return f"127.0.0.1:{self.port}"


def start_server(api_keys: tuple[str, ...] = ()) -> Running:
    interceptors: list[grpc.ServerInterceptor] = []
    if api_keys:
        interceptors.append(ApiKeyAuthInterceptor(api_keys))
    interceptors.append(ErrorMappingInterceptor())
    server = grpc.server(ThreadPoolExecutor(max_workers=4), interceptors=interceptors)
    servicer = CommandServicer()
    media_pb2_grpc.add_MediaServiceServicer_to_server(servicer, server)
    port = server.add_insecure_port("127.0.0.1:0")
    running = Running(server, port, servicer)
    health_pb2_grpc.add_HealthServicer_to_server(running.health, server)
    server.start()
    return running


@pytest.fixture
def running() -> Iterator[Running]:
    srv = start_server()
    yield srv
    srv.server.stop(None)


@pytest.fixture
def authed() -> Iterator[Running]:
    srv = start_server(api_keys=("key-one", "key-two"))
    yield srv
    srv.server.stop(None)


# -- the client's mapping, as pure logic ---------------------------------------------------


def test_every_non_ok_code_has_an_exception_type() -> None:
    assert set(ERROR_BY_CODE) == set(NON_OK_CODES)
    for code in NON_OK_CODES:
        error = error_for(code, "why", "Method")
        assert isinstance(error, MediarecError)
        assert error.code is code
        assert error.details == "why"
        assert "why" in str(error) and "Method" in str(error)


def test_every_error_survives_pickling() -> None:
    """Errors raised in a worker process reach the parent intact (they cross by pickle)."""
    for code in NON_OK_CODES:
        error = error_for(code, "why", "Method")
        copy = pickle.loads(pickle.dumps(error))
        assert type(copy) is type(error)
        assert (copy.code, copy.details, copy.method, str(copy)) == (
            error.code, error.details, error.method, str(error)
        )  # fmt: skip


def test_ok_is_not_an_error() -> None:
    with pytest.raises(ValueError):
        error_for(grpc.StatusCode.OK, "")


@pytest.mark.parametrize(
    ("code", "expected"),
    [
        (grpc.StatusCode.INVALID_ARGUMENT, client.InvalidArgument),
        (grpc.StatusCode.OUT_OF_RANGE, client.InvalidArgument),
        (grpc.StatusCode.NOT_FOUND, client.NotFound),
        (grpc.StatusCode.ALREADY_EXISTS, client.AlreadyExists),
        (grpc.StatusCode.FAILED_PRECONDITION, client.FailedPrecondition),
        (grpc.StatusCode.RESOURCE_EXHAUSTED, client.ResourceExhausted),
        (grpc.StatusCode.UNAUTHENTICATED, client.Unauthenticated),
        (grpc.StatusCode.PERMISSION_DENIED, client.PermissionDenied),
        (grpc.StatusCode.UNAVAILABLE, client.Unavailable),
        (grpc.StatusCode.ABORTED, client.Unavailable),
        (grpc.StatusCode.DEADLINE_EXCEEDED, client.DeadlineExceeded),
        (grpc.StatusCode.CANCELLED, client.Cancelled),
        (grpc.StatusCode.UNIMPLEMENTED, client.Unimplemented),
        (grpc.StatusCode.INTERNAL, client.Internal),
        (grpc.StatusCode.UNKNOWN, client.Internal),
        (grpc.StatusCode.DATA_LOSS, client.Internal),
    ],
)
def test_each_code_maps_to_its_documented_type(
    code: grpc.StatusCode, expected: type[MediarecError]
) -> None:
    assert type(error_for(code, "")) is expected


def test_an_rpc_error_without_status_reads_as_unavailable() -> None:
    assert isinstance(from_rpc_error(grpc.RpcError()), client.Unavailable)


# -- the client's mapping over a real channel ------------------------------------------------


@pytest.mark.parametrize("code", NON_OK_CODES, ids=lambda c: c.name)
def test_status_from_a_real_server_becomes_the_typed_exception(
    running: Running, code: grpc.StatusCode
) -> None:
    with MediarecClient(running.target) as c, pytest.raises(MediarecError) as caught:
        c.get_media(f"code:{code.name}")
    assert type(caught.value) is ERROR_BY_CODE[code]
    assert caught.value.code is code
    assert caught.value.details == f"details of {code.name}"
    assert caught.value.method == "GetMedia"


def test_a_slow_call_hits_the_default_deadline(running: Running) -> None:
    with MediarecClient(running.target, default_timeout_s=0.2) as c:
        with pytest.raises(client.DeadlineExceeded):
            c.get_media("sleep:2")
        assert c.get_media("fine").media_id == "fine"


def test_an_unreachable_server_is_unavailable() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with (
        MediarecClient(f"127.0.0.1:{port}", default_timeout_s=2) as c,
        pytest.raises(client.Unavailable),
    ):
        c.get_media("x")


# -- the server's one table, over a real channel ---------------------------------------------


@pytest.mark.parametrize("key", sorted(DOMAIN_ERRORS))
def test_domain_errors_reach_the_client_with_their_status(running: Running, key: str) -> None:
    _, code, expected = DOMAIN_ERRORS[key]
    with MediarecClient(running.target) as c:
        for call in (lambda: c.get_media(f"raise:{key}"), lambda: c.search_text(key)):
            with pytest.raises(MediarecError) as caught:
                call()
            assert caught.value.code is code
            assert type(caught.value) is expected
            if code is grpc.StatusCode.INTERNAL:
                assert SECRET_DETAIL not in caught.value.details  # logged, never sent


def test_invalid_argument_message_names_the_field(running: Running) -> None:
    with MediarecClient(running.target) as c, pytest.raises(client.InvalidArgument) as caught:
        c.get_media("raise:invalid")
    assert caught.value.details.startswith("metadata.media_id:")


def test_unexpected_errors_are_logged_with_a_reference(
    running: Running, caplog: pytest.LogCaptureFixture
) -> None:
    with MediarecClient(running.target) as c, pytest.raises(client.Internal) as caught:
        c.get_media("raise:bug")
    reference = caught.value.details.split("ref ")[1].split(")")[0]
    logged = [
        r
        for r in caplog.records
        if r.name == "mediarec.server.grpc.errors" and reference in r.message
    ]
    assert logged and logged[0].exc_info is not None


def test_table_lookup_follows_the_mro() -> None:
    class SpecificNotFound(NotFoundError):
        pass

    table = default_status_table()
    assert lookup_status(SpecificNotFound("x"), table) is grpc.StatusCode.NOT_FOUND
    assert lookup_status(KeyError("x"), table) is None


# -- auth ------------------------------------------------------------------------------------


def test_missing_and_wrong_keys_are_unauthenticated(authed: Running, tmp_path: Path) -> None:
    upload = tmp_path / "upload.bin"
    upload.write_bytes(b"bytes")
    with MediarecClient(authed.target) as c, pytest.raises(client.Unauthenticated):
        c.get_media("fine")
    with MediarecClient(authed.target, api_key="key-three") as c:
        with pytest.raises(client.Unauthenticated):
            c.get_media("fine")
        with pytest.raises(client.Unauthenticated):  # client-streaming RPCs are guarded too
            c.index_file(upload, MediaMetadata(media_id="u"))
    assert authed.servicer.completed_uploads == []


def test_a_configured_key_is_accepted(authed: Running) -> None:
    with MediarecClient(authed.target, api_key="key-two") as c:
        assert c.get_media("fine").media_id == "fine"


def test_health_stays_open_without_a_key(authed: Running) -> None:
    authed.health.set("", health_pb2.HealthCheckResponse.SERVING)
    with MediarecClient(authed.target) as c:
        assert c.health() is ServingStatus.SERVING


@pytest.mark.parametrize("server_kind", ["open", "with-keys"])
def test_health_watch_streams_status_changes(
    server_kind: str, running: Running, authed: Running
) -> None:
    # The health servicer's Watch is a non-blocking handler; the error-mapping wrapper once
    # called it with the wrong arguments, so every watcher got UNKNOWN.
    srv = running if server_kind == "open" else authed
    srv.health.set("", health_pb2.HealthCheckResponse.NOT_SERVING)
    with grpc.insecure_channel(srv.target) as channel:
        stream = health_pb2_grpc.HealthStub(channel).Watch(
            health_pb2.HealthCheckRequest(service=""), timeout=10
        )
        assert next(stream).status == health_pb2.HealthCheckResponse.NOT_SERVING
        srv.health.set("", health_pb2.HealthCheckResponse.SERVING)
        assert next(stream).status == health_pb2.HealthCheckResponse.SERVING
        stream.cancel()


def test_bearer_token_parsing() -> None:
    assert bearer_token([("authorization", "Bearer abc")]) == "abc"
    assert bearer_token([("authorization", "bearer  abc ")]) == "abc"
    assert bearer_token([("authorization", "Basic abc")]) is None
    assert bearer_token([("x-other", "Bearer abc")]) is None
    assert bearer_token(None) is None


# -- health and uploads through the client ---------------------------------------------------


def test_health_reports_not_serving_and_wait_times_out(running: Running) -> None:
    running.health.set("", health_pb2.HealthCheckResponse.NOT_SERVING)
    with MediarecClient(running.target) as c:
        assert c.health() is ServingStatus.NOT_SERVING
        with pytest.raises(client.DeadlineExceeded):
            c.wait_until_serving(timeout_s=0.5)
        running.health.set("", health_pb2.HealthCheckResponse.SERVING)
        c.wait_until_serving(timeout_s=5)


def test_file_upload_streams_chunks_with_a_verified_hash(running: Running, tmp_path: Path) -> None:
    payload = bytes(range(256)) * 4096 + b"tail"  # ~1 MiB, not a multiple of the chunk size
    path = tmp_path / "clip.bin"
    path.write_bytes(payload)
    with MediarecClient(running.target, chunk_bytes=64 * 1024) as c:
        result = c.index_file(path, MediaMetadata(media_id="clip-1"))
    assert result.media_id == "clip-1"
    assert result.content_sha256 == hashlib.sha256(payload).hexdigest()
    assert running.servicer.completed_uploads == ["clip-1"]


def test_upload_whose_bytes_differ_from_the_header_is_cancelled(
    running: Running, tmp_path: Path
) -> None:
    path = tmp_path / "clip.bin"
    path.write_bytes(b"x" * 100_000)
    with (
        MediarecClient(running.target, chunk_bytes=16 * 1024) as c,
        pytest.raises(UploadSourceChangedError),
    ):
        c.index_file(path, MediaMetadata(media_id="clip-2"), sha256="0" * 64)
    assert running.servicer.completed_uploads == []


_U, _P = grpc.StatusCode.UNAUTHENTICATED, grpc.StatusCode.PERMISSION_DENIED


@pytest.mark.parametrize(
    ("admin_only", "token", "api_ok", "admin_ok", "api_configured", "expected"),
    [
        (False, "k", True, False, True, None),  # a user key on a user RPC
        (False, None, False, False, True, _U),  # no key
        (False, "x", False, False, True, _U),  # a wrong key
        (False, "a", False, True, True, None),  # an admin key opens user RPCs too
        (False, None, False, False, False, None),  # only admin keys configured: user RPCs open
        (True, "k", True, False, True, _P),  # a user key on AdminService
        (True, "a", False, True, True, None),  # the admin key
        (True, None, False, False, True, _U),
        (True, "x", False, False, False, _U),  # only admin keys configured, wrong one
        (True, None, False, False, False, _U),
    ],
)
def test_auth_refusal_table(
    admin_only: bool,
    token: str | None,
    api_ok: bool,
    admin_ok: bool,
    api_configured: bool,
    expected: grpc.StatusCode | None,
) -> None:
    from mediarec.server.grpc.auth import refuse

    refusal = refuse(
        admin_only=admin_only,
        token=token,
        api_key_ok=api_ok,
        admin_key_ok=admin_ok,
        api_keys_configured=api_configured,
    )
    assert (refusal[0] if refusal else None) == expected
