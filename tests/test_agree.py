"""`python -m bench.agree`: leadflow's tables against the independent reading, on any export."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from bench import agree
from bench import baseline as oracle
from tests.eventfiles import event, write_jsonl, write_parquet

T0 = datetime(2025, 5, 1, 10, 0, tzinfo=UTC)


def at(minutes: float) -> datetime:
    return T0 + timedelta(minutes=minutes)


@pytest.fixture
def export(tmp_path):
    """Three files in delivery order, with a late event and a copy delivered again."""
    folder = tmp_path / "export"
    phone = event("u1", "lead_phone", at(5), "L1", "s1", lister_id="a")
    write_jsonl(folder / "1.jsonl", [event("v1", "property_view", at(1), "L1", "s1"), phone])
    write_parquet(
        folder / "2.parquet",
        [
            event("v2", "listing_view", at(70), "L2", "s2"),
            event("m1", "lead_message", at(75), "L2", "s2"),
        ],
    )
    # A late event of the first hour, and the phone call delivered again.
    write_jsonl(folder / "3.jsonl", [event("v3", "property_view", at(30), "L1", "s3"), phone])
    return folder


def test_agreeing_tables_exit_zero(export, capsys):
    assert agree.main([str(export), "--deliveries", "3"]) == 0
    out = capsys.readouterr().out
    assert "one run: agrees" in out
    assert "3 deliveries and a repeated run: agrees" in out
    assert out.count("delivery: 1 new file(s)") == 3


def test_a_difference_is_shown_and_exits_one(export, capsys, monkeypatch):
    """An independent reading that counts one view more than leadflow stores is reported, with
    the rows that differ on each side."""

    def one_view_more(paths):
        tables = oracle.compute(paths)
        key = min(tables.analytics)
        tables.analytics[key]["total_views"] += 1
        return tables

    monkeypatch.setattr(agree, "compute", one_view_more)
    assert agree.main([str(export)]) == 1
    out = capsys.readouterr().out
    assert "one run: DIFFERS" in out
    assert "listing_analytics: " in out
    assert "only in the independent reading: ('L1', '2025-05-01', 10, 3," in out
    assert "only in leadflow's store:        ('L1', '2025-05-01', 10, 2," in out
