"""Benchmark: what the pieces of a first run cost on their own, against the 500k events/s target.

    python -m bench.floor --events 10000000

Over the benchmark's Parquet export (bench.pipeline's, generated on first use), it measures in
this process, one after the other, each with its wall and CPU seconds (every thread's):

- read: the events' raw columns, counted;
- classify: reading and classifying every event, every output column counted, nothing kept;
- classify and group: the same pass grouping the accepted events per (listing, hour, kind,
  seeker), the least grouping any design does (distinct seekers per listing and hour, and per
  listing over all time, come from it);
- store, then aggregate: what leadflow's run does instead, storing the classified events in
  the run's DuckDB file, then running the slice queries over them slice by slice;
- write: SQLite taking the resulting rows into the store's own tables straight from Arrow, in
  each table's key order, into empty tables (ADBC's bulk ingest), without the leads, the
  ledger or the listings' totals.

The sum of "classify and group" and "write" is a floor: a run that classifies with DuckDB's JSON
functions and keeps these tables in SQLite does at least that much work, whatever its
arrangement. It is printed against the CPU seconds that the target rate allows on this
machine's cores.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import duckdb
import pyarrow as pa

from bench.pipeline import export
from leadflow.config import Settings
from leadflow.events import DEFAULT_TAXONOMY
from leadflow.pipeline import plan_slices
from leadflow.sources.files import discover, raw_events_sql
from leadflow.store.db import create_store_engine, ensure_schema
from leadflow.store.writer import TIMESTAMP_TEXT, bulk_ingest, text_table
from leadflow.transform.classify import CLASSIFIED_COLUMNS, RAW_COLUMNS, classify_sql
from leadflow.transform.metrics import (
    hour_seekers_sql,
    hourly_breakdown_sql,
    hourly_metrics_sql,
    listing_listers_sql,
    listing_seekers_sql,
)

TARGET_RATE = 500_000  # events per second, the target for a 10M first run
# The tables the floor writes, by their keys.
TABLE_KEYS: dict[str, tuple[str, ...]] = {
    "listing_seekers": ("listing_id", "kind", "seeker_id"),
    "listing_analytics": ("listing_id", "date", "hour"),
    "listing_analytics_breakdown": ("listing_id", "date", "hour", "dimension", "key"),
    "listing_hour_seekers": ("listing_id", "date", "hour"),
    "listing_listers": ("listing_id",),
}


@dataclass
class Piece:
    name: str
    wall: float
    cpu: float
    rows: int


@contextmanager
def timed(pieces: list[Piece], name: str) -> Iterator[Callable[[int], None]]:
    """Time the block's wall and process CPU seconds (every thread's) as piece `name`."""
    rows = [0]

    def count(n: int) -> None:
        rows[0] += n

    wall, cpu = time.perf_counter(), time.process_time()
    yield count
    pieces.append(Piece(name, time.perf_counter() - wall, time.process_time() - cpu, rows[0]))
    last = pieces[-1]
    print(f"  {name:<34} {last.wall:7.2f} s  {last.cpu:7.2f} CPU-s  {last.rows:>11,} rows")


def measure(folder: str, workdir: str) -> list[Piece]:
    """Time the pieces over the Parquet export `folder`, leaving the written store in
    `workdir`/store.db."""
    files = discover(folder)
    raw = f"({raw_events_sql(list(enumerate(files)))})"
    classified = classify_sql(raw, DEFAULT_TAXONOMY)
    settings = Settings()
    con = duckdb.connect(
        os.path.join(workdir, "run.duckdb"),
        config={
            "memory_limit": settings.engine_memory_limit,
            "temp_directory": workdir,
            "preserve_insertion_order": False,
            "force_compression": "dictionary",
        },
    )
    con.execute("SET TimeZone = 'UTC'")
    (threads,) = con.execute("SELECT current_setting('threads')").fetchall()[0]
    print(f"{len(files)} Parquet files; DuckDB on {threads} threads")
    pieces: list[Piece] = []

    def counted(columns: Sequence[str], source: str) -> int:
        counts = ", ".join(f"count({column})" for column in columns)
        return int(con.execute(f"SELECT {counts} FROM {source}").fetchall()[0][0])

    with timed(pieces, "read: raw columns, counted") as rows:
        rows(counted(RAW_COLUMNS, raw))
    with timed(pieces, "classify: every column, counted") as rows:
        rows(counted(CLASSIFIED_COLUMNS, f"({classified})"))
    # The least grouping any design does while it classifies: distinct seekers per listing and
    # hour (unique views and leads, the hour's seekers) and per listing (all-time uniques) come
    # from the events grouped per (listing, hour, kind, seeker). Accepted or not is a key of the
    # group rather than a WHERE: DuckDB pushes such a filter into the classifier's expressions
    # and computes them twice (about 1.5 times the CPU), and so leadflow stores the classified
    # events with their reject reason and filters the stored table.
    with timed(pieces, "classify and group (one pass)") as rows:
        rows(
            counted(
                ["listing_id"],
                "(SELECT listing_id, hour_ts, kind, seeker_id, reject IS NULL AS accepted, "
                f"count(*) AS n FROM ({classified}) GROUP BY ALL)",
            )
        )
    with timed(pieces, "store the classified events") as rows:
        con.execute(f"CREATE TABLE batch AS {classified}")
        con.execute(
            "CREATE VIEW events AS SELECT * EXCLUDE (reject) FROM batch WHERE reject IS NULL"
        )
        rows(int(con.execute("SELECT count(*) FROM batch").fetchall()[0][0]))

    histogram = con.execute(
        "SELECT hour_ts, count(*) FROM events GROUP BY hour_ts ORDER BY hour_ts"
    ).fetchall()
    slices = plan_slices(histogram, settings.slice_events, settings.slice_max_days)
    parts: dict[str, list[pa.Table]] = {table: [] for table in TABLE_KEYS}
    with timed(pieces, f"aggregate ({len(slices)} slices)") as rows:
        for piece in slices:
            where = (
                f"(SELECT * FROM events WHERE hour_ts BETWEEN TIMESTAMP '{piece.first_hour}' "
                f"AND TIMESTAMP '{piece.last_hour}')"
            )
            queries = {
                "listing_analytics": hourly_metrics_sql(where, DEFAULT_TAXONOMY),
                "listing_analytics_breakdown": hourly_breakdown_sql(where),
                "listing_hour_seekers": hour_seekers_sql(where),
                "listing_seekers": listing_seekers_sql(where),
                "listing_listers": listing_listers_sql(where),
            }
            for table, sql in queries.items():
                part = con.sql(sql).to_arrow_table()
                parts[table].append(part)
                rows(part.num_rows)
    con.close()

    # All the rows in each table's key order, as one slice would give them to an empty store.
    now = time.strftime(TIMESTAMP_TEXT, time.gmtime())
    tables: dict[str, pa.Table] = {}
    for table, keys in TABLE_KEYS.items():
        if table == "listing_listers":
            continue  # 2,000 rows of the listings step, which the floor leaves out
        whole = pa.concat_tables(parts.pop(table))
        if table == "listing_seekers":  # each slice's distinct rows: distinct over the year
            whole = whole.group_by(list(keys)).aggregate([])
        whole = whole.sort_by([(key, "ascending") for key in keys])
        if table == "listing_analytics":
            whole = whole.append_column("updated_at", pa.array([now] * whole.num_rows))
        tables[table] = text_table(whole)
    store = os.path.join(workdir, "store.db")
    engine = create_store_engine(f"sqlite:///{store}")
    ensure_schema(engine)
    engine.dispose()  # no connection of Python's SQLite may hold the file (see bulk_ingest)
    with timed(pieces, "write: ingest into the store") as rows:
        for table, arrow in tables.items():
            bulk_ingest(store, table, arrow, append=True)
            rows(arrow.num_rows)
    return pieces


def report(pieces: list[Piece], events: int) -> dict[str, Any]:
    by_name = {p.name.split(":")[0]: p for p in pieces}
    floor = [by_name[name] for name in ("classify and group (one pass)", "write")]
    cpu = sum(p.cpu for p in floor)
    cores = os.cpu_count() or 1
    allowed = events / TARGET_RATE * cores
    print(
        f"floor (classify and group, write): {cpu:.1f} CPU-s, "
        f"{sum(p.wall for p in floor):.1f} s one after the other"
    )
    print(
        f"{TARGET_RATE:,} events/s over {events:,} events is {events / TARGET_RATE:.1f} s: "
        f"{allowed:.1f} CPU-s on {cores} cores; the floor is {cpu / allowed:.2f} of that, "
        f"{cpu / cores:.1f} s on {cores} fully busy cores at best "
        f"({events / (cpu / cores):,.0f} events/s)"
    )
    return {"floor_cpu": cpu, "allowed_cpu": allowed}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--events", type=int, default=10_000_000)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="leadflow-floor-") as workdir:
        pieces = measure(str(export(args.events, "parquet")), workdir)
    report(pieces, pieces[0].rows)


if __name__ == "__main__":
    main()
