"""Queries over the store that readers share: the demo report, run history."""

from __future__ import annotations

from typing import Any

from sqlalchemy import desc, func, select
from sqlalchemy.engine import Connection

from leadflow.store.schema import cron_runs, leads, listings

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
