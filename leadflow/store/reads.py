"""Queries over the store that readers share: the demo report, run history, the HTTP service."""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Select,
    Table,
    and_,
    desc,
    distinct,
    func,
    inspect,
    or_,
    select,
    true,
)
from sqlalchemy.engine import Connection
from sqlalchemy.sql.selectable import TableValuedAlias

from leadflow.events import Kind
from leadflow.store.schema import (
    LEADS_BREAKDOWN_KEYS,
    cron_runs,
    leads,
    listing_analytics,
    listing_analytics_breakdown,
    listing_hour_seekers,
    listings,
)
from leadflow.transform.series import SUMMED_COUNTERS, UNIQUE_COUNTERS

SCORE_BANDS: tuple[tuple[int, int | None], ...] = (
    (0, 20),
    (20, 40),
    (40, 60),
    (60, 100),
    (100, None),
)


def top_listings(
    conn: Connection, by: str = "total_leads", limit: int = 10
) -> list[dict[str, Any]]:
    """Listings ranked by a column of `listings` (e.g. total_leads, conversion_rate)."""
    order = listings.c[by]
    query = (
        select(
            listings.c.listing_id,
            listings.c.lister_id,
            listings.c.total_views,
            listings.c.unique_views,
            listings.c.total_leads,
            listings.c.unique_leads,
            listings.c.conversion_rate,
        )
        .where(listings.c.total_views >= (50 if by == "conversion_rate" else 0))
        .order_by(desc(order), listings.c.listing_id)
        .limit(limit)
    )
    return [dict(row._mapping) for row in conn.execute(query)]


def lead_score_distribution(conn: Connection) -> list[tuple[str, int]]:
    """How many (seeker, listing) leads fall in each band of total lead score."""
    groups = (
        select(func.sum(leads.c.lead_score).label("score"))
        .group_by(leads.c.listing_id, leads.c.seeker_id)
        .subquery()
    )
    scores = [row.score for row in conn.execute(select(groups.c.score))]
    bands = []
    for low, high in SCORE_BANDS:
        label = f"{low}-{high - 1}" if high is not None else f"{low}+"
        bands.append((label, sum(1 for s in scores if s >= low and (high is None or s < high))))
    return bands


def lead_group_count(conn: Connection) -> int:
    groups = select(leads.c.listing_id, leads.c.seeker_id).distinct().subquery()
    return int(conn.execute(select(func.count()).select_from(groups)).scalar_one())


def recent_runs(conn: Connection, limit: int = 20) -> list[dict[str, Any]]:
    query = select(cron_runs).order_by(desc(cron_runs.c.id)).limit(limit)
    return [dict(row._mapping) for row in conn.execute(query)]


# -- the HTTP service's reads --------------------------------------------------------------------


def cron_run(conn: Connection, run_id: int) -> dict[str, Any] | None:
    row = conn.execute(select(cron_runs).where(cron_runs.c.id == run_id)).first()
    return dict(row._mapping) if row is not None else None


def cron_run_page(conn: Connection, limit: int, before: int | None = None) -> list[dict[str, Any]]:
    """Runs, newest first; `before` is the id after which to continue (a page's cursor)."""
    query = select(cron_runs).order_by(desc(cron_runs.c.id)).limit(limit)
    if before is not None:
        query = query.where(cron_runs.c.id < before)
    return [dict(row._mapping) for row in conn.execute(query)]


def listing(conn: Connection, listing_id: str) -> dict[str, Any] | None:
    row = conn.execute(select(listings).where(listings.c.listing_id == listing_id)).first()
    return dict(row._mapping) if row is not None else None


def lister_has_listings(conn: Connection, lister_id: str) -> bool:
    query = select(listings.c.listing_id).where(listings.c.lister_id == lister_id).limit(1)
    return conn.execute(query).first() is not None


def hour_range(table: Table, start: datetime, end: datetime) -> ColumnElement[bool]:
    """Rows of an hourly table (date, hour in UTC) whose hour starts in [start, end)."""
    first, last = start.astimezone(UTC), end.astimezone(UTC)
    return and_(
        or_(
            table.c.date > first.date(),
            and_(table.c.date == first.date(), table.c.hour >= first.hour),
        ),
        or_(
            table.c.date < last.date(),
            and_(table.c.date == last.date(), table.c.hour < last.hour),
        ),
    )


def analytics_hours(conn: Connection, listing_id: str, start: datetime, end: datetime) -> list[Any]:
    """The listing_analytics rows of one listing whose hours start in [start, end)."""
    query = (
        select(listing_analytics)
        .where(
            listing_analytics.c.listing_id == listing_id, hour_range(listing_analytics, start, end)
        )
        .order_by(listing_analytics.c.date, listing_analytics.c.hour)
    )
    return list(conn.execute(query))


def has_hour_seekers(conn: Connection) -> bool:
    """Whether the store keeps per-hour seeker identities (a newer migration adds them)."""
    return bool(inspect(conn).has_table(listing_hour_seekers.name))


def hour_seekers(
    conn: Connection, listing_id: str, start: datetime, end: datetime
) -> list[tuple[date, int, str, str]] | None:
    """(date, hour, kind, seeker) of one listing in [start, end); None when the store has none."""
    if not has_hour_seekers(conn):
        return None
    t = listing_hour_seekers
    query = select(t.c.date, t.c.hour, t.c.viewers, t.c.lead_seekers).where(
        t.c.listing_id == listing_id, hour_range(t, start, end)
    )
    found: list[tuple[date, int, str, str]] = []
    for day, hour, viewers, lead_seekers in conn.execute(query):
        for kind, ids in ((Kind.VIEW.value, viewers), (Kind.LEAD.value, lead_seekers)):
            found.extend((day, int(hour), kind, str(seeker)) for seeker in ids)
    return found


def lister_listing_totals(
    conn: Connection, lister_id: str, start: datetime, end: datetime
) -> list[dict[str, Any]]:
    """Per listing of a lister: the summed hourly counters over [start, end) and its uniques.

    Listings without a row in the range are left out.
    """
    a = listing_analytics
    sums = [func.sum(a.c[c]).label(c) for c in (*SUMMED_COUNTERS, *UNIQUE_COUNTERS)]
    query = (
        select(a.c.listing_id, *sums)
        .where(a.c.listing_id.in_(_owned(lister_id)), hour_range(a, start, end))
        .group_by(a.c.listing_id)
    )
    return [
        {k: (int(v) if k != "listing_id" else v) for k, v in row._mapping.items()}
        for row in conn.execute(query)
    ]


def lister_uniques(
    conn: Connection, lister_id: str, start: datetime, end: datetime, hourly: dict[str, int]
) -> dict[str, int | None]:
    """Distinct seekers over a lister's listings in [start, end), per unique counter.

    `hourly` holds the sums of the hourly unique counts over the same rows: a counter is None
    (unknown) when the per-hour identities do not account for every hour.
    """
    if not has_hour_seekers(conn):
        return dict.fromkeys(UNIQUE_COUNTERS)
    t = listing_hour_seekers
    result: dict[str, int | None] = {}
    for counter, kind in UNIQUE_COUNTERS.items():
        ids = _json_elements(conn, t.c.viewers if kind == Kind.VIEW else t.c.lead_seekers)
        query = (
            select(func.count(), func.count(distinct(ids.c.value)))
            .select_from(t)
            .join(ids, true())
            .where(t.c.listing_id.in_(_owned(lister_id)), hour_range(t, start, end))
        )
        pairs, seekers = conn.execute(query).one()
        # Every hour's identities are there iff the (hour, seeker) pairs match the hourly counts.
        result[counter] = int(seekers) if int(pairs) == hourly.get(counter, 0) else None
    return result


def _json_elements(conn: Connection, column: ColumnElement[Any]) -> TableValuedAlias:
    """The text elements of a JSON array column, as a table-valued function with a `value`."""
    if conn.dialect.name == "postgresql":
        return func.jsonb_array_elements_text(column).table_valued("value")
    return func.json_each(column).table_valued("value")


def lister_lead_channels(
    conn: Connection, lister_id: str, start: datetime, end: datetime
) -> dict[str, int]:
    """Leads by channel (phone, whatsapp, …) over a lister's listings in [start, end)."""
    b = listing_analytics_breakdown
    query = (
        select(b.c.key, func.sum(b.c.count))
        .where(
            b.c.dimension == "lead_channel",
            b.c.listing_id.in_(_owned(lister_id)),
            hour_range(b, start, end),
        )
        .group_by(b.c.key)
    )
    counts = dict.fromkeys(LEADS_BREAKDOWN_KEYS, 0)
    for key, count in conn.execute(query):
        counts[str(key)] = int(count or 0)
    return counts


def _owned(lister_id: str) -> Select[tuple[str]]:
    return select(listings.c.listing_id).where(listings.c.lister_id == lister_id)
