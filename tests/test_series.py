"""Time buckets in any zone (leadflow.transform.series) against a per-event reading."""

from __future__ import annotations

from collections import defaultdict
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
from zoneinfo import ZoneInfo

from hypothesis import given
from hypothesis import strategies as st

from leadflow.transform.series import SUMMED_COUNTERS, bucket_start, roll_up
from tests.apidata import listing_events, per_event_buckets

ZONES = ["UTC", "Europe/Madrid", "Asia/Kolkata", "America/St_Johns", "Pacific/Chatham"]
START = datetime(2025, 3, 20, tzinfo=UTC)
END = datetime(2025, 4, 10, tzinfo=UTC)


def hourly(events):
    """listing_analytics rows and per-hour identities of the events, as the pipeline keeps them."""
    rows: dict[datetime, dict] = defaultdict(
        lambda: {**dict.fromkeys(SUMMED_COUNTERS, 0), "views": set(), "leads": set()}
    )
    for kind, seeker, moment in events:
        row = rows[moment.replace(minute=0, second=0)]
        row["total_views" if kind == "view" else "total_leads"] += 1
        row["views" if kind == "view" else "leads"].add(seeker)
    hours = [
        SimpleNamespace(
            date=hour.date(),
            hour=hour.hour,
            **{c: row[c] for c in SUMMED_COUNTERS},
            unique_views=len(row["views"]),
            unique_leads=len(row["leads"]),
        )
        for hour, row in sorted(rows.items())
    ]
    seekers = [
        (hour.date(), hour.hour, kind, seeker)
        for hour, row in rows.items()
        for kind, key in (("view", "views"), ("lead", "leads"))
        for seeker in row[key]
    ]
    return hours, seekers


@given(
    events=listing_events(),
    zone=st.sampled_from(ZONES),
    granularity=st.sampled_from(["hour", "day", "week", "month"]),
)
def test_buckets_equal_a_per_event_reading(events, zone, granularity):
    hours, seekers = hourly(events)
    buckets, total = roll_up(hours, seekers, START, END, granularity, ZoneInfo(zone))
    expected = per_event_buckets(events, granularity, ZoneInfo(zone))
    got = {
        b.start.isoformat(): b
        for b in buckets
        if b.counts["total_views"] or b.counts["total_leads"]
    }
    assert sorted(got) == sorted(expected)
    for key, want in expected.items():
        bucket = got[key]
        assert bucket.counts["total_views"] == want["views"]
        assert bucket.counts["total_leads"] == want["leads"]
        assert (bucket.unique_views, bucket.unique_leads) == (
            len(want["viewers"]),
            len(want["contacts"]),
        )
    assert total.unique_views == len({s for k, s, _ in events if k == "view"})
    # Every bucket of the range is there, in order, empty or not.
    starts = [b.start for b in buckets]
    assert starts == sorted(set(starts))
    assert starts[0] == bucket_start(START, granularity, ZoneInfo(zone))


def test_unknown_identities_give_no_unique_count_rather_than_a_wrong_one():
    moment = datetime(2025, 5, 1, 10, tzinfo=UTC)
    hours, seekers = hourly([("view", "a", moment), ("view", "b", moment + timedelta(hours=1))])
    day = dict(start=moment.replace(hour=0), end=moment.replace(hour=0) + timedelta(days=1))
    (bucket,), _ = roll_up(hours, seekers[:1], day["start"], day["end"], "day", ZoneInfo("UTC"))
    assert bucket.unique_views is None and bucket.counts["total_views"] == 2
    (bucket,), _ = roll_up(hours, None, day["start"], day["end"], "day", ZoneInfo("UTC"))
    assert bucket.unique_views is None
    (bucket,), _ = roll_up(hours, seekers, day["start"], day["end"], "day", ZoneInfo("UTC"))
    assert bucket.unique_views == 2
