"""The event classifier: SQL, generated from the taxonomy, that turns raw events into listing events.

Its input is a relation of *raw events* with the columns of `RAW_COLUMNS`, whatever the source
(export files, the PostHog Query API); its output has the columns of `CLASSIFIED_COLUMNS`: the
event's kind and lead channel, the ids it is about, its UTC time and hour, and `reject`: NULL for
an accepted event, else the first `RejectReason` that applies (docs/events.md). Duplicates are
found later, across sources and runs, by `dedup`.

One definition, two dialects (`transform.dialect`): DuckDB for export files, HogQL for the
PostHog source, which classifies listing signals where the events live.
"""

from __future__ import annotations

from collections.abc import Sequence

from leadflow.events import Kind, RejectReason, Taxonomy
from leadflow.transform.dialect import DUCKDB, Dialect

# file_id: where the row came from (orders duplicates); malformed: not a JSON object;
# props: the properties as JSON text (NULL when absent; validated here); props_bad: properties
# of a type that cannot hold an object (a number, a list);
# ts: event time as a naive UTC TIMESTAMP, NULL when missing or unparseable.
RAW_COLUMNS = ("file_id", "malformed", "uuid", "event", "distinct_id", "props", "props_bad", "ts")

CLASSIFIED_COLUMNS = (
    "file_id",
    "uuid",
    "kind",
    "channel",
    "action_type",
    "listing_id",
    "seeker_id",
    "lister_id",
    "lister_type",
    "message_type",
    "appointment_type",
    "platform",
    "ts",
    "hour_ts",
    "reject",
)


def classify_sql(
    raw: str,
    taxonomy: Taxonomy,
    dialect: Dialect = DUCKDB,
    carry: Sequence[str] = (),
    refuse_nul: bool = False,
) -> str:
    """A SELECT over the relation `raw` (a table name or subquery) giving classified events.

    `carry` names further columns of `raw` passed through to the output unchanged (the PostHog
    source carries the ingestion time). `refuse_nul` (DuckDB): an event that would be accepted
    but holds a NUL character in text the store keeps is rejected as `unstorable_text`, for a
    store that cannot keep one (PostgreSQL).
    """
    t = taxonomy
    d = dialect
    q = d.quote
    # Every listing event needs its ids; the other properties only some kinds read, so they are
    # extracted only for the events that use them.
    common = {
        "listing": t.listing_id,
        "seeker": t.seeker_id,
        "lister": t.lister_id,
        "lister_type": t.lister_type,
    }
    lead_names = [*t.lead_events, *t.unified_lead_events]
    rare = {
        "msg": (t.message_type, lead_names),
        "appt": (t.appointment_type, lead_names),
        "lead_type": (t.lead_type, list(t.unified_lead_events)),
        "platform": (t.platform, list(t.share_events)),
        "action": (t.action, list(t.save_events)),
    }
    names = [*common, *rare]
    extra = "".join(f", {column}" for column in carry)

    fragment_columns: list[str] = []
    for i, (name, prop) in enumerate(common.items()):
        index = i if d.batch_extract else None
        fragment = d.fragment("props", prop, index)
        if not d.batch_extract:
            fragment = f"CASE WHEN props_ok THEN {fragment} END"
        fragment_columns.append(f"{fragment} AS f_{name}")
        kind_of = d.fragment_type("props", prop)
        if kind_of is not None:
            fragment_columns.append(f"CASE WHEN props_ok THEN {kind_of} END AS j_{name}")
    for name, (prop, events) in rare.items():
        guard = f"props_ok AND event IN {d.in_list(events)}"
        fragment_columns.append(
            f"CASE WHEN {guard} THEN {d.fragment('props', prop, None)} END AS f_{name}"
        )
        kind_of = d.fragment_type("props", prop)
        if kind_of is not None:
            fragment_columns.append(f"CASE WHEN {guard} THEN {kind_of} END AS j_{name}")
    fragments = ",\n        ".join(fragment_columns)

    # Per property, its value as text (`json_value`) and what kind of value it is, as a small
    # integer (`value_kind`: 0 absent, 1 a non-empty string, 2 an integer, 3 anything else); the
    # checks below compare those integers, which costs far less than comparing type names.
    def typed_columns(name: str) -> str:
        value = d.json_value(f"f_{name}")
        kind = d.value_kind(f"f_{name}", f"j_{name}", value)
        return f"{value} AS v_{name},\n        {kind} AS k_{name}"

    typed = ",\n        ".join(typed_columns(name) for name in names)
    value_names = ", ".join(f"v_{name}" for name in names)
    kind_names = ", ".join(f"k_{name}" for name in names)

    def has_id(name: str) -> str:
        return f"k_{name} IN (1, 2)"

    def absent(name: str) -> str:
        return f"k_{name} = 0"

    def bad_string(name: str) -> str:
        return f"k_{name} >= 2"

    fixed_leads = " ".join(
        f"WHEN event = {q(name)} THEN {q(lead_type)}" for name, lead_type in t.lead_events.items()
    )
    lead_type_expr = f"""CASE {fixed_leads}
        WHEN event IN {d.in_list(t.unified_lead_events)} THEN
            CASE WHEN {absent("lead_type")} THEN {q(t.default_lead_type)} ELSE v_lead_type END
        END"""
    kind_expr = f"""CASE
        WHEN event IN {d.in_list(lead_names)} THEN '{Kind.LEAD}'
        WHEN event IN {d.in_list(t.view_events)} THEN '{Kind.VIEW}'
        WHEN event IN {d.in_list(t.pageview_events)} AND {has_id("listing")} THEN '{Kind.VIEW}'
        WHEN event IN {d.in_list(t.impression_events)} THEN '{Kind.IMPRESSION}'
        WHEN event IN {d.in_list(t.share_events)} THEN '{Kind.SHARE}'
        WHEN event IN {d.in_list(t.save_events)}
             AND NOT (k_action = 1 AND v_action = {q(t.save_remove_action)})
             THEN '{Kind.SAVE}'
        END"""
    message_expr = f"CASE WHEN {absent('msg')} THEN {q(t.default_message_type)} ELSE v_msg END"
    channel_cases = " ".join(
        f"WHEN lead_type = {q(c.action_type)}"
        + (f" AND msg_type = {q(c.message_type)}" if c.message_type else "")
        + f" THEN {q(c.name)}"
        for c in t.channels
    )
    r = RejectReason
    prefetch = (
        f", CASE WHEN props_ok THEN {d.props_extract('props', list(common.values()))} END AS p"
        if d.batch_extract
        else ""
    )
    unstorable = ""
    if refuse_nul:
        # Every text of the event the store keeps, named as the columns above (DuckDB reads an
        # earlier column of the same SELECT by its name).
        kept = ["uuid", "listing_id", "seeker_id", "lister_id", "lister_type", "message_type"]
        kept += ["appointment_type", "platform"]
        nul = " OR ".join(f"coalesce(contains({name}, chr(0)), false)" for name in kept)
        unstorable = f"\n        WHEN {nul} THEN '{r.UNSTORABLE_TEXT}'"
    # The reject reason is worked out in the final SELECT, with the output columns: a stage of
    # its own would only carry every column through once more.
    return f"""
WITH checked_props AS (
    SELECT file_id, malformed, uuid, event, distinct_id, props, props_bad, ts{extra},
        {d.props_ok("props")} AS props_ok
    FROM {raw}
), with_props AS (
    SELECT file_id, malformed, uuid, event, distinct_id, props, props_bad, ts{extra},
        props_ok{prefetch}
    FROM checked_props
), fragments AS (
    SELECT file_id, malformed, uuid, event, distinct_id, ts{extra},
        props_bad OR (props IS NOT NULL AND NOT props_ok) AS props_unusable,
        {fragments}
    FROM with_props
), typed AS (
    SELECT file_id, malformed, uuid, event, distinct_id, props_unusable, ts{extra},
        {typed}
    FROM fragments
), kinded AS (
    SELECT file_id, malformed, uuid, event, distinct_id, props_unusable, ts{extra},
        {value_names}, {kind_names},
        {kind_expr} AS kind,
        {lead_type_expr} AS lead_type,
        {message_expr} AS msg_type
    FROM typed
)
SELECT
    file_id,
    uuid,
    kind,
    CASE WHEN kind = '{Kind.LEAD}' THEN CASE {channel_cases} END END AS channel,
    CASE WHEN kind = '{Kind.LEAD}' THEN lead_type END AS action_type,
    v_listing AS listing_id,
    CASE WHEN {absent("seeker")} THEN distinct_id ELSE v_seeker END AS seeker_id,
    CASE WHEN {absent("lister")} THEN NULL ELSE v_lister END AS lister_id,
    CASE WHEN {absent("lister_type")} THEN NULL ELSE v_lister_type END AS lister_type,
    CASE WHEN kind = '{Kind.LEAD}' AND lead_type = 'message' THEN msg_type END AS message_type,
    CASE WHEN kind = '{Kind.LEAD}' AND lead_type = 'appointment' AND NOT {absent("appt")}
        THEN v_appt END AS appointment_type,
    CASE WHEN kind = '{Kind.SHARE}' AND NOT {absent("platform")} THEN v_platform END AS platform,
    ts,
    {d.hour("ts")} AS hour_ts,
    CASE
        WHEN malformed THEN '{r.MALFORMED_JSON}'
        WHEN uuid IS NULL OR uuid = '' THEN '{r.MISSING_UUID}'
        WHEN event IS NULL OR event = '' THEN '{r.MISSING_EVENT}'
        WHEN kind IS NULL THEN '{r.IGNORED_EVENT}'
        WHEN props_unusable THEN '{r.BAD_PROPERTIES}'
        WHEN ts IS NULL THEN '{r.BAD_TIMESTAMP}'
        WHEN {absent("listing")} THEN '{r.MISSING_LISTING_ID}'
        WHEN NOT {has_id("seeker")} AND NOT {absent("seeker")} THEN '{r.WRONG_TYPE}'
        WHEN {absent("seeker")} AND (distinct_id IS NULL OR distinct_id = '')
            THEN '{r.MISSING_SEEKER}'
        WHEN NOT {has_id("listing")} THEN '{r.WRONG_TYPE}'
        WHEN NOT {absent("lister")} AND NOT {has_id("lister")} THEN '{r.WRONG_TYPE}'
        WHEN {bad_string("lister_type")} THEN '{r.WRONG_TYPE}'
        WHEN kind = '{Kind.LEAD}' AND event IN {d.in_list(t.unified_lead_events)}
            AND {bad_string("lead_type")} THEN '{r.WRONG_TYPE}'
        WHEN kind = '{Kind.LEAD}' AND lead_type NOT IN {d.in_list(t.lead_types)}
            THEN '{r.INVALID_VALUE}'
        WHEN kind = '{Kind.LEAD}' AND lead_type = 'message' AND {bad_string("msg")}
            THEN '{r.WRONG_TYPE}'
        WHEN kind = '{Kind.LEAD}' AND lead_type = 'message'
            AND msg_type NOT IN {d.in_list(t.message_types)} THEN '{r.INVALID_VALUE}'
        WHEN kind = '{Kind.LEAD}' AND lead_type = 'appointment' AND {bad_string("appt")}
            THEN '{r.WRONG_TYPE}'
        WHEN kind = '{Kind.SHARE}' AND {bad_string("platform")} THEN '{r.WRONG_TYPE}'{unstorable}
    END AS reject{extra}
FROM kinded
"""
