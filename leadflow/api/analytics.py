"""Listing analytics: a listing's totals, its time series in any time zone, a lister's summary."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from functools import cache
from typing import Annotated, Any
from zoneinfo import ZoneInfo, available_timezones

from fastapi import APIRouter, Path, Query
from fastapi.responses import StreamingResponse
from sqlalchemy.engine import Connection

from leadflow.api.auth import Principal, User
from leadflow.api.deps import ID_PATTERN, Moment, StoreEngine, errors, invalid, moment_at
from leadflow.api.leads import CSVResponse, ListingId, csv_lines
from leadflow.api.schemas import ListerSummary, ListingOut, ListingSeries, TopListing
from leadflow.errors import NotFound
from leadflow.store import reads
from leadflow.store.leads import status_counts
from leadflow.transform.series import (
    SUMMED_COUNTERS,
    UNIQUE_COUNTERS,
    Bucket,
    Granularity,
    bucket_count,
    ceil_hour,
    conversion_rate,
    roll_up,
)

router = APIRouter(prefix="/api", tags=["analytics"])

DEFAULT_RANGE = timedelta(days=30)
MAX_RANGE = timedelta(days=5 * 366)
MAX_BUCKETS = 10_000

ListerId = Annotated[
    str, Path(min_length=1, max_length=128, pattern=ID_PATTERN, examples=["lister-a"])
]
From = Annotated[
    Moment | None,
    Query(
        alias="from",
        description="Start of the range (inclusive): an ISO 8601 date-time or date; one without "
        "offset is read in `tz`. Default: 30 days before `to`.",
        examples=["2025-05-01"],
    ),
]
To = Annotated[
    Moment | None,
    Query(
        description="End of the range (exclusive), read like `from`. Default: now.",
        examples=["2025-06-01"],
    ),
]
Tz = Annotated[
    str,
    Query(
        min_length=1,
        max_length=64,
        description="IANA time zone of the buckets and of times without offset.",
        examples=["Europe/Madrid"],
    ),
]
GranularityParam = Annotated[
    Granularity,
    Query(description="Bucket size: hour, day, week (from Monday) or month, in `tz`."),
]


@cache
def _zone_names() -> frozenset[str]:
    return frozenset(available_timezones()) | {"UTC"}


def time_zone(name: str) -> ZoneInfo:
    if name not in _zone_names():
        raise invalid(
            "query.tz",
            f"unknown time zone {name!r}: expected an IANA name such as 'UTC' or 'Europe/Madrid'",
        )
    return ZoneInfo(name)


@dataclass(frozen=True)
class TimeRange:
    """A request's range: the hours it covers (UTC, [start, end)) and how it was asked."""

    start: datetime
    end: datetime
    zone: ZoneInfo
    asked_from: datetime
    asked_to: datetime


def time_range(from_: datetime | date | None, to: datetime | date | None, tz: str) -> TimeRange:
    zone = time_zone(tz)
    asked_to = moment_at(to, "to", zone) or datetime.now(UTC).astimezone(zone)
    asked_from = moment_at(from_, "from", zone) or asked_to - DEFAULT_RANGE
    if asked_from >= asked_to:
        raise invalid("query.from", "must be before `to`")
    if asked_to - asked_from > MAX_RANGE:
        raise invalid("query.to", f"the range may span at most {MAX_RANGE.days} days")
    return TimeRange(ceil_hour(asked_from), ceil_hour(asked_to), zone, asked_from, asked_to)


def _visible_listing(conn: Connection, listing_id: str, user: Principal) -> dict[str, Any]:
    row = reads.listing(conn, listing_id)
    if row is None or not user.may_see_lister(row["lister_id"]):
        raise NotFound(f"no listing {listing_id!r}")
    return row


def _metrics(bucket: Bucket) -> dict[str, Any]:
    data = bucket.as_dict()
    data.pop("start")
    return data


@router.get(
    "/listings/{listing_id}",
    response_model=ListingOut,
    responses=errors(401, 403, 404, 422, 503),
    summary="A listing's totals and breakdowns",
)
def get_listing(engine: StoreEngine, user: User, listing_id: ListingId) -> ListingOut:
    """All-time totals of a listing (views, exact unique viewers, leads by type, conversion) and
    its breakdowns of shares by platform and leads by channel."""
    with engine.connect() as conn:
        row = _visible_listing(conn, listing_id, user)
    return ListingOut.model_validate(row)


def _series(
    engine: Any, user: Principal, listing_id: str, window: TimeRange, granularity: Granularity
) -> tuple[list[Bucket], Bucket]:
    if bucket_count(window.start, window.end, granularity, window.zone) > MAX_BUCKETS:
        raise invalid(
            "query.granularity",
            f"the range holds more than {MAX_BUCKETS} {granularity} buckets: "
            "ask for a shorter range or a coarser granularity",
        )
    with engine.connect() as conn:
        _visible_listing(conn, listing_id, user)
        hours = reads.analytics_hours(conn, listing_id, window.start, window.end)
        seekers = (
            None
            if granularity == "hour" and window.end - window.start <= timedelta(hours=1)
            else reads.hour_seekers(conn, listing_id, window.start, window.end)
        )
    return roll_up(hours, seekers, window.start, window.end, granularity, window.zone)


@router.get(
    "/listings/{listing_id}/analytics",
    response_model=ListingSeries,
    responses=errors(401, 403, 404, 422, 503),
    summary="A listing's metrics over time",
)
def listing_analytics(
    engine: StoreEngine,
    user: User,
    listing_id: ListingId,
    from_: From = None,
    to: To = None,
    granularity: GranularityParam = "day",
    tz: Tz = "UTC",
) -> ListingSeries:
    """Views, unique viewers, impressions, shares, saves, leads by type, unique leads and
    conversion per hour, day, week or month in a time zone, every bucket of the range included.

    Buckets hold the UTC hours whose start falls in them (in a half-hour-offset zone, an hour
    starting at :30 local time counts in the bucket of its start). Unique counts are distinct
    seekers over the bucket, not sums of hourly uniques; conversion is derived from the sums.
    """
    window = time_range(from_, to, tz)
    buckets, total = _series(engine, user, listing_id, window, granularity)
    return ListingSeries.model_validate(
        {
            "listing_id": listing_id,
            "granularity": granularity,
            "tz": tz,
            "from": window.asked_from,
            "to": window.asked_to,
            "totals": _metrics(total),
            "buckets": [b.as_dict() for b in buckets],
        }
    )


SERIES_COLUMNS = ("start", *SUMMED_COUNTERS, *UNIQUE_COUNTERS, "conversion_rate")


@router.get(
    "/listings/{listing_id}/analytics.csv",
    response_class=CSVResponse,
    responses={
        200: {"content": {"text/csv": {"schema": {"type": "string"}}}, "description": "CSV"},
        **errors(401, 403, 404, 422, 503, media_type="text/csv"),
    },
    summary="Export a listing's metrics over time as CSV",
)
def export_listing_analytics(
    engine: StoreEngine,
    user: User,
    listing_id: ListingId,
    from_: From = None,
    to: To = None,
    granularity: GranularityParam = "day",
    tz: Tz = "UTC",
) -> StreamingResponse:
    """The buckets of `GET /api/listings/{listing_id}/analytics`, one CSV row each."""
    window = time_range(from_, to, tz)
    buckets, _ = _series(engine, user, listing_id, window, granularity)
    rows = ({**b.as_dict(), "start": b.start.isoformat()} for b in buckets)
    return StreamingResponse(
        csv_lines(SERIES_COLUMNS, iter(rows)),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="analytics-{granularity}.csv"'},
    )


@router.get(
    "/listers/{lister_id}/summary",
    response_model=ListerSummary,
    responses=errors(401, 403, 404, 422, 503),
    summary="A lister's results over a range",
)
def lister_summary(
    engine: StoreEngine,
    user: User,
    lister_id: ListerId,
    from_: From = None,
    to: To = None,
    tz: Annotated[
        str,
        Query(min_length=1, max_length=64, description="IANA time zone of times without offset."),
    ] = "UTC",
    top: Annotated[int, Query(ge=1, le=50, description="How many top listings.")] = 5,
) -> ListerSummary:
    """Totals over the lister's listings (unique counts are distinct seekers across them),
    the top listings by leads, leads by channel, and leads by status, over [from, to)."""
    window = time_range(from_, to, tz)
    if not user.may_see_lister(lister_id):
        raise NotFound(f"no lister {lister_id!r}")
    with engine.connect() as conn:
        if user.role == "admin" and not reads.lister_has_listings(conn, lister_id):
            raise NotFound(f"no lister {lister_id!r}")
        per_listing = reads.lister_listing_totals(conn, lister_id, window.start, window.end)
        hourly_uniques = {c: sum(r[c] for r in per_listing) for c in UNIQUE_COUNTERS}
        uniques = reads.lister_uniques(conn, lister_id, window.start, window.end, hourly_uniques)
        channels = reads.lister_lead_channels(conn, lister_id, window.start, window.end)
        by_status = status_counts(conn, lister_id, window.start, window.end)
    totals = {c: sum(r[c] for r in per_listing) for c in SUMMED_COUNTERS}
    top_rows = sorted(
        per_listing, key=lambda r: (-r["total_leads"], -r["total_views"], r["listing_id"])
    )[:top]
    return ListerSummary.model_validate(
        {
            "lister_id": lister_id,
            "from": window.asked_from,
            "to": window.asked_to,
            "listings": len(per_listing),
            "totals": {
                **totals,
                **uniques,
                "conversion_rate": round(
                    conversion_rate(totals["total_leads"], totals["total_views"]), 4
                ),
            },
            "leads_by_channel": channels,
            "leads_by_status": by_status,
            "top_listings": [
                TopListing(
                    listing_id=r["listing_id"],
                    total_views=r["total_views"],
                    total_leads=r["total_leads"],
                    conversion_rate=round(conversion_rate(r["total_leads"], r["total_views"]), 4),
                )
                for r in top_rows
            ],
        }
    )
