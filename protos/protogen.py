"""Regenerate (or verify) the committed Python stubs of ``protos/`` with grpc_tools.protoc.

``python protos/protogen.py`` (``make proto``) writes ``*_pb2.py``, ``*_pb2.pyi`` and
``*_pb2_grpc.py`` into ``client/generated``; ``python protos/protogen.py --check`` generates
into a temporary folder and exits non-zero when the committed stubs differ. Generated code is
never edited by hand. A developer tool: it lives beside the protos, outside every package.
"""

from __future__ import annotations

import argparse
import difflib
import logging
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

logger = logging.getLogger(__name__)

REPO_ROOT = Path(__file__).resolve().parent.parent
PROTO_ROOT = REPO_ROOT / "protos"
GENERATED_ROOT = REPO_ROOT / "client" / "generated"
# Suffixes protoc writes; hand-written files beside them (``__init__.py``) are left alone.
GENERATED_SUFFIXES = ("_pb2.py", "_pb2.pyi", "_pb2_grpc.py")


def proto_files(proto_root: Path = PROTO_ROOT) -> list[Path]:
    """Every ``.proto`` under ``proto_root``, sorted so the command line is stable."""
    return sorted(proto_root.rglob("*.proto"))


def protoc_command(out_dir: Path, proto_root: Path = PROTO_ROOT) -> list[str]:
    """The exact protoc invocation; ``python -m grpc_tools.protoc`` adds the well-known types."""
    relative = [str(p.relative_to(proto_root)) for p in proto_files(proto_root)]
    return [
        sys.executable,
        "-m",
        "grpc_tools.protoc",
        f"-I{proto_root}",
        f"--python_out={out_dir}",
        f"--grpc_python_out={out_dir}",
        f"--pyi_out={out_dir}",
        *relative,
    ]


def generate(out_dir: Path, proto_root: Path = PROTO_ROOT) -> None:
    """Run protoc into ``out_dir``; raises ``RuntimeError`` with protoc's output on failure."""
    out_dir.mkdir(parents=True, exist_ok=True)
    command = protoc_command(out_dir, proto_root)
    logger.info("running %s", " ".join(command))
    done = subprocess.run(command, cwd=proto_root, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"protoc failed ({done.returncode}):\n{done.stderr}{done.stdout}")


def generated_files(root: Path) -> dict[str, Path]:
    """Generated stub files under ``root`` keyed by their path relative to it."""
    return {
        str(p.relative_to(root)): p
        for p in sorted(root.rglob("*"))
        if p.is_file() and p.name.endswith(GENERATED_SUFFIXES)
    }


@dataclass(frozen=True)
class StubDiff:
    """How the committed stubs differ from freshly generated ones."""

    missing: tuple[str, ...]  # generated now but not committed
    stale: tuple[str, ...]  # committed but no longer generated
    changed: tuple[str, ...]  # present in both with different contents
    diff_text: str  # unified diff of the changed files

    @property
    def clean(self) -> bool:
        return not (self.missing or self.stale or self.changed)


def compare(committed_root: Path, fresh_root: Path) -> StubDiff:
    """Compare two stub trees file by file."""
    committed = generated_files(committed_root)
    fresh = generated_files(fresh_root)
    changed: list[str] = []
    diff_lines: list[str] = []
    for name in sorted(committed.keys() & fresh.keys()):
        old = committed[name].read_text(encoding="utf-8")
        new = fresh[name].read_text(encoding="utf-8")
        if old != new:
            changed.append(name)
            diff_lines.extend(
                difflib.unified_diff(
                    old.splitlines(keepends=True),
                    new.splitlines(keepends=True),
                    fromfile=f"committed/{name}",
                    tofile=f"generated/{name}",
                )
            )
    return StubDiff(
        missing=tuple(sorted(fresh.keys() - committed.keys())),
        stale=tuple(sorted(committed.keys() - fresh.keys())),
        changed=tuple(changed),
        diff_text="".join(diff_lines),
    )


def check(proto_root: Path = PROTO_ROOT, generated_root: Path = GENERATED_ROOT) -> StubDiff:
    """Generate into a temporary folder and compare with the committed stubs."""
    with tempfile.TemporaryDirectory(prefix="mediarec-protogen-") as tmp:
        fresh_root = Path(tmp)
        generate(fresh_root, proto_root)
        return compare(generated_root, fresh_root)


def regenerate(proto_root: Path = PROTO_ROOT, generated_root: Path = GENERATED_ROOT) -> None:
    """Replace the committed stubs with freshly generated ones, removing stale stub files."""
    for stale in generated_files(generated_root).values():
        stale.unlink()
    generate(generated_root, proto_root)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python protos/protogen.py", description=__doc__)
    parser.add_argument(
        "--check",
        action="store_true",
        help="verify the committed stubs equal freshly generated ones; change nothing",
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    if args.check:
        result = check()
        if result.clean:
            print("generated stubs are up to date")
            return 0
        for name in result.missing:
            print(f"missing (run `make proto`): {name}")
        for name in result.stale:
            print(f"stale (no longer generated): {name}")
        sys.stdout.write(result.diff_text)
        return 1
    regenerate()
    print(f"wrote stubs under {GENERATED_ROOT.relative_to(REPO_ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
