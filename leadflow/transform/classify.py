"""The event classifier: SQL, generated from the taxonomy, that turns raw events into listing events.

Its input is a relation of *raw events* with the columns of `RAW_COLUMNS`, whatever the source
(export files, the PostHog Query API); its output has the columns of `CLASSIFIED_COLUMNS`: the
event's kind and lead channel, the ids it is about, its UTC time and hour, and `reject`: NULL for
an accepted event, else the first `RejectReason` that applies (docs/events.md). Duplicates are
found later, across sources and runs, by `dedup`.
"""

from __future__ import annotations

from leadflow.events import Kind, RejectReason, Taxonomy

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

_ID_TYPES = "('VARCHAR', 'BIGINT', 'UBIGINT')"


def _quote(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def _in_list(values: tuple[str, ...] | list[str]) -> str:
    return "(" + ", ".join(_quote(v) for v in values) + ")" if values else "(NULL)"


def classify_sql(raw: str, taxonomy: Taxonomy) -> str:
    """A SELECT over the relation `raw` (a table name or subquery) giving classified events."""
    t = taxonomy
    # Every listing event needs its ids; the other properties only some kinds read, so they are
    # extracted (another parse of the properties) only for the events that use them.
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
    paths = "[" + ", ".join(_quote("$." + prop) for prop in common.values()) + "]"
    # A property's JSON text tells its type by its first character, which costs far less than
    # parsing each fragment again; strings are unquoted (and unescaped only if they need it).
    typed = ",\n".join(
        f"""CASE WHEN f_{name} IS NULL THEN NULL
            WHEN starts_with(f_{name}, '"') THEN 'VARCHAR'
            WHEN starts_with(f_{name}, '{{') THEN 'OBJECT'
            WHEN starts_with(f_{name}, '[') THEN 'ARRAY'
            WHEN f_{name} IN ('true', 'false') THEN 'BOOLEAN'
            WHEN f_{name} = 'null' THEN 'NULL'
            WHEN regexp_full_match(f_{name}, '-?[0-9]+') THEN 'BIGINT'
            ELSE 'DOUBLE'
        END AS t_{name},
        CASE WHEN NOT starts_with(f_{name}, '"') THEN f_{name}
             WHEN contains(f_{name}, '\\') THEN CAST(f_{name} AS JSON) ->> '$'
             ELSE f_{name}[2:-2]
        END AS v_{name}"""
        for name in names
    )
    fragments = ",\n".join(
        [f"CAST(p[{i + 1}] AS VARCHAR) AS f_{name}" for i, name in enumerate(common)]
        + [
            f"CASE WHEN props_ok AND event IN {_in_list(events)} "
            f"THEN CAST(json_extract(props, {_quote('$.' + prop)}) AS VARCHAR) END AS f_{name}"
            for name, (prop, events) in rare.items()
        ]
    )

    def has_id(name: str) -> str:
        return f"(t_{name} IN {_ID_TYPES} AND v_{name} <> '')"

    def absent(name: str) -> str:
        return (
            f"(t_{name} IS NULL OR t_{name} = 'NULL' OR (t_{name} = 'VARCHAR' AND v_{name} = ''))"
        )

    def bad_string(name: str) -> str:
        return f"(NOT {absent(name)} AND t_{name} <> 'VARCHAR')"

    fixed_leads = " ".join(
        f"WHEN event = {_quote(name)} THEN {_quote(lead_type)}"
        for name, lead_type in t.lead_events.items()
    )
    lead_type_expr = f"""CASE {fixed_leads}
        WHEN event IN {_in_list(t.unified_lead_events)} THEN
            CASE WHEN {absent("lead_type")} THEN {_quote(t.default_lead_type)} ELSE v_lead_type END
        END"""
    kind_expr = f"""CASE
        WHEN event IN {_in_list([*t.lead_events, *t.unified_lead_events])} THEN '{Kind.LEAD}'
        WHEN event IN {_in_list(t.view_events)} THEN '{Kind.VIEW}'
        WHEN event IN {_in_list(t.pageview_events)} AND {has_id("listing")} THEN '{Kind.VIEW}'
        WHEN event IN {_in_list(t.impression_events)} THEN '{Kind.IMPRESSION}'
        WHEN event IN {_in_list(t.share_events)} THEN '{Kind.SHARE}'
        WHEN event IN {_in_list(t.save_events)}
             AND NOT coalesce(t_action = 'VARCHAR' AND v_action = {_quote(t.save_remove_action)}, false)
             THEN '{Kind.SAVE}'
        END"""
    message_expr = f"CASE WHEN {absent('msg')} THEN {_quote(t.default_message_type)} ELSE v_msg END"
    channel_cases = " ".join(
        f"WHEN lead_type = {_quote(c.action_type)}"
        + (f" AND message_type = {_quote(c.message_type)}" if c.message_type else "")
        + f" THEN {_quote(c.name)}"
        for c in t.channels
    )
    r = RejectReason
    return f"""
WITH checked_props AS (
    SELECT *, coalesce(json_valid(props) AND starts_with(ltrim(props), '{{'), false) AS props_ok
    FROM {raw}
), with_props AS (
    SELECT *, CASE WHEN props_ok THEN json_extract(props, {paths}) END AS p FROM checked_props
), fragments AS (
    SELECT file_id, malformed, uuid, event, distinct_id, ts,
        props_bad OR (props IS NOT NULL AND NOT props_ok) AS props_bad,
{fragments}
    FROM with_props
), typed AS (
    SELECT file_id, malformed, uuid, event, distinct_id, props_bad, ts,
{typed}
    FROM fragments
), kinded AS (
    SELECT *,
        {kind_expr} AS kind,
        {lead_type_expr} AS lead_type,
        {message_expr} AS message_type
    FROM typed
), checked AS (
    SELECT *,
        CASE
            WHEN malformed THEN '{r.MALFORMED_JSON}'
            WHEN uuid IS NULL OR uuid = '' THEN '{r.MISSING_UUID}'
            WHEN event IS NULL OR event = '' THEN '{r.MISSING_EVENT}'
            WHEN kind IS NULL THEN '{r.IGNORED_EVENT}'
            WHEN props_bad THEN '{r.BAD_PROPERTIES}'
            WHEN ts IS NULL THEN '{r.BAD_TIMESTAMP}'
            WHEN {absent("listing")} THEN '{r.MISSING_LISTING_ID}'
            WHEN NOT {has_id("seeker")} AND NOT {absent("seeker")} THEN '{r.WRONG_TYPE}'
            WHEN {absent("seeker")} AND (distinct_id IS NULL OR distinct_id = '')
                THEN '{r.MISSING_SEEKER}'
            WHEN NOT {has_id("listing")} THEN '{r.WRONG_TYPE}'
            WHEN NOT {absent("lister")} AND NOT {has_id("lister")} THEN '{r.WRONG_TYPE}'
            WHEN {bad_string("lister_type")} THEN '{r.WRONG_TYPE}'
            WHEN kind = '{Kind.LEAD}' AND event IN {_in_list(t.unified_lead_events)}
                AND {bad_string("lead_type")} THEN '{r.WRONG_TYPE}'
            WHEN kind = '{Kind.LEAD}' AND lead_type NOT IN {_in_list(t.lead_types)}
                THEN '{r.INVALID_VALUE}'
            WHEN kind = '{Kind.LEAD}' AND lead_type = 'message' AND {bad_string("msg")}
                THEN '{r.WRONG_TYPE}'
            WHEN kind = '{Kind.LEAD}' AND lead_type = 'message'
                AND message_type NOT IN {_in_list(t.message_types)} THEN '{r.INVALID_VALUE}'
            WHEN kind = '{Kind.LEAD}' AND lead_type = 'appointment' AND {bad_string("appt")}
                THEN '{r.WRONG_TYPE}'
            WHEN kind = '{Kind.SHARE}' AND {bad_string("platform")} THEN '{r.WRONG_TYPE}'
        END AS reject
    FROM kinded
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
    CASE WHEN kind = '{Kind.LEAD}' AND lead_type = 'message' THEN message_type END AS message_type,
    CASE WHEN kind = '{Kind.LEAD}' AND lead_type = 'appointment' AND NOT {absent("appt")}
        THEN v_appt END AS appointment_type,
    CASE WHEN kind = '{Kind.SHARE}' AND NOT {absent("platform")} THEN v_platform END AS platform,
    ts,
    date_trunc('hour', ts) AS hour_ts,
    reject
FROM checked
"""
