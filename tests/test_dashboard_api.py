"""The dashboard's own reads over HTTP: a lister's portfolio summed from the same hourly rows as
the per-listing API, on every store kind."""

from __future__ import annotations

import pytest

pytest_plugins = ("tests.apiserver",)

# The standard data set (tests/apidata.py): lister-a owns listing-1 and listing-2, lister-b
# owns listing-3; events from 2025-05-01 10:00 UTC over two days.
RANGE = {"from": "2025-04-30", "to": "2025-05-04"}
OWN = {"lister-a": ("listing-1", "listing-2"), "lister-b": ("listing-3",)}
SUMMED = ("total_views", "impressions", "saves", "shares", "total_leads")


def get(client, path: str, **params) -> dict:
    response = client.get(path, params=params)
    assert response.status_code == 200, response.text
    return response.json()


@pytest.mark.parametrize(
    ("tz", "granularity"),
    [("UTC", "day"), ("Europe/Madrid", "day"), ("Asia/Kolkata", "hour"), ("UTC", "week")],
)
def test_a_listers_series_is_the_sum_of_its_listings_series(api, tz, granularity):
    client = api.lister("lister-a")
    params = {**RANGE, "tz": tz, "granularity": granularity}
    lister = get(client, "/api/listers/lister-a/series", **params)
    listings = [get(client, f"/api/listings/{i}/analytics", **params) for i in OWN["lister-a"]]
    assert [b["start"] for b in lister["buckets"]] == [b["start"] for b in listings[0]["buckets"]]
    for index, bucket in enumerate(lister["buckets"]):
        for counter in SUMMED:
            assert bucket[counter] == sum(s["buckets"][index][counter] for s in listings)
        assert sum(bucket["leads_by_channel"].values()) == bucket["total_leads"]
    assert lister["totals"]["total_views"] == 13 and lister["totals"]["total_leads"] == 4
    assert lister["totals"]["leads_by_channel"] == {
        "phone": 2,
        "whatsapp": 1,
        "direct_message": 0,
        "email": 0,
        "appointment": 1,
        "website": 0,
    }
    assert lister["totals"]["conversion_rate"] == round(4 * 100 / 13, 4)


def test_the_listings_table_lists_every_listing_sorted_and_paged_on_the_server(api):
    client = api.lister("lister-a")
    page = get(client, "/api/listers/lister-a/listings", **RANGE, sort="views")
    assert page["total"] == 2
    assert [(i["listing_id"], i["total_views"], i["total_leads"]) for i in page["items"]] == [
        ("listing-1", 12, 3),
        ("listing-2", 1, 1),
    ]
    assert page["items"][1]["conversion_rate"] == 100.0
    by_conversion = get(client, "/api/listers/lister-a/listings", **RANGE, sort="conversion")
    assert by_conversion["items"][0]["listing_id"] == "listing-2"
    second = get(client, "/api/listers/lister-a/listings", **RANGE, limit=1, offset=1)
    assert [i["listing_id"] for i in second["items"]] == ["listing-2"]
    # Listings without activity in the range are there, with zeros.
    quiet = get(
        client, "/api/listers/lister-a/listings", **{"from": "2024-01-01", "to": "2024-02-01"}
    )
    assert quiet["total"] == 2 and all(i["total_views"] == 0 for i in quiet["items"])
    found = get(client, "/api/listers/lister-a/listings", **RANGE, q="ing-2")
    assert [i["listing_id"] for i in found["items"]] == ["listing-2"]


def test_shares_by_platform_over_a_range(api):
    shares = get(api.lister("lister-a"), "/api/listers/lister-a/shares", **RANGE)
    assert shares["by_platform"] == {"whatsapp": 1} and shares["total"] == 1
    assert get(api.lister("lister-b"), "/api/listers/lister-b/shares", **RANGE)["total"] == 0


def test_listers_and_me_show_a_lister_only_themself(api):
    admin = api.admin()
    assert [i["lister_id"] for i in get(admin, "/api/listers")["items"]] == [
        "lister-a",
        "lister-b",
    ]
    assert [i["lister_id"] for i in get(admin, "/api/listers", q="-b")["items"]] == ["lister-b"]
    assert get(admin, "/api/me") == {"subject": "admin-1", "role": "admin", "lister_id": None}
    lister = api.lister("lister-b")
    assert [i["lister_id"] for i in get(lister, "/api/listers")["items"]] == ["lister-b"]
    assert get(lister, "/api/me")["lister_id"] == "lister-b"
    for view in ("series", "listings", "shares"):
        assert lister.get(f"/api/listers/lister-a/{view}").status_code == 404
        assert admin.get(f"/api/listers/nobody/{view}").status_code == 404


def test_too_many_buckets_or_a_bad_zone_are_refused_with_the_reason(api):
    client = api.admin()
    many = client.get(
        "/api/listers/lister-a/series",
        params={"from": "2020-01-01", "to": "2024-01-01", "granularity": "hour"},
    )
    assert many.status_code == 422 and "buckets" in many.json()["detail"]
    zone = client.get("/api/listers/lister-a/shares", params={"tz": "Mars/Olympus"})
    assert zone.status_code == 422 and "time zone" in zone.json()["detail"]
