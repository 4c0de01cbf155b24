"""TLS: with a certificate and key the server speaks only TLS; a client trusting the cert works."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from mediarec.client import MediarecClient, ServingStatus, Unavailable
from mediarec.server.app import RunningServer, build_server
from mediarec.server.config import load_settings
from mediarec.server.runtime import ServiceState, open_deps

pytestmark = pytest.mark.skipif(shutil.which("openssl") is None, reason="needs the openssl CLI")


def _self_signed(folder: Path) -> tuple[Path, Path]:
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(
        [
            "openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
            "-keyout", str(key), "-out", str(cert), "-subj", "/CN=localhost",
            "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1",
        ],
        check=True,
        capture_output=True,
    )
    return cert, key


@pytest.fixture(scope="module")
def tls_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[RunningServer, Path]]:
    folder = tmp_path_factory.mktemp("tls")
    cert, key = _self_signed(folder)
    settings = load_settings(
        {
            # A vectors-only model keeps this test about transport, not embedding.
            "model_id": "external:16",
            "data_dir": str(folder / "data"),
            "port": 0,
            "tls_cert": str(cert),
            "tls_key": str(key),
        },
        {},
        None,
    )
    running = build_server(settings, ServiceState(open_deps(settings)))
    yield running, cert
    running.stop(0)


def test_client_trusting_the_certificate_talks_tls(tls_server) -> None:
    running, cert = tls_server
    with MediarecClient(
        f"127.0.0.1:{running.port}", tls_root_cert=cert, tls_server_name="localhost"
    ) as client:
        assert client.health() == ServingStatus.SERVING
        assert client.server_info().model_id == "external:16"


def test_plaintext_client_is_refused_by_a_tls_server(tls_server) -> None:
    running, _ = tls_server
    with (
        MediarecClient(f"127.0.0.1:{running.port}", default_timeout_s=3) as client,
        pytest.raises(Unavailable),
    ):
        client.server_info()
