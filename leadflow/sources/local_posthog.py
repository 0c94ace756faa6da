"""A local stand-in for PostHog's Query API, on loopback, for tests and `leadflow demo --posthog`.

It speaks the wire format of `POST /api/projects/{project_id}/query/` (Bearer personal API key
with the `query:read` scope; a `HogQLQuery` body with `values`, `modifiers`, `refresh`, `name`;
`results`/`columns`/`types`/`hasMore`/`is_cached` answers; DRF-style error bodies) and keeps
PostHog's limits: a LIMIT above 50,000 is cut to 50,000, a query without LIMIT returns 100 rows
and `hasMore`, OFFSET is refused (as for personal API keys), 10 s of execution per query, 3
queries at a time, and optional per-minute/per-hour request limits answered with 429s.

The HogQL it is sent runs on ClickHouse itself (chdb, the embedded ClickHouse), over an events
table shaped like PostHog's (a ReplacingMergeTree sorted by date, event, distinct_id and uuid,
with merges stopped so that duplicate rows stay unmerged unless `merge()` is called). The
translation to ClickHouse SQL is what HogQL's printer does for these queries and no more: it
fills the `{placeholders}` from `values`, points `events` at the table, refuses functions outside
(a subset of) HogQL's whitelist, applies the LIMIT rules, and converts times to the project's
time zone unless `convertToProjectTimezone` is false.

Faults can be injected (`Fault`): 429s with or without Retry-After, 500s, slow answers,
dropped connections, execution timeouts and stale cached answers.

    python -m leadflow.sources.local_posthog --events demo-data --port 8010
"""

from __future__ import annotations

import argparse
import itertools
import json
import re
import socket
import tempfile
import threading
import time
from collections import deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pyarrow as pa
import pyarrow.parquet as pq

if TYPE_CHECKING:
    from leadflow.sources.files import ExportFile

DEFAULT_ROWS = 100  # posthog/hogql/constants.py: DEFAULT_RETURNED_ROWS
MAX_ROWS = 50_000  # posthog/hogql/constants.py: MAX_SELECT_RETURNED_ROWS
TIMEOUT_DETAIL = (
    "Query has hit the max execution time before completing. See our docs for how to improve "
    "your query performance. You may need to materialize."
)

# The HogQL functions the stand-in accepts: a subset of PostHog's whitelist
# (posthog/hogql/functions/mapping.py, aggregations.py, clickhouse/*.py), enough for leadflow's
# queries and a little more. A function outside it is refused, as PostHog refuses one outside its.
HOGQL_FUNCTIONS = frozenset(
    [
        "count",
        "countIf",
        "uniq",
        "uniqIf",
        "uniqExact",
        "uniqExactIf",
        "sum",
        "sumIf",
        "min",
        "minIf",
        "max",
        "maxIf",
        "avg",
        "avgIf",
        "any",
        "anyIf",
        "argMin",
        "argMinIf",
        "argMax",
        "argMaxIf",
        "groupArray",
        "groupArrayIf",
        "groupUniqArray",
        "groupUniqArrayIf",
        "toString",
        "toDate",
        "toDateTime",
        "toDateTime64",
        "toStartOfHour",
        "toStartOfDay",
        "toStartOfMonth",
        "toHour",
        "toYYYYMM",
        "toUnixTimestamp",
        "toTimeZone",
        "now",
        "now64",
        "today",
        "dateDiff",
        "formatDateTime",
        "JSONExtractRaw",
        "JSONExtractString",
        "JSONExtractInt",
        "JSONExtractFloat",
        "JSONExtractBool",
        "JSONType",
        "JSONHas",
        "JSONLength",
        "isValidJSON",
        "startsWith",
        "endsWith",
        "trim",
        "trimLeft",
        "trimRight",
        "match",
        "position",
        "substring",
        "substringUTF8",
        "length",
        "lengthUTF8",
        "lower",
        "upper",
        "concat",
        "replaceAll",
        "replaceRegexpAll",
        "splitByChar",
        "nullIf",
        "coalesce",
        "ifNull",
        "if",
        "multiIf",
        "isNull",
        "isNotNull",
        "tuple",
        "toInt64",
        "toInt32",
        "toUInt64",
        "toFloat64",
        "round",
        "floor",
        "abs",
        "least",
        "greatest",
    ]
)
_CASE_INSENSITIVE = frozenset(
    f.lower()
    for f in (
        "count",
        "min",
        "max",
        "sum",
        "avg",
        "coalesce",
        "if",
        "concat",
        "lower",
        "upper",
        "substring",
        "position",
        "trim",
        "length",
        "round",
        "floor",
        "abs",
    )
)
_KEYWORDS = frozenset(
    [
        "select",
        "from",
        "where",
        "group",
        "by",
        "order",
        "having",
        "limit",
        "offset",
        "with",
        "as",
        "and",
        "or",
        "not",
        "in",
        "is",
        "null",
        "case",
        "when",
        "then",
        "else",
        "end",
        "on",
        "join",
        "left",
        "right",
        "inner",
        "outer",
        "full",
        "cross",
        "using",
        "union",
        "all",
        "distinct",
        "exists",
        "between",
        "like",
        "ilike",
        "interval",
        "asc",
        "desc",
        "nulls",
        "first",
        "last",
        "over",
        "partition",
        "rows",
        "range",
        "array",
        "values",
        "settings",
        "prewhere",
        "sample",
        "final",
        "global",
        "any",
    ]
)

EVENTS_TABLE_SQL = """
CREATE TABLE {name} (
    uuid UUID,
    event String,
    distinct_id String,
    properties String,
    timestamp DateTime64(6, 'UTC'),
    created_at DateTime64(6, 'UTC')
) ENGINE = ReplacingMergeTree
PARTITION BY toYYYYMM(timestamp)
ORDER BY (toDate(timestamp), event, cityHash64(distinct_id), cityHash64(uuid))
"""


class HogQLRefused(Exception):
    """A query the Query API answers with a 400 validation error."""


@dataclass
class Fault:
    """A failure to inject into answers to come.

    kind: "throttle" (429 with DRF's "Expected available in `wait` seconds", plus a Retry-After
    header of `retry_after` seconds unless it is None), "error" (500), "slow" (answer after
    `delay` seconds), "drop" (close the connection without an answer), "timeout" (the execution
    time limit's error) or "cached" (a stale cached answer, `is_cached: true`).
    `match`: only requests whose query name contains it; `after`: let this many matching requests
    through first; `times`: how many to fail.
    """

    kind: str
    wait: int = 1
    retry_after: float | None = None
    delay: float = 0.0
    match: str | None = None
    after: int = 0
    times: int = 1


@dataclass
class RequestLog:
    """One request the stand-in answered."""

    name: str | None
    status: int
    bytes_in: int
    bytes_out: int
    rows: int = 0
    fault: str | None = None


@dataclass
class _Translated:
    sql: str
    limit: int | None  # the limit the answer is cut to
    default_limit: bool  # no LIMIT was given: 100 rows and hasMore


class _Tokens:
    """A HogQL text as tokens: strings, quoted names, placeholders, words, numbers, symbols."""

    PATTERN = re.compile(
        r"""
        (?P<space>\s+|--[^\n]*|/\*.*?\*/)
      | (?P<string>'(?:[^'\\]|\\.|'')*')
      | (?P<quoted>"(?:[^"\\]|\\.)*"|`(?:[^`\\]|\\.)*`)
      | (?P<placeholder>\{\s*[A-Za-z_][A-Za-z0-9_]*\s*\})
      | (?P<word>[A-Za-z_$][A-Za-z0-9_$]*)
      | (?P<number>\d+(?:\.\d*)?(?:[eE][+-]?\d+)?)
      | (?P<symbol>.)
        """,
        re.VERBOSE | re.DOTALL,
    )

    def __init__(self, text: str) -> None:
        self.items: list[tuple[str, str]] = [
            (m.lastgroup or "symbol", m.group()) for m in self.PATTERN.finditer(text)
        ]


def _literal(value: Any) -> str:
    """A HogQL placeholder value as a ClickHouse literal."""
    if value is None:
        return "NULL"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_literal(v) for v in value) + "]"
    if isinstance(value, str):
        return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"
    raise HogQLRefused(f"Unsupported placeholder value type: {type(value).__name__}")


def translate(query: str, values: Mapping[str, Any], table: str) -> _Translated:
    """HogQL → ClickHouse SQL for the queries this stand-in serves (see the module docstring)."""
    tokens = _Tokens(query).items
    out: list[str] = []
    depth = 0
    limit_at: int | None = None  # index in `out` of a top-level LIMIT's number
    previous_word = ""
    significant: list[tuple[str, str]] = [(k, t) for k, t in tokens if k != "space"]
    position = 0
    for kind, text in tokens:
        if kind == "space":
            out.append(" ")
            continue
        following = significant[position + 1] if position + 1 < len(significant) else ("", "")
        position += 1
        word = text.lower() if kind == "word" else ""
        if kind == "placeholder":
            name = text.strip("{} \t\n")
            if name not in values:
                raise HogQLRefused(f"Placeholder {{{name}}} is not in the provided values")
            out.append(_literal(values[name]))
        elif kind == "word":
            if following[1] == "(" and word not in _KEYWORDS:
                if text not in HOGQL_FUNCTIONS and word not in _CASE_INSENSITIVE:
                    raise HogQLRefused(f"Unsupported function call '{text}(...)'")
                out.append(text)
            elif text == "events" and previous_word in ("from", "join"):
                out.append(table)
            else:
                if depth == 0 and word == "offset":
                    raise HogQLRefused(
                        "OFFSET is not allowed in queries made with a personal API key: paginate "
                        "by a condition on the ordering columns instead (keyset pagination)"
                    )
                out.append(text)
                if depth == 0 and word == "limit":
                    limit_at = len(out)
        else:
            if text == "(":
                depth += 1
            elif text == ")":
                depth -= 1
            if depth == 0 and text == "," and limit_at is not None:
                raise HogQLRefused("LIMIT with an offset is not allowed: use keyset pagination")
            out.append(text)
        previous_word = word
    if depth != 0:
        raise HogQLRefused("Syntax error: unbalanced parentheses")
    sql = "".join(out).strip().rstrip(";")
    if limit_at is None:
        return _Translated(f"{sql}\nLIMIT {DEFAULT_ROWS + 1}", DEFAULT_ROWS, True)
    rest = "".join(out[limit_at:]).strip()
    match = re.match(r"(\d+)", rest)
    if not match:
        raise HogQLRefused("LIMIT must be a number")
    asked = int(match.group(1))
    capped = min(asked, MAX_ROWS)
    head = "".join(out[:limit_at])
    return _Translated(f"{head} {capped}{rest[match.end() :]}", capped, False)


def _iso(value: str) -> str:
    """ClickHouse's '2025-05-01 10:15:30.123456' as the API's '2025-05-01T10:15:30.123456Z'."""
    return value.replace(" ", "T") + "Z"


def _convert(value: Any, ch_type: str) -> Any:
    """A ClickHouse JSON value as PostHog's API returns it (times ISO-8601 UTC, numbers as numbers)."""
    if value is None:
        return None
    inner = ch_type
    while inner.startswith(("Nullable(", "LowCardinality(")):
        inner = inner[inner.index("(") + 1 : -1]
    if inner.startswith("Array("):
        return [_convert(v, inner[6:-1]) for v in value]
    if inner.startswith("Tuple("):
        return list(value)
    if inner.startswith(("DateTime64", "DateTime")):
        return _iso(value) if "." in value else _iso(value + ".000000")
    if inner.startswith(("Int", "UInt")) and isinstance(value, str):
        return int(value)
    if inner.startswith("Float") and isinstance(value, str):
        return float(value)
    return value


class LocalPostHog:
    """The stand-in: an events store (chdb) behind the Query API's wire format, on loopback.

    chdb allows one embedded server per process at a time: close one stand-in (`stop()`, or use it
    as a context manager) before making another.
    """

    def __init__(
        self,
        *,
        project_id: int = 1,
        api_key: str = "phx_local_stand_in",
        scopes: Iterable[str] = ("query:read",),
        timezone: str = "UTC",
        execution_limit_seconds: float = 10.0,
        concurrency: int = 3,
        per_minute: int | None = None,
        per_hour: int | None = None,
        port: int = 0,
    ) -> None:
        from chdb import session as chdb_session

        self.project_id = project_id
        self.api_key = api_key
        self.scopes = set(scopes)
        self.timezone = timezone
        self.execution_limit_seconds = execution_limit_seconds
        self.concurrency = concurrency
        self.per_minute = per_minute
        self.per_hour = per_hour
        self.requests: list[RequestLog] = []
        self.last_body: dict[str, Any] = {}  # the last request's JSON body
        self.faults: list[Fault] = []
        self._seen: dict[int, int] = {}
        self._workdir = tempfile.TemporaryDirectory(prefix="leadflow-local-posthog-")
        self._db: Any = chdb_session.Session(f"{self._workdir.name}/chdb")  # type: ignore[no-untyped-call]
        self._db_lock = threading.Lock()
        self._state_lock = threading.Lock()
        self._in_flight = 0
        self._stamps: deque[float] = deque()
        self._cache: dict[str, dict[str, Any]] = {}
        self._query_count = 0
        self._sql("CREATE DATABASE IF NOT EXISTS posthog")
        self._sql(EVENTS_TABLE_SQL.format(name="posthog.events"))
        self._sql("SYSTEM STOP MERGES posthog.events")
        self._sql(
            "CREATE VIEW posthog.events_in_project_tz AS SELECT uuid, event, distinct_id, "
            f"properties, toTimeZone(timestamp, {_literal(timezone)}) AS timestamp, "
            f"toTimeZone(created_at, {_literal(timezone)}) AS created_at FROM posthog.events"
        )
        self._server = ThreadingHTTPServer(("127.0.0.1", port), _handler(self))
        self._server.daemon_threads = True
        self._thread: threading.Thread | None = None

    # -- data -----------------------------------------------------------------------------------

    def _sql(self, sql: str, fmt: str = "CSV") -> Any:
        with self._db_lock:
            return self._db.query(sql, fmt)

    def add_events(self, events: Iterable[Mapping[str, Any]]) -> int:
        """Ingest PostHog events (dicts with uuid, event, distinct_id, properties, timestamp and
        created_at, the ingestion time, defaulting to the timestamp). Rows PostHog could not hold
        (no valid uuid, event name or timestamp) are skipped. Returns how many were added."""
        rows: dict[str, list[Any]] = {c: [] for c in ("uuid", "event", "distinct_id", "properties")}
        times: dict[str, list[int]] = {"timestamp": [], "created_at": []}
        for e in events:
            stamp = _micros(e.get("timestamp"))
            created = _micros(e.get("created_at")) if e.get("created_at") is not None else stamp
            props = e.get("properties")
            text = (
                props if isinstance(props, str) else json.dumps(props if props is not None else {})
            )
            if not isinstance(e.get("event"), str) or stamp is None or created is None:
                continue
            rows["uuid"].append(str(e.get("uuid")))
            rows["event"].append(e["event"])
            rows["distinct_id"].append(
                "" if e.get("distinct_id") is None else str(e["distinct_id"])
            )
            rows["properties"].append(text)
            times["timestamp"].append(stamp)
            times["created_at"].append(created)
        columns: dict[str, pa.Array] = {k: pa.array(v, pa.string()) for k, v in rows.items()}
        for name, micros in times.items():
            columns[name] = pa.array(micros, pa.int64()).cast(pa.timestamp("us", tz="UTC"))
        return self._insert(pa.table(columns))

    def load_export(self, path: str | Path) -> int:
        """Ingest the events of PostHog export files (a file, a folder or a glob), as PostHog holds
        them: with their own `created_at`; rows PostHog could not hold are skipped."""
        from leadflow.sources.files import discover, readable

        with tempfile.TemporaryDirectory(prefix="leadflow-posthog-load-") as folder:
            exports = [f for _, f in readable(list(enumerate(discover(str(path)))), folder)]
            return self._load_files(exports)

    def _load_files(self, exports: list[ExportFile]) -> int:
        import duckdb

        readers = []
        parquet = [f.path for f in exports if f.format == "parquet"]
        jsonl = [f.path for f in exports if f.format != "parquet"]
        if parquet:
            readers.append(f"read_parquet({_duck_list(parquet)}, union_by_name = true)")
        if jsonl:
            readers.append(
                f"read_json({_duck_list(jsonl)}, format = 'newline_delimited', "
                "ignore_errors = true, maximum_object_size = 16777216, "
                "columns = {uuid: 'VARCHAR', event: 'VARCHAR', distinct_id: 'VARCHAR', "
                "properties: 'JSON', timestamp: 'VARCHAR', created_at: 'VARCHAR'})"
            )
        added = 0
        con = duckdb.connect()
        try:
            con.execute("SET TimeZone = 'UTC'")
            for reader in readers:
                relation = con.sql(
                    f"""
SELECT uuid, event, distinct_id, properties, "timestamp",
       coalesce(created_at, "timestamp") AS created_at
FROM (
    SELECT CAST(uuid AS VARCHAR) AS uuid, CAST(event AS VARCHAR) AS event,
        CAST(distinct_id AS VARCHAR) AS distinct_id,
        CASE WHEN json_type(CAST(properties AS JSON)) = 'VARCHAR'
             THEN CAST(properties AS JSON) ->> '$' ELSE CAST(properties AS VARCHAR)
        END AS properties,
        try_cast(CAST("timestamp" AS VARCHAR) AS TIMESTAMPTZ) AS "timestamp",
        try_cast(CAST(created_at AS VARCHAR) AS TIMESTAMPTZ) AS created_at
    FROM {reader}
    WHERE try_cast(CAST(uuid AS VARCHAR) AS UUID) IS NOT NULL AND event IS NOT NULL
      AND json_valid(CAST(properties AS VARCHAR))
)
WHERE "timestamp" IS NOT NULL AND json_type(properties) = 'OBJECT'
"""
                )
                # One insert per million rows: every insert is a part per month (merges are
                # stopped), and ClickHouse reads many small parts slowly.
                pending: list[pa.RecordBatch] = []
                for batch in relation.to_arrow_reader(1_000_000):
                    pending.append(batch)
                    if sum(b.num_rows for b in pending) >= 1_000_000:
                        added += self._insert(pa.Table.from_batches(pending))
                        pending = []
                if pending:
                    added += self._insert(pa.Table.from_batches(pending))
        finally:
            con.close()
        return added

    def _insert(self, table: pa.Table) -> int:
        if table.num_rows == 0:
            return 0
        path = Path(self._workdir.name) / f"batch-{next(_BATCHES)}.parquet"
        pq.write_table(table.cast(_SCHEMA), path)
        try:
            self._sql(
                "INSERT INTO posthog.events SELECT toUUID(uuid), event, distinct_id, properties, "
                f"timestamp, created_at FROM file('{path}', Parquet) "
                "WHERE toUUIDOrNull(uuid) IS NOT NULL"
            )
        finally:
            path.unlink()
        return int(table.num_rows)

    def merge(self) -> None:
        """Let ClickHouse merge duplicate rows (as PostHog's table does, eventually)."""
        self._sql("SYSTEM START MERGES posthog.events")
        self._sql("OPTIMIZE TABLE posthog.events FINAL")
        self._sql("SYSTEM STOP MERGES posthog.events")

    def rows(self) -> int:
        return int(str(self._sql("SELECT count() FROM posthog.events")).strip() or 0)

    def reset(self) -> None:
        """Forget every event, request, fault and cached answer."""
        self._sql("TRUNCATE TABLE posthog.events")
        with self._state_lock:
            self.requests.clear()
            self.faults.clear()
            self._seen.clear()
            self._cache.clear()
            self._stamps.clear()

    def inject(self, *faults: Fault) -> None:
        with self._state_lock:
            self.faults.extend(faults)

    # -- serving --------------------------------------------------------------------------------

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def start(self) -> LocalPostHog:
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._thread is not None:
            self._server.shutdown()
            self._thread.join()
            self._thread = None
        self._server.server_close()
        self._db.close()
        self._workdir.cleanup()

    def __enter__(self) -> LocalPostHog:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _fault_for(self, name: str | None) -> Fault | None:
        with self._state_lock:
            for fault in self.faults:
                if fault.times <= 0 or (fault.match and fault.match not in (name or "")):
                    continue
                seen = self._seen.get(id(fault), 0)
                self._seen[id(fault)] = seen + 1
                if seen < fault.after:
                    continue
                fault.times -= 1
                return fault
        return None

    def _throttle_wait(self) -> int | None:
        """Seconds until a request is allowed again under the per-minute/hour limits, or None."""
        now = time.monotonic()
        with self._state_lock:
            while self._stamps and now - self._stamps[0] > 3600:
                self._stamps.popleft()
            for limit, span in ((self.per_minute, 60), (self.per_hour, 3600)):
                if limit is None:
                    continue
                recent = [s for s in self._stamps if now - s <= span]
                if len(recent) >= limit:
                    return max(1, int(span - (now - recent[-limit])) + 1)
            self._stamps.append(now)
        return None

    def answer(
        self, path: str, headers: Mapping[str, str], body: bytes
    ) -> tuple[int, dict[str, str], Any]:
        """(status, extra headers, JSON body) for one request; faults are applied by the caller."""
        match = re.fullmatch(r"/api/projects/([^/]+)/query/", path)
        if match is None:
            return 404, {}, {"type": "invalid_request", "code": "not_found", "detail": "Not found."}
        auth = headers.get("authorization", "")
        if not auth:
            return (
                401,
                {},
                _auth_error("not_authenticated", "Authentication credentials were not provided."),
            )
        if not auth.startswith("Bearer ") or auth[7:].strip() != self.api_key:
            return (
                401,
                {},
                _auth_error(
                    "authentication_failed",
                    "Personal API key found in request Authorization header is invalid.",
                ),
            )
        if "query:read" not in self.scopes:
            return (
                403,
                {},
                _auth_error("permission_denied", "API key missing required scope 'query:read'"),
            )
        if match.group(1) != str(self.project_id):
            return 404, {}, {"type": "invalid_request", "code": "not_found", "detail": "Not found."}
        wait = self._throttle_wait()
        if wait is not None:
            return 429, {"Retry-After": str(wait)}, _throttled(wait)
        try:
            request = json.loads(body or b"{}")
            query = request["query"]
            if query.get("kind") != "HogQLQuery" or not isinstance(query.get("query"), str):
                raise HogQLRefused("query.kind must be HogQLQuery, with the HogQL in query.query")
            values = query.get("values") or {}
            convert = (query.get("modifiers") or {}).get("convertToProjectTimezone", True)
            table = "posthog.events" if convert is False else "posthog.events_in_project_tz"
            translated = translate(query["query"], values, table)
        except HogQLRefused as exc:
            return 400, {}, _validation_error(str(exc))
        except (ValueError, KeyError, TypeError, AttributeError):
            return 400, {}, _validation_error('Malformed request body: expected {"query": {...}}')
        cache_key = json.dumps([query, request.get("refresh")], sort_keys=True, default=str)
        plain_key = json.dumps(query, sort_keys=True, default=str)
        if (
            request.get("refresh") not in ("force_blocking", "force_async")
            and plain_key in self._cache
        ):
            return 200, {}, {**self._cache[plain_key], "is_cached": True}
        with self._state_lock:
            if self._in_flight >= self.concurrency:
                return 429, {}, _throttled(None, "Too many simultaneous queries. Try again later.")
            self._in_flight += 1
        try:
            result = self._execute(translated)
        except HogQLRefused as exc:
            return 400, {}, _validation_error(str(exc))
        finally:
            with self._state_lock:
                self._in_flight -= 1
        result.update(
            hogql=query["query"],
            clickhouse=translated.sql,
            cache_key=f"cache_{abs(hash(cache_key))}",
            is_cached=False,
            timezone="UTC" if convert is False else self.timezone,
            modifiers=query.get("modifiers") or {},
            query_status=None,
            error=None,
            timings=[],
            last_refresh=datetime.now(UTC).isoformat().replace("+00:00", "Z"),
        )
        self._cache[plain_key] = result
        return 200, {}, result

    def _execute(self, translated: _Translated) -> dict[str, Any]:
        try:
            with self._db_lock:
                self._db.query(f"SET max_execution_time = {self.execution_limit_seconds}")
                # ClickHouse's lazy (short-circuit) evaluation runs a CASE branch's arguments once
                # per branch that needs them: over the classification's CASE chains that re-runs
                # JSON extraction about ten times per event. Evaluated eagerly, the stand-in
                # answers in about a tenth of the time (PostHog's own servers keep their settings).
                self._db.query("SET short_circuit_function_evaluation = 'disable'")
                raw = self._db.query(translated.sql, "JSONCompact")
        except Exception as exc:  # chdb's errors: ClickHouse refused or failed the query
            message = str(exc)
            if "TIMEOUT_EXCEEDED" in message:
                raise HogQLRefused(TIMEOUT_DETAIL) from exc
            first = message.strip().splitlines()[0] if message.strip() else "query failed"
            raise HogQLRefused(re.sub(r"\s*\(version [^)]*\)", "", first)) from exc
        text = raw.bytes().decode() if hasattr(raw, "bytes") else str(raw)
        data = json.loads(text) if text.strip() else {"meta": [], "data": []}
        meta = data.get("meta", [])
        rows = [
            [_convert(value, column["type"]) for value, column in zip(row, meta, strict=True)]
            for row in data.get("data", [])
        ]
        result: dict[str, Any] = {
            "columns": [column["name"] for column in meta],
            "types": [[column["name"], column["type"]] for column in meta],
        }
        if translated.default_limit:
            result["hasMore"] = len(rows) > DEFAULT_ROWS
            result["limit"] = DEFAULT_ROWS
            result["offset"] = 0
            rows = rows[:DEFAULT_ROWS]
        result["results"] = rows
        return result


_BATCHES = itertools.count()
_SCHEMA = pa.schema(
    [
        ("uuid", pa.string()),
        ("event", pa.string()),
        ("distinct_id", pa.string()),
        ("properties", pa.string()),
        ("timestamp", pa.timestamp("us", tz="UTC")),
        ("created_at", pa.timestamp("us", tz="UTC")),
    ]
)


def _duck_list(paths: list[str]) -> str:
    return "[" + ", ".join("'" + p.replace("'", "''") + "'" for p in paths) + "]"


def _micros(value: Any) -> int | None:
    if value is None:
        return None
    if isinstance(value, int | float) and not isinstance(value, bool):
        return int(value)  # microseconds since the epoch
    if isinstance(value, date) and not isinstance(value, datetime):
        value = datetime(value.year, value.month, value.day, tzinfo=UTC)
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            return None
    if not isinstance(value, datetime):
        return None
    moment: datetime = value if value.tzinfo is not None else value.replace(tzinfo=UTC)
    delta = moment - datetime(1970, 1, 1, tzinfo=UTC)
    return int((delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds)


def _auth_error(code: str, detail: str) -> dict[str, Any]:
    return {"type": "authentication_error", "code": code, "detail": detail, "attr": None}


def _validation_error(detail: str) -> dict[str, Any]:
    return {"type": "validation_error", "code": "invalid_input", "detail": detail, "attr": None}


def _throttled(wait: int | None, detail: str | None = None) -> dict[str, Any]:
    text = detail or (
        f"Request was throttled. Expected available in {wait} second{'s' if wait != 1 else ''}."
    )
    return {"type": "throttled_error", "code": "throttled", "detail": text, "attr": None}


def _handler(posthog: LocalPostHog) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:  # quiet
            pass

        def _send(self, status: int, headers: Mapping[str, str], payload: Any) -> int:
            body = json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            for key, value in headers.items():
                self.send_header(key, value)
            self.end_headers()
            self.wfile.write(body)
            return len(body)

        def do_GET(self) -> None:
            self._send(
                405,
                {},
                {
                    "type": "invalid_request",
                    "code": "method_not_allowed",
                    "detail": 'Method "GET" not allowed.',
                },
            )

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            try:
                posthog.last_body = json.loads(body or b"{}")
                name = posthog.last_body.get("name")
            except (ValueError, AttributeError):
                name = None
            fault = posthog._fault_for(name) if self.path.endswith("/query/") else None
            log = RequestLog(name, 0, len(body), 0, fault=fault.kind if fault else None)
            posthog.requests.append(log)
            if fault is not None:
                if fault.kind == "drop":
                    self.close_connection = True
                    self.connection.shutdown(socket.SHUT_RDWR)
                    return
                if fault.kind == "slow":
                    time.sleep(fault.delay)
                elif fault.kind == "throttle":
                    headers = (
                        {}
                        if fault.retry_after is None
                        else {"Retry-After": f"{fault.retry_after:g}"}
                    )
                    log.status = 429
                    log.bytes_out = self._send(429, headers, _throttled(fault.wait))
                    return
                elif fault.kind == "error":
                    log.status = 500
                    log.bytes_out = self._send(
                        500,
                        {},
                        {
                            "type": "server_error",
                            "code": "error",
                            "detail": "A server error occurred.",
                            "attr": None,
                        },
                    )
                    return
                elif fault.kind == "timeout":
                    log.status = 400
                    log.bytes_out = self._send(400, {}, _validation_error(TIMEOUT_DETAIL))
                    return
            headers = {k.lower(): v for k, v in self.headers.items()}
            status, extra, payload = posthog.answer(self.path, headers, body)
            if fault is not None and fault.kind == "cached" and status == 200:
                payload = {**payload, "is_cached": True}
            log.status = status
            log.rows = len(payload.get("results") or []) if isinstance(payload, dict) else 0
            log.bytes_out = self._send(status, extra, payload)

    return Handler


def main(argv: list[str] | None = None) -> None:
    """Serve export files' events on loopback: `--events DIR --port N`."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--events", required=True, help="PostHog export files: a file, folder or glob"
    )
    parser.add_argument("--port", type=int, default=8010)
    parser.add_argument("--project-id", type=int, default=1)
    parser.add_argument("--api-key", default="phx_local_stand_in")
    parser.add_argument(
        "--per-hour", type=int, default=None, help="429 beyond this many requests an hour"
    )
    parser.add_argument("--per-minute", type=int, default=None)
    args = parser.parse_args(argv)
    server = LocalPostHog(
        project_id=args.project_id,
        api_key=args.api_key,
        port=args.port,
        per_hour=args.per_hour,
        per_minute=args.per_minute,
    )
    loaded = server.load_export(args.events)
    print(
        f"local PostHog with {loaded:,} events at {server.url}\n"
        f"  POSTHOG_HOST={server.url} POSTHOG_PROJECT_ID={args.project_id} "
        f"POSTHOG_PERSONAL_API_KEY={args.api_key}",
        flush=True,
    )
    server.start()
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()


if __name__ == "__main__":
    main()
