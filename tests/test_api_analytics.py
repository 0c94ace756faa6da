"""Analytics over HTTP: time buckets in any time zone with exact uniques, totals, summaries."""

from __future__ import annotations

import csv
import io
import itertools
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import text

from tests.apidata import at, listing_events, per_event_buckets
from tests.eventfiles import event

pytest_plugins = ("tests.apiserver",)

A = {"lister_id": "lister-a"}


def series(client, listing: str, **params) -> dict:
    response = client.get(f"/api/listings/{listing}/analytics", params=params)
    assert response.status_code == 200, response.text
    return response.json()


def test_a_day_counts_distinct_seekers_not_the_sum_of_hourly_uniques(api):
    api.seed(
        [
            event("v1", "property_view", at(0), "listing-5", "ana", **A),
            event("v2", "property_view", at(1), "listing-5", "ana", **A),
            event("v3", "property_view", at(1.5), "listing-5", "ben", **A),
            event("p1", "lead_phone", at(0.2), "listing-5", "ana", **A),
            event("p2", "lead_phone", at(1.2), "listing-5", "ana", **A),
        ]
    )
    client = api.lister("lister-a")
    hours = series(
        client,
        "listing-5",
        **{"from": "2025-05-01T10:00Z", "to": "2025-05-01T12:00Z"},
        granularity="hour",
    )["buckets"]
    assert [(b["unique_views"], b["unique_leads"]) for b in hours] == [(1, 1), (2, 1)]

    day = series(client, "listing-5", **{"from": "2025-05-01", "to": "2025-05-02"})
    (bucket,) = day["buckets"]
    assert bucket["start"] == "2025-05-01T00:00:00Z"
    assert (bucket["total_views"], bucket["unique_views"]) == (3, 2)  # hourly uniques sum to 3
    assert (bucket["total_leads"], bucket["phone_leads"], bucket["unique_leads"]) == (2, 2, 1)
    # Conversion from the summed counts (2/3), not the mean of the hourly rates (100 % and 50 %).
    assert bucket["conversion_rate"] == round(200 / 3, 4)
    assert day["totals"] == {k: v for k, v in bucket.items() if k != "start"}


def test_buckets_are_local_days_and_half_hour_zones_bucket_an_hour_by_its_start(api):
    # 18:10 and 18:40 UTC are 23:40 and 00:10 in India (UTC+05:30): one UTC hour starting at
    # 23:30 local time, so both count in the earlier local day.
    late = datetime(2025, 5, 1, 18, 10, tzinfo=UTC)
    api.seed(
        [
            event("k1", "property_view", late, "listing-6", "ana", **A),
            event("k2", "property_view", late + timedelta(minutes=30), "listing-6", "ben", **A),
            event("k3", "property_view", late + timedelta(hours=1), "listing-6", "ana", **A),
        ]
    )
    day = series(
        api.admin(), "listing-6", **{"from": "2025-05-01", "to": "2025-05-03"}, tz="Asia/Kolkata"
    )
    assert day["from"] == "2025-05-01T00:00:00+05:30"
    assert [(b["start"], b["total_views"], b["unique_views"]) for b in day["buckets"]] == [
        ("2025-05-01T00:00:00+05:30", 2, 2),
        ("2025-05-02T00:00:00+05:30", 1, 1),
    ]
    hours = series(
        api.admin(),
        "listing-6",
        **{"from": "2025-05-01T23:00", "to": "2025-05-02T02:00"},
        tz="Asia/Kolkata",
        granularity="hour",
    )
    # The range's hours are the UTC hours starting in it: 23:30, 00:30, 01:30 local time.
    assert [(b["start"], b["total_views"]) for b in hours["buckets"]] == [
        ("2025-05-01T23:30:00+05:30", 2),
        ("2025-05-02T00:30:00+05:30", 1),
        ("2025-05-02T01:30:00+05:30", 0),
    ]


def test_a_daylight_saving_day_has_23_hours_and_weeks_start_on_monday(api):
    start = datetime(2025, 3, 28, 0, tzinfo=UTC)
    api.seed(
        [
            event(
                f"h{i}", "property_view", start + timedelta(hours=i), "listing-7", f"s{i % 5}", **A
            )
            for i in range(24 * 6)
        ]
    )
    days = series(
        api.admin(), "listing-7", **{"from": "2025-03-29", "to": "2025-04-01"}, tz="Europe/Madrid"
    )
    assert [(b["start"], b["total_views"], b["unique_views"]) for b in days["buckets"]] == [
        ("2025-03-29T00:00:00+01:00", 24, 5),
        ("2025-03-30T00:00:00+01:00", 23, 5),  # clocks go forward at 02:00
        ("2025-03-31T00:00:00+02:00", 24, 5),
    ]
    weeks = series(
        api.admin(),
        "listing-7",
        **{"from": "2025-03-24", "to": "2025-04-07"},
        tz="Europe/Madrid",
        granularity="week",
    )
    assert [(b["start"], b["total_views"]) for b in weeks["buckets"]] == [
        ("2025-03-24T00:00:00+01:00", 24 * 3 - 1 - 1),  # from Fri 28 01:00 local to Sun 30
        ("2025-03-31T00:00:00+02:00", 24 * 6 - 70),
    ]
    assert sum(b["total_views"] for b in weeks["buckets"]) == 24 * 6
    months = series(
        api.admin(),
        "listing-7",
        **{"from": "2025-03-01", "to": "2025-05-01"},
        tz="Europe/Madrid",
        granularity="month",
    )
    assert [b["start"] for b in months["buckets"]] == [
        "2025-03-01T00:00:00+01:00",
        "2025-04-01T00:00:00+02:00",
    ]
    assert months["totals"]["unique_views"] == 5


def test_every_bucket_of_the_range_is_there_even_without_events(api):
    days = series(api.admin(), "listing-2", **{"from": "2025-04-28", "to": "2025-05-05"})
    assert len(days["buckets"]) == 7
    assert [b["total_views"] for b in days["buckets"]] == [0, 0, 0, 1, 0, 0, 0]


def test_without_per_hour_identities_only_hourly_uniques_are_given(api):
    with api.store.engine.begin() as conn:
        conn.execute(text("DROP TABLE listing_hour_seekers"))
    client = api.admin()
    days = series(client, "listing-1", **{"from": "2025-05-01", "to": "2025-05-03"})
    assert {(b["unique_views"], b["unique_leads"]) for b in days["buckets"]} == {(None, None)}
    assert days["buckets"][0]["total_views"] > 0
    hours = series(
        client,
        "listing-1",
        **{"from": "2025-05-01T10:00Z", "to": "2025-05-01T13:00Z"},
        granularity="hour",
    )
    assert [b["unique_views"] for b in hours["buckets"]] == [1, 0, 1]


def test_bad_ranges_zones_and_granularities_are_422s_that_say_what_is_wrong(api):
    client = api.admin()
    url = "/api/listings/listing-1/analytics"
    cases = [
        ({"tz": "Mars/Olympus"}, "query.tz: unknown time zone 'Mars/Olympus'"),
        ({"tz": "../../etc/passwd"}, "unknown time zone"),
        ({"granularity": "year"}, "query.granularity"),
        ({"from": "2025-05-02", "to": "2025-05-01"}, "query.from: must be before `to`"),
        ({"from": "2025-05-01", "to": "2025-05-01"}, "must be before"),
        ({"from": "0001-01-01"}, "query.from: must be between 1970 and 2200"),
        ({"to": "9999-12-31T23:59:59"}, "query.to: must be between"),
        ({"from": "yesterday"}, "query.from"),
        ({"from": "2015-01-01", "to": "2025-01-01"}, "at most"),
        ({"from": "2024-01-01", "to": "2025-06-01", "granularity": "hour"}, "coarser"),
    ]
    for params, needle in cases:
        response = client.get(url, params=params)
        assert response.status_code == 422, (params, response.text)
        assert needle in response.json()["detail"], (params, response.json())


def test_a_listing_has_its_all_time_totals_and_breakdowns(api):
    listing = api.lister("lister-a").get("/api/listings/listing-1").json()
    assert listing["lister_id"] == "lister-a"
    assert (listing["total_views"], listing["unique_views"]) == (12, 4)
    assert (listing["total_leads"], listing["phone_leads"], listing["message_leads"]) == (3, 2, 1)
    assert listing["unique_leads"] == 1 and listing["conversion_rate"] == 25.0
    assert listing["leads_breakdown"]["whatsapp"] == 1 and listing["share_breakdown"] == {
        "whatsapp": 1
    }
    missing = api.admin().get("/api/listings/listing-404")
    assert missing.status_code == 404 and missing.json()["detail"] == "no listing 'listing-404'"


def test_a_lister_summary_totals_their_listings_over_the_range(api):
    summary = api.lister("lister-a").get(
        "/api/listers/lister-a/summary", params={"from": "2025-05-01", "to": "2025-05-03"}
    )
    assert summary.status_code == 200, summary.text
    body = summary.json()
    assert body["listings"] == 2
    totals = body["totals"]
    assert (totals["total_views"], totals["total_leads"]) == (13, 4)
    # seeker-1..4 viewed listing-1, seeker-2 also listing-2: 4 distinct viewers, not 4 + 1.
    assert (totals["unique_views"], totals["unique_leads"]) == (4, 2)
    assert totals["conversion_rate"] == round(4 * 100 / 13, 4)
    assert body["leads_by_channel"] == {
        "phone": 2,
        "whatsapp": 1,
        "direct_message": 0,
        "email": 0,
        "appointment": 1,
        "website": 0,
    }
    assert body["leads_by_status"] == {"new": 2}
    assert [t["listing_id"] for t in body["top_listings"]] == ["listing-1", "listing-2"]
    assert body["top_listings"][0] == {
        "listing_id": "listing-1",
        "total_views": 12,
        "total_leads": 3,
        "conversion_rate": 25.0,
    }
    first_hours = (
        api.lister("lister-a")
        .get(
            "/api/listers/lister-a/summary",
            params={"from": "2025-05-01T10:00Z", "to": "2025-05-01T11:00Z", "top": 1},
        )
        .json()
    )
    assert first_hours["totals"]["total_leads"] == 2 and len(first_hours["top_listings"]) == 1
    empty = (
        api.lister("lister-a")
        .get("/api/listers/lister-a/summary", params={"from": "2020-01-01", "to": "2020-02-01"})
        .json()
    )
    assert empty["listings"] == 0 and empty["totals"]["unique_views"] == 0
    assert api.admin().get("/api/listers/nobody/summary").status_code == 404


def test_analytics_series_export_as_csv(api):
    response = api.lister("lister-a").get(
        "/api/listings/listing-1/analytics.csv",
        params={"from": "2025-05-01", "to": "2025-05-03", "tz": "America/New_York"},
    )
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(response.text)))
    assert [r["start"] for r in rows] == ["2025-05-01T00:00:00-04:00", "2025-05-02T00:00:00-04:00"]
    assert sum(int(r["total_views"]) for r in rows) == 12
    assert set(rows[0]) >= {"unique_views", "unique_leads", "conversion_rate", "phone_leads"}


# -- property: the API's buckets equal a per-event reading of the same events ------------------

ZONES = ["UTC", "Europe/Madrid", "Asia/Kolkata", "America/New_York", "Australia/Adelaide"]
_listings = itertools.count()


@settings(
    max_examples=6,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    events=listing_events(),
    zone=st.sampled_from(ZONES),
    granularity=st.sampled_from(["hour", "day", "week", "month"]),
)
def test_buckets_equal_a_per_event_reading_in_any_zone(api, events, zone, granularity):
    # One service for every example; each example writes its own listing.
    listing = f"prop-{next(_listings)}"
    api.seed(
        [
            event(
                f"{listing}-{i}",
                "property_view" if kind == "view" else "lead_phone",
                moment,
                listing,
                seeker,
                **A,
            )
            for i, (kind, seeker, moment) in enumerate(events)
        ]
    )
    body = series(
        api.admin(),
        listing,
        **{"from": "2025-03-20", "to": "2025-04-10"},
        tz=zone,
        granularity=granularity,
    )
    expected = per_event_buckets(events, granularity, ZoneInfo(zone))
    got = {b["start"]: b for b in body["buckets"] if b["total_views"] or b["total_leads"]}
    assert sorted(got) == sorted(
        datetime.fromisoformat(k).isoformat().replace("+00:00", "Z") for k in expected
    )
    for key, want in expected.items():
        bucket = got[datetime.fromisoformat(key).isoformat().replace("+00:00", "Z")]
        assert (bucket["total_views"], bucket["total_leads"]) == (want["views"], want["leads"])
        assert bucket["unique_views"] == len(want["viewers"])
        assert bucket["unique_leads"] == len(want["contacts"])
        rate = want["leads"] * 100 / want["views"] if want["views"] else 0
        assert bucket["conversion_rate"] == round(rate, 4)
    all_viewers = {s for k, s, _ in events if k == "view"}
    assert body["totals"]["unique_views"] == len(all_viewers)
    assert body["totals"]["total_views"] == sum(1 for k, _, _ in events if k == "view")
