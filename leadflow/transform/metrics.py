"""The hourly listing metrics: one SQL definition of the per-(listing, UTC hour) rollups.

Each query reads a relation of accepted listing events (the columns of
`classify.CLASSIFIED_COLUMNS`) and is written once for both engines that hold events
(`transform.dialect`): DuckDB over export files, and HogQL, which the PostHog source runs where
the events live so that only these rollups cross the network.
"""

from __future__ import annotations

from collections.abc import Sequence

from leadflow.events import LEAD_COUNTERS, Kind, Taxonomy
from leadflow.transform.dialect import DUCKDB, Dialect

# The columns of hourly_metrics_sql, in order (the listing_analytics row, without updated_at).
METRICS_COLUMNS: tuple[str, ...] = (
    "listing_id",
    "date",
    "hour",
    "total_views",
    "unique_views",
    "impressions",
    "shares",
    "saves",
    "total_leads",
    *LEAD_COUNTERS,
    "unique_leads",
    "conversion_rate",
)

BREAKDOWN_COLUMNS: tuple[str, ...] = ("listing_id", "date", "hour", "dimension", "key", "count")

# hourly_metrics_sql's further columns with `identities`.
IDENTITY_COLUMNS: tuple[str, ...] = (
    "viewers",
    "lead_seekers",
    "lister_id",
    "lister_type",
    "lister_id_key",
    "lister_type_key",
)

# The columns of listing_listers_sql: per listing, the lister its latest event names, and that
# event's `Dialect.latest_key`, by which a later run tells whether its lister is newer.
LISTER_COLUMNS: tuple[str, ...] = (
    "listing_id",
    "lister_id",
    "lister_type",
    "lister_id_key",
    "lister_type_key",
)


def _channels_of(counter: str, taxonomy: Taxonomy, dialect: Dialect) -> str:
    return dialect.in_list([c.name for c in taxonomy.channels if c.counter == counter])


def hourly_metrics_sql(
    events: str,
    taxonomy: Taxonomy,
    dialect: Dialect = DUCKDB,
    ordered: bool = True,
    identities: bool = False,
    accepted: str | None = None,
) -> str:
    """Per (listing, hour): the listing_analytics counters (ordered by the table's key).

    With `identities`, also the hour's distinct viewers and lead seekers (arrays) and the lister
    its latest event names (IDENTITY_COLUMNS): what an engine across a network returns instead
    of listing_seekers_sql's and listing_listers_sql's rows.

    `accepted`: a condition the events must meet, applied within each aggregate (and to the
    groups) rather than as a WHERE, which ClickHouse plans several times faster over the deep
    classification expression.
    """
    d = dialect
    if d is DUCKDB and not identities and accepted is None:
        return _duckdb_hourly_metrics(events, taxonomy, ordered)

    def only(condition: str) -> str:
        return condition if accepted is None else f"{accepted} AND {condition}"

    views = d.count_events(only(f"kind = '{Kind.VIEW}'"))
    leads = d.count_events(only(f"kind = '{Kind.LEAD}'"))
    lead_counters = ",\n    ".join(
        f"{d.count_events(only(f'channel IN {_channels_of(counter, taxonomy, d)}'))} AS {counter}"
        for counter in LEAD_COUNTERS
    )
    extra = ""
    if identities:
        viewers = d.distinct_list("seeker_id", only(f"kind = '{Kind.VIEW}'"))
        lead_seekers = d.distinct_list("seeker_id", only(f"kind = '{Kind.LEAD}'"))
        extra = (
            f",\n    {viewers} AS viewers,\n    {lead_seekers} AS lead_seekers,"
            f"\n    {_lister_columns(d, accepted, events)}"
        )
    having = "" if accepted is None else f"\nHAVING {d.count_events(accepted)} > 0"
    order = "\nORDER BY listing_id, hour_ts" if ordered else ""
    return f"""
SELECT
    listing_id,
    {d.date_of("hour_ts")} AS date,
    {d.hour_of("hour_ts")} AS hour,
    {views} AS total_views,
    {d.count_distinct("seeker_id", only(f"kind = '{Kind.VIEW}'"))} AS unique_views,
    {d.count_events(only(f"kind = '{Kind.IMPRESSION}'"))} AS impressions,
    {d.count_events(only(f"kind = '{Kind.SHARE}'"))} AS shares,
    {d.count_events(only(f"kind = '{Kind.SAVE}'"))} AS saves,
    {leads} AS total_leads,
    {lead_counters},
    {d.count_distinct("seeker_id", only(f"kind = '{Kind.LEAD}'"))} AS unique_leads,
    CASE WHEN {views} = 0 THEN 0.0
         ELSE {leads} * 100.0
              / {views}
    END AS conversion_rate{extra}
FROM {events}
GROUP BY listing_id, hour_ts{having}{order}
"""


def _duckdb_hourly_metrics(events: str, taxonomy: Taxonomy, ordered: bool) -> str:
    """DuckDB's reading of hourly_metrics_sql, in two levels: events per (listing, hour, kind,
    seeker), then those groups per (listing, hour), where a distinct seeker count is a count of
    groups. DuckDB runs this about twice as fast as DISTINCT aggregates; the columns and values
    are the same."""
    query = metrics_of_groups_sql(f"({per_seeker_sql(events, taxonomy)}) AS per_seeker")
    return in_key_order(query, ("date", "hour")) if ordered else query


def per_seeker_sql(events: str, taxonomy: Taxonomy) -> str:
    """The accepted `events` (DuckDB) per (listing, hour, kind, seeker): their count `n`, and
    per lead counter the count of those of its channels."""
    per_channel = ",\n    ".join(
        f"count(*) FILTER (WHERE channel IN {_channels_of(counter, taxonomy, DUCKDB)}) AS {counter}"
        for counter in LEAD_COUNTERS
    )
    return f"""
SELECT listing_id, hour_ts, kind, seeker_id, count(*) AS n,
    {per_channel}
FROM {events}
GROUP BY listing_id, hour_ts, kind, seeker_id
"""


def metrics_of_groups_sql(groups: str) -> str:
    """hourly_metrics_sql's rows, unordered, from per_seeker_sql's `groups` (DuckDB)."""

    def total(condition: str) -> str:
        return f"CAST(coalesce(sum(n) FILTER (WHERE {condition}), 0) AS BIGINT)"

    def seekers(kind: Kind) -> str:
        return f"count(seeker_id) FILTER (WHERE kind = '{kind}')"

    lead_counters = ",\n    ".join(
        f"CAST(sum({counter}) AS BIGINT) AS {counter}" for counter in LEAD_COUNTERS
    )
    views, leads = total(f"kind = '{Kind.VIEW}'"), total(f"kind = '{Kind.LEAD}'")
    return f"""
SELECT
    listing_id,
    {DUCKDB.date_of("hour_ts")} AS date,
    {DUCKDB.hour_of("hour_ts")} AS hour,
    {views} AS total_views,
    {seekers(Kind.VIEW)} AS unique_views,
    {total(f"kind = '{Kind.IMPRESSION}'")} AS impressions,
    {total(f"kind = '{Kind.SHARE}'")} AS shares,
    {total(f"kind = '{Kind.SAVE}'")} AS saves,
    {leads} AS total_leads,
    {lead_counters},
    {seekers(Kind.LEAD)} AS unique_leads,
    CASE WHEN {views} = 0 THEN 0.0 ELSE {leads} * 100.0 / {views} END AS conversion_rate
FROM {groups}
GROUP BY listing_id, hour_ts
"""


def in_key_order(query: str, keys: Sequence[str]) -> str:
    """`query`'s rows (DuckDB) ordered by listing_id, then `keys`.

    Listing ids share long prefixes ('listing-00037'), which DuckDB's sort compares slowly, so
    the distinct listings are ranked first and the rows sorted by rank: a fraction of the cost.
    """
    then = "".join(f", {key}" for key in keys)
    return f"""
WITH keyed AS ({query}),
ranks AS (
    SELECT listing_id, row_number() OVER (ORDER BY listing_id) AS listing_rank
    FROM (SELECT DISTINCT listing_id FROM keyed) AS listings
)
SELECT keyed.* FROM keyed JOIN ranks USING (listing_id)
ORDER BY listing_rank{then}
"""


def hourly_breakdown_sql(
    events: str, dialect: Dialect = DUCKDB, ordered: bool = True, accepted: str | None = None
) -> str:
    """Per (listing, hour): shares by platform and leads by channel, behind the JSON breakdowns.

    `accepted`: as for hourly_metrics_sql."""
    d = dialect
    if accepted is None:
        count = "CAST(count(*) AS INTEGER)" if d is DUCKDB else d.count_events()
        having = ""
    else:
        count = d.count_events(accepted)
        having = f"\nHAVING {count} > 0"
    order = "\nORDER BY listing_id, hour_ts, dimension, key" if ordered else ""
    share = f"kind = '{Kind.SHARE}'"
    return f"""
SELECT listing_id, {d.date_of("hour_ts")} AS date, {d.hour_of("hour_ts")} AS hour,
       dimension, key, {count} AS count
FROM (
    SELECT listing_id, hour_ts, uuid,{" reject," if accepted else ""}
        CASE WHEN {share} THEN 'share_platform' ELSE 'lead_channel' END AS dimension,
        CASE WHEN {share} THEN coalesce(platform, 'unknown') ELSE channel END AS key
    FROM {events}
    WHERE kind IN ('{Kind.SHARE}', '{Kind.LEAD}')
) AS counted
GROUP BY listing_id, hour_ts, dimension, key{having}{order}
"""


# The columns of hour_seekers_sql, in order (the listing_hour_seekers row).
HOUR_SEEKERS_COLUMNS: tuple[str, ...] = ("listing_id", "date", "hour", "viewers", "lead_seekers")


def hour_seekers_sql(events: str) -> str:
    """Per (listing, hour) with a viewer or a lead: its distinct viewers and lead seekers, as
    sorted JSON arrays (DuckDB; the PostHog source gets the same sets from hourly_metrics_sql's
    `identities`)."""

    def ids(kind: Kind) -> str:
        return (
            f"to_json(coalesce(list_sort(list_distinct("
            f"list(seeker_id) FILTER (WHERE kind = '{kind}'))), []))"
        )

    query = f"""
SELECT listing_id, {DUCKDB.date_of("hour_ts")} AS date, {DUCKDB.hour_of("hour_ts")} AS hour,
       CAST({ids(Kind.VIEW)} AS VARCHAR) AS viewers,
       CAST({ids(Kind.LEAD)} AS VARCHAR) AS lead_seekers
FROM {events}
WHERE kind IN ('{Kind.VIEW}', '{Kind.LEAD}')
GROUP BY listing_id, hour_ts
"""
    return in_key_order(query, ("date", "hour"))


def listing_seekers_sql(events: str) -> str:
    """The distinct (listing, view|lead, seeker) identities behind all-time unique counts.

    (The PostHog source gathers the same identities with hourly_metrics_sql's `identities`.)
    """
    return f"""
SELECT DISTINCT listing_id, kind, seeker_id
FROM {events}
WHERE kind IN ('{Kind.VIEW}', '{Kind.LEAD}')
ORDER BY listing_id, kind, seeker_id
"""


def _lister_columns(dialect: Dialect, accepted: str | None = None, source: str = "") -> str:
    """Per listing, the lister named by its most recent event that names one, and that event's
    key (LISTER_COLUMNS after listing_id).

    `source`: the relation's name, to qualify the columns the keys' conditions read (ClickHouse
    would take `lister_id` there for the aggregate this SELECT names so)."""
    d = dialect
    only = "" if accepted is None else f"{accepted} AND "
    column = f"{source}." if source else ""
    names = ("lister_id", "lister_type")
    return ",\n       ".join(
        [f"{d.arg_max(n, '(ts, uuid)', f'{only}{n} IS NOT NULL')} AS {n}" for n in names]
        + [f"{d.latest_key(f'{only}{column}{n} IS NOT NULL')} AS {n}_key" for n in names]
    )


def listing_listers_sql(events: str, dialect: Dialect = DUCKDB) -> str:
    """Per listing, the lister named by its most recent event that names one (LISTER_COLUMNS)."""
    return f"""
SELECT listing_id,
       {_lister_columns(dialect)}
FROM {events}
GROUP BY listing_id
ORDER BY listing_id
"""
