"""The HogQL queries the PostHog source sends: classification and hourly rollups pushed down.

Every query is built from the shared templates (`transform.classify`, `transform.metrics`) in
the HogQL dialect, reads only the taxonomy's event names (`event` is in the events table's sort
key) within a bounded `timestamp` range (the table is partitioned and sorted by it; `created_at`,
the ingestion time, is not), and pages by keyset on its ORDER BY key: the Query API refuses
OFFSET for personal API keys and caps a LIMIT at 50,000 rows.

Values travel as HogQL placeholders (`{name}` with `values`), times as
`toDateTime64({t}, 6, 'UTC')` so that no project time zone applies.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from leadflow.events import Kind, RejectReason, Taxonomy
from leadflow.transform.classify import CLASSIFIED_COLUMNS, classify_sql
from leadflow.transform.dialect import HOGQL
from leadflow.transform.metrics import (
    BREAKDOWN_COLUMNS,
    IDENTITY_COLUMNS,
    METRICS_COLUMNS,
    hourly_breakdown_sql,
    hourly_metrics_sql,
)

HOUR = timedelta(hours=1)
MAX_ROWS = 50_000  # the Query API's cap on a LIMIT (posthog/hogql/constants.py)

# Reasons the classifier can give (duplicates are found after it).
CLASSIFIER_REASONS: tuple[str, ...] = tuple(
    r.value for r in RejectReason if r is not RejectReason.DUPLICATE
)

ACCEPTED = "reject IS NULL"
LEAD_EVENT_COLUMNS = ("uuid", "event", "distinct_id", "properties", "timestamp", "created_at")


@dataclass(frozen=True)
class Query:
    """One HogQL query: a stable name (PostHog's query log shows it), its text and its values."""

    name: str
    sql: str
    values: dict[str, Any] = field(default_factory=dict)


def time_text(moment: datetime) -> str:
    """A UTC time as the text `toDateTime64(…, 6, 'UTC')` reads."""
    if moment.tzinfo is not None:
        moment = moment.astimezone(UTC).replace(tzinfo=None)
    return moment.strftime("%Y-%m-%d %H:%M:%S.%f")


def parse_time(value: str | datetime) -> datetime:
    """A time from the Query API (`2025-05-01T10:15:30.123456Z`) as an aware UTC datetime."""
    if isinstance(value, datetime):
        moment = value
    else:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00").replace(" ", "T"))
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def _time(placeholder: str) -> str:
    return f"toDateTime64({{{placeholder}}}, 6, 'UTC')"


def hour_ranges(hours: Sequence[datetime], max_ranges: int = 64) -> list[tuple[datetime, datetime]]:
    """Sorted hours as [start, end) ranges of consecutive hours; beyond `max_ranges`, the
    shortest gaps are filled (recomputing an untouched hour is harmless, only slower)."""
    ranges: list[list[datetime]] = []
    for hour in sorted(set(hours)):
        if ranges and ranges[-1][1] == hour:
            ranges[-1][1] = hour + HOUR
        else:
            ranges.append([hour, hour + HOUR])
    while len(ranges) > max_ranges:
        gaps = sorted(range(len(ranges) - 1), key=lambda i: ranges[i + 1][0] - ranges[i][1])
        i = gaps[0]
        ranges[i][1] = ranges[i + 1][1]
        del ranges[i + 1]
    return [(start, end) for start, end in ranges]


class _Values:
    """Placeholders of one query."""

    def __init__(self) -> None:
        self.values: dict[str, Any] = {}

    def add(self, name: str, value: Any) -> str:
        key = f"{name}_{len(self.values)}"
        self.values[key] = value
        return key

    def time(self, name: str, moment: datetime) -> str:
        return _time(self.add(name, time_text(moment)))


def _names(taxonomy: Taxonomy, kinds: str = "all") -> list[str]:
    t = taxonomy
    leads = [*t.lead_events, *t.unified_lead_events]
    if kinds == "leads":
        return leads
    return [
        *leads,
        *t.view_events,
        *t.pageview_events,
        *t.impression_events,
        *t.share_events,
        *t.save_events,
    ]


def _raw_events(where: str) -> str:
    """PostHog's events as classify.RAW_COLUMNS (+ the ingestion time)."""
    return f"""(
    SELECT 0 AS file_id, false AS malformed, toString(e.uuid) AS uuid, e.event AS event,
        e.distinct_id AS distinct_id, e.properties AS props, false AS props_bad,
        e.timestamp AS ts, e.created_at AS created_at
    FROM events AS e
    WHERE {where}
)"""


def _keyset(keys: Sequence[tuple[str, str]], after: Sequence[Any] | None, v: _Values) -> str:
    """`keys` ((expression, 'time'|'text'|'int'), in order) strictly after the row `after`."""
    if after is None:
        return "true"
    terms: list[str] = []
    placeholders: list[str] = []
    for (_expr, kind), value in zip(keys, after, strict=True):
        if kind == "time":
            placeholders.append(v.time("after", parse_time(value)))
        else:
            placeholders.append("{" + v.add("after", value) + "}")
    exprs = [expr for expr, _ in keys]
    for i in range(len(exprs)):
        equal = [f"{exprs[j]} = {placeholders[j]}" for j in range(i)]
        terms.append("(" + " AND ".join([*equal, f"{exprs[i]} > {placeholders[i]}"]) + ")")
    return "(" + " OR ".join(terms) + ")"


def _event_hours(ranges: Sequence[tuple[datetime, datetime]], v: _Values) -> str:
    return (
        "("
        + " OR ".join(
            f"(e.timestamp >= {v.time('from', start)} AND e.timestamp < {v.time('to', end)})"
            for start, end in ranges
        )
        + ")"
    )


def census_query(
    taxonomy: Taxonomy,
    created_from: datetime,
    created_to: datetime,
    counted_from: datetime,
    time_from: datetime,
    time_to: datetime,
    after: Sequence[Any] | None,
    limit: int,
) -> Query:
    """Per (ingestion day, event hour) of the events ingested in [created_from, created_to):
    how many were accepted (the hours a run recomputes), and, of those ingested from
    `counted_from` on and not lead events (leads are classified where they are fetched), how many
    were read, rejected per reason, and extra copies of an accepted event."""
    v = _Values()
    where = (
        f"e.event IN {HOGQL.in_list(_names(taxonomy))}"
        f" AND e.created_at >= {v.time('created_from', created_from)}"
        f" AND e.created_at < {v.time('created_to', created_to)}"
        f" AND e.timestamp >= {v.time('time_from', time_from)}"
        f" AND e.timestamp < {v.time('time_to', time_to)}"
    )
    counted = f"created_at >= {v.time('counted_from', counted_from)} AND coalesce(kind, '') != '{Kind.LEAD}'"
    reasons = ",\n        ".join(
        f"countIf({counted} AND reject = '{reason}') AS {reason}" for reason in CLASSIFIER_REASONS
    )
    classified = classify_sql(_raw_events(where), taxonomy, HOGQL, carry=("created_at",))
    keys = [("ingest_day", "time"), ("hour_ts", "time")]
    sql = f"""
SELECT ingest_day, hour_ts, accepted, read, {", ".join(CLASSIFIER_REASONS)}, duplicate
FROM (
    SELECT toStartOfDay(created_at) AS ingest_day, hour_ts,
        countIf(reject IS NULL) AS accepted,
        countIf({counted}) AS read,
        {reasons},
        countIf({counted} AND reject IS NULL)
            - uniqExactIf(uuid, {counted} AND reject IS NULL) AS duplicate
    FROM ({classified}) AS classified
    GROUP BY ingest_day, hour_ts
) AS census
WHERE {_keyset(keys, after, v)}
ORDER BY ingest_day, hour_ts
LIMIT {limit}
"""
    return Query("leadflow census", sql, v.values)


def _accepted(taxonomy: Taxonomy, ranges: Sequence[tuple[datetime, datetime]], v: _Values) -> str:
    where = f"e.event IN {HOGQL.in_list(_names(taxonomy))} AND {_event_hours(ranges, v)}"
    columns = ", ".join(CLASSIFIED_COLUMNS)
    # Rejected events are left out within each aggregate (ACCEPTED), not by a WHERE, which
    # ClickHouse plans several times slower over the classification.
    return f"""classified AS (
    SELECT {columns}
    FROM ({classify_sql(_raw_events(where), taxonomy, HOGQL)}) AS classified_events
)"""


def _hours_from(
    ranges: Sequence[tuple[datetime, datetime]], after: Sequence[Any] | None
) -> list[tuple[datetime, datetime]]:
    """The ranges narrowed to hours at or after a keyset's (date, hour, …) row."""
    if after is None:
        return list(ranges)
    first = datetime.fromisoformat(str(after[0])).replace(hour=int(after[1]), tzinfo=UTC)
    return [(max(start, first), end) for start, end in ranges if end > first]


def _date_hour_keys(after: Sequence[Any] | None) -> Sequence[Any] | None:
    return None if after is None else [str(after[0]), int(after[1]), *after[2:]]


def metrics_query(
    taxonomy: Taxonomy,
    ranges: Sequence[tuple[datetime, datetime]],
    after: Sequence[Any] | None,
    limit: int,
) -> Query:
    """listing_analytics rows of the hours `ranges` covers, from all their events, with each
    hour's distinct viewers and lead seekers and the lister its latest event names."""
    v = _Values()
    hours = _hours_from(ranges, after)
    keys = [("date", "text"), ("hour", "int"), ("listing_id", "text")]
    sql = f"""
WITH {_accepted(taxonomy, hours, v)}
SELECT {", ".join((*METRICS_COLUMNS, *IDENTITY_COLUMNS))}
FROM ({
        hourly_metrics_sql(
            "classified", taxonomy, HOGQL, ordered=False, identities=True, accepted=ACCEPTED
        )
    }) AS metrics
WHERE {_keyset(keys, _date_hour_keys(after), v)}
ORDER BY date, hour, listing_id
LIMIT {limit}
"""
    return Query("leadflow listing metrics", sql, v.values)


def breakdown_query(
    taxonomy: Taxonomy,
    ranges: Sequence[tuple[datetime, datetime]],
    after: Sequence[Any] | None,
    limit: int,
) -> Query:
    """Share platforms and lead channels per (listing, hour) of the hours `ranges` covers."""
    v = _Values()
    hours = _hours_from(ranges, after)
    keys = [
        ("date", "text"),
        ("hour", "int"),
        ("listing_id", "text"),
        ("dimension", "text"),
        ("key", "text"),
    ]
    sql = f"""
WITH {_accepted(taxonomy, hours, v)}
SELECT {", ".join(BREAKDOWN_COLUMNS)}
FROM ({hourly_breakdown_sql("classified", HOGQL, ordered=False, accepted=ACCEPTED)}) AS breakdown
WHERE {_keyset(keys, _date_hour_keys(after), v)}
ORDER BY date, hour, listing_id, dimension, key
LIMIT {limit}
"""
    return Query("leadflow listing breakdown", sql, v.values)


def lead_events_query(
    taxonomy: Taxonomy,
    created_from: datetime,
    created_to: datetime,
    counted_from: datetime,
    time_from: datetime,
    time_to: datetime,
    after: Sequence[Any] | None,
    limit: int,
) -> Query:
    """The raw lead events ingested in [created_from, created_to), one row per uuid (its first
    ingested copy) with how many copies were ingested from `counted_from` on, in ingestion order.

    Keyset on (first ingestion, uuid), unique per row: a bare `created_at > last` would drop
    events ingested at the same instant, and identical unmerged copies cannot be told apart.
    """
    v = _Values()
    keys = [("ingested_at", "time"), ("event_uuid", "text")]
    counted = v.time("counted_from", counted_from)
    sql = f"""
SELECT event_uuid, event_name, seeker_distinct_id, event_properties, event_time, ingested_at,
    counted_copies
FROM (
    SELECT toString(e.uuid) AS event_uuid,
        argMin(e.event, e.created_at) AS event_name,
        argMin(e.distinct_id, e.created_at) AS seeker_distinct_id,
        argMin(e.properties, e.created_at) AS event_properties,
        argMin(e.timestamp, e.created_at) AS event_time,
        min(e.created_at) AS ingested_at,
        countIf(e.created_at >= {counted}) AS counted_copies
    FROM events AS e
    WHERE e.event IN {HOGQL.in_list(_names(taxonomy, "leads"))}
        AND e.created_at >= {v.time("created_from", created_from)}
        AND e.created_at < {v.time("created_to", created_to)}
        AND e.timestamp >= {v.time("time_from", time_from)}
        AND e.timestamp < {v.time("time_to", time_to)}
    GROUP BY event_uuid
) AS lead_events
WHERE {_keyset(keys, after, v)}
ORDER BY ingested_at, event_uuid
LIMIT {limit}
"""
    return Query("leadflow lead events", sql, v.values)
