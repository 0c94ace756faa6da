"""DESIGN.md §5's invariants, as properties over random event streams.

Every property compares leadflow's tables with an independent per-event implementation
(bench/baseline.py) reading the same files, and with leadflow's own single run.
"""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bench.baseline import canonical, compute
from leadflow.errors import RunFailed
from leadflow.pipeline import WRITE_STEPS
from tests.eventfiles import LISTERS, NAMES, event, write_jsonl, write_parquet

T0 = datetime(2025, 3, 1, tzinfo=UTC)

PROPERTY = settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


@st.composite
def raw_event(draw: st.DrawFn, index: int) -> dict[str, Any] | str:
    if draw(st.integers(0, 40)) == 0:
        return draw(st.sampled_from(["not json", '{"uuid": "half', "[]", "42"]))
    name = draw(st.sampled_from(NAMES))
    listing = draw(st.sampled_from(["L1", "L2", "L3", 7, None, {"x": 1}]))
    at = T0 + timedelta(minutes=draw(st.integers(0, 3 * 24 * 60)))
    props: dict[str, Any] = {}
    for key, values in (
        ("message_type", [None, "whatsapp", "direct_message", "email", "fax"]),
        ("lead_type", [None, "phone", "message", "appointment", "website", "bogus"]),
        ("appointment_type", [None, "video", "in_person"]),
        ("platform", [None, "whatsapp", "x"]),
        ("action", [None, None, "remove"]),
        ("lister_type", [None, "agent", "developer"]),
    ):
        value = draw(st.sampled_from(values))
        if value is not None:
            props[key] = value
    lister = draw(st.sampled_from(LISTERS))
    if lister is not None:
        props["lister_id"] = lister
    seeker = draw(st.sampled_from(["s1", "s2", "s3", "s4", None]))
    timestamp: datetime | str = at if draw(st.integers(0, 30)) else "not a time"
    return event(
        f"e{index}", name, timestamp, listing, seeker, distinct_id=f"d{index % 5}", **props
    )


@st.composite
def event_stream(draw: st.DrawFn) -> list[dict[str, Any] | str]:
    size = draw(st.integers(1, 60))
    events = [draw(raw_event(i)) for i in range(size)]
    # Duplicates: the same event delivered again, anywhere in the stream.
    for _ in range(draw(st.integers(0, 5))):
        original = draw(st.sampled_from(events))
        events.insert(draw(st.integers(0, len(events))), original)
    return events


def _lines(events: list[dict[str, Any] | str]) -> int:
    return len(events)


def _write(folder: Path, name: str, events: list[dict[str, Any] | str], fmt: str) -> Path:
    if fmt == "parquet":
        rows = [e for e in events if isinstance(e, dict)]
        return write_parquet(folder / f"{name}.parquet", rows)
    return write_jsonl(folder / f"{name}.{fmt}", events)


def _readable(events: list[dict[str, Any] | str], fmt: str) -> list[dict[str, Any] | str]:
    return [e for e in events if isinstance(e, dict)] if fmt == "parquet" else events


@PROPERTY
@given(
    events=event_stream(),
    parts=st.integers(1, 6),
    data=st.data(),
    fmt=st.sampled_from(["jsonl", "jsonl.gz", "parquet"]),
    slice_events=st.sampled_from([3, 20, 3_000_000]),
    on_disk=st.booleans(),
)
def test_split_runs_equal_one_run_and_the_independent_reading(
    make_store, tmp_path_factory, events, parts, data, fmt, slice_events, on_disk
):
    events = _readable(events, fmt)
    settings = {"slice_events": slice_events}
    if on_disk:  # as a large batch is: staged in a DuckDB file rather than in memory
        settings["engine_in_memory_max_bytes"] = 0
    root = tmp_path_factory.mktemp("split")
    single_file = _write(root / "single", "all", events, fmt)
    single = make_store()
    one = single.run(single_file, **settings)
    expected = canonical(compute([single_file]))
    assert single.snapshot() == expected

    # Conservation: every event read is accepted or rejected for one reason.
    assert one.events_read == _lines(events) == one.events_accepted + sum(one.rejected.values())

    # Deliver the same events as several files, in a random arrival order, one run per file.
    assignment = [data.draw(st.integers(0, parts - 1)) for _ in events]
    order = data.draw(st.permutations(range(parts)))
    split = make_store()
    read = 0
    folder = root / "export"
    for position, part in enumerate(order):
        batch = [e for e, p in zip(events, assignment, strict=True) if p == part]
        _write(folder, f"{position:02d}", batch, fmt)
        summary = split.run(folder, **settings)
        assert summary.events_read == summary.events_accepted + sum(summary.rejected.values())
        read += summary.events_read
    assert read == _lines(events)
    assert split.snapshot() == expected

    # A run records at most one lead per (seeker, listing).
    per_run = Counter((r["run_id"], r["listing_id"], r["seeker_id"]) for r in split.rows("leads"))
    assert all(n == 1 for n in per_run.values())

    # Idempotence: running again over the same files changes nothing.
    leads_before = split.count("leads")
    again = split.run(folder, **settings)
    assert again.events_read == 0 and split.count("leads") == leads_before
    assert split.snapshot() == expected


class InjectedFault(Exception):
    pass


def _fault_at(step: str, occurrence: int):
    seen: Counter[str] = Counter()

    def hook(name: str) -> None:
        seen[name] += 1
        if name == step and seen[name] == occurrence:
            raise InjectedFault(f"injected at {step} #{occurrence}")

    return hook


@PROPERTY
@given(
    events=event_stream(),
    step=st.sampled_from(WRITE_STEPS),
    occurrence=st.integers(1, 3),
    slice_events=st.sampled_from([2, 10, 3_000_000]),
)
def test_a_run_failing_at_any_write_step_is_completed_exactly_once_by_the_next(
    make_store, tmp_path_factory, events, step, occurrence, slice_events
):
    folder = tmp_path_factory.mktemp("crash") / "export"
    path = write_jsonl(folder / "events.jsonl", events)
    expected = canonical(compute([path]))

    store = make_store()
    try:
        store.run(folder, fault=_fault_at(step, occurrence), slice_events=slice_events)
    except RunFailed as failure:
        assert "injected" in str(failure)
        runs = store.rows("cron_runs")
        assert runs[-1]["status"] == "failed" and "injected" in runs[-1]["error"]
        if occurrence == 1:
            # Nothing of the failed first slice is left behind.
            for table in ("leads", "listing_analytics", "listings", "source_files", "lead_events"):
                assert store.count(table) == 0, table
    store.run(folder, slice_events=slice_events)
    assert store.snapshot() == expected
    store.run(folder, slice_events=slice_events)
    assert store.snapshot() == expected


def test_seed_example_holds_as_a_property_of_any_split(make_store, tmp_path):
    """DESIGN.md §5.5, delivered as one file and as two."""
    calls = [
        event("c1", "lead_phone", T0 + timedelta(minutes=5), "L1", "s1"),
        event("c2", "lead_phone", T0 + timedelta(minutes=50), "L1", "s1"),
    ]
    for files in ([calls], [calls[:1], calls[1:]]):
        store = make_store()
        folder = tmp_path / f"split-{len(files)}"
        for i, part in enumerate(files):
            write_jsonl(folder / f"{i}.jsonl", part)
            store.run(folder)
        (group,) = store.snapshot()["lead_groups"]
        assert group[2] == 60 and len(group[3]) == 2
        (row,) = store.rows("listing_analytics")
        assert (row["phone_leads"], row["total_leads"], row["unique_leads"]) == (2, 2, 1)


@pytest.mark.parametrize("step", WRITE_STEPS)
def test_failure_in_a_later_slice_keeps_earlier_slices_and_resumes(make_store, tmp_path, step):
    events = [
        event(f"e{i}", "lead_phone", T0 + timedelta(hours=i), "L1", f"s{i % 2}") for i in range(9)
    ]
    folder = tmp_path / "export"
    path = write_jsonl(folder / "events.jsonl", events)
    store = make_store()
    occurrence = 1 if step == "leads" else 2
    with pytest.raises(RunFailed):
        store.run(folder, fault=_fault_at(step, occurrence), slice_events=3)
    if step != "leads":
        (ledger,) = store.rows("source_files")
        assert not ledger["done"] and ledger["processed_through"] == T0 + timedelta(hours=3)
        assert store.count("listing_analytics") == 3
    resumed = store.run(folder, slice_events=3)
    assert store.snapshot() == canonical(compute([path]))
    assert resumed.leads_inserted == (2 if step == "leads" else 0)


def test_the_ledger_closes_each_file_in_the_slice_that_writes_its_last_hour(make_store, tmp_path):
    """A file is done once the slices have written its last hour; the ones still open record how
    far the hours are written, which is where a crashed run resumes them."""
    early = [event(f"a{i}", "property_view", T0 + timedelta(hours=i), "L", "s1") for i in range(3)]
    late = [event(f"b{i}", "property_view", T0 + timedelta(hours=i), "L", "s2") for i in range(9)]
    folder = tmp_path / "export"
    paths = [write_jsonl(folder / "early.jsonl", early), write_jsonl(folder / "late.jsonl", late)]

    def ledger(store):
        return {
            Path(r["path"]).name: (r["done"], r["processed_through"], r["events"])
            for r in store.rows("source_files")
        }

    store = make_store()
    with pytest.raises(RunFailed):
        # Slices of at most 4 events: hours 0-1, 2-4 and 5-8; the third fails. The early file
        # is done in the second slice, which writes its last hour.
        store.run(folder, fault=_fault_at("run_record", 3), slice_events=4)
    assert ledger(store) == {
        "early.jsonl": (True, T0 + timedelta(hours=5), 3),
        "late.jsonl": (False, T0 + timedelta(hours=5), 9),
    }
    store.run(folder, slice_events=4)
    assert ledger(store) == {
        "early.jsonl": (True, T0 + timedelta(hours=5), 3),
        "late.jsonl": (True, T0 + timedelta(hours=9), 9),
    }
    assert store.snapshot() == canonical(compute(paths))
