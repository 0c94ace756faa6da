"""Listing analytics: a listing's totals, its time series in any time zone, a lister's summary."""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Query
from fastapi.responses import StreamingResponse
from sqlalchemy import Engine
from sqlalchemy.engine import Connection

from leadflow.api.auth import Principal, User
from leadflow.api.deps import StoreEngine, errors
from leadflow.api.exports import CSVResponse, csv_download, csv_responses
from leadflow.api.params import From, ListerId, ListingId, Series, SeriesQuery, To, time_range
from leadflow.api.schemas import ListerSummary, ListingOut, ListingSeries, TopListing
from leadflow.errors import NotFound
from leadflow.store import reads
from leadflow.store.leads import status_counts
from leadflow.transform.series import (
    SUMMED_COUNTERS,
    UNIQUE_COUNTERS,
    Bucket,
    conversion_rate,
    roll_up,
)

router = APIRouter(prefix="/api", tags=["analytics"])


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
    engine: Engine, user: Principal, listing_id: str, series: Series
) -> tuple[list[Bucket], Bucket]:
    window = series.window
    with engine.connect() as conn:
        _visible_listing(conn, listing_id, user)
        hours = reads.analytics_hours(conn, listing_id, window.start, window.end)
        seekers = (
            None
            if series.granularity == "hour" and window.end - window.start <= timedelta(hours=1)
            else reads.hour_seekers(conn, listing_id, window.start, window.end)
        )
    return roll_up(hours, seekers, window.start, window.end, series.granularity, window.zone)


@router.get(
    "/listings/{listing_id}/analytics",
    response_model=ListingSeries,
    responses=errors(401, 403, 404, 422, 503),
    summary="A listing's metrics over time",
)
def listing_analytics(
    engine: StoreEngine, user: User, listing_id: ListingId, series: SeriesQuery
) -> ListingSeries:
    """Views, unique viewers, impressions, shares, saves, leads by type, unique leads and
    conversion per hour, day, week or month in a time zone, every bucket of the range included.

    Buckets hold the UTC hours whose start falls in them (in a half-hour-offset zone, an hour
    starting at :30 local time counts in the bucket of its start). Unique counts are distinct
    seekers over the bucket, not sums of hourly uniques; conversion is derived from the sums.
    """
    buckets, total = _series(engine, user, listing_id, series)
    return ListingSeries.model_validate(
        {
            "listing_id": listing_id,
            "granularity": series.granularity,
            "tz": series.tz,
            "from": series.window.asked_from,
            "to": series.window.asked_to,
            "totals": _metrics(total),
            "buckets": [b.as_dict() for b in buckets],
        }
    )


SERIES_COLUMNS = ("start", *SUMMED_COUNTERS, *UNIQUE_COUNTERS, "conversion_rate")


@router.get(
    "/listings/{listing_id}/analytics.csv",
    response_class=CSVResponse,
    responses=csv_responses(401, 403, 404, 422, 503),
    summary="Export a listing's metrics over time as CSV",
)
def export_listing_analytics(
    engine: StoreEngine, user: User, listing_id: ListingId, series: SeriesQuery
) -> StreamingResponse:
    """The buckets of `GET /api/listings/{listing_id}/analytics`, one CSV row each."""
    buckets, _ = _series(engine, user, listing_id, series)
    rows = ({**b.as_dict(), "start": b.start.isoformat()} for b in buckets)
    return csv_download(SERIES_COLUMNS, rows, f"analytics-{series.granularity}.csv")


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
