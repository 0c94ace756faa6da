"""Lead records: a run's new lead actions grouped per (listing, seeker), sorted and scored, in SQL."""

from __future__ import annotations

from leadflow.events import Taxonomy

TIMESTAMP_FORMAT = "%Y-%m-%dT%H:%M:%S.%fZ"


def lead_records_sql(lead_events: str, taxonomy: Taxonomy) -> str:
    """One row per (listing, seeker) of the lead events in `lead_events`.

    `lead_events` holds classified lead events that are new to the store (already deduplicated by
    uuid). `lead_actions` comes out as a JSON array text sorted by (time, uuid), with
    `message_type`/`appointment_type` only where they apply.
    """
    score_cases = " ".join(f"WHEN '{c.name}' THEN {c.score}" for c in taxonomy.channels)
    action_json = (
        "'{\"event_uuid\":' || to_json(uuid)"
        " || ',\"action_type\":' || to_json(action_type)"
        f" || ',\"timestamp\":\"' || strftime(ts, '{TIMESTAMP_FORMAT}') || '\"'"
        " || CASE WHEN message_type IS NULL THEN ''"
        " ELSE ',\"message_type\":' || to_json(message_type) END"
        " || CASE WHEN appointment_type IS NULL THEN ''"
        " ELSE ',\"appointment_type\":' || to_json(appointment_type) END"
        " || '}'"
    )
    return f"""
SELECT
    listing_id,
    seeker_id,
    arg_max(lister_id, (ts, uuid)) FILTER (WHERE lister_id IS NOT NULL) AS lister_id,
    arg_max(lister_type, (ts, uuid)) FILTER (WHERE lister_type IS NOT NULL) AS lister_type,
    '[' || string_agg({action_json}, ',' ORDER BY ts, uuid) || ']' AS lead_actions,
    CAST(count(*) AS INTEGER) AS total_actions,
    CAST(sum(CASE channel {score_cases} ELSE 0 END) AS INTEGER) AS lead_score,
    min(ts) AS first_action_date,
    max(ts) AS last_action_date,
    arg_max(action_type, (ts, uuid)) AS last_action_type
FROM {lead_events}
GROUP BY listing_id, seeker_id
ORDER BY listing_id, seeker_id
"""
