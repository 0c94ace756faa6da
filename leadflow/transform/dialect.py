"""The two SQL dialects leadflow's one classification and aggregation definition is written in.

`classify.py` and `metrics.py` are templates: every place where DuckDB (the embedded engine that
reads export files) and HogQL (PostHog's ClickHouse SQL, which the PostHog source sends to the
Query API) spell a thing differently goes through one of these methods, so both engines compute
the same thing from one definition and cannot drift apart. Everything else (CASE, IN, AND/OR/NOT
with NULLs, coalesce, GROUP BY) is written once, in the subset both engines read alike.

The semantics kept equal, and the one place they are not spelled equal on purpose:

- A property's JSON type and value: DuckDB reads them from the raw JSON fragment's text;
  ClickHouse from `JSONType` (its raw fragments re-print numbers, `7.0` as `7`).
- Counting events: DuckDB reads events already deduplicated by uuid, so `count(*)`; PostHog's
  events table is a ReplacingMergeTree that may still hold unmerged copies of an event, so
  `uniqExact(uuid)`.
"""

from __future__ import annotations


class Dialect:
    """How one engine spells the few things the shared templates need."""

    name: str = ""
    # Whether the classifier extracts the common properties in one call (a list of JSON paths).
    batch_extract: bool = False

    def quote(self, value: str) -> str:
        raise NotImplementedError

    def in_list(self, values: tuple[str, ...] | list[str]) -> str:
        return "(" + ", ".join(self.quote(v) for v in values) + ")" if values else "(NULL)"

    # -- properties (classify) -----------------------------------------------------------------

    def props_ok(self, props: str) -> str:
        """Whether the properties text is a JSON object."""
        raise NotImplementedError

    def props_extract(self, props: str, keys: list[str]) -> str:
        """(batch_extract dialects) the JSON fragments of `keys`, as one list value."""
        raise NotImplementedError

    def fragment(self, props: str, key: str, index: int | None) -> str:
        """The raw JSON text of property `key` (NULL when absent); `index`: its place in the
        batch list, for batch_extract dialects."""
        raise NotImplementedError

    def fragment_type(self, props: str, key: str) -> str | None:
        """An extra per-property column the type needs (None: the type comes from the text)."""
        return None

    def value_kind(self, fragment: str, type_column: str, value: str) -> str:
        """What a property holds, as an integer: 0 nothing (absent, JSON null or an empty
        string), 1 a non-empty string, 2 an integer, 3 any other value (a fraction, a boolean,
        an object, an array). `value`: the property's `json_value`."""
        raise NotImplementedError

    def json_value(self, fragment: str) -> str:
        """A property's value as text: strings unquoted and unescaped, other values as JSON."""
        raise NotImplementedError

    def hour(self, ts: str) -> str:
        """The UTC hour a time falls in."""
        raise NotImplementedError

    # -- aggregation (metrics) ------------------------------------------------------------------

    def count_events(self, condition: str | None = None) -> str:
        """How many distinct events (of those satisfying `condition`)."""
        raise NotImplementedError

    def count_distinct(self, expr: str, condition: str) -> str:
        raise NotImplementedError

    def arg_max(self, expr: str, order: str, condition: str) -> str:
        """`expr` of the row with the greatest `order` among those satisfying `condition`."""
        raise NotImplementedError

    def distinct_list(self, expr: str, condition: str) -> str:
        """The distinct values of `expr` among rows satisfying `condition`, as an array."""
        raise NotImplementedError

    def latest_key(self, condition: str) -> str:
        """The event time and uuid of the latest event satisfying `condition` (by time, then
        uuid), as text that sorts as they do: `2026-11-20T10:00:00.000000 <uuid>`."""
        raise NotImplementedError

    def date_of(self, hour_ts: str) -> str:
        raise NotImplementedError

    def hour_of(self, hour_ts: str) -> str:
        raise NotImplementedError


class DuckDBDialect(Dialect):
    name = "duckdb"
    batch_extract = True

    def quote(self, value: str) -> str:
        return "'" + value.replace("'", "''") + "'"

    def props_ok(self, props: str) -> str:
        # Text that starts with `{` (the common case) needs no ltrim to tell it is an object.
        return f"""CASE WHEN starts_with({props}, '{{') THEN json_valid({props})
            WHEN starts_with(ltrim({props}), '{{') THEN json_valid({props})
            ELSE false
        END"""

    def props_extract(self, props: str, keys: list[str]) -> str:
        paths = "[" + ", ".join(self.quote("$." + key) for key in keys) + "]"
        return f"json_extract({props}, {paths})"

    def fragment(self, props: str, key: str, index: int | None) -> str:
        if index is not None:
            return f"CAST(p[{index + 1}] AS VARCHAR)"
        return f"CAST(json_extract({props}, {self.quote('$.' + key)}) AS VARCHAR)"

    def value_kind(self, fragment: str, type_column: str, value: str) -> str:
        # A JSON fragment tells its type by its text, which costs far less than parsing it
        # again; the common case, a non-empty string, is decided by the first two tests. Only
        # `""` holds an empty string (an escape always stands for a character).
        f = fragment
        return f"""CASE WHEN {f} = '""' THEN 0
            WHEN starts_with({f}, '"') THEN 1
            WHEN {f} IS NULL OR {f} = 'null' THEN 0
            WHEN regexp_full_match({f}, '-?[0-9]+') THEN 2
            ELSE 3
        END"""

    def json_value(self, fragment: str) -> str:
        f = fragment
        # Strings are unquoted, and unescaped only if they need it; substr costs less than a
        # slice ([2:-2]).
        return f"""CASE WHEN NOT starts_with({f}, '"') THEN {f}
             WHEN contains({f}, '\\') THEN CAST({f} AS JSON) ->> '$'
             ELSE substr({f}, 2, length({f}) - 2)
        END"""

    def hour(self, ts: str) -> str:
        return f"date_trunc('hour', {ts})"

    def count_events(self, condition: str | None = None) -> str:
        return "count(*)" if condition is None else f"count(*) FILTER (WHERE {condition})"

    def count_distinct(self, expr: str, condition: str) -> str:
        return f"count(DISTINCT {expr}) FILTER (WHERE {condition})"

    def arg_max(self, expr: str, order: str, condition: str) -> str:
        return f"arg_max({expr}, {order}) FILTER (WHERE {condition})"

    def distinct_list(self, expr: str, condition: str) -> str:
        return f"coalesce(list(DISTINCT {expr}) FILTER (WHERE {condition}), [])"

    def latest_key(self, condition: str) -> str:
        # The text is made once per group, from the greatest (time, uuid), not once per event.
        latest = f"max({{'ts': ts, 'uuid': uuid}}) FILTER (WHERE {condition})"
        return f"strftime(({latest}).ts, '%Y-%m-%dT%H:%M:%S.%f') || ' ' || ({latest}).uuid"

    def date_of(self, hour_ts: str) -> str:
        return f"CAST({hour_ts} AS DATE)"

    def hour_of(self, hour_ts: str) -> str:
        return f"CAST(hour({hour_ts}) AS SMALLINT)"


class HogQLDialect(Dialect):
    """PostHog's HogQL: ClickHouse SQL through PostHog's function whitelist."""

    name = "hogql"

    def quote(self, value: str) -> str:
        # ClickHouse string literals take backslash escapes.
        return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"

    def props_ok(self, props: str) -> str:
        return f"coalesce(isValidJSON({props}) AND startsWith(trimLeft({props}), '{{'), false)"

    def fragment(self, props: str, key: str, index: int | None) -> str:
        return f"nullIf(JSONExtractRaw({props}, {self.quote(key)}), '')"

    def fragment_type(self, props: str, key: str) -> str | None:
        return f"toString(JSONType({props}, {self.quote(key)}))"

    def value_kind(self, fragment: str, type_column: str, value: str) -> str:
        t = type_column
        return f"""CASE WHEN {fragment} IS NULL THEN 0
            WHEN {t} = 'String' AND {value} = '' THEN 0
            WHEN {t} = 'String' THEN 1
            WHEN {t} IN ('Int64', 'UInt64') THEN 2
            WHEN {t} IN ('Double', 'Bool', 'Object', 'Array') THEN 3
            ELSE 0
        END"""

    def json_value(self, fragment: str) -> str:
        f = fragment
        return f"""CASE WHEN NOT startsWith({f}, '"') THEN {f}
             WHEN position({f}, {self.quote(chr(92))}) > 0 THEN JSONExtractString({f})
             ELSE substring({f}, 2, length({f}) - 2)
        END"""

    def hour(self, ts: str) -> str:
        return f"toStartOfHour({ts})"

    def count_events(self, condition: str | None = None) -> str:
        # The events table may still hold unmerged copies of an event: count uuids.
        return "uniqExact(uuid)" if condition is None else f"uniqExactIf(uuid, {condition})"

    def count_distinct(self, expr: str, condition: str) -> str:
        return f"uniqExactIf({expr}, {condition})"

    def arg_max(self, expr: str, order: str, condition: str) -> str:
        return f"argMaxIf({expr}, {order}, {condition})"

    def distinct_list(self, expr: str, condition: str) -> str:
        return f"groupUniqArrayIf({expr}, {condition})"

    def latest_key(self, condition: str) -> str:
        # The times have a fixed width, so the greatest text is the latest (time, uuid).
        key = "concat(formatDateTime(ts, '%Y-%m-%dT%H:%i:%S.%f', 'UTC'), ' ', toString(uuid))"
        return f"nullIf(maxIf({key}, {condition}), '')"

    def date_of(self, hour_ts: str) -> str:
        return f"toDate({hour_ts})"

    def hour_of(self, hour_ts: str) -> str:
        return f"toHour({hour_ts})"


DUCKDB = DuckDBDialect()
HOGQL = HogQLDialect()
