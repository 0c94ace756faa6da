"""The hourly listing metrics: one SQL definition of the per-(listing, UTC hour) rollups.

Each query reads a relation of accepted, deduplicated listing events (the columns of
`classify.CLASSIFIED_COLUMNS`) and is plain SQL that any engine holding the events can run.
"""

from __future__ import annotations

from leadflow.events import LEAD_COUNTERS, Kind, Taxonomy


def _channels_of(counter: str, taxonomy: Taxonomy) -> str:
    names = [c.name for c in taxonomy.channels if c.counter == counter]
    return "(" + ", ".join(f"'{name}'" for name in names) + ")"


def hourly_metrics_sql(events: str, taxonomy: Taxonomy) -> str:
    """Per (listing, hour): the listing_analytics counters, ordered by the table's key."""
    lead_counters = ",\n    ".join(
        f"count(*) FILTER (WHERE channel IN {_channels_of(counter, taxonomy)}) AS {counter}"
        for counter in LEAD_COUNTERS
    )
    return f"""
SELECT
    listing_id,
    CAST(hour_ts AS DATE) AS date,
    CAST(hour(hour_ts) AS SMALLINT) AS hour,
    count(*) FILTER (WHERE kind = '{Kind.VIEW}') AS total_views,
    count(DISTINCT seeker_id) FILTER (WHERE kind = '{Kind.VIEW}') AS unique_views,
    count(*) FILTER (WHERE kind = '{Kind.IMPRESSION}') AS impressions,
    count(*) FILTER (WHERE kind = '{Kind.SHARE}') AS shares,
    count(*) FILTER (WHERE kind = '{Kind.SAVE}') AS saves,
    count(*) FILTER (WHERE kind = '{Kind.LEAD}') AS total_leads,
    {lead_counters},
    count(DISTINCT seeker_id) FILTER (WHERE kind = '{Kind.LEAD}') AS unique_leads,
    CASE WHEN count(*) FILTER (WHERE kind = '{Kind.VIEW}') = 0 THEN 0.0
         ELSE count(*) FILTER (WHERE kind = '{Kind.LEAD}') * 100.0
              / count(*) FILTER (WHERE kind = '{Kind.VIEW}')
    END AS conversion_rate
FROM {events}
GROUP BY listing_id, hour_ts
ORDER BY listing_id, hour_ts
"""


def hourly_breakdown_sql(events: str) -> str:
    """Per (listing, hour): shares by platform and leads by channel, behind the JSON breakdowns."""
    return f"""
SELECT listing_id, CAST(hour_ts AS DATE) AS date, CAST(hour(hour_ts) AS SMALLINT) AS hour,
       dimension, key, CAST(count(*) AS INTEGER) AS count
FROM (
    SELECT listing_id, hour_ts, 'share_platform' AS dimension, coalesce(platform, 'unknown') AS key
    FROM {events} WHERE kind = '{Kind.SHARE}'
    UNION ALL
    SELECT listing_id, hour_ts, 'lead_channel' AS dimension, channel AS key
    FROM {events} WHERE kind = '{Kind.LEAD}'
)
GROUP BY listing_id, hour_ts, dimension, key
ORDER BY listing_id, hour_ts, dimension, key
"""


def listing_seekers_sql(events: str) -> str:
    """The distinct (listing, view|lead, seeker) identities behind all-time unique counts."""
    return f"""
SELECT DISTINCT listing_id, kind, seeker_id
FROM {events}
WHERE kind IN ('{Kind.VIEW}', '{Kind.LEAD}')
ORDER BY listing_id, kind, seeker_id
"""


def listing_listers_sql(events: str) -> str:
    """Per listing, the lister named by its most recent event that names one."""
    return f"""
SELECT listing_id,
       arg_max(lister_id, (ts, uuid)) FILTER (WHERE lister_id IS NOT NULL) AS lister_id,
       arg_max(lister_type, (ts, uuid)) FILTER (WHERE lister_type IS NOT NULL) AS lister_type
FROM {events}
GROUP BY listing_id
ORDER BY listing_id
"""
