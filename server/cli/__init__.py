"""The ``mediarec`` command: serve, index a folder, search, import events, train the ranker,
and a user's recommendations, interests and deletion through a running server.

Configuration is built here, in ``main()``: defaults, then ``--config``/``$MEDIAREC_CONFIG``,
then ``MEDIAREC_*`` variables, then flags.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from mediarec.server.cli.users import DEFAULT_SERVER, SURFACES
from mediarec.server.config import ConfigError, Settings, add_arguments, settings_from_args

logger = logging.getLogger(__name__)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="mediarec", description="Multimodal content understanding and recommendation."
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    serve = commands.add_parser("serve", help="run the gRPC server")
    add_arguments(serve)

    index = commands.add_parser("index", help="index a media folder (recursively)")
    index.add_argument("folder", type=Path, help="folder of photos and videos with sidecars")
    index.add_argument("--server", metavar="HOST:PORT", help="index through a running server")
    index.add_argument("--api-key", help="API key for --server (default: $MEDIAREC_API_KEY)")
    index.add_argument("--strict", action="store_true", help="exit 1 when any file failed")
    index.add_argument("--report", type=Path,
                       help="JSON report (default: DATA_DIR/index-reports/FOLDERNAME-HASH.json)")
    index.add_argument("--manifest", type=Path, action="append", default=[],
                       help="JSON, JSONL or CSV file of per-file metadata (repeat for several); "
                       "manifests at the top of the folder are read too")
    index.add_argument("--no-manifest-discovery", action="store_true",
                       help="read only the manifests given with --manifest")
    index.add_argument("--prune", action="store_true",
                       help="also remove the stored items of this folder whose files are gone")
    index.add_argument("--dry-run", action="store_true",
                       help="with --prune: list what it would remove, and change nothing")
    index.add_argument("--force", action="store_true",
                       help="with --prune: go ahead although the folder is missing or over 20%% "
                       "of its items would go")
    index.add_argument("--id-prefix", default="", metavar="PREFIX",
                       help="media ids are PREFIX + the path in the folder (default: the path); "
                       "keeps two folders with the same file names apart")  # fmt: skip
    index.add_argument("--decode-workers", type=int, default=0, help="decode threads (0: cores)")
    index.add_argument("--no-progress", action="store_true", help="no progress bar")
    add_arguments(index, sections=("storage", "model", "media", "topics", "log"))

    search = commands.add_parser("search", help="search indexed media")
    query = search.add_mutually_exclusive_group(required=True)
    query.add_argument("text", nargs="?", help="query text")
    query.add_argument("--image", type=Path, help="query image file")
    query.add_argument("--similar", metavar="MEDIA_ID", help="more like this stored item")
    search.add_argument("-k", type=int, default=10, help="number of results (default: 10)")
    search.add_argument("--match", choices=("hybrid", "pixels", "captions"), default=None,
                        help="what a text query matches: pictures and captions fused by rank "
                        "(default), pictures only, or captions only")  # fmt: skip
    search.add_argument("--type", action="append", choices=("image", "video", "text"),
                        default=[], help="only this media type (repeat for several)")
    search.add_argument("--creator", action="append", default=[], metavar="ID",
                        help="only this creator's media (repeat for several)")
    search.add_argument("--tag", action="append", default=[],
                        help="only media with this tag (repeat for several)")
    search.add_argument("--json", action="store_true", help="JSON instead of a table")  # fmt: skip
    search.add_argument("--server", metavar="HOST:PORT", help="search through a running server")
    search.add_argument("--api-key", default=None, help="API key for --server")
    add_arguments(search, sections=("storage", "model", "topics", "search", "log"))

    events = commands.add_parser("events", help="engagement history: import")
    events_commands = events.add_subparsers(dest="events_command", required=True, metavar="ACTION")
    importer = events_commands.add_parser(
        "import",
        help="import events from a CSV, JSONL or Parquet file (columns: docs/recommend.md)",
        description="Import engagement history; rows follow LogEvents' rules, a row imported "
        "before counts as a duplicate, and the derived state is rebuilt at the end.",
    )
    importer.add_argument("file", type=Path, help="CSV (with a header), JSONL or Parquet file")
    importer.add_argument(
        "--format", choices=("csv", "jsonl", "parquet"), help="default: from the file's suffix"
    )
    importer.add_argument("--server", metavar="HOST:PORT", help="import through a running server")
    importer.add_argument("--api-key", help="API key for --server (default: $MEDIAREC_API_KEY)")
    importer.add_argument("--report", type=Path, help="write every rejected row to this CSV")
    importer.add_argument("--no-progress", action="store_true", help="no progress bar")
    add_arguments(importer, sections=("storage", "model", "recommend", "log"))

    def user_command(name: str, help_text: str) -> argparse.ArgumentParser:
        command = commands.add_parser(name, help=help_text, description=help_text + ".")
        command.add_argument("user", help="the user id")
        command.add_argument("--server", metavar="HOST:PORT", default=DEFAULT_SERVER,
                             help=f"the running server (default: {DEFAULT_SERVER})")  # fmt: skip
        command.add_argument("--api-key", help="API key (default: $MEDIAREC_API_KEY)")
        add_arguments(command, sections=("log",))
        return command

    recommend = user_command("recommend", "a user's recommendations, with their reasons")
    recommend.add_argument("--surface", choices=SURFACES, default="feed")
    recommend.add_argument("-k", type=int, default=10, help="items (default: 10)")
    recommend.add_argument("--explain", action="store_true",
                           help="show each score's largest terms")  # fmt: skip
    recommend.add_argument("--commit", action="store_true",
                           help="log the page as served (default: a dry run that logs nothing)")
    recommend.add_argument("--json", action="store_true", help="JSON instead of a table")
    interests = user_command("interests", "declare a user's interests in free text")
    interests.add_argument("text", help='e.g. "hiking, street food, cats"')
    user_command("forget", "delete everything stored about a user")

    trainer = commands.add_parser(
        "train-ranker",
        help="train the learned ranker from the event history (and the blend's weights)",
        description="Train the learned ranker (LightGBM) from the whole event history and "
        "write it with its model card; refit the blend's weights from served impressions "
        "when there are enough. The data dir must not be in use by a running server.",
    )
    trainer.add_argument("--since-days", type=float, default=None,
                         help="blend weights: only impressions of the last N days")
    trainer.add_argument("--label-window-hours", type=float, default=24.0,
                         help="blend weights: engagement this soon after serving is positive")
    trainer.add_argument("--l2", type=float, default=5.0,
                         help="blend weights: L2 penalty pulling them toward the defaults")
    trainer.add_argument("--min-examples", type=int, default=200)
    trainer.add_argument("--min-positives", type=int, default=20)
    add_arguments(trainer, sections=("storage", "model", "recommend", "log"))
    return parser


LOG_FIELDS = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def log_formatter(log_format: str) -> logging.Formatter:
    """``text``: one readable line; ``json``: one object per line with the same fields."""
    if log_format == "json":
        from pythonjsonlogger.json import JsonFormatter

        # The same fields as the text line; a record's `extra` (a call's method, status,
        # duration and request id) become fields of their own.
        return JsonFormatter("%(asctime)s %(levelname)s %(name)s %(message)s",
                             rename_fields={"levelname": "level", "name": "logger"})  # fmt: skip
    return logging.Formatter(LOG_FIELDS)


def _configure_logging(level: str, log_format: str = "text") -> None:
    handler = logging.StreamHandler()
    handler.setFormatter(log_formatter(log_format))
    logging.basicConfig(level=getattr(logging, level.upper(), logging.INFO), handlers=[handler])


def main(argv: Sequence[str] | None = None) -> int:
    try:
        return _main(argv)
    except BrokenPipeError:
        # The reader went away (`mediarec search ... --json | head`): not an error of ours.
        # Python's recipe: point stdout at devnull so the exit's flush cannot fail again.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 0


def _main(argv: Sequence[str] | None) -> int:
    arguments = list(sys.argv[1:] if argv is None else argv)
    if not arguments:  # a first try: show what there is rather than a usage error
        _parser().print_help()
        return 0
    args = _parser().parse_args(arguments)
    try:
        settings = settings_from_args(args)
    except ConfigError as exc:
        print(f"mediarec: configuration error: {exc}", file=sys.stderr)
        return 2
    _configure_logging(settings.log.level, settings.log.format)
    if args.command == "serve":
        from mediarec.server.cli.common import CommandError
        from mediarec.server.cli.serve import serve

        try:
            return serve(settings)
        except CommandError as exc:  # a locked store, a ranker to train again, a bad model
            print(f"mediarec serve: {exc}", file=sys.stderr)
            return exc.exit_code
    if args.command == "train-ranker":
        import time

        from mediarec.server.cli.train import run_train
        from mediarec.server.recommend.train import DAY_S, TrainConfig

        since = args.since_days
        return run_train(
            settings,
            TrainConfig(
                since=time.time() - since * DAY_S if since is not None else None,
                label_window_s=args.label_window_hours * 3600.0,
                l2=args.l2,
                min_examples=args.min_examples,
                min_positives=args.min_positives,
            ),
        )
    if args.command == "index":
        from mediarec.server.cli.index import run_index_command

        return run_index_command(args, settings)
    if args.command == "events":
        from mediarec.server.cli.events import run_import

        return run_import(
            settings,
            args.file,
            fmt=args.format,
            server=args.server,
            api_key=args.api_key or os.environ.get("MEDIAREC_API_KEY"),
            report=args.report,
            progress=not args.no_progress,
        )
    if args.command in ("recommend", "interests", "forget"):
        return _user_command(args)
    return _search(args, settings)


def _user_command(args: argparse.Namespace) -> int:
    from mediarec.server.cli.users import run_forget, run_interests, run_recommend

    key = args.api_key or os.environ.get("MEDIAREC_API_KEY")
    if args.command == "recommend":
        return run_recommend(
            args.user, server=args.server, api_key=key, surface=args.surface, k=args.k,
            explain=args.explain, commit=args.commit, as_json=args.json,
        )  # fmt: skip
    if args.command == "interests":
        return run_interests(args.user, args.text, server=args.server, api_key=key)
    return run_forget(args.user, server=args.server, api_key=key)


def _search(args: argparse.Namespace, settings: Settings) -> int:
    from mediarec.server.cli.search import Filters, run_search

    if args.match and args.text is None:
        print("mediarec search: --match applies to text queries only", file=sys.stderr)
        return 2
    return run_search(
        settings,
        text=args.text,
        image=args.image,
        similar=args.similar,
        k=args.k,
        match=args.match or "hybrid",
        server=args.server,
        api_key=args.api_key or os.environ.get("MEDIAREC_API_KEY"),
        filters=Filters(tuple(args.type), tuple(args.creator), tuple(args.tag)),
        as_json=args.json,
    )
