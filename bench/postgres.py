"""Benchmark: the store side by side, SQLite and PostgreSQL, for the first run and the hourly run.

    python -m bench.postgres --events 1000000
    python -m bench.postgres --events 1000000 --events 10000000
    python -m bench.postgres --events 1000000 --postgres-url postgresql+psycopg://u:p@host/db

For each size it takes the cached demo export (bench/pipeline.py's, under bench/data/), then,
each in a child process of its own: leadflow's first run into a fresh SQLite file and into a
fresh PostgreSQL database, and the hourly run (100,000 new events) into each. Then it measures
the hourly upsert alone (SliceWriter.upsert_analytics, rows/s) on both stores: rewriting rows the
store has (an hour recomputed) and writing new ones.

PostgreSQL is a throwaway cluster started on 127.0.0.1 from the server binaries (as the Debian
package installs them), with durability on (fsync, synchronous_commit) and its buffers and WAL
sized for a bulk load; or, with --postgres-url, an empty database of a server of yours (its
leadflow tables are dropped first).
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pyarrow as pa

from bench.pipeline import export, hourly_batch, leadflow_run, measure

UPSERT_ROWS = 100_000
CLUSTER_SETTINGS = {
    "shared_buffers": "1GB",
    "work_mem": "64MB",
    "maintenance_work_mem": "512MB",
    "max_wal_size": "8GB",
    "checkpoint_timeout": "30min",
    "fsync": "on",
    "synchronous_commit": "on",
    "full_page_writes": "on",
}


@contextmanager
def postgres_database(url: str | None) -> Iterator[Any]:
    """(a function giving the URL of a fresh database) on a throwaway cluster or the given server."""
    if url is not None:

        def reuse(name: str) -> str:
            _drop_leadflow_tables(url)
            return url

        yield reuse
        return
    from tests.pgcluster import PostgresCluster

    cluster = PostgresCluster.start(settings=CLUSTER_SETTINGS)
    try:
        yield lambda name: cluster.create_database(name)
    finally:
        cluster.stop()


def _drop_leadflow_tables(url: str) -> None:
    from sqlalchemy import text

    from leadflow.store.db import create_store_engine
    from leadflow.store.schema import metadata

    engine = create_store_engine(url)
    with engine.begin() as conn:
        metadata.drop_all(conn)
        conn.execute(text("DROP TABLE IF EXISTS alembic_version"))
    engine.dispose()


def first_and_hourly(
    path: Path, url: str, fmt: str, workdir: Path
) -> tuple[dict[str, Any], dict[str, Any]]:
    first = measure(leadflow_run_url(path, url))
    incoming = workdir / f"incoming-{abs(hash(url))}"
    shutil.copytree(hourly_batch(fmt), incoming, ignore=shutil.ignore_patterns(".complete"))
    hourly = measure(leadflow_run_url(incoming, url))
    return first, hourly


def leadflow_run_url(path: Path, url: str) -> list[str]:
    command = leadflow_run(path, Path("unused"))
    command[command.index("--database") + 1] = url
    return command


def upsert_rates(url: str, rows: int = UPSERT_ROWS, repeats: int = 3) -> dict[str, float]:
    """rows/s of SliceWriter.upsert_analytics, best of `repeats`: rewriting `rows` hours the
    store has (as a run that recomputes them does), and writing `rows` new hours."""
    from sqlalchemy import select

    from leadflow.store.db import create_store_engine
    from leadflow.store.schema import HOURLY_COUNTERS, listing_analytics
    from leadflow.store.writer import SliceWriter

    engine = create_store_engine(url)
    columns = ["listing_id", "date", "hour", *HOURLY_COUNTERS, "conversion_rate"]
    with engine.connect() as conn:
        existing = conn.execute(
            select(*(listing_analytics.c[c] for c in columns))
            .order_by(listing_analytics.c.date.desc(), listing_analytics.c.hour.desc())
            .limit(rows)
        ).all()

    def batch(shift: timedelta, bump: int) -> pa.Table:
        values = {
            c: [
                row[i] + shift if c == "date" else row[i] + bump if c in HOURLY_COUNTERS else row[i]
                for row in existing
            ]
            for i, c in enumerate(columns)
        }
        return pa.table(values).sort_by([(c, "ascending") for c in ("listing_id", "date", "hour")])

    rates: dict[str, float] = {"rewrite": 0.0, "new": 0.0, "rows": float(len(existing))}
    for attempt in range(1, repeats + 1):
        for name, table in (
            ("rewrite", batch(timedelta(0), attempt)),
            ("new", batch(timedelta(days=400 * attempt), 0)),
        ):
            started = time.perf_counter()
            with (
                engine.connect().execution_options(sqlite_begin="IMMEDIATE") as conn,
                conn.begin(),
            ):
                SliceWriter(conn, datetime.now(UTC)).upsert_analytics(table)
            rates[name] = max(rates[name], table.num_rows / (time.perf_counter() - started))
    engine.dispose()
    return rates


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--events", type=int, action="append", dest="sizes")
    parser.add_argument("--format", default="parquet", choices=["parquet", "jsonl"])
    parser.add_argument(
        "--postgres-url", help="An empty database to use instead of a throwaway cluster."
    )
    args = parser.parse_args(argv)

    with postgres_database(args.postgres_url) as new_postgres:
        for events in args.sizes or [1_000_000]:
            path = export(events, args.format)
            with tempfile.TemporaryDirectory(prefix="leadflow-bench-") as tmp:
                work = Path(tmp)
                stores = {
                    "SQLite": f"sqlite:///{work / 'leadflow.db'}",
                    "PostgreSQL": new_postgres(f"bench_{events}"),
                }
                results = {}
                for name, url in stores.items():
                    first, hourly = first_and_hourly(path, url, args.format, work)
                    results[name] = (first, hourly, upsert_rates(url))
                report(events, args.format, results)


def report(events: int, fmt: str, results: dict[str, Any]) -> None:
    print(f"\n{events:,} events, {fmt}  ({os.cpu_count()} cores)")
    print(
        f"{'store':12}{'first run s':>13}{'events/s':>12}{'peak MiB':>10}"
        f"{'write s':>9}{'hourly s':>10}{'upsert rewrite rows/s':>23}{'upsert new rows/s':>19}"
    )
    for name, (first, hourly, rates) in results.items():
        print(
            f"{name:12}{first['wall_seconds']:13.1f}"
            f"{first['events_read'] / first['wall_seconds']:12,.0f}{first['peak_mib']:10,.0f}"
            f"{first['timings']['write']:9.1f}{hourly['wall_seconds']:10.2f}"
            f"{rates['rewrite']:23,.0f}{rates['new']:19,.0f}"
        )
    for name, (first, hourly, rates) in results.items():
        timings = ", ".join(f"{k} {v:.1f} s" for k, v in first["timings"].items())
        print(
            f"{name}: first run by phase: {timings}; {first['hours_written']:,} hours, "
            f"{first['leads_inserted']:,} leads, {first['slices']} slices; hourly run of "
            f"{hourly['events_read']:,} events: {hourly['seconds']:.2f} s in the run "
            f"(write {hourly['timings']['write']:.2f} s, {hourly['hours_written']:,} hours); "
            f"upsert of {rates['rows']:,.0f} rows, best of 3"
        )


if __name__ == "__main__":
    main()
