"""Test data for the HTTP service: secrets, times, and the standard two-lister data set."""

from __future__ import annotations

from collections import defaultdict
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from hypothesis import strategies as st

from tests.eventfiles import event

JWT_SECRET = "leadflow-test-jwt-secret-0123456789abcdef"
CRON_SECRET = "leadflow-test-cron-secret"

T0 = datetime(2025, 5, 1, 10, 0, tzinfo=UTC)


# lister-a owns listing-1 and listing-2, lister-b owns listing-3. seeker-1 calls listing-1
# twice and messages it on WhatsApp; seeker-2 books an appointment on listing-2; seeker-3 calls
# listing-3 (lister-b's). Views over two days.


def at(hours: float) -> datetime:
    return T0 + timedelta(hours=hours)


def standard_events() -> list[dict[str, Any]]:
    a = {"lister_id": "lister-a", "lister_type": "agent"}
    b = {"lister_id": "lister-b", "lister_type": "agency"}
    events = [
        event("l1", "lead_phone", at(0.1), "listing-1", "seeker-1", **a),
        event("l2", "lead_phone", at(0.5), "listing-1", "seeker-1", **a),
        event("l3", "lead_message", at(26), "listing-1", "seeker-1", message_type="whatsapp", **a),
        event(
            "l4", "lead_appointment", at(3), "listing-2", "seeker-2", appointment_type="visit", **a
        ),
        event("l5", "lead_phone", at(1), "listing-3", "seeker-3", **b),
        event("l6", "lead_message", at(2), "listing-3", "seeker-1", message_type="email", **b),
    ]
    for i in range(12):
        seeker = f"seeker-{i % 4 + 1}"
        events.append(event(f"v1-{i}", "property_view", at(i * 2.5), "listing-1", seeker, **a))
        events.append(event(f"v3-{i}", "property_view", at(i * 3.1), "listing-3", seeker, **b))
    events.append(event("v2-0", "property_view", at(2.9), "listing-2", "seeker-2", **a))
    events.append(
        event("s1", "listing_share", at(4), "listing-1", "seeker-2", platform="whatsapp", **a)
    )
    events.append(event("i1", "listing_impression", at(4), "listing-1", "seeker-4", **a))
    return events


# -- an independent, per-event reading of time buckets ------------------------------------------


@st.composite
def listing_events(draw: st.DrawFn) -> list[tuple[str, str, datetime]]:
    """(kind, seeker, time) of views and leads of one listing over four days around a DST change."""
    start = datetime(2025, 3, 28, tzinfo=UTC)
    return draw(
        st.lists(
            st.tuples(
                st.sampled_from(["view", "view", "lead"]),
                st.sampled_from(["s1", "s2", "s3", "s4"]),
                st.integers(0, 4 * 24 * 60 - 1).map(lambda m: start + timedelta(minutes=m)),
            ),
            min_size=1,
            max_size=40,
        )
    )


def per_event_buckets(
    events: list[tuple[str, str, datetime]], granularity: str, zone: ZoneInfo
) -> dict[str, dict[str, Any]]:
    """Per bucket start (local ISO): views, leads and distinct seekers, event by event."""
    buckets: dict[str, dict] = defaultdict(
        lambda: {"views": 0, "leads": 0, "viewers": set(), "contacts": set()}
    )
    for kind, seeker, moment in events:
        local = moment.replace(minute=0).astimezone(zone)
        if granularity == "hour":
            key = local
        else:
            day = local.date()
            if granularity == "week":
                day -= timedelta(days=day.weekday())
            if granularity == "month":
                day = day.replace(day=1)
            key = datetime(day.year, day.month, day.day, tzinfo=zone)
        bucket = buckets[key.isoformat()]
        bucket["views" if kind == "view" else "leads"] += 1
        bucket["viewers" if kind == "view" else "contacts"].add(seeker)
    return buckets
