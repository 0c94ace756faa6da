"""Benchmark: a first run's peak memory against the length of its window.

    python -m bench.window                              # half a year, a year, two years
    python -m bench.window --events-per-year 1000000 --days 91 --days 365

Generates (once, cached under bench/data/) a demo export as dense as the main benchmark's, 10
million events a year, over the longest window asked for; then runs leadflow's first run over
the last `--days` days of it for each window, each in a child process of its own into a fresh
SQLite file, and prints events, slices, seconds, events/s and peak memory per window, and each
peak against the shortest window's. A run works through its window in slices of at most
LEADFLOW_SLICE_EVENTS events, and the run's DuckDB keeps its tables within its memory limit
(LEADFLOW_ENGINE_MEMORY_LIMIT), spilling the rest to its file: a longer window should cost time
and disk, not memory.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from bench.pipeline import export, leadflow_run, measure


def last_days(export_dir: Path, days: int, into: Path) -> Path:
    """A folder of links to the export files of the last `days` days (one file a day)."""
    files = sorted(export_dir.iterdir())[-days:]
    into.mkdir(parents=True)
    for path in files:
        (into / path.name).symlink_to(path)
    return into


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--events-per-year", type=int, default=10_000_000)
    parser.add_argument(
        "--days", type=int, action="append", help="a window's length (default: 182, 365, 730)"
    )
    args = parser.parse_args(argv)
    windows = sorted(set(args.days or [182, 365, 730]))

    longest = windows[-1]
    source = export(args.events_per_year * longest // 365, "parquet", longest)
    rows = []
    with tempfile.TemporaryDirectory(prefix="leadflow-bench-window-") as tmp:
        for days in windows:
            folder = last_days(source, days, Path(tmp) / f"{days}d")
            result = measure(leadflow_run(folder, Path(tmp) / f"{days}d.db"))
            rows.append((days, result))
            print(
                f"{days:>5} days: {result['events_read']:>12,} events, {result['slices']} slices, "
                f"{result['wall_seconds']:7.1f} s, peak {result['peak_mib']:8,.0f} MiB",
                flush=True,
            )
            (Path(tmp) / f"{days}d.db").unlink()

    shortest = rows[0][1]["peak_mib"]
    print(f"\nfirst run against the length of its window ({args.events_per_year:,} events a year)")
    print(
        f"{'days':>6} {'events':>12} {'slices':>7} {'seconds':>8} {'events/s':>9} "
        f"{'peak MiB':>9} {'peak ratio':>11}"
    )
    for days, r in rows:
        print(
            f"{days:>6} {r['events_read']:>12,} {r['slices']:>7} {r['wall_seconds']:>8.1f} "
            f"{r['events_read'] / r['wall_seconds']:>9,.0f} {r['peak_mib']:>9,.0f} "
            f"{r['peak_mib'] / shortest:>11.2f}"
        )


if __name__ == "__main__":
    main()
