"""The PostHog source end to end, over real HTTP against the local PostHog stand-in (ClickHouse).

The reference for every table is the file source over the same events (itself checked against
the independent per-event reading in test_invariants.py): the two sources must not drift.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import select

from leadflow.errors import RunFailed
from leadflow.pipeline import POSTHOG, WRITE_STEPS
from leadflow.sources.local_posthog import Fault
from leadflow.store.schema import cron_runs
from tests.conftest import Store
from tests.posthogdata import (
    START,
    file_canonical,
    local_posthog,
    ph_event,
    random_events,
    run_posthog,
)

# A backfill of four days of ingestion, committed in five or six slices whatever the hour of the
# day the tests run at (the days start at midnight UTC; the events end at the current hour).
BACKFILL = random_events(seed=3, count=100, hours=96)
SLICED = {"posthog_slice_events": 10}
# Two days of ingestion, in two or three slices.
CRASH = random_events(seed=8, count=40, hours=44)


@pytest.fixture
def sqlite_store(tmp_path: Path) -> Iterator[Store]:
    store = Store(f"sqlite:///{tmp_path / 'posthog.db'}", "sqlite")
    yield store
    store.engine.dispose()


@pytest.fixture(scope="module")
def backfill_expected(tmp_path_factory: pytest.TempPathFactory) -> Any:
    return file_canonical(tmp_path_factory.mktemp("backfill"), BACKFILL)


def _runs(store: Store) -> list[dict[str, Any]]:
    with store.engine.connect() as conn:
        return [dict(r._mapping) for r in conn.execute(select(cron_runs).order_by(cron_runs.c.id))]


# -- the same tables as the file source -----------------------------------------------------------


@settings(
    max_examples=3,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(seed=st.integers(0, 10_000), count=st.integers(1, 120), pages=st.sampled_from([9, 50]))
def test_posthog_and_file_sources_make_identical_tables(
    make_store, tmp_path_factory, seed, count, pages
):
    events = random_events(seed, count)
    # Some events delivered twice: once, and again in a later insert (an unmerged duplicate).
    again = events[: count // 10]
    expected = file_canonical(tmp_path_factory.mktemp("equivalence"), [*events, *again])
    store = make_store()
    with local_posthog(events) as local:
        local.add_events(again)
        summary = run_posthog(store, local, posthog_page_rows=pages)
    assert store.snapshot() == expected
    # Conservation: every event of a listing kind read is accepted or rejected for one reason.
    assert summary.events_read == summary.events_accepted + sum(summary.rejected.values())
    assert summary.events_read == sum(1 for e in [*events, *again] if e["event"] != "$autocapture")


def test_the_seed_example_one_seeker_calling_twice_is_one_lead_with_score_60(sqlite_store):
    calls = [
        ph_event(1, "lead_phone", START + timedelta(minutes=5), "L1", "s1"),
        ph_event(2, "lead_phone", START + timedelta(minutes=9), "L1", "s1"),
    ]
    with local_posthog(calls) as local:
        summary = run_posthog(sqlite_store, local)
    assert summary.leads_inserted == 1
    [lead] = sqlite_store.rows("leads")
    assert (lead["total_actions"], lead["lead_score"]) == (2, 60)
    [hour] = sqlite_store.rows("listing_analytics")
    assert (hour["phone_leads"], hour["total_leads"], hour["unique_leads"]) == (2, 2, 1)


def test_a_project_time_zone_does_not_shift_hours(sqlite_store, tmp_path):
    """The client asks for UTC (convertToProjectTimezone: false) whatever the project's zone."""
    events = random_events(seed=11, count=60)
    expected = file_canonical(tmp_path, events)
    with local_posthog(events, timezone="Asia/Kolkata") as local:
        run_posthog(sqlite_store, local)
    assert sqlite_store.snapshot() == expected


# -- incremental reading --------------------------------------------------------------------------


def test_late_events_are_counted_on_the_next_run(sqlite_store, tmp_path):
    early = random_events(seed=5, count=80, late=0.0)
    hour = START + timedelta(hours=5)
    names = ["property_view", "lead_phone", "listing_share", "property_view"]
    with local_posthog(early) as local:
        first = run_posthog(sqlite_store, local)
        before = {
            (r["listing_id"], r["date"], r["hour"]): r
            for r in sqlite_store.rows("listing_analytics")
        }
        # Delivered after their hour was processed: an old event time, a new ingestion time.
        at = datetime.now(UTC)
        late = [
            ph_event(10_000 + i, name, hour + timedelta(minutes=i), "L1", f"late-{i}", created=at)
            for i, name in enumerate(names)
        ]
        local.add_events(late)
        second = run_posthog(sqlite_store, local)
        third = run_posthog(sqlite_store, local)
    assert first.events_read == sum(1 for e in early if e["event"] != "$autocapture")
    assert (second.events_read, second.leads_inserted) == (4, 1)
    assert (third.events_read, third.leads_inserted) == (0, 0)
    assert sqlite_store.snapshot() == file_canonical(tmp_path, [*early, *late])
    key = ("L1", hour.date(), hour.hour)
    after = {
        (r["listing_id"], r["date"], r["hour"]): r for r in sqlite_store.rows("listing_analytics")
    }
    old_views = before[key]["total_views"] if key in before else 0
    assert after[key]["total_views"] == old_views + 2


def test_runs_read_from_the_watermark_less_the_overlap(sqlite_store):
    with local_posthog(random_events(seed=9, count=30)) as local:
        first = run_posthog(sqlite_store, local, posthog_overlap_minutes=60)
        second = run_posthog(sqlite_store, local, posthog_overlap_minutes=60)
    assert first.window_end is not None and second.window_start is not None
    assert second.window_start == first.window_end - timedelta(minutes=60)
    assert abs(first.window_start - (first.window_end - timedelta(days=365))) < timedelta(minutes=1)
    runs = _runs(sqlite_store)
    assert [r["source"] for r in runs] == [POSTHOG, POSTHOG]
    assert all(r["status"] == "succeeded" for r in runs)


def test_a_duplicate_lead_ingested_again_later_is_recorded_once(sqlite_store):
    call = ph_event(1, "lead_phone", START, "L1", "s1")
    with local_posthog([call]) as local:
        run_posthog(sqlite_store, local)
        local.add_events([{**call, "created_at": datetime.now(UTC).isoformat()}])
        second = run_posthog(sqlite_store, local)
    assert second.leads_inserted == 0 and second.rejected == {"duplicate": 1}
    assert sqlite_store.count("lead_events") == 1
    [hour] = sqlite_store.rows("listing_analytics")
    assert hour["phone_leads"] == 1


# -- faults mid-backfill --------------------------------------------------------------------------

FAULTS = {
    "429 with Retry-After": Fault("throttle", retry_after=1, match="metrics", after=1, times=2),
    "429 without Retry-After": Fault("throttle", wait=1, match="breakdown", after=1),
    "500s": Fault("error", match="metrics", after=2, times=3),
    "dropped connections": Fault("drop", match="lead events", after=1, times=2),
    "slow answers": Fault("slow", delay=3.0, match="metrics", after=1, times=2),
    "execution time limit": Fault("timeout", match="metrics", after=1, times=2),
    "a cached answer": Fault("cached", match="census"),
}


@pytest.mark.parametrize("name", FAULTS)
def test_a_fault_mid_backfill_ends_in_the_tables_of_a_clean_run(
    sqlite_store, backfill_expected, name
):
    fault = FAULTS[name]
    with local_posthog(BACKFILL) as local:
        local.inject(Fault(**fault.__dict__))
        timeout = {"posthog_timeout_seconds": 2.0} if fault.kind == "slow" else {}
        summary = run_posthog(sqlite_store, local, **timeout, **SLICED)
        assert summary.slices >= 3
        assert any(r.fault == fault.kind for r in local.requests)
    assert summary.stopped is None
    assert sqlite_store.snapshot() == backfill_expected
    if fault.kind == "cached":
        assert summary.warnings and "cache" in summary.warnings[0]


def test_a_run_that_fails_mid_backfill_keeps_its_slices_and_the_next_resumes(
    sqlite_store, backfill_expected
):
    with local_posthog(BACKFILL) as local:
        # PostHog fails the second slice's metrics for longer than the client retries.
        local.inject(Fault("error", match="metrics", after=1, times=20))
        with pytest.raises(RunFailed, match="HTTP 500"):
            run_posthog(sqlite_store, local, posthog_max_retries=2, **SLICED)
        failed = _runs(sqlite_store)[-1]
        assert failed["status"] == "failed" and failed["window_end"] is not None
        assert failed["slices_done"] == 1
        local.faults.clear()
        resumed = run_posthog(sqlite_store, local, **SLICED)
    assert resumed.window_start is not None
    assert sqlite_store.snapshot() == backfill_expected
    # The two runs together read every event once (the resumed run's overlap is not counted).
    total = failed["events_read"] + resumed.events_read
    assert total == sum(1 for e in BACKFILL if e["event"] != "$autocapture")


def test_a_wait_longer_than_the_time_budget_stops_cleanly_without_moving_the_cursor(
    sqlite_store, backfill_expected
):
    with local_posthog(BACKFILL) as local:
        local.inject(Fault("throttle", retry_after=3600, wait=3600, match="metrics", after=1))
        stopped = run_posthog(sqlite_store, local, posthog_time_budget_seconds=60, **SLICED)
        assert stopped.status == "succeeded" and stopped.stopped
        assert "time budget" in stopped.stopped
        run = _runs(sqlite_store)[-1]
        assert run["slices_done"] == 1 and run["error"] == stopped.stopped
        done = run_posthog(sqlite_store, local, **SLICED)
    assert done.stopped is None
    assert sqlite_store.snapshot() == backfill_expected


def test_a_backfill_spends_at_most_its_request_budget_per_run(sqlite_store, backfill_expected):
    summaries = []
    with local_posthog(BACKFILL) as local:
        for _ in range(12):
            before = len(local.requests)
            summary = run_posthog(sqlite_store, local, posthog_request_budget=5, **SLICED)
            assert len(local.requests) - before <= 5
            summaries.append(summary)
            if summary.stopped is None:
                break
    assert len(summaries) > 2 and summaries[-1].stopped is None
    assert sqlite_store.snapshot() == backfill_expected


@pytest.mark.parametrize("step", WRITE_STEPS)
def test_a_crash_at_any_write_step_of_a_slice_leaves_no_trace_of_it(sqlite_store, tmp_path, step):
    seen: Counter[str] = Counter()

    def crash(name: str) -> None:
        seen[name] += 1
        if name == step and seen[name] == 2:
            raise RuntimeError(f"injected at {step}")

    events = CRASH
    small = {"posthog_slice_events": 10}
    with local_posthog(events) as local:
        with pytest.raises(RunFailed, match="injected"):
            run_posthog(sqlite_store, local, fault=crash, **small)
        failed = _runs(sqlite_store)[-1]
        # The first slice is committed, with its cursor; nothing of the second.
        assert failed["slices_done"] == 1 and failed["window_end"] is not None
        resumed = run_posthog(sqlite_store, local, **small)
    assert resumed.stopped is None
    assert sqlite_store.snapshot() == file_canonical(tmp_path / "file", events)


def test_a_crash_in_the_first_slice_writes_nothing(sqlite_store):
    def crash(name: str) -> None:
        if name == "run_record":
            raise RuntimeError("injected")

    with local_posthog(BACKFILL[:40]) as local, pytest.raises(RunFailed):
        run_posthog(sqlite_store, local, fault=crash, **SLICED)
    for table in ("leads", "listing_analytics", "listings", "lead_events", "listing_seekers"):
        assert sqlite_store.count(table) == 0, table
    assert _runs(sqlite_store)[-1]["window_end"] is None
