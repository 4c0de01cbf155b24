"""``make bench-import``: events/s of ImportEvents against LogEvents, through a real server.

A catalogue of bring-your-own caption vectors is indexed, then the same synthetic history
(users, items and timestamps drawn from a seeded generator) is sent twice to fresh copies of
that data dir: once as LogEvents batches of the server's maximum (1000), once as one
ImportEvents stream of 5000-event messages. Both runs include what each path does for its
events to count: LogEvents' background rebuilds while events arrive and a final Refresh,
ImportEvents' rebuild at its end. Writes ``docs/bench/import.json`` and ``import.md``; the
last line printed is the JSON.
"""

from __future__ import annotations

import argparse
import json
import logging
import shutil
import sys
import tempfile
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from bench.docs import assemble_beside
from bench.inprocess import Server
from bench.report import code_version, machine
from mediarec.client import Embeddings, Event, EventKind, MediaMetadata, MediarecClient, MediaType

logger = logging.getLogger(__name__)

MODEL_ID = "mediarec-demo"
OUT_DIR = Path(__file__).resolve().parent.parent / "docs" / "bench"
LOG_BATCH = 1000
IMPORT_CHUNK = 5000


def history(events: int, users: int, items: int, seed: int) -> list[Event]:
    rng = np.random.default_rng(seed)
    start = datetime(2020, 1, 1, tzinfo=UTC).timestamp()
    user = rng.integers(0, users, events)
    item = np.minimum(rng.zipf(1.3, events) - 1, items - 1)
    ts = np.sort(start + rng.uniform(0, 3 * 365 * 86_400, events))
    kinds = np.where(rng.random(events) < 0.4, EventKind.LIKE, EventKind.VIEW)
    return [
        Event(f"e{i}", f"u{user[i]}", EventKind(int(kinds[i])), float(ts[i]), f"m{item[i]}")
        for i in range(events)
    ]


def index_catalogue(client: MediarecClient, items: int, dim: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    for i in range(items):
        vector = rng.standard_normal(dim).astype(np.float32)
        client.index_embeddings(
            MediaMetadata(media_id=f"m{i}", creator_id=f"c{i % 97}", caption=f"item {i}",
                          media_type=MediaType.TEXT),
            Embeddings(model_id=MODEL_ID, caption=vector.tolist()),
        )  # fmt: skip


def run_log_events(data_dir: Path, events: Sequence[Event]) -> float:
    server = Server(data_dir, MODEL_ID)
    try:
        started = time.perf_counter()
        for i in range(0, len(events), LOG_BATCH):
            result = server.client.log_events(events[i : i + LOG_BATCH])
            assert result.rejected_count == 0
        server.client.refresh()
        return time.perf_counter() - started
    finally:
        server.close()


def run_import(data_dir: Path, events: Sequence[Event]) -> float:
    server = Server(data_dir, MODEL_ID)
    try:
        started = time.perf_counter()
        result = server.client.import_events(iter(events), chunk_events=IMPORT_CHUNK)
        assert result.rejected_count == 0 and result.accepted_count == len(events)
        return time.perf_counter() - started
    finally:
        server.close()


def main(argv: Sequence[str] | None = None) -> int:
    code_version()  # names the code as loaded, whatever the tree holds when the run ends
    parser = argparse.ArgumentParser(prog="python -m bench.import_speed", description=__doc__)
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--users", type=int, default=2000)
    parser.add_argument("--items", type=int, default=5000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--out", type=Path, default=OUT_DIR)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    wall = time.monotonic()
    events = history(args.events, args.users, args.items, args.seed)
    with tempfile.TemporaryDirectory(prefix="mediarec-bench-import-") as tmp:
        base = Path(tmp) / "base"
        server = Server(base, MODEL_ID)
        try:
            index_catalogue(server.client, args.items, server.deps.encoder.dim, args.seed)
        finally:
            server.close()
        timings = {}
        for name, run in (("log_events", run_log_events), ("import_events", run_import)):
            copy = Path(tmp) / name
            shutil.copytree(base, copy)
            timings[name] = run(copy, events)
    rates = {name: args.events / seconds for name, seconds in timings.items()}
    result = {
        "events": args.events,
        "users": args.users,
        "items": args.items,
        "seconds": {k: round(v, 2) for k, v in timings.items()},
        "events_per_s": {k: round(v) for k, v in rates.items()},
        "import_over_log_events": round(rates["import_events"] / rates["log_events"], 2),
        "wall_s": round(time.monotonic() - wall, 1),
    }
    write_fragment(args.out, result)
    print(json.dumps(result))
    return 0


def write_fragment(out: Path, result: dict[str, object]) -> None:
    out.mkdir(parents=True, exist_ok=True)
    (out / "import.json").write_text(json.dumps(result, indent=2) + "\n")
    rates = result["events_per_s"]
    seconds = result["seconds"]
    assert isinstance(rates, dict) and isinstance(seconds, dict)
    lines = [
        "## Importing history: ImportEvents against LogEvents",
        "",
        f"Command: `make bench-import`. Machine: {machine()}. "
        f"Date: {datetime.now(UTC):%Y-%m-%d}. Code: {code_version()}.",
        "",
        f"{result['events']:,} events of {result['users']:,} users over {result['items']:,} "
        "caption-only items, through a real server on 127.0.0.1 (demo model, embedded stores). "
        "Each time runs until the events are in the derived state: LogEvents batches of "
        f"{LOG_BATCH} (with the background rebuilds they trigger) and a final Refresh, against "
        f"one ImportEvents stream of {IMPORT_CHUNK}-event messages, which rebuilds at its end.",
        "",
        "| path | seconds | events/s |",
        "|---|---|---|",
        f"| LogEvents | {seconds['log_events']} | {rates['log_events']:,} |",
        f"| ImportEvents | {seconds['import_events']} | {rates['import_events']:,} |",
        "",
        f"ImportEvents is {result['import_over_log_events']}x LogEvents' rate. "
        f"Runtime: {result['wall_s']} s.",
        "",
    ]
    (out / "import.md").write_text("\n".join(lines))
    assemble_beside(out)


if __name__ == "__main__":
    sys.exit(main())
