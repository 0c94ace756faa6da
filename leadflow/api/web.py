"""The dashboard: its page and static files, and the read-only aggregates it draws.

The page (`/`) and its files (`/static/…`) ship inside the package and need nothing from the
network. The dashboard reads the API with the user's token like any other client, so the
access rules are the API's; the endpoints here add what a portfolio view needs and the
per-listing API lacks: who the caller is, the listers an admin may pick, and one lister's
time series by lead channel, listings table and share platforms over a range.
"""

from __future__ import annotations

import gzip
import hashlib
from dataclasses import dataclass
from datetime import date, datetime
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Any, Literal

from fastapi import APIRouter, HTTPException, Query, Request, Response
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy.engine import Connection

from leadflow.api.auth import Principal, User
from leadflow.api.deps import StoreEngine, errors
from leadflow.api.params import (
    From,
    ListerId,
    Order,
    SeriesQuery,
    To,
    Tz,
    id_contains,
    page_offset,
    page_size,
    time_range,
)
from leadflow.errors import NotFound
from leadflow.store import dashboard, reads
from leadflow.store.schema import LEADS_BREAKDOWN_KEYS
from leadflow.transform.series import bucket_start, conversion_rate, hour_of, roll_up

STATIC_ROOT = Path(__file__).resolve().parent.parent / "web" / "static"

router = APIRouter()

# -- the page and its files ----------------------------------------------------------------------

CONTENT_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".svg": "image/svg+xml",
    ".png": "image/png",
    ".md": "text/plain; charset=utf-8",
    ".txt": "text/plain; charset=utf-8",
}
COMPRESSIBLE = {".html", ".js", ".css", ".svg", ".md", ".txt"}

# Everything the page loads comes from this server: no inline script, no CDN.
PAGE_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
    ),
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
}


@dataclass(frozen=True)
class Asset:
    body: bytes
    gzipped: bytes | None
    etag: str
    content_type: str


@lru_cache(maxsize=64)
def _load(path: Path, mtime_ns: int, size: int) -> Asset:
    """A static file, read once per version of it (its mtime and size are part of the key)."""
    body = path.read_bytes()
    digest = hashlib.sha256(body).hexdigest()[:20]
    packed = gzip.compress(body, 6, mtime=0) if path.suffix in COMPRESSIBLE else None
    return Asset(body, packed, f'"{digest}"', CONTENT_TYPES[path.suffix])


def asset_response(
    request: Request, relative: str, extra: dict[str, str] | None = None
) -> Response:
    """A file under STATIC_ROOT, revalidated by ETag and gzipped when the client takes it."""
    path = (STATIC_ROOT / relative).resolve()
    if (
        not path.is_relative_to(STATIC_ROOT)
        or path.suffix not in CONTENT_TYPES
        or not path.is_file()
    ):
        raise HTTPException(status_code=404, detail=f"no file {relative!r} in the dashboard")
    stat = path.stat()
    asset = _load(path, stat.st_mtime_ns, stat.st_size)
    headers = {
        "ETag": asset.etag,
        "Cache-Control": "no-cache",
        "Vary": "Accept-Encoding",
        "X-Content-Type-Options": "nosniff",
        **(extra or {}),
    }
    if asset.etag in request.headers.get("if-none-match", ""):
        return Response(status_code=304, headers=headers)
    body = asset.body
    if asset.gzipped is not None and "gzip" in request.headers.get("accept-encoding", ""):
        body = asset.gzipped
        headers["Content-Encoding"] = "gzip"
    return Response(body, media_type=asset.content_type, headers=headers)


def page(request: Request) -> Response:
    """The dashboard's single page."""
    return asset_response(request, "index.html", PAGE_HEADERS)


def static_file(request: Request) -> Response:
    """The dashboard's scripts, styles and vendored chart library."""
    return asset_response(request, str(request.path_params["relative"]))


# Plain routes, outside the API: not in its OpenAPI document, and free of its strict query
# check (a link to the page may carry any query string, as links do).
router.add_route("/", page, methods=["GET", "HEAD"], include_in_schema=False)
router.add_route(
    "/static/{relative:path}", static_file, methods=["GET", "HEAD"], include_in_schema=False
)


# -- who is calling ------------------------------------------------------------------------------


class Me(BaseModel):
    """The caller, as their token names them."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [{"subject": "user-17", "role": "lister", "lister_id": "lister-a"}]
        }
    )

    subject: str = Field(description="The token's `sub`: recorded as `by` on status changes.")
    role: Literal["admin", "lister"]
    lister_id: str | None = Field(description="The lister whose data a lister sees.")


@router.get(
    "/api/me",
    response_model=Me,
    responses=errors(401, 403, 422, 503),
    tags=["dashboard"],
    summary="Who the token names",
)
def me(user: User) -> Me:
    """The caller's subject, role and lister, as checked from their token (the dashboard uses
    it to sign in, and to offer an admin the choice of lister)."""
    return Me(subject=user.subject, role=user.role, lister_id=user.lister_id)


# -- listers -------------------------------------------------------------------------------------


class ListerOut(BaseModel):
    lister_id: str
    lister_type: str | None
    listings: int = Field(description="Listings of the lister in the store.")
    total_views: int = Field(description="All-time views over the lister's listings.")
    total_leads: int = Field(description="All-time leads over the lister's listings.")


class ListerPage(BaseModel):
    """Listers the caller may see, by all-time leads."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "items": [
                        {
                            "lister_id": "lister-a",
                            "lister_type": "agent",
                            "listings": 12,
                            "total_views": 3400,
                            "total_leads": 95,
                        }
                    ],
                    "total": 1,
                    "offset": 0,
                }
            ]
        }
    )

    items: list[ListerOut]
    total: int = Field(description="How many listers match, over every page.")
    offset: int


@router.get(
    "/api/listers",
    response_model=ListerPage,
    responses=errors(401, 403, 422, 503),
    tags=["dashboard"],
    summary="Listers the caller may see",
)
def list_listers(
    engine: StoreEngine,
    user: User,
    q: Annotated[str | None, id_contains("listers")] = None,
    limit: Annotated[int, page_size("Listers")] = 50,
    offset: Annotated[int, page_offset("Listers")] = 0,
) -> ListerPage:
    """Every lister with listings in the store for an admin, the caller alone for a lister;
    by all-time leads, then id."""
    with engine.connect() as conn:
        items, total = dashboard.lister_page(conn, user.scope, q, limit, offset)
    return ListerPage.model_validate({"items": items, "total": total, "offset": offset})


def _visible_lister(conn: Connection, user: Principal, lister_id: str) -> None:
    """NotFound unless the caller may see this lister (an admin: one with listings)."""
    if not user.may_see_lister(lister_id) or (
        user.role == "admin" and not reads.lister_has_listings(conn, lister_id)
    ):
        raise NotFound(f"no lister {lister_id!r}")


# -- one lister's series by channel --------------------------------------------------------------


class ChannelCounts(BaseModel):
    total_views: int
    impressions: int
    saves: int
    shares: int
    total_leads: int
    conversion_rate: float = Field(description="total_leads / total_views * 100 (0 without views).")
    leads_by_channel: dict[str, int] = Field(
        description="Leads by channel: phone, whatsapp, direct_message, email, appointment, "
        "website."
    )


class ChannelBucket(ChannelCounts):
    start: datetime = Field(description="The bucket's start, in the asked time zone.")


_COUNTS_EXAMPLE: dict[str, Any] = {
    "total_views": 120,
    "impressions": 900,
    "saves": 4,
    "shares": 2,
    "total_leads": 6,
    "conversion_rate": 5.0,
    "leads_by_channel": {
        "phone": 3,
        "whatsapp": 1,
        "direct_message": 1,
        "email": 0,
        "appointment": 1,
        "website": 0,
    },
}


class ListerSeries(BaseModel):
    """A lister's views and leads by channel over time, summed over all their listings."""

    model_config = ConfigDict(
        populate_by_name=True,
        json_schema_extra={
            "examples": [
                {
                    "lister_id": "lister-a",
                    "granularity": "day",
                    "tz": "UTC",
                    "from": "2025-05-01T00:00:00Z",
                    "to": "2025-05-02T00:00:00Z",
                    "totals": _COUNTS_EXAMPLE,
                    "buckets": [{"start": "2025-05-01T00:00:00Z", **_COUNTS_EXAMPLE}],
                }
            ]
        },
    )

    lister_id: str
    granularity: str
    tz: str
    from_: datetime = Field(alias="from")
    to: datetime
    totals: ChannelCounts
    buckets: list[ChannelBucket]


def _counts(counts: dict[str, int], channels: dict[str, int]) -> dict[str, Any]:
    return {
        "total_views": counts["total_views"],
        "impressions": counts["impressions"],
        "saves": counts["saves"],
        "shares": counts["shares"],
        "total_leads": counts["total_leads"],
        "conversion_rate": round(conversion_rate(counts["total_leads"], counts["total_views"]), 4),
        "leads_by_channel": channels,
    }


@router.get(
    "/api/listers/{lister_id}/series",
    response_model=ListerSeries,
    responses=errors(401, 403, 404, 422, 503),
    tags=["dashboard"],
    summary="A lister's views and leads by channel over time",
)
def lister_series(
    engine: StoreEngine, user: User, lister_id: ListerId, series: SeriesQuery
) -> ListerSeries:
    """Views, impressions, saves, shares and leads by channel per hour, day, week or month in
    a time zone, summed over every listing of the lister, every bucket of the range included
    (empty ones as zeros). Buckets are those of `GET /api/listings/{listing_id}/analytics`:
    a bucket holds the UTC hours whose start falls in it."""
    window, granularity = series.window, series.granularity
    with engine.connect() as conn:
        _visible_lister(conn, user, lister_id)
        hours = dashboard.lister_hours(conn, lister_id, window.start, window.end)
        channel_hours = dashboard.lister_breakdown_hours(
            conn, lister_id, "lead_channel", window.start, window.end
        )
    buckets, total = roll_up(hours, None, window.start, window.end, granularity, window.zone)
    channels = {b.start: dict.fromkeys(LEADS_BREAKDOWN_KEYS, 0) for b in buckets}
    total_channels = dict.fromkeys(LEADS_BREAKDOWN_KEYS, 0)
    bucket_of: dict[tuple[date, int], datetime] = {}
    for day, hour, channel, count in channel_hours:
        key = bucket_of.get((day, hour))
        if key is None:
            key = bucket_of[(day, hour)] = bucket_start(
                hour_of(day, hour), granularity, window.zone
            )
        if key in channels:
            channels[key][channel] = channels[key].get(channel, 0) + count
            total_channels[channel] = total_channels.get(channel, 0) + count
    return ListerSeries.model_validate(
        {
            "lister_id": lister_id,
            "granularity": granularity,
            "tz": series.tz,
            "from": window.asked_from,
            "to": window.asked_to,
            "totals": _counts(total.counts, total_channels),
            "buckets": [
                {"start": b.start, **_counts(b.counts, channels[b.start])} for b in buckets
            ],
        }
    )


# -- one lister's listings -----------------------------------------------------------------------


class ListingRow(BaseModel):
    listing_id: str
    lister_type: str | None
    total_views: int
    impressions: int
    saves: int
    shares: int
    total_leads: int
    conversion_rate: float = Field(description="total_leads / total_views * 100 (0 without views).")


class ListingRowPage(BaseModel):
    """A page of a lister's listings with their counts over a range."""

    model_config = ConfigDict(
        populate_by_name=True,
        json_schema_extra={
            "examples": [
                {
                    "lister_id": "lister-a",
                    "from": "2025-05-01T00:00:00Z",
                    "to": "2025-06-01T00:00:00Z",
                    "total": 1,
                    "offset": 0,
                    "items": [
                        {
                            "listing_id": "listing-1",
                            "lister_type": "agent",
                            "total_views": 120,
                            "impressions": 900,
                            "saves": 4,
                            "shares": 2,
                            "total_leads": 6,
                            "conversion_rate": 5.0,
                        }
                    ],
                }
            ]
        },
    )

    lister_id: str
    from_: datetime = Field(alias="from")
    to: datetime
    total: int = Field(description="The lister's listings matching `q`, over every page.")
    offset: int
    items: list[ListingRow]


@router.get(
    "/api/listers/{lister_id}/listings",
    response_model=ListingRowPage,
    responses=errors(401, 403, 404, 422, 503),
    tags=["dashboard"],
    summary="A lister's listings with their counts over a range",
)
def lister_listings(
    engine: StoreEngine,
    user: User,
    lister_id: ListerId,
    from_: From = None,
    to: To = None,
    tz: Tz = "UTC",
    sort: Annotated[
        dashboard.ListingSort,
        Query(description="Order by leads, views, conversion, saves, shares, impressions or id."),
    ] = "leads",
    order: Order = "desc",
    q: Annotated[str | None, id_contains("listings")] = None,
    limit: Annotated[int, page_size("Listings")] = 10,
    offset: Annotated[int, page_offset("Listings")] = 0,
) -> ListingRowPage:
    """Every listing of the lister (those without activity in [from, to) with zeros), with
    views, impressions, saves, shares, leads and conversion summed over the range; sorted
    and paged on the server (ties by listing id)."""
    window = time_range(from_, to, tz)
    with engine.connect() as conn:
        _visible_lister(conn, user, lister_id)
        items, total = dashboard.lister_listing_page(
            conn, lister_id, window.start, window.end, sort, order, limit, offset, q
        )
    return ListingRowPage.model_validate(
        {
            "lister_id": lister_id,
            "from": window.asked_from,
            "to": window.asked_to,
            "total": total,
            "offset": offset,
            "items": items,
        }
    )


# -- one lister's share platforms ----------------------------------------------------------------


class ShareBreakdown(BaseModel):
    """How a lister's listings were shared over a range, by platform."""

    model_config = ConfigDict(
        populate_by_name=True,
        json_schema_extra={
            "examples": [
                {
                    "lister_id": "lister-a",
                    "from": "2025-05-01T00:00:00Z",
                    "to": "2025-06-01T00:00:00Z",
                    "total": 11,
                    "by_platform": {"whatsapp": 7, "facebook": 3, "unknown": 1},
                }
            ]
        },
    )

    lister_id: str
    from_: datetime = Field(alias="from")
    to: datetime
    total: int
    by_platform: dict[str, int] = Field(
        description="Shares by platform, most first (`unknown` when the event named none)."
    )


@router.get(
    "/api/listers/{lister_id}/shares",
    response_model=ShareBreakdown,
    responses=errors(401, 403, 404, 422, 503),
    tags=["dashboard"],
    summary="A lister's shares by platform over a range",
)
def lister_shares(
    engine: StoreEngine,
    user: User,
    lister_id: ListerId,
    from_: From = None,
    to: To = None,
    tz: Tz = "UTC",
) -> ShareBreakdown:
    """Shares of the lister's listings in [from, to), by the platform they were shared to."""
    window = time_range(from_, to, tz)
    with engine.connect() as conn:
        _visible_lister(conn, user, lister_id)
        platforms = dashboard.lister_breakdown(
            conn, lister_id, "share_platform", window.start, window.end
        )
    return ShareBreakdown.model_validate(
        {
            "lister_id": lister_id,
            "from": window.asked_from,
            "to": window.asked_to,
            "total": sum(platforms.values()),
            "by_platform": platforms,
        }
    )
