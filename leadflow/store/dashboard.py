"""The dashboard's reads: listers, and one lister's hours, listings and breakdowns summed in SQL.

The dashboard shows a lister's whole portfolio, so these queries sum over every listing of a
lister in the store, and only per-hour (or per-listing) rows leave the database: at most one
row per hour of the range, or one page of listings, whatever the size of the portfolio.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any, Literal

from sqlalchemy import (
    ColumnElement,
    Float,
    Select,
    Table,
    and_,
    case,
    cast,
    func,
    literal,
    select,
)
from sqlalchemy.engine import Connection

from leadflow.store.reads import hour_range
from leadflow.store.schema import listing_analytics, listing_analytics_breakdown, listings
from leadflow.transform.series import SUMMED_COUNTERS

Dimension = Literal["lead_channel", "share_platform"]
# What the dashboard shows of each listing and each hour.
LISTING_COUNTERS: tuple[str, ...] = ("total_views", "impressions", "saves", "shares", "total_leads")
ListingSort = Literal["leads", "views", "conversion", "saves", "shares", "impressions", "listing"]
SortOrder = Literal["asc", "desc"]


def _in_hours(table: Table, start: datetime, end: datetime) -> ColumnElement[bool]:
    """Rows of an hourly table in [start, end), with plain date bounds an index can use."""
    first, last = start.astimezone(UTC), end.astimezone(UTC)
    return and_(
        table.c.date >= first.date(), table.c.date <= last.date(), hour_range(table, start, end)
    )


def _owned(lister_id: str) -> Select[tuple[str]]:
    return select(listings.c.listing_id).where(listings.c.lister_id == lister_id)


def _containing(text: str) -> str:
    """A LIKE pattern matching values that contain `text` literally."""
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


# -- listers -------------------------------------------------------------------------------------


def lister_page(
    conn: Connection, scope_lister: str | None, search: str | None, limit: int, offset: int
) -> tuple[list[dict[str, Any]], int]:
    """Listers (of `scope_lister` only, unless None) by all-time leads, and how many match."""
    condition: ColumnElement[bool] = listings.c.lister_id.is_not(None)
    if scope_lister is not None:
        condition = and_(condition, listings.c.lister_id == scope_lister)
    if search:
        condition = and_(condition, listings.c.lister_id.like(_containing(search), escape="\\"))
    grouped = (
        select(
            listings.c.lister_id,
            func.max(listings.c.lister_type).label("lister_type"),
            func.count().label("listings"),
            func.coalesce(func.sum(listings.c.total_views), 0).label("total_views"),
            func.coalesce(func.sum(listings.c.total_leads), 0).label("total_leads"),
        )
        .where(condition)
        .group_by(listings.c.lister_id)
        .subquery("listers")
    )
    total = int(conn.execute(select(func.count()).select_from(grouped)).scalar_one())
    rows = conn.execute(
        select(grouped)
        .order_by(grouped.c.total_leads.desc(), grouped.c.lister_id)
        .limit(limit)
        .offset(offset)
    )
    items = [
        {
            "lister_id": row.lister_id,
            "lister_type": row.lister_type,
            "listings": int(row.listings),
            "total_views": int(row.total_views),
            "total_leads": int(row.total_leads),
        }
        for row in rows
    ]
    return items, total


# -- one lister over a range of hours ------------------------------------------------------------


def lister_hours(conn: Connection, lister_id: str, start: datetime, end: datetime) -> list[Any]:
    """The hours of [start, end) with activity on the lister's listings, counters summed.

    Rows shaped like listing_analytics rows (date, hour and every counter), as `roll_up` takes
    them. Only the counters the dashboard draws are summed (each sum costs, over a big
    portfolio's year); the others, and the unique counts, which do not add up across
    listings, are 0.
    """
    a = listing_analytics
    summed = set(LISTING_COUNTERS)
    query = (
        select(
            a.c.date,
            a.c.hour,
            *(
                (func.sum(a.c[c]) if c in summed else literal(0)).label(c)
                for c in (*SUMMED_COUNTERS, "unique_views", "unique_leads")
            ),
        )
        .where(a.c.listing_id.in_(_owned(lister_id)), _in_hours(a, start, end))
        .group_by(a.c.date, a.c.hour)
    )
    return list(conn.execute(query))


def lister_breakdown_hours(
    conn: Connection, lister_id: str, dimension: Dimension, start: datetime, end: datetime
) -> list[tuple[date, int, str, int]]:
    """(date, hour, key, count) of a breakdown over the lister's listings in [start, end)."""
    b = listing_analytics_breakdown
    query = (
        select(b.c.date, b.c.hour, b.c.key, func.sum(b.c.count))
        .where(
            b.c.dimension == dimension,
            b.c.listing_id.in_(_owned(lister_id)),
            _in_hours(b, start, end),
        )
        .group_by(b.c.date, b.c.hour, b.c.key)
    )
    return [(row[0], int(row[1]), str(row[2]), int(row[3] or 0)) for row in conn.execute(query)]


def lister_breakdown(
    conn: Connection, lister_id: str, dimension: Dimension, start: datetime, end: datetime
) -> dict[str, int]:
    """A breakdown (share platform or lead channel → count) over the lister's listings."""
    b = listing_analytics_breakdown
    query = (
        select(b.c.key, func.sum(b.c.count))
        .where(
            b.c.dimension == dimension,
            b.c.listing_id.in_(_owned(lister_id)),
            _in_hours(b, start, end),
        )
        .group_by(b.c.key)
    )
    counts = {str(key): int(count or 0) for key, count in conn.execute(query)}
    return dict(sorted(counts.items(), key=lambda item: (-item[1], item[0])))


def lister_listing_page(
    conn: Connection,
    lister_id: str,
    start: datetime,
    end: datetime,
    sort: ListingSort,
    order: SortOrder,
    limit: int,
    offset: int,
    search: str | None = None,
) -> tuple[list[dict[str, Any]], int]:
    """A page of the lister's listings with their counters summed over [start, end).

    Every listing of the lister is in the table, those without activity in the range with
    zeros. Conversion is total_leads / total_views * 100 of the sums (0 without views).
    """
    a = listing_analytics
    sums = (
        select(a.c.listing_id, *(func.sum(a.c[c]).label(c) for c in LISTING_COUNTERS))
        .where(a.c.listing_id.in_(_owned(lister_id)), _in_hours(a, start, end))
        .group_by(a.c.listing_id)
        .subquery("sums")
    )
    counters = {c: func.coalesce(sums.c[c], 0) for c in LISTING_COUNTERS}
    conversion = case(
        (
            counters["total_views"] > 0,
            cast(counters["total_leads"], Float) * 100.0 / counters["total_views"],
        ),
        else_=literal(0.0),
    )
    condition: ColumnElement[bool] = listings.c.lister_id == lister_id
    if search:
        condition = and_(condition, listings.c.listing_id.like(_containing(search), escape="\\"))
    total = int(
        conn.execute(select(func.count()).select_from(listings).where(condition)).scalar_one()
    )
    key: ColumnElement[Any] = {
        "leads": counters["total_leads"],
        "views": counters["total_views"],
        "impressions": counters["impressions"],
        "saves": counters["saves"],
        "shares": counters["shares"],
        "conversion": conversion,
        "listing": listings.c.listing_id,
    }[sort]
    direction = key.desc() if order == "desc" else key.asc()
    query = (
        select(
            listings.c.listing_id,
            listings.c.lister_type,
            *(counters[c].label(c) for c in LISTING_COUNTERS),
            conversion.label("conversion_rate"),
        )
        .select_from(listings.outerjoin(sums, sums.c.listing_id == listings.c.listing_id))
        .where(condition)
        .order_by(direction, listings.c.listing_id)
        .limit(limit)
        .offset(offset)
    )
    items = [
        {
            "listing_id": row.listing_id,
            "lister_type": row.lister_type,
            **{c: int(row._mapping[c] or 0) for c in LISTING_COUNTERS},
            "conversion_rate": round(float(row.conversion_rate or 0.0), 4),
        }
        for row in conn.execute(query)
    ]
    return items, total
