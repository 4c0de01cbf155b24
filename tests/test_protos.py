"""The committed stubs match the .proto files, and the protos follow our buf STANDARD style."""

from __future__ import annotations

import importlib.util
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from google.protobuf import descriptor_pb2

# The generator is a developer tool beside the protos, not part of an installed package.
_SPEC = importlib.util.spec_from_file_location(
    "protogen", Path(__file__).resolve().parent.parent / "protos" / "protogen.py"
)
assert _SPEC is not None and _SPEC.loader is not None
protogen = importlib.util.module_from_spec(_SPEC)
sys.modules["protogen"] = protogen  # its dataclasses look their module up there
_SPEC.loader.exec_module(protogen)

REPO = Path(__file__).resolve().parent.parent
LOCAL_BUF = REPO / ".venv" / "buf" / "node_modules" / ".bin" / "buf"

# Field numbers inside descriptor.proto, used to build SourceCodeInfo location paths.
FILE_MESSAGE, FILE_ENUM, FILE_SERVICE = 4, 5, 6
MESSAGE_FIELD, MESSAGE_NESTED, MESSAGE_ENUM, MESSAGE_ONEOF = 2, 3, 4, 8
ENUM_VALUE = 2
SERVICE_METHOD = 2


@pytest.fixture(scope="module")
def descriptor_set(tmp_path_factory: pytest.TempPathFactory) -> descriptor_pb2.FileDescriptorSet:
    """Our .proto files compiled with their comments (SourceCodeInfo)."""
    out = tmp_path_factory.mktemp("descriptors") / "set.binpb"
    files = [str(p.relative_to(protogen.PROTO_ROOT)) for p in protogen.proto_files()]
    command = [
        sys.executable,
        "-m",
        "grpc_tools.protoc",
        f"-I{protogen.PROTO_ROOT}",
        "--include_source_info",
        f"--descriptor_set_out={out}",
        *files,
    ]
    subprocess.run(command, cwd=protogen.PROTO_ROOT, check=True, capture_output=True)
    return descriptor_pb2.FileDescriptorSet.FromString(out.read_bytes())


def elements(
    proto: descriptor_pb2.FileDescriptorProto,
) -> Iterator[tuple[str, tuple[int, ...]]]:
    """(readable name, location path) of every element that must carry a comment."""

    def enum(e: descriptor_pb2.EnumDescriptorProto, path: tuple[int, ...], prefix: str):
        yield f"enum {prefix}{e.name}", path
        for i, value in enumerate(e.value):
            yield f"enum value {value.name}", (*path, ENUM_VALUE, i)

    def message(m: descriptor_pb2.DescriptorProto, path: tuple[int, ...], prefix: str):
        name = f"{prefix}{m.name}"
        yield f"message {name}", path
        for i, f in enumerate(m.field):
            yield f"field {name}.{f.name}", (*path, MESSAGE_FIELD, i)
        for i, o in enumerate(m.oneof_decl):
            if not o.name.startswith("_"):  # synthetic oneofs of proto3 `optional`
                yield f"oneof {name}.{o.name}", (*path, MESSAGE_ONEOF, i)
        for i, nested in enumerate(m.nested_type):
            yield from message(nested, (*path, MESSAGE_NESTED, i), f"{name}.")
        for i, e in enumerate(m.enum_type):
            yield from enum(e, (*path, MESSAGE_ENUM, i), f"{name}.")

    for i, m in enumerate(proto.message_type):
        yield from message(m, (FILE_MESSAGE, i), "")
    for i, e in enumerate(proto.enum_type):
        yield from enum(e, (FILE_ENUM, i), "")
    for i, s in enumerate(proto.service):
        yield f"service {s.name}", (FILE_SERVICE, i)
        for j, method in enumerate(s.method):
            yield f"rpc {s.name}.{method.name}", (FILE_SERVICE, i, SERVICE_METHOD, j)


def all_enums(
    proto: descriptor_pb2.FileDescriptorProto,
) -> Iterator[descriptor_pb2.EnumDescriptorProto]:
    def nested(m: descriptor_pb2.DescriptorProto) -> Iterator[descriptor_pb2.EnumDescriptorProto]:
        yield from m.enum_type
        for inner in m.nested_type:
            yield from nested(inner)

    yield from proto.enum_type
    for m in proto.message_type:
        yield from nested(m)


def upper_snake(name: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).upper()


def test_committed_stubs_equal_freshly_generated_ones() -> None:
    result = protogen.check()
    assert result.clean, (
        f"stubs out of date; run `make proto`.\nmissing: {result.missing}\n"
        f"stale: {result.stale}\n{result.diff_text[:4000]}"
    )


def test_check_detects_a_changed_stub(tmp_path: Path) -> None:
    committed = tmp_path / "committed"
    protogen.generate(committed)
    target = next(p for p in sorted(committed.rglob("*_pb2.pyi")))
    target.write_text(target.read_text() + "# edited by hand\n")
    (committed / "mediarec" / "v1" / "gone_pb2.py").write_text("")
    fresh = tmp_path / "fresh"
    protogen.generate(fresh)
    result = protogen.compare(committed, fresh)
    assert not result.clean
    assert result.changed == (str(target.relative_to(committed)),)
    assert result.stale == ("mediarec/v1/gone_pb2.py",)


def test_every_element_has_a_leading_comment(
    descriptor_set: descriptor_pb2.FileDescriptorSet,
) -> None:
    missing = []
    for proto in descriptor_set.file:
        comments = {
            tuple(loc.path): loc.leading_comments.strip() for loc in proto.source_code_info.location
        }
        missing += [
            f"{proto.name}: {name}" for name, path in elements(proto) if not comments.get(path)
        ]
    assert not missing, "elements without a leading // comment:\n" + "\n".join(missing)


def test_files_are_in_the_versioned_package(
    descriptor_set: descriptor_pb2.FileDescriptorSet,
) -> None:
    assert descriptor_set.file
    for proto in descriptor_set.file:
        assert proto.package == "mediarec.v1"
        assert proto.name.startswith("mediarec/v1/")
        assert proto.syntax == "proto3"


def test_enums_start_with_prefixed_unspecified_zero(
    descriptor_set: descriptor_pb2.FileDescriptorSet,
) -> None:
    for proto in descriptor_set.file:
        for enum in all_enums(proto):
            prefix = upper_snake(enum.name) + "_"
            assert enum.value[0].name == prefix + "UNSPECIFIED", enum.name
            assert enum.value[0].number == 0, enum.name
            assert all(v.name.startswith(prefix) for v in enum.value), enum.name


def test_services_and_rpcs_follow_the_naming_rules(
    descriptor_set: descriptor_pb2.FileDescriptorSet,
) -> None:
    seen_types: set[str] = set()
    services = [s for proto in descriptor_set.file for s in proto.service]
    assert any(s.name == "MediaService" for s in services)
    for service in services:
        assert service.name.endswith("Service")
        for method in service.method:
            assert method.input_type == f".mediarec.v1.{method.name}Request"
            assert method.output_type == f".mediarec.v1.{method.name}Response"
            # Each request/response type belongs to exactly one RPC.
            assert method.input_type not in seen_types
            assert method.output_type not in seen_types
            seen_types |= {method.input_type, method.output_type}


def test_media_service_offers_the_required_rpcs(
    descriptor_set: descriptor_pb2.FileDescriptorSet,
) -> None:
    service = next(s for p in descriptor_set.file for s in p.service if s.name == "MediaService")
    methods = {m.name: m for m in service.method}
    assert set(methods) >= {
        "IndexMedia",
        "UploadMedia",
        "GetMedia",
        "DeleteMedia",
        "SearchMedia",
        "GetServerInfo",
    }
    assert methods["UploadMedia"].client_streaming
    assert not methods["IndexMedia"].client_streaming


def test_buf_lint_passes() -> None:
    buf = str(LOCAL_BUF) if LOCAL_BUF.exists() else shutil.which("buf")
    if buf is None:
        pytest.skip("buf not installed (npm install --prefix .venv/buf @bufbuild/buf)")
    done = subprocess.run(
        [buf, "lint", "protos"], cwd=REPO, capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stdout + done.stderr
