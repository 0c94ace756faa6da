"""`python -m bench.floor`: the floor it times writes the tables a run writes."""

from __future__ import annotations

import os
import sqlite3
from contextlib import closing
from datetime import UTC, datetime

from bench import floor
from leadflow.config import Settings
from leadflow.pipeline import run
from leadflow.sources.demo import generate_export

COMPARED = {
    "listing_analytics": "listing_id, date, hour, total_views, unique_views, impressions, shares, "
    "saves, total_leads, phone_leads, message_leads, email_leads, appointment_leads, "
    "website_leads, unique_leads, round(conversion_rate, 9)",
    "listing_analytics_breakdown": "*",
    "listing_hour_seekers": "*",
    "listing_seekers": "*",
    "leads": "id, listing_id, seeker_id, lister_id, lister_type, lead_actions, total_actions, "
    "lead_score, first_action_date, last_action_date, last_action_type, status, notes",
    "lead_events": "*",
}


def rows(path: str, table: str) -> list[tuple]:
    with closing(sqlite3.connect(path)) as conn:
        return sorted(conn.execute(f"SELECT {COMPARED[table]} FROM {table}").fetchall())


def test_the_floor_writes_what_a_run_writes(tmp_path, capsys):
    """Over an export without redelivered copies (the floor does not look for duplicates) and
    spanning several slices, the floor's store holds the rows leadflow's run stores, and the
    pieces it reports counted every event."""
    folder = tmp_path / "export"
    stats = generate_export(
        folder,
        events=30_000,
        listings=40,
        seekers=500,
        days=200,
        end=datetime(2026, 1, 1, tzinfo=UTC),
        duplicate_rate=0.0,
    )
    workdir = tmp_path / "floor"
    workdir.mkdir()
    pieces = floor.measure(str(folder), str(workdir))
    by_name = {piece.name: piece for piece in pieces}
    assert by_name["read: raw columns, counted"].rows == stats.events
    assert by_name["classify: every column, counted"].rows == stats.events
    assert "aggregate (3 slices)" in by_name  # 200 days: slices of at most 92

    store = tmp_path / "run.db"
    run(Settings(database_url=f"sqlite:///{store}"), str(folder))
    for table in COMPARED:
        expected = rows(str(store), table)
        assert expected, table
        assert rows(str(workdir / "store.db"), table) == expected, table

    summary = floor.report(pieces, stats.events)
    assert by_name["find duplicates: uuid hashes"].rows == 0
    rest = (
        "classify and group (one pass)",
        "find duplicates: uuid hashes",
        "tables from the grouping",
    )
    rest_cpu = sum(by_name[name].cpu for name in rest)
    write = by_name["write: ingest into the store"]
    assert summary["floor_cpu"] == rest_cpu + write.cpu
    # SQLite writes on one thread; the rest on the other cores meanwhile, then on all.
    cores = os.cpu_count() or 1
    alongside = write.wall * (cores - 1)
    assert summary["least_wall"] == write.wall + max(0.0, rest_cpu - alongside) / cores
    classifier = by_name["classify: every column, counted"].cpu
    classifier -= by_name["read: raw columns, counted"].cpu
    assert summary["without_classifier_cpu"] == summary["floor_cpu"] - classifier
    assert summary["without_classifier_wall"] == write.wall + (
        max(0.0, rest_cpu - classifier - alongside) / cores
    )
    out = capsys.readouterr().out
    assert "least wall time of any arrangement" in out
    assert "the classifier's logic (classify less read)" in out
