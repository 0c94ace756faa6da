"""Benchmark: what the pieces of a first run cost on their own, against the 500k events/s target.

    python -m bench.floor --events 10000000

Over the benchmark's Parquet export (bench.pipeline's, generated on first use), it measures in
this process, one after the other, each with its wall and CPU seconds (every thread's):

- read: the events' raw columns, counted;
- classify: reading and classifying every event, every output column counted, nothing kept;
- classify and group: the same pass grouping the accepted events per (listing, hour, kind,
  seeker), the least grouping any design does (distinct seekers per listing and hour, and per
  listing over all time, come from it);
- find duplicates: every event's uuid hash grouped, the repeated ones counted, straight from
  the files (a design that does not store the events finds its duplicates so);
- store, then aggregate: what leadflow's run does instead, storing the classified events in
  the run's DuckDB file, then running the slice queries over them slice by slice;
- tables from the grouping: each slice's rows of the tables made from what the one pass
  leaves (the events grouped per (listing, hour, kind, seeker), materialized here from the
  stored events by a piece of its own), each in its table's key order, with the breakdown and
  the lead records, which need the events themselves (a few in a hundred);
- write: SQLite taking the resulting rows into the store's own tables straight from Arrow, in
  each table's key order, into empty tables (ADBC's bulk ingest), the lead records and their
  events' uuids included, without the ledger or the listings' totals.

The sum of "classify and group", "find duplicates", "tables from the grouping" and "write" is a
floor: a run that classifies with DuckDB's JSON functions and keeps these tables in SQLite does
at least that much work, whatever its arrangement. It is printed against the CPU seconds that
the target rate allows on this machine's cores, with the least wall time any arrangement of it
can take (SQLite writes on one thread, so at best the rest runs on the other cores while it
writes, then on all of them), and both again were classifying free (the classifier's CPU
seconds over reading the raw columns taken out).
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import duckdb
import pyarrow as pa

from bench.pipeline import export
from leadflow.config import Settings
from leadflow.events import DEFAULT_TAXONOMY, Kind
from leadflow.pipeline import plan_slices
from leadflow.sources.files import discover, raw_events_sql
from leadflow.store.db import create_store_engine, ensure_schema
from leadflow.store.writer import (
    TIMESTAMP_TEXT,
    bulk_ingest,
    lead_event_rows,
    new_lead_values,
    text_table,
)
from leadflow.transform.classify import CLASSIFIED_COLUMNS, RAW_COLUMNS, classify_sql
from leadflow.transform.dialect import DUCKDB
from leadflow.transform.leads import lead_records_sql
from leadflow.transform.metrics import (
    hour_seekers_sql,
    hourly_breakdown_sql,
    hourly_metrics_sql,
    in_key_order,
    listing_listers_sql,
    listing_seekers_sql,
    metrics_of_groups_sql,
    per_seeker_sql,
)

TARGET_RATE = 500_000  # events per second, the target for a 10M first run
# The tables the floor writes, by their keys.
TABLE_KEYS: dict[str, tuple[str, ...]] = {
    "listing_seekers": ("listing_id", "kind", "seeker_id"),
    "listing_analytics": ("listing_id", "date", "hour"),
    "listing_analytics_breakdown": ("listing_id", "date", "hour", "dimension", "key"),
    "listing_hour_seekers": ("listing_id", "date", "hour"),
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
    # A design that does not store the classified events finds the copies of an event from the
    # files: every uuid's hash grouped (events without one are rejects), then (not timed: a
    # handful of rows) the repeated ones compared exactly.
    with timed(pieces, "find duplicates: uuid hashes") as rows:
        rows(
            counted(
                ["h"],
                f"(SELECT hash(uuid) AS h FROM {raw} WHERE uuid <> '' "
                "GROUP BY h HAVING count(*) > 1)",
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
    wheres = [
        f"(SELECT * FROM events WHERE hour_ts BETWEEN TIMESTAMP '{piece.first_hour}' "
        f"AND TIMESTAMP '{piece.last_hour}')"
        for piece in slices
    ]
    with timed(pieces, f"aggregate ({len(slices)} slices)") as rows:
        for where in wheres:
            for sql in (
                hourly_metrics_sql(where, DEFAULT_TAXONOMY),
                hourly_breakdown_sql(where),
                hour_seekers_sql(where),
                listing_seekers_sql(where),
                listing_listers_sql(where),
            ):
                rows(con.sql(sql).to_arrow_table().num_rows)
    # What the one pass leaves, per slice: the accepted events grouped per (listing, hour, kind,
    # seeker), with the lead channels' counts. Grouped here from the stored events (the pass
    # above times that grouping within the reading); the tables are then made from it.
    with timed(pieces, "group the stored events, per slice") as rows:
        for i, where in enumerate(wheres):
            con.execute(f"CREATE TABLE grouped_{i} AS {per_seeker_sql(where, DEFAULT_TAXONOMY)}")
            rows(int(con.execute(f"SELECT count(*) FROM grouped_{i}").fetchall()[0][0]))
    parts: dict[str, list[pa.Table]] = {table: [] for table in TABLE_KEYS}
    with timed(pieces, "tables from the grouping") as rows:
        for i, where in enumerate(wheres):
            queries = {
                **from_grouping(f"grouped_{i}"),
                # Shares per platform and leads per channel: a few in a hundred events.
                "listing_analytics_breakdown": hourly_breakdown_sql(where),
            }
            for table, sql in queries.items():
                part = con.sql(sql).to_arrow_table()
                parts[table].append(part)
                rows(part.num_rows)
        # Each action once (lead_events' key): of an event's copies, the first file's earliest.
        lead_events = (
            f"(SELECT * FROM events WHERE kind = '{Kind.LEAD}' "
            "QUALIFY row_number() OVER (PARTITION BY uuid ORDER BY file_id, ts) = 1)"
        )
        records = con.sql(lead_records_sql(lead_events, DEFAULT_TAXONOMY)).to_arrow_table()
        actions = con.sql(f"SELECT uuid, listing_id, seeker_id FROM {lead_events}").to_arrow_table()
        rows(records.num_rows)
    con.close()

    # All the rows in each table's key order, as one slice would give them to an empty store.
    now = time.strftime(TIMESTAMP_TEXT, time.gmtime())
    tables: dict[str, pa.Table] = {}
    for table, keys in TABLE_KEYS.items():
        whole = pa.concat_tables(parts.pop(table))
        if table == "listing_seekers":  # each slice's distinct rows: distinct over the year
            whole = whole.group_by(list(keys)).aggregate([])
        whole = whole.sort_by([(key, "ascending") for key in keys])
        if table == "listing_analytics":
            whole = whole.append_column("updated_at", pa.array([now] * whole.num_rows))
        tables[table] = text_table(whole)
    tables.update(lead_tables(records, actions, now))
    store = os.path.join(workdir, "store.db")
    engine = create_store_engine(f"sqlite:///{store}")
    ensure_schema(engine)
    engine.dispose()  # no connection of Python's SQLite may hold the file (see bulk_ingest)
    with timed(pieces, "write: ingest into the store") as rows:
        for table, arrow in tables.items():
            bulk_ingest(store, table, arrow, append=True)
            rows(arrow.num_rows)
    return pieces


def from_grouping(grouped: str) -> dict[str, str]:
    """Per table, the query making its rows from per_seeker_sql's `grouped`: the same rows as
    hourly_metrics_sql, hour_seekers_sql and listing_seekers_sql over the events, each in its
    table's key order, in their cheapest known form (in_key_order)."""

    def ids(kind: Kind) -> str:
        return (
            f"CAST(to_json(coalesce(list_sort(list(seeker_id) FILTER (WHERE kind = '{kind}')), "
            "[])) AS VARCHAR)"
        )

    hour = f"{DUCKDB.date_of('hour_ts')} AS date, {DUCKDB.hour_of('hour_ts')} AS hour"
    people = f"kind IN ('{Kind.VIEW}', '{Kind.LEAD}')"
    hour_seekers = f"""
SELECT listing_id, {hour}, {ids(Kind.VIEW)} AS viewers, {ids(Kind.LEAD)} AS lead_seekers
FROM {grouped}
WHERE {people}
GROUP BY listing_id, hour_ts
"""
    return {
        "listing_analytics": in_key_order(metrics_of_groups_sql(grouped), ("date", "hour")),
        "listing_hour_seekers": in_key_order(hour_seekers, ("date", "hour")),
        "listing_seekers": f"SELECT DISTINCT listing_id, kind, seeker_id FROM {grouped} "
        f"WHERE {people} ORDER BY listing_id, kind, seeker_id",
    }


def lead_tables(records: pa.Table, actions: pa.Table, now: str) -> dict[str, pa.Table]:
    """The `leads` and `lead_events` rows of a first run's lead records (ordered by listing and
    seeker, as lead_records_sql gives them) and actions, as the run's writer makes them."""
    count = records.num_rows
    records = records.append_column("id", pa.array(range(1, count + 1), pa.int64()))
    started = new_lead_values(datetime.strptime(now, TIMESTAMP_TEXT))
    for name, value in (*started.items(), ("created_at", now), ("updated_at", now)):
        records = records.append_column(name, pa.repeat(pa.scalar(value), count))
    events = lead_event_rows(actions, records).sort_by("event_uuid")
    return {"leads": text_table(records), "lead_events": events}


FLOOR_PIECES = (
    "classify and group (one pass)",
    "find duplicates",
    "tables from the grouping",
    "write",
)


def report(pieces: list[Piece], events: int) -> dict[str, Any]:
    """Print the floor against the target; return its figures (CPU and wall seconds)."""
    by_name = {p.name.split(":")[0]: p for p in pieces}
    write = by_name["write"]
    rest_cpu = sum(by_name[name].cpu for name in FLOOR_PIECES if name != "write")
    cpu = rest_cpu + write.cpu
    cores = os.cpu_count() or 1
    target = events / TARGET_RATE
    allowed = target * cores

    # SQLite writes on one thread: at best the rest keeps the other cores busy meanwhile, and
    # what is left of it then runs on all of them.
    def least_wall(rest: float) -> float:
        return write.wall + max(0.0, rest - write.wall * (cores - 1)) / cores

    # What classifying costs over reading the raw columns: the floor were it free.
    classifier = by_name["classify"].cpu - by_name["read"].cpu
    print(
        f"floor ({', '.join(FLOOR_PIECES)}): {cpu:.1f} CPU-s, "
        f"{sum(by_name[name].wall for name in FLOOR_PIECES):.1f} s one after the other"
    )
    print(
        f"{TARGET_RATE:,} events/s over {events:,} events is {target:.1f} s: "
        f"{allowed:.1f} CPU-s on {cores} cores; the floor is {cpu / allowed:.2f} of that"
    )
    wall = least_wall(rest_cpu)
    print(
        f"least wall time of any arrangement: {wall:.1f} s ({events / wall:,.0f} events/s): "
        f"SQLite writing for {write.wall:.1f} s on one thread, the other {rest_cpu:.1f} CPU-s "
        "on the other cores meanwhile, then on all"
    )
    print(
        f"the classifier's logic (classify less read) is {classifier:.1f} CPU-s: were it free, "
        f"the floor would be {cpu - classifier:.1f} CPU-s, {(cpu - classifier) / allowed:.2f} "
        f"of the target's, and the least wall time {least_wall(rest_cpu - classifier):.1f} s"
    )
    return {
        "floor_cpu": cpu,
        "allowed_cpu": allowed,
        "least_wall": wall,
        "without_classifier_cpu": cpu - classifier,
        "without_classifier_wall": least_wall(rest_cpu - classifier),
    }


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
