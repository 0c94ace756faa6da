"""The canonical, comparable form of leadflow's output tables, built in memory or read from a database.

The form (a dict of sorted tuple lists) is what tests compare between leadflow and the baseline:

- ``"listing_analytics"``: ``(listing_id, 'YYYY-MM-DD', hour, total_views, unique_views,
  impressions, shares, saves, total_leads, phone_leads, message_leads, email_leads,
  appointment_leads, website_leads, unique_leads, round(conversion_rate, 6))``
- ``"listing_hour_seekers"``: ``(listing_id, 'YYYY-MM-DD', hour, viewers, lead_seekers)``, the
  seeker ids as sorted tuples
- ``"listings"``: ``(listing_id, lister_id, lister_type, total_views, unique_views,
  total_impressions, total_shares, total_saves, total_leads, phone_leads, message_leads,
  email_leads, appointment_leads, website_leads, unique_leads, round(conversion_rate, 6),
  tuple(sorted(share_breakdown.items())), tuple(sorted(leads_breakdown.items())))``
- ``"lead_groups"``: ``(listing_id, seeker_id, lead_score_sum, actions)`` per (listing, seeker),
  where ``actions`` is a tuple of ``(event_uuid, action_type, timestamp_iso, message_type or
  None, appointment_type or None)`` in (timestamp, event_uuid) order. A database may hold
  several lead records per (listing, seeker) (one per run); their actions are merged and their
  scores summed, and an action recorded twice stays twice, so double recording shows.

Reading from a database normalises only representation, never content: dates come back as
``date`` objects or strings, JSON columns as parsed values or JSON text, lead action timestamps
in any ISO-8601 spelling (re-spelled ``YYYY-MM-DDTHH:MM:SS.ffffffZ`` in UTC unless
``normalise_timestamps=False``). A NULL breakdown reads as an empty one; missing breakdown keys
are not filled in, so a ``leads_breakdown`` without all six channel keys differs from the
baseline's.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from datetime import UTC, date, datetime
from typing import Any

from sqlalchemy import Engine, String, Text, create_engine, select, type_coerce

from leadflow.store import schema

Canonical = dict[str, list[tuple[Any, ...]]]

# The counters of listing_analytics and of listings, in their tables' column order.
ANALYTICS_COUNTERS: tuple[str, ...] = schema.HOURLY_COUNTERS
_LISTING_COLUMNS = [column.name for column in schema.listings.c]
LISTING_COUNTERS: tuple[str, ...] = tuple(
    _LISTING_COLUMNS[
        _LISTING_COLUMNS.index("total_views") : _LISTING_COLUMNS.index("unique_leads") + 1
    ]
)

RATE_DIGITS = 6


def format_timestamp(moment: datetime) -> str:
    """A UTC instant as ISO-8601 with 6 fractional digits and a 'Z' (the lead action spelling)."""
    if moment.tzinfo is not None:
        moment = moment.astimezone(UTC).replace(tzinfo=None)
    return moment.isoformat(timespec="microseconds") + "Z"


def analytics_tuple(
    listing_id: str, day: str, hour: int, row: Mapping[Any, Any]
) -> tuple[Any, ...]:
    return (
        str(listing_id),
        day,
        int(hour),
        *(int(row[name]) for name in ANALYTICS_COUNTERS),
        round(float(row["conversion_rate"]), RATE_DIGITS),
    )


def hour_seekers_tuple(
    listing_id: str, day: str, hour: int, viewers: Iterable[Any], lead_seekers: Iterable[Any]
) -> tuple[Any, ...]:
    return (
        str(listing_id),
        day,
        int(hour),
        tuple(sorted(str(s) for s in viewers)),
        tuple(sorted(str(s) for s in lead_seekers)),
    )


def listing_tuple(listing_id: str, row: Mapping[Any, Any]) -> tuple[Any, ...]:
    return (
        str(listing_id),
        _optional_str(row.get("lister_id")),
        _optional_str(row.get("lister_type")),
        *(int(row[name]) for name in LISTING_COUNTERS),
        round(float(row["conversion_rate"]), RATE_DIGITS),
        _breakdown(row.get("share_breakdown")),
        _breakdown(row.get("leads_breakdown")),
    )


def action_tuple(action: Mapping[str, Any], *, normalise_timestamp: bool = True) -> tuple[Any, ...]:
    timestamp = action.get("timestamp")
    if normalise_timestamp:
        timestamp = _respell_timestamp(timestamp)
    return (
        action.get("event_uuid"),
        action.get("action_type"),
        timestamp,
        action.get("message_type"),
        action.get("appointment_type"),
    )


def lead_group_tuple(
    listing_id: str, seeker_id: str, lead_score: int, actions: Iterable[tuple[Any, ...]]
) -> tuple[Any, ...]:
    ordered = sorted(actions, key=lambda a: (str(a[2]), str(a[0])))
    return (str(listing_id), str(seeker_id), int(lead_score), tuple(ordered))


def canonical_from_db(url: str | Engine, *, normalise_timestamps: bool = True) -> Canonical:
    """The canonical form of the listing_analytics, listings and leads tables in a database."""
    engine = create_engine(url) if isinstance(url, str) else url
    try:
        with engine.connect() as conn:
            a = schema.listing_analytics
            analytics = [
                analytics_tuple(m["listing_id"], _day(m["date"]), m["hour"], m)
                for m in (
                    r._mapping
                    for r in conn.execute(
                        select(
                            a.c.listing_id,
                            type_coerce(a.c.date, String).label("date"),
                            a.c.hour,
                            *(a.c[name] for name in ANALYTICS_COUNTERS),
                            a.c.conversion_rate,
                        )
                    )
                )
            ]

            hs = schema.listing_hour_seekers
            hour_seekers = [
                hour_seekers_tuple(
                    r.listing_id, _day(r.date), r.hour, _json(r.viewers), _json(r.lead_seekers)
                )
                for r in conn.execute(
                    select(
                        hs.c.listing_id,
                        type_coerce(hs.c.date, String).label("date"),
                        hs.c.hour,
                        type_coerce(hs.c.viewers, Text).label("viewers"),
                        type_coerce(hs.c.lead_seekers, Text).label("lead_seekers"),
                    )
                )
            ]

            li = schema.listings
            listing_rows = []
            for r in conn.execute(
                select(
                    li.c.listing_id,
                    li.c.lister_id,
                    li.c.lister_type,
                    *(li.c[name] for name in LISTING_COUNTERS),
                    li.c.conversion_rate,
                    type_coerce(li.c.share_breakdown, Text).label("share_breakdown"),
                    type_coerce(li.c.leads_breakdown, Text).label("leads_breakdown"),
                )
            ):
                m = dict(r._mapping)
                m["share_breakdown"] = _json(m["share_breakdown"])
                m["leads_breakdown"] = _json(m["leads_breakdown"])
                listing_rows.append(listing_tuple(m["listing_id"], m))

            le = schema.leads
            scores: dict[tuple[str, str], int] = {}
            actions: dict[tuple[str, str], list[tuple[Any, ...]]] = {}
            for r in conn.execute(
                select(
                    le.c.listing_id,
                    le.c.seeker_id,
                    le.c.lead_score,
                    type_coerce(le.c.lead_actions, Text).label("lead_actions"),
                ).order_by(le.c.id)
            ):
                key = (str(r.listing_id), str(r.seeker_id))
                scores[key] = scores.get(key, 0) + int(r.lead_score)
                group = actions.setdefault(key, [])
                for action in _json(r.lead_actions) or []:
                    group.append(action_tuple(action, normalise_timestamp=normalise_timestamps))
    finally:
        if isinstance(url, str):
            engine.dispose()

    lead_groups = [lead_group_tuple(k[0], k[1], scores[k], actions[k]) for k in scores]
    return {
        "listing_analytics": sorted(analytics),
        "listing_hour_seekers": sorted(hour_seekers),
        "listings": sorted(listing_rows, key=_listing_key),
        "lead_groups": sorted(lead_groups, key=_lead_group_key),
    }


def _listing_key(row: tuple[Any, ...]) -> tuple[Any, ...]:
    # lister_id/lister_type may be None; listing_id is unique, so it decides every comparison.
    return (row[0],)


def _lead_group_key(row: tuple[Any, ...]) -> tuple[Any, ...]:
    return (row[0], row[1])


def _optional_str(value: Any) -> str | None:
    return None if value is None else str(value)


def _breakdown(value: Any) -> tuple[tuple[str, int], ...]:
    if value is None:
        return ()
    return tuple(sorted((str(key), int(count)) for key, count in dict(value).items()))


def _json(value: Any) -> Any:
    if isinstance(value, bytes | bytearray | memoryview):
        value = bytes(value).decode()
    if isinstance(value, str):
        return json.loads(value)
    return value


def _day(value: Any) -> str:
    if isinstance(value, datetime):
        return value.date().isoformat()
    if isinstance(value, date):
        return value.isoformat()
    text = str(value)
    try:
        return datetime.fromisoformat(text).date().isoformat()
    except ValueError:
        return text[:10]


def _respell_timestamp(value: Any) -> Any:
    if not isinstance(value, str):
        return value
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        return value
    return format_timestamp(moment)
