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

# DuckDB's names for a JSON value's type (json_type); the HogQL dialect maps ClickHouse's onto them.
JSON_TYPES = ("VARCHAR", "OBJECT", "ARRAY", "BOOLEAN", "NULL", "BIGINT", "DOUBLE")


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

    def json_type(self, fragment: str, type_column: str) -> str:
        """The JSON type of a property (one of JSON_TYPES), NULL when absent."""
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
        return f"coalesce(json_valid({props}) AND starts_with(ltrim({props}), '{{'), false)"

    def props_extract(self, props: str, keys: list[str]) -> str:
        paths = "[" + ", ".join(self.quote("$." + key) for key in keys) + "]"
        return f"json_extract({props}, {paths})"

    def fragment(self, props: str, key: str, index: int | None) -> str:
        if index is not None:
            return f"CAST(p[{index + 1}] AS VARCHAR)"
        return f"CAST(json_extract({props}, {self.quote('$.' + key)}) AS VARCHAR)"

    def json_type(self, fragment: str, type_column: str) -> str:
        # A JSON fragment tells its type by its first character, which costs far less than
        # parsing it again.
        f = fragment
        return f"""CASE WHEN {f} IS NULL THEN NULL
            WHEN starts_with({f}, '"') THEN 'VARCHAR'
            WHEN starts_with({f}, '{{') THEN 'OBJECT'
            WHEN starts_with({f}, '[') THEN 'ARRAY'
            WHEN {f} IN ('true', 'false') THEN 'BOOLEAN'
            WHEN {f} = 'null' THEN 'NULL'
            WHEN regexp_full_match({f}, '-?[0-9]+') THEN 'BIGINT'
            ELSE 'DOUBLE'
        END"""

    def json_value(self, fragment: str) -> str:
        f = fragment
        # Strings are unquoted, and unescaped only if they need it.
        return f"""CASE WHEN NOT starts_with({f}, '"') THEN {f}
             WHEN contains({f}, '\\') THEN CAST({f} AS JSON) ->> '$'
             ELSE {f}[2:-2]
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

    def date_of(self, hour_ts: str) -> str:
        return f"CAST({hour_ts} AS DATE)"

    def hour_of(self, hour_ts: str) -> str:
        return f"CAST(hour({hour_ts}) AS SMALLINT)"


# ClickHouse's JSONType names → DuckDB's.
_CLICKHOUSE_JSON_TYPES = {
    "String": "VARCHAR",
    "Object": "OBJECT",
    "Array": "ARRAY",
    "Bool": "BOOLEAN",
    "Null": "NULL",
    "Int64": "BIGINT",
    "UInt64": "BIGINT",
    "Double": "DOUBLE",
}


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

    def json_type(self, fragment: str, type_column: str) -> str:
        cases = " ".join(
            f"WHEN {type_column} = {self.quote(ch)} THEN {self.quote(duck)}"
            for ch, duck in _CLICKHOUSE_JSON_TYPES.items()
        )
        return f"CASE WHEN {fragment} IS NULL THEN NULL {cases} END"

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

    def date_of(self, hour_ts: str) -> str:
        return f"toDate({hour_ts})"

    def hour_of(self, hour_ts: str) -> str:
        return f"toHour({hour_ts})"


DUCKDB = DuckDBDialect()
HOGQL = HogQLDialect()
