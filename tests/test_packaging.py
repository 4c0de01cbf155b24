"""Packaging: the `mediarec` namespace, and `mediarec-client` installed alone into a clean venv
calling a real server."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from mediarec.client import MediaMetadata, MediarecClient
from tests.servers import serve_demo

REPO = Path(__file__).resolve().parent.parent
ROOT_PROJECT = tomllib.loads((REPO / "pyproject.toml").read_text())
CLIENT_PROJECT = tomllib.loads((REPO / "client" / "pyproject.toml").read_text())


def packages_in_tree() -> set[str]:
    """Every folder with an ``__init__.py``, named as installed."""
    found = {"mediarec.v1"}
    for root in ("server", "encoders", "client"):
        for init in (REPO / root).rglob("__init__.py"):
            parts = init.parent.relative_to(REPO).parts
            if parts[:2] != ("client", "generated"):
                found.add(".".join(("mediarec", *parts)))
    return found


def test_the_package_list_names_every_package_in_the_tree() -> None:
    # setuptools cannot discover packages through a package-dir mapping, so the list is
    # explicit: a new folder that is missing here would be left out of every wheel.
    assert set(ROOT_PROJECT["tool"]["setuptools"]["packages"]) == packages_in_tree()


def test_no_distribution_claims_the_mediarec_name() -> None:
    # PEP 420: `mediarec` is a namespace shared by mediarec and mediarec-client.
    assert not (REPO / "client" / "generated" / "mediarec" / "__init__.py").exists()
    for project in (ROOT_PROJECT, CLIENT_PROJECT):
        assert "mediarec" not in project["tool"]["setuptools"]["packages"]


IMPORT_EVERYTHING = """
import importlib, json, pkgutil, sys
import mediarec.client, mediarec.encoders, mediarec.server, mediarec.v1
for package in (mediarec.server, mediarec.encoders, mediarec.client):
    for module in pkgutil.walk_packages(package.__path__, package.__name__ + "."):
        if not module.name.endswith("__main__"):
            importlib.import_module(module.name)
print(json.dumps(sorted({name.split(".")[0] for name in sys.modules})))
"""


def test_every_module_imports_from_the_namespace_alone(tmp_path: Path) -> None:
    # Run away from the checkout, so the folders cannot be imported under their own names: a
    # leftover `from server...` would work in the tests and fail once installed.
    done = subprocess.run(
        [sys.executable, "-c", IMPORT_EVERYTHING],
        capture_output=True, text=True, check=False, cwd=tmp_path,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    top_level = set(json.loads(done.stdout.splitlines()[-1]))
    assert "mediarec" in top_level
    assert not top_level & {"server", "encoders", "client", "tests", "bench"}


def floors(dependencies: list[str]) -> dict[str, str]:
    return {
        re.split(r"[<>=!~ \[]", d, maxsplit=1)[0]: d
        for d in dependencies
        if d.startswith(("grpcio>", "protobuf>"))
    }


def test_the_client_distribution_needs_grpcio_and_protobuf_only() -> None:
    client_dependencies = CLIENT_PROJECT["project"]["dependencies"]
    assert sorted(floors(client_dependencies)) == ["grpcio", "protobuf"]
    assert len(client_dependencies) == 2
    # Same floors as the full distribution: both ship the same stubs.
    assert floors(client_dependencies) == floors(ROOT_PROJECT["project"]["dependencies"])


def locked(names: set[str]) -> str:
    """The blocks of requirements.lock that pin ``names``, hashes included."""
    blocks, keep = [], False
    for line in (REPO / "requirements.lock").read_text().splitlines():
        if line and not line[0].isspace():
            keep = line.split("==")[0] in names
        if keep and not line.lstrip().startswith("#"):
            blocks.append(line)
    return "\n".join(blocks) + "\n"


CALL_THE_SERVER = """
import importlib.util, json, sys
from mediarec.client import MediarecClient, TextMatch
address = sys.argv[1]
with MediarecClient(address) as client:
    hits = client.search_text("a red circle", k=3, match=TextMatch.CAPTIONS)
    print(json.dumps({
        "hits": [hit.item.metadata.media_id for hit in hits],
        "torch": importlib.util.find_spec("torch") is not None,
        "server": importlib.util.find_spec("mediarec.server") is not None,
    }))
"""


@pytest.mark.slow
def test_the_client_installs_alone_and_calls_a_real_server(tmp_path: Path) -> None:
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    python = str(venv / "bin" / "python")
    pip = [python, "-m", "pip", "install", "-q", "--disable-pip-version-check"]
    # grpcio and protobuf as the lock pins them, and the lock's build tools for the build.
    requirements = tmp_path / "requirements.txt"
    requirements.write_text(locked({"grpcio", "protobuf", "setuptools", "wheel"}))
    subprocess.run([*pip, "--no-deps", "--require-hashes", "-r", str(requirements)], check=True)
    source = tmp_path / "client"
    shutil.copytree(REPO / "client", source, ignore=shutil.ignore_patterns("__pycache__"))
    subprocess.run([*pip, "--no-build-isolation", str(source)], check=True)

    server = serve_demo(tmp_path / "data")
    try:
        with MediarecClient(f"127.0.0.1:{server.port}") as client:
            client.index_media(MediaMetadata(media_id="p1", caption="a red circle"), None)
        done = subprocess.run(
            [python, "-c", CALL_THE_SERVER, f"127.0.0.1:{server.port}"],
            capture_output=True, text=True, check=False, cwd=tmp_path,
        )  # fmt: skip
    finally:
        server.stop(0)
    assert done.returncode == 0, done.stderr
    seen = json.loads(done.stdout)
    assert seen == {"hits": ["p1"], "torch": False, "server": False}
