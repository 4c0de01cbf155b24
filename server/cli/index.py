"""``mediarec index DIR``: index a folder of photos and videos, with their sidecar metadata."""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING

from mediarec.client import MediarecClient, MediarecError
from mediarec.server.cli.common import (
    EXIT_FAILED,
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_UNUSABLE,
    CommandError,
    open_local_deps,
    server_error,
)
from mediarec.server.indexing import manifest
from mediarec.server.indexing.folder import check_id_prefix, read_extensions
from mediarec.server.indexing.pipeline import index_folder
from mediarec.server.indexing.prune import PrunePlan, SourcedStore, plan_prune, prune
from mediarec.server.indexing.report import (
    FileStatus,
    IndexReport,
    default_report_path,
    write_report,
)
from mediarec.server.indexing.sinks import ClientSink, EmbeddedSink, IndexAborted

if TYPE_CHECKING:
    import argparse

    from mediarec.server.config import Settings


logger = logging.getLogger(__name__)

UNMATCHED_SHOWN = 10  # the report lists every one


def run_index_command(args: argparse.Namespace, settings: Settings) -> int:
    """``mediarec index``: exit 0, 1 (``--strict`` with failures, a prune that needs --force,
    or the run could not go on), 2 (nothing attempted: no such folder, store locked) or 130
    (interrupted)."""
    folder: Path = args.folder
    missing = not folder.is_dir()
    if args.dry_run and not args.prune:
        print("mediarec index: --dry-run lists what --prune would remove; add --prune",
              file=sys.stderr)  # fmt: skip
        return EXIT_UNUSABLE
    if missing and not args.prune:
        print(f"mediarec index: {folder} is not a folder", file=sys.stderr)
        return EXIT_UNUSABLE
    report_path: Path = args.report or default_report_path(_reports_home(args, settings), folder)
    stop = threading.Event()
    report: IndexReport | None = None
    try:
        id_prefix = _id_prefix(args.id_prefix)
        manifests = (
            manifest.Manifests({}, (), ())
            if missing
            else _manifests(folder, args.manifest, discover=not args.no_manifest_discovery)
        )
        with _open_sink(args, settings) as sink, graceful_ctrl_c(stop):
            plan = _plan_prune(folder, sink) if args.prune else None
            if plan is not None and args.dry_run:
                _print_plan(plan)
                return EXIT_OK
            if missing:
                assert plan is not None  # a missing folder without --prune returned above
                report = _missing_folder_report(folder, plan, sink.target, force=args.force)
            else:
                report = index_folder(
                    folder,
                    sink,
                    workers=args.decode_workers or os.cpu_count() or 1,
                    batch_size=settings.model.batch_size,
                    progress=not args.no_progress and sys.stderr.isatty(),
                    stop_event=stop,
                    exclude=(report_path,),
                    manifests=manifests,
                    id_prefix=id_prefix,
                )
            if plan is not None:
                _prune_after_indexing(plan, sink, report, stop, force=args.force)
    except CommandError as exc:
        print(f"mediarec index: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        if report is None:
            print("mediarec index: interrupted before indexing started", file=sys.stderr)
            return EXIT_INTERRUPTED
        # Interrupted while closing the store: everything reported is durable already.
    try:
        write_report(report, report_path)
    except OSError as exc:
        print(f"mediarec index: cannot write the report {report_path}: {exc}", file=sys.stderr)
    _print_summary(report, report_path)
    if report.interrupted:
        return EXIT_INTERRUPTED
    if report.aborted or report.prune_refused or (args.strict and report.failures):
        return EXIT_FAILED
    return EXIT_OK


def _missing_folder_report(
    folder: Path, plan: PrunePlan, target: str, *, force: bool
) -> IndexReport:
    """The empty run of ``--prune`` over a folder that is gone, or why it may not run."""
    if not plan.held:
        raise CommandError(
            f"{folder} is not a folder, and no stored item comes from it", EXIT_UNUSABLE
        )
    reason = plan.needs_force()
    if reason and not force:
        raise CommandError(
            f"{folder} is not a folder: {reason}; check the path (an unmounted disk?), or add "
            "--force",
            EXIT_UNUSABLE,
        )
    return IndexReport(str(folder), target, 0, extensions_read=read_extensions())


def _prune_after_indexing(
    plan: PrunePlan,
    sink: SourcedStore,
    report: IndexReport,
    stop: threading.Event,
    *,
    force: bool,
) -> None:
    """Remove the plan's items once the run has indexed, recording each removal in the
    report; nothing when the run stopped early, or when the share that would go needs
    --force (what was indexed stays indexed: only the removals wait for a decision)."""
    if report.interrupted or report.aborted or stop.is_set():
        return
    plan = plan.with_new_items(report.count(FileStatus.CREATED))
    reason = plan.needs_force()
    if reason and not force:
        report.prune_refused = (
            f"--prune left everything in place: {reason}; list them with --prune --dry-run, "
            "or add --force"
        )
        return
    removed: list[str] = []
    try:
        prune(plan, sink, removed, keep={r.media_id for r in report.results}, stop=stop)
    except IndexAborted as exc:
        report.aborted = str(exc)
    except KeyboardInterrupt:
        report.interrupted = True
    finally:
        report.pruned = tuple(removed)
    report.interrupted = report.interrupted or stop.is_set()


def _plan_prune(folder: Path, sink: SourcedStore) -> PrunePlan:
    """What --prune would remove, as the store holds it before this run."""
    try:
        return plan_prune(folder, sink)
    except IndexAborted as exc:
        raise CommandError(f"cannot list the stored items: {exc}", EXIT_FAILED) from exc


def _reports_home(args: argparse.Namespace, settings: Settings) -> Path:
    """Where reports go by default: the data dir indexed into, or, through a server (whose
    data dir may be on another machine), this user's state folder."""
    if not args.server:
        return Path(settings.storage.data_dir)
    state = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(state) / "mediarec"


def _print_plan(plan: PrunePlan) -> None:
    print(
        f"--prune would remove {len(plan.gone)} of the {plan.held} items stored from "
        f"{plan.folder}, whose files are gone:"
    )
    for media_id, source in plan.gone:
        print(f"  {media_id}  ({source})")
    reason = plan.needs_force()
    if reason:
        print(f"without --force a run would remove none of them: {reason}")


def _id_prefix(prefix: str) -> str:
    try:
        return check_id_prefix(prefix)
    except ValueError as exc:
        raise CommandError(str(exc), EXIT_UNUSABLE) from exc


def _manifests(folder: Path, given: list[Path], *, discover: bool) -> manifest.Manifests:
    """Those found at the top of the folder, then those named with ``--manifest`` (a later
    manifest's record for a file wins). A found file that turns out unusable is skipped with
    a warning; a named one that is unusable stops the run."""
    for path in given:
        if not path.is_file():
            raise CommandError(f"the manifest {path} does not exist", EXIT_UNUSABLE)
    named = {g.resolve() for g in given}
    parts = []
    for path in manifest.discover(folder) if discover else []:
        if path.resolve() in named:
            continue
        try:
            parts.append(manifest.load_one(folder, path))
        except (manifest.ManifestError, OSError) as exc:
            print(f"mediarec index: skipping {path.name}, not a usable manifest: {exc}",
                  file=sys.stderr)  # fmt: skip
    try:
        parts += [manifest.load_one(folder, path) for path in given]
    except (manifest.ManifestError, OSError) as exc:
        raise CommandError(f"cannot use a manifest: {exc}", EXIT_UNUSABLE) from exc
    manifests = manifest.merge(parts)
    for path in manifests.files:
        logger.info("reading metadata from the manifest %s", path)
    return manifests


@contextlib.contextmanager
def _open_sink(
    args: argparse.Namespace, settings: Settings
) -> Iterator[ClientSink | EmbeddedSink]:
    if args.server:
        with _client_sink(args.server, args.api_key or os.environ.get("MEDIAREC_API_KEY")) as sink:
            yield sink
        return
    deps = open_local_deps(settings)
    try:
        yield EmbeddedSink(deps)
    finally:
        deps.close()


@contextlib.contextmanager
def _client_sink(target: str, api_key: str | None) -> Iterator[ClientSink]:
    with MediarecClient(target, api_key=api_key) as client:
        try:
            info = client.server_info(timeout_s=10)
        except MediarecError as exc:
            raise CommandError(
                f"cannot use the server at {target}: {server_error(exc, api_key)}", EXIT_FAILED
            ) from exc
        logger.info("indexing through %s (model %s)", target, info.model_id)
        sink = ClientSink(client)
        try:
            yield sink
        finally:
            sink.close()


@contextlib.contextmanager
def graceful_ctrl_c(stop: threading.Event) -> Iterator[None]:
    """First Ctrl-C: finish the batch in hand, then stop. A second one interrupts at once."""
    if threading.current_thread() is not threading.main_thread():
        yield  # signal handlers can only be installed from the main thread
        return
    previous = signal.getsignal(signal.SIGINT)

    def on_sigint(signum: int, frame: FrameType | None) -> None:
        print(
            "\nmediarec index: stopping after the current batch (Ctrl-C again to stop now)",
            file=sys.stderr,
        )
        stop.set()
        signal.signal(signal.SIGINT, signal.default_int_handler)

    signal.signal(signal.SIGINT, on_sigint)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


def _print_summary(report: IndexReport, report_path: Path) -> None:
    counts = report.counts()
    rate = len(report.results) / report.elapsed_s if report.elapsed_s else 0.0
    print(
        f"{len(report.results)} of {report.total_files} files in {report.elapsed_s:.1f} s "
        f"({rate:.1f} files/s): {counts['created'] + counts['updated']} indexed "
        f"({counts['created']} new, {counts['updated']} updated), {counts['unchanged']} "
        f"unchanged, {counts['failed']} failed"
    )
    for failure in sorted(report.failures, key=lambda r: r.path):
        print(f"  failed: {failure.path}: {failure.reason}")
    if counts["unknown"]:
        print(
            f"{counts['unknown']} files were being uploaded when the server went away: it may "
            "have stored them; the next run tells (they are listed in the report)"
        )
    if report.manifests:
        print(f"metadata from {len(report.manifests)} manifest(s): {', '.join(report.manifests)}")
    for record in report.unmatched_records[:UNMATCHED_SHOWN]:
        print(f"  manifest record without a file: {record}")
    if len(report.unmatched_records) > UNMATCHED_SHOWN:
        print(f"  ... and {len(report.unmatched_records) - UNMATCHED_SHOWN} more in the report")
    if report.skipped or not report.total_files:
        by_extension = ", ".join(
            f"{count} {suffix or '(no extension)'}"
            for suffix, count in report.skipped_by_extension.items()
        )
        print(
            f"skipped {_count(report.skipped, 'file')} by extension ({by_extension or 'none'}); "
            f"reads {' '.join(report.extensions_read)}"
        )
    if report.pruned:
        print(f"pruned {_count(len(report.pruned), 'item')} whose files are gone")
    if report.prune_refused:
        print(report.prune_refused, file=sys.stderr)
    if report.aborted:
        print(f"stopped early: {report.aborted}", file=sys.stderr)
    elif report.interrupted:
        print(
            f"interrupted: {report.not_processed} files not processed; run again to continue",
            file=sys.stderr,
        )
    print(f"report: {report_path}")


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"
