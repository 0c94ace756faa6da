"""Benchmark: what the PostHog source costs in requests and bytes, pushdown versus raw events.

    python -m bench.posthog --events 1000000
    python -m bench.posthog --events 10000000

It loads the demo export (bench/data/, generated once, a year ending 2026-11-01) into the local
PostHog stand-in and measures, on the wire (request and answer bodies, as the stand-in counts
them), two readings of the same events:

- pushdown: leadflow's PostHog source (`pipeline.run(…, "posthog")`): a census, then per slice
  the hourly rollups (classified and aggregated in HogQL) and the raw lead events;
- raw: every listing event of the same window fetched raw (uuid, event, distinct_id, properties,
  timestamp, created_at), paged by keyset at 50,000 rows, as a connector that aggregates
  locally must.

for the first run (a one-year backfill) and for an hourly run after it (the next hour of
ingestion, from bench.pipeline's hourly batch). "Now" is pinned to the export's end. Requests are
what PostHog would count against its rate limits (120 queries/hour on some projects).
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from collections.abc import Sequence
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from bench.pipeline import END, export, hourly_batch
from leadflow import pipeline
from leadflow.config import Settings
from leadflow.events import DEFAULT_TAXONOMY
from leadflow.sources import hogql
from leadflow.sources import posthog as posthog_source
from leadflow.sources.hogql import Query, _names, _Values
from leadflow.sources.local_posthog import LocalPostHog
from leadflow.transform.dialect import HOGQL


def _wire(local: LocalPostHog, since: int) -> dict[str, Any]:
    logs = local.requests[since:]
    return {
        "requests": len(logs),
        "bytes_up": sum(r.bytes_in for r in logs),
        "bytes_down": sum(r.bytes_out for r in logs),
        "rows": sum(r.rows for r in logs),
    }


def raw_query(
    created_from: datetime,
    created_to: datetime,
    hours: Sequence[tuple[datetime, datetime]] | None,
    after: Sequence[Any] | None,
    limit: int,
) -> Query:
    """Every listing event ingested in the window (or, with `hours`, of those event hours), raw."""
    v = _Values()
    if hours is None:
        where = f"e.created_at >= {v.time('f', created_from)} AND e.created_at < {v.time('t', created_to)}"
        keys = [("e.created_at", "time"), ("toString(e.uuid)", "text")]
        order = "e.created_at, toString(e.uuid)"
    else:
        where = hogql._event_hours(hours, v)
        keys = [("e.timestamp", "time"), ("toString(e.uuid)", "text")]
        order = "e.timestamp, toString(e.uuid)"
    sql = f"""
SELECT toString(e.uuid) AS event_uuid, e.event AS event_name, e.distinct_id AS who,
    e.properties AS props, e.timestamp AS event_time, e.created_at AS ingested_at
FROM events AS e
WHERE e.event IN {HOGQL.in_list(_names(DEFAULT_TAXONOMY))} AND {where}
    AND {hogql._keyset(keys, after, v)}
ORDER BY {order}
LIMIT {limit}
"""
    return Query("bench raw events", sql, v.values)


def fetch_raw(
    local: LocalPostHog,
    created_from: datetime,
    created_to: datetime,
    hours: Sequence[tuple[datetime, datetime]] | None = None,
) -> dict[str, Any]:
    since = len(local.requests)
    started = time.perf_counter()
    key_column = 4 if hours is not None else 5
    with posthog_source.QueryClient(local.url, "1", local.api_key, timeout_seconds=600) as client:
        events = 0
        for _, page in client.iter_pages(
            lambda after, limit: raw_query(created_from, created_to, hours, after, limit),
            lambda row: (row[key_column], row[0]),
            hogql.MAX_ROWS,
        ):
            events += len(page)
    return {**_wire(local, since), "events": events, "seconds": time.perf_counter() - started}


def run_pushdown(local: LocalPostHog, database: str, now: datetime) -> dict[str, Any]:
    since = len(local.requests)
    posthog_source.utc_now = lambda: now  # pin "now" to the export's end
    settings = Settings(
        database_url=database,
        posthog_host=local.url,
        posthog_project_id="1",
        posthog_personal_api_key=local.api_key,
        posthog_settle_seconds=0,
        posthog_request_budget=100_000,
        posthog_time_budget_seconds=24 * 3600,
        posthog_timeout_seconds=600,
    )
    started = time.perf_counter()
    summary = pipeline.run(settings, pipeline.POSTHOG)
    return {
        **_wire(local, since),
        "events": summary.events_read,
        "slices": summary.slices,
        "hours_written": summary.hours_written,
        "seconds": time.perf_counter() - started,
        "window": [
            summary.window_start.isoformat() if summary.window_start else None,
            summary.window_end.isoformat() if summary.window_end else None,
        ],
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    args = parser.parse_args(argv)

    folder = export(args.events, "parquet")
    results: dict[str, Any] = {"events": args.events}
    with (
        tempfile.TemporaryDirectory(prefix="leadflow-bench-posthog-") as work,
        LocalPostHog() as local,
    ):
        started = time.perf_counter()
        loaded = local.load_export(folder)
        results["loaded"] = loaded
        results["load_seconds"] = time.perf_counter() - started
        database = f"sqlite:///{Path(work) / 'posthog.db'}"
        year_from = END - timedelta(days=365)

        results["backfill_pushdown"] = run_pushdown(local, database, END)
        results["backfill_raw"] = fetch_raw(local, year_from, END)

        # The next hour: the hourly batch's events ingested in [END, END + 1 h).
        loaded_hour = local.load_export(hourly_batch("parquet"))
        results["hourly_batch_loaded"] = loaded_hour
        next_hour = END + timedelta(hours=1)
        results["hourly_pushdown"] = run_pushdown(local, database, next_hour)
        # Raw: the window's new events tell the touched hours; every event of those hours is
        # needed to recompute them (the census request counts as one more request).
        with posthog_source.QueryClient(local.url, "1", local.api_key) as client:
            reader = posthog_source.PostHogReader(client, DEFAULT_TAXONOMY)
            overlap_from = END - timedelta(minutes=60)
            census = reader.census(overlap_from, next_hour, END)
        hours = hogql.hour_ranges(sorted({row.hour for row in census if row.accepted}))
        raw_hour = fetch_raw(local, overlap_from, next_hour, hours)
        raw_hour["requests"] += 1
        results["hourly_raw"] = raw_hour

    if args.json:
        print(json.dumps(results, indent=2, default=str))
        return
    print(
        f"{args.events:,} demo events; {results['loaded']:,} loaded into the local PostHog "
        f"in {results['load_seconds']:.0f} s"
    )
    for run in ("backfill", "hourly"):
        push, raw = results[f"{run}_pushdown"], results[f"{run}_raw"]
        print(f"\n{run}: {'one year' if run == 'backfill' else 'the next hour'}")
        print(f"  {'':10} {'requests':>9} {'MB down':>9} {'MB up':>7} {'rows':>11} {'seconds':>8}")
        for label, m in (("pushdown", push), ("raw", raw)):
            print(
                f"  {label:10} {m['requests']:>9,} {m['bytes_down'] / 1e6:>9.1f} "
                f"{m['bytes_up'] / 1e6:>7.2f} {m['rows']:>11,} {m['seconds']:>8.1f}"
            )
        ratio = raw["bytes_down"] / push["bytes_down"] if push["bytes_down"] else float("inf")
        print(
            f"  raw / pushdown: {raw['requests'] / max(push['requests'], 1):.1f}x requests, "
            f"{ratio:.1f}x bytes down"
        )


if __name__ == "__main__":
    main()
