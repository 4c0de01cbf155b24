"""requirements.lock agrees with pyproject.toml, and the declared floors fit the committed stubs.

`make` installs only what the lock pins, so a dependency declared in pyproject.toml but missing
from the lock, or pinned outside its range, would only surface on a fresh machine. These checks
catch it on every `make test`.
"""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

REPO = Path(__file__).resolve().parent.parent
LOCK = REPO / "requirements.lock"
PYPROJECT = REPO / "pyproject.toml"
STUBS = REPO / "client" / "generated" / "mediarec" / "v1"
FIX = "run `make lock` to bring requirements.lock in line with pyproject.toml"

PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==([^\s\\;]+)")


def locked_versions(text: str) -> dict[str, Version]:
    """Canonical package name -> pinned version, from a pip-compile lock file."""
    pins: dict[str, Version] = {}
    for line in text.splitlines():
        match = PIN.match(line)
        if match:
            pins[canonicalize_name(match.group(1))] = Version(match.group(2))
    return pins


def declared_requirements() -> list[tuple[str, Requirement]]:
    """(where, requirement) for the runtime dependencies and every extra."""
    project = tomllib.loads(PYPROJECT.read_text(encoding="utf-8"))["project"]
    declared = [("dependencies", Requirement(r)) for r in project["dependencies"]]
    for extra, requirements in project.get("optional-dependencies", {}).items():
        declared.extend((f"extra {extra!r}", Requirement(r)) for r in requirements)
    return declared


def lock_disagreements(
    declared: list[tuple[str, Requirement]], pins: dict[str, Version]
) -> list[str]:
    """One sentence per declared requirement that the lock misses or pins outside its range."""
    problems = []
    for where, requirement in declared:
        name = canonicalize_name(requirement.name)
        if name == "mediarec":
            continue  # an extra that names another extra of the project itself
        if requirement.marker is not None and not requirement.marker.evaluate({"extra": ""}):
            continue
        if name not in pins:
            problems.append(f"{requirement} ({where}) is not in requirements.lock")
        elif not requirement.specifier.contains(pins[name], prereleases=True):
            problems.append(f"{requirement} ({where}) but the lock pins {name}=={pins[name]}")
    return problems


def test_lock_pins_every_declared_dependency_inside_its_range() -> None:
    problems = lock_disagreements(declared_requirements(), locked_versions(LOCK.read_text()))
    assert not problems, FIX + ":\n" + "\n".join(problems)


def test_lock_pins_the_build_tools_and_hashes_every_package() -> None:
    text = LOCK.read_text()
    pins = locked_versions(text)
    for tool in ("pip", "setuptools", "wheel", "torch", "torchvision"):
        assert tool in pins, f"{tool} is not pinned; {FIX}"
    blocks = re.split(r"\n(?=[A-Za-z0-9])", text)
    unhashed = [b.split()[0] for b in blocks if PIN.match(b) and "--hash=sha256:" not in b]
    assert not unhashed, f"pins without hashes: {unhashed}; {FIX}"


@pytest.mark.parametrize(
    ("declared", "pins", "expected"),
    [
        ([("dependencies", Requirement("numpy>=1.26"))], {"numpy": Version("2.4.6")}, 0),
        ([("dependencies", Requirement("numpy>=3"))], {"numpy": Version("2.4.6")}, 1),
        ([("extra 'dev'", Requirement("ruff>=0.6"))], {}, 1),
        ([("extra 'dev'", Requirement("mediarec[int8]"))], {}, 0),
        ([("dependencies", Requirement("pywin32; sys_platform == 'win32'"))], {}, 0),
    ],
    ids=["inside", "outside", "missing", "self-extra", "other-platform"],
)
def test_lock_disagreements_table(
    declared: list[tuple[str, Requirement]], pins: dict[str, Version], expected: int
) -> None:
    assert len(lock_disagreements(declared, pins)) == expected


def _floor(package: str) -> Version:
    """The lowest version the runtime dependencies admit for ``package`` (its ``>=`` bound)."""
    for _, requirement in declared_requirements():
        if canonicalize_name(requirement.name) == package:
            floors = [Version(s.version) for s in requirement.specifier if s.operator == ">="]
            assert floors, f"{requirement} declares no floor"
            return max(floors)
    raise AssertionError(f"{package} is not a declared dependency")


def test_grpcio_floor_admits_no_runtime_older_than_the_stubs() -> None:
    generated = {
        Version(m.group(1))
        for path in STUBS.glob("*_pb2_grpc.py")
        if (m := re.search(r"GRPC_GENERATED_VERSION = '([^']+)'", path.read_text()))
    }
    assert len(generated) == 1, generated
    assert _floor("grpcio") >= generated.pop()


def test_protobuf_floor_admits_no_runtime_older_than_the_stubs() -> None:
    pattern = re.compile(
        r"ValidateProtobufRuntimeVersion\(\s*_runtime_version\.Domain\.PUBLIC,\s*"
        r"(\d+),\s*(\d+),\s*(\d+),"
    )
    generated = {
        Version(".".join(m.groups()))
        for path in STUBS.glob("*_pb2.py")
        if (m := pattern.search(path.read_text()))
    }
    assert len(generated) == 1, generated
    assert _floor("protobuf") >= generated.pop()
