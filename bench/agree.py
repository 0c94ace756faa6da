"""Check leadflow's tables against the independent reading, on any export.

    python -m bench.agree PATH [PATH ...] [--deliveries 3]

Each in a fresh SQLite store of its own, in a temporary folder: leadflow's first run over all
the files; then the same files delivered over several runs (in path order, the order PostHog
writes them, split into `--deliveries` parts, each run over the folder the parts so far were
added to) and one run more that must find nothing new. Each store is compared table by table
(listing_analytics, listing_hour_seekers, listings, and the lead records grouped per seeker and
listing) with bench/baseline.py's reading of the same files. It prints each table's rows and
whether they agree, and the first rows that differ; the exit status is 1 if any table differs.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from bench.baseline import canonical, compute, expand_paths
from bench.canonical import Canonical, canonical_from_db
from bench.pipeline import link_or_copy
from leadflow import pipeline
from leadflow.config import Settings
from leadflow.store.db import create_store_engine

SHOWN = 3  # differing rows shown per table and side


def store_tables(url: str) -> Canonical:
    engine = create_store_engine(url)
    try:
        return canonical_from_db(engine)
    finally:
        engine.dispose()


Rows = list[tuple[Any, ...]]


def differences(expected: Canonical, got: Canonical) -> dict[str, tuple[Rows, Rows]]:
    """Per table that differs: (rows only the independent reading has, rows only leadflow has)."""
    found: dict[str, tuple[Rows, Rows]] = {}
    for table, rows in expected.items():
        theirs = got.get(table, [])
        if rows != theirs:
            mine, other = set(rows), set(theirs)
            found[table] = (sorted(mine - other)[:SHOWN], sorted(other - mine)[:SHOWN])
    return found


def deliver(files: Sequence[Path], folder: Path, first: int) -> None:
    """Add `files` to `folder` (see link_or_copy), each under a name that keeps the path order
    (`first`: the number of the first) and the file's own name."""
    folder.mkdir(parents=True, exist_ok=True)
    for n, f in enumerate(files, start=first):
        link_or_copy(f, folder / f"{n:06d}-{f.name}")


def report(name: str, expected: Canonical, got: Canonical) -> bool:
    found = differences(expected, got)
    counts = ", ".join(f"{table} {len(rows):,}" for table, rows in got.items())
    print(f"{name}: {'agrees' if not found else 'DIFFERS'} ({counts})")
    for table, (only_expected, only_got) in found.items():
        print(
            f"  {table}: {len(expected[table]):,} rows expected, {len(got.get(table, [])):,} stored"
        )
        for row in only_expected:
            print(f"    only in the independent reading: {row}")
        for row in only_got:
            print(f"    only in leadflow's store:        {row}")
    return not found


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("paths", nargs="+", metavar="PATH", help="export file, folder or glob")
    parser.add_argument(
        "--deliveries", type=int, default=3, help="how many runs deliver the files (default 3)"
    )
    args = parser.parse_args(argv)
    files = expand_paths(args.paths)
    if not files:
        parser.error("no export files found")
    parts = max(1, min(args.deliveries, len(files)))

    started = time.perf_counter()
    expected = canonical(compute(files))
    print(f"independent reading of {len(files):,} file(s): {time.perf_counter() - started:.1f} s")
    agree = True
    with tempfile.TemporaryDirectory(prefix="leadflow-agree-") as tmp:
        one = f"sqlite:///{Path(tmp) / 'one-run.db'}"
        summary = pipeline.run(Settings(database_url=one), [str(f) for f in files])
        print(f"one run: {summary.events_read:,} events in {summary.seconds:.1f} s")
        agree &= report("one run", expected, store_tables(one))

        split = f"sqlite:///{Path(tmp) / 'deliveries.db'}"
        folder = Path(tmp) / "export"
        size = -(-len(files) // parts)
        for start in range(0, len(files), size):
            deliver(files[start : start + size], folder, start)
            summary = pipeline.run(Settings(database_url=split), str(folder))
            print(f"delivery: {summary.files_read:,} new file(s), {summary.events_read:,} events")
        again = pipeline.run(Settings(database_url=split), str(folder))
        if again.events_read:
            print(f"the repeated run read {again.events_read:,} events, not none")
            agree = False
        agree &= report(f"{parts} deliveries and a repeated run", expected, store_tables(split))
    return 0 if agree else 1


if __name__ == "__main__":
    sys.exit(main())
