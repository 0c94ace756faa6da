"""PostHog's Query API as leadflow's source: a polite client, and a reader of slices whose listing
signals are classified and aggregated in HogQL, where the events live.

The client sends one query at a time (`POST {host}/api/projects/{id}/query/`, `HogQLQuery`,
`refresh: force_blocking`, `convertToProjectTimezone: false`, a stable `name`), within a request
budget and a time budget per run; it retries 429s, 5xx, timeouts and dropped connections with
exponential backoff and jitter, waiting at least what PostHog asks (Retry-After, or the 429's
"Expected available in N seconds"), and stops the run cleanly (`OutOfBudget`) rather than wait
past its time budget. Pages are read by keyset until a page comes back shorter than its LIMIT.

See docs/posthog.md for the reading model (ingestion-time cursor, overlap, settle delay).
"""

from __future__ import annotations

import json
import logging
import random
import re
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pyarrow as pa

from leadflow.errors import ConfigError, SourceError
from leadflow.events import Kind, Taxonomy
from leadflow.sources import hogql
from leadflow.sources.hogql import Query, parse_time
from leadflow.store.schema import HOURLY_COUNTERS
from leadflow.transform.metrics import LISTER_COLUMNS

log = logging.getLogger("leadflow.posthog")

HOUR = timedelta(hours=1)
DAY = timedelta(days=1)
# PostHog moves an event's timestamp that is more than 23 hours ahead of ingestion to the
# ingestion time, so no event ingested before `t` has a timestamp after `t + 1 day`.
FUTURE_SKEW = DAY


class PostHogError(SourceError):
    """PostHog refused or failed a request (the message says which, and what to do)."""


class AuthError(PostHogError):
    """The key was refused (401) or lacks access (403)."""


class QueryRefused(PostHogError):
    """PostHog refused a query (400); the message is PostHog's."""


class QueryTimeout(PostHogError):
    """A query hit PostHog's execution time limit (or the client's read timeout, repeatedly)."""


class OutOfBudget(PostHogError):
    """The run's request or time budget is spent (or PostHog asks to wait past it): the run stops
    cleanly after its last committed slice, and the next run continues from there."""


@dataclass
class ClientStats:
    """What a run's requests cost."""

    requests: int = 0
    retries: int = 0
    throttled: int = 0
    bytes_sent: int = 0
    bytes_received: int = 0
    rows: int = 0
    cached: int = 0
    by_name: dict[str, int] = field(default_factory=dict)


_EXPECTED = re.compile(r"Expected available in (\d+(?:\.\d+)?) second")
_TIMEOUT_MARKERS = ("max execution time", "TIMEOUT_EXCEEDED", "Timeout exceeded")


class QueryClient:
    """One project's Query API, one query at a time, within a run's budgets."""

    def __init__(
        self,
        host: str,
        project_id: str,
        api_key: str,
        *,
        timeout_seconds: float = 60.0,
        max_retries: int = 6,
        backoff_seconds: float = 1.0,
        request_budget: int | None = None,
        deadline: float | None = None,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.host = host.rstrip("/")
        self.project_id = project_id
        self.max_retries = max_retries
        self.backoff_seconds = backoff_seconds
        self.request_budget = request_budget
        self.deadline = deadline
        self.sleep = sleep
        self.clock = clock
        self.stats = ClientStats()
        self.warnings: list[str] = []
        self._http = httpx.Client(
            base_url=self.host,
            headers={"Authorization": f"Bearer {api_key}", "User-Agent": "leadflow"},
            # PostHog runs a query for up to 10 s after queueing it for up to 30 s.
            timeout=httpx.Timeout(timeout_seconds, connect=min(10.0, timeout_seconds)),
            transport=transport,
        )

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> QueryClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def path(self) -> str:
        return f"/api/projects/{self.project_id}/query/"

    def _check_budget(self, wait: float = 0.0) -> None:
        if self.request_budget is not None and self.stats.requests >= self.request_budget:
            raise OutOfBudget(
                f"the run's request budget ({self.request_budget} requests to PostHog) is spent"
            )
        if self.deadline is not None and self.clock() + wait > self.deadline:
            raise OutOfBudget(
                f"PostHog asks to wait {wait:.0f} s, past the run's time budget"
                if wait
                else "the run's time budget is spent"
            )

    def _backoff(self, attempt: int) -> float:
        # Full jitter: a random wait up to the exponential step.
        step: float = self.backoff_seconds * 2**attempt
        return float(min(300.0, random.uniform(step / 2, step)))

    def _wait(self, seconds: float) -> None:
        self._check_budget(seconds)
        self.sleep(seconds)

    def query(self, q: Query) -> dict[str, Any]:
        """The answer to one HogQL query, retrying what is worth retrying."""
        body = {
            "query": {
                "kind": "HogQLQuery",
                "query": q.sql,
                "values": q.values,
                "modifiers": {"convertToProjectTimezone": False},
            },
            "refresh": "force_blocking",
            "name": q.name,
        }
        payload = json.dumps(body).encode()
        attempt = 0
        while True:
            self._check_budget()
            self.stats.requests += 1
            self.stats.by_name[q.name] = self.stats.by_name.get(q.name, 0) + 1
            self.stats.bytes_sent += len(payload)
            try:
                response = self._http.post(
                    self.path, content=payload, headers={"Content-Type": "application/json"}
                )
            except httpx.TimeoutException as exc:
                failure: Exception = QueryTimeout(
                    f"PostHog did not answer query {q.name!r} within the client's timeout"
                )
                failure.__cause__ = exc
            except httpx.TransportError as exc:
                failure = PostHogError(f"cannot reach PostHog at {self.host}: {exc}")
                failure.__cause__ = exc
            else:
                self.stats.bytes_received += len(response.content)
                outcome = self._outcome(q, response)
                if isinstance(outcome, dict):
                    return outcome
                failure, wait = outcome
                if wait is not None:  # throttled: wait what PostHog asks, plus jitter
                    self.stats.throttled += 1
                    attempt += 1
                    if attempt > self.max_retries + 4:
                        raise PostHogError(
                            f"PostHog kept throttling query {q.name!r} ({failure})"
                        ) from None
                    self.stats.retries += 1
                    self._wait(wait + random.uniform(0, min(5.0, 0.1 * wait + 0.5)))
                    continue
            if attempt >= self.max_retries:
                raise failure
            delay = self._backoff(attempt)
            attempt += 1
            self.stats.retries += 1
            log.info("retrying %s in %.1f s: %s", q.name, delay, failure)
            self._wait(delay)

    def _outcome(
        self, q: Query, response: httpx.Response
    ) -> dict[str, Any] | tuple[Exception, float | None]:
        """The answer, or (the failure, seconds to wait if throttled) for a retry, or raises."""
        status = response.status_code
        detail = _detail(response)
        if status == 200:
            try:
                data = response.json()
            except ValueError:
                data = None
            if not isinstance(data, dict) or not isinstance(data.get("results"), list):
                raise PostHogError(
                    f"{self.host} did not answer like PostHog's Query API (HTTP 200 without "
                    "results): check POSTHOG_HOST (https://us.posthog.com, https://eu.posthog.com "
                    "or your self-hosted PostHog's address)"
                )
            if data.get("error"):
                raise QueryRefused(f"PostHog failed query {q.name!r}: {data['error']}")
            if data.get("is_cached"):
                self.stats.cached += 1
                warning = (
                    f"PostHog answered query {q.name!r} from its cache although leadflow asks "
                    "for a fresh result (refresh=force_blocking); its numbers may be stale"
                )
                log.warning(warning)
                if warning not in self.warnings:
                    self.warnings.append(warning)
            self.stats.rows += len(data["results"])
            return data
        if status == 429:
            return PostHogError(detail or "throttled"), _retry_after(
                response, detail, self._backoff(0)
            )
        if status == 401:
            raise AuthError(
                f"PostHog refused the API key (401: {detail or 'unauthorized'}). Set "
                "POSTHOG_PERSONAL_API_KEY to a personal API key (phx_…) or project secret key "
                "with the query:read scope"
            )
        if status == 403:
            raise AuthError(
                f"PostHog denied access to project {self.project_id} (403: "
                f"{detail or 'forbidden'}). The key needs the query:read scope and access to "
                "this project: edit its scopes in PostHog (Settings → Personal API keys), or "
                "check POSTHOG_PROJECT_ID"
            )
        if status == 404:
            raise PostHogError(
                f"{self.host} has no project {self.project_id} (404). Check POSTHOG_PROJECT_ID "
                "(Project settings → Project ID) and POSTHOG_HOST (US Cloud "
                "https://us.posthog.com, EU Cloud https://eu.posthog.com, or self-hosted)"
            )
        if detail and any(marker in detail for marker in _TIMEOUT_MARKERS):
            raise QueryTimeout(f"query {q.name!r} hit PostHog's execution time limit: {detail}")
        if status == 400:
            raise QueryRefused(
                f"PostHog refused query {q.name!r} (400): {detail or response.text[:300]}"
            )
        if status >= 500 or status == 408:
            return PostHogError(f"PostHog failed query {q.name!r} (HTTP {status}): {detail}"), None
        raise PostHogError(f"PostHog answered query {q.name!r} with HTTP {status}: {detail}")

    def fetch_all(
        self,
        build: Callable[[Sequence[Any] | None, int], Query],
        key: Callable[[list[Any]], Sequence[Any]],
        page_rows: int,
    ) -> tuple[list[str], list[list[Any]]]:
        """Every row of a keyset-paged query (see iter_pages), with its column names."""
        rows: list[list[Any]] = []
        names: list[str] = []
        for columns, page in self.iter_pages(build, key, page_rows):
            names = columns or names
            rows.extend(page)
        return names, rows

    def iter_pages(
        self,
        build: Callable[[Sequence[Any] | None, int], Query],
        key: Callable[[list[Any]], Sequence[Any]],
        page_rows: int,
    ) -> Iterator[tuple[list[str], list[list[Any]]]]:
        """The pages of a keyset-paged query: `build(after, limit)` gives the page after the row
        whose key is `after`. A page as long as its LIMIT means there may be more, never done;
        a page that does not move the key forward is an error, never a loop."""
        limit = min(page_rows, hogql.MAX_ROWS)
        after: Sequence[Any] | None = None
        while True:
            data = self.query(build(after, limit))
            page = data["results"]
            columns = list(data.get("columns") or [])
            if len(page) > limit:
                raise PostHogError(f"PostHog returned {len(page)} rows for a LIMIT of {limit}")
            yield columns, page
            if len(page) < limit and not data.get("hasMore"):
                return
            last = tuple(key(page[-1])) if page else None
            if last is None or (after is not None and _sort_key(last) <= _sort_key(tuple(after))):
                raise PostHogError("PostHog's pages did not advance; stopping rather than loop")
            after = last


def _sort_key(key: tuple[Any, ...]) -> tuple[Any, ...]:
    return tuple(str(k) if not isinstance(k, int | float) else k for k in key)


def _detail(response: httpx.Response) -> str:
    try:
        data = response.json()
    except ValueError:
        return response.text.strip()[:300]
    if isinstance(data, dict):
        for name in ("detail", "error", "message"):
            if isinstance(data.get(name), str):
                return str(data[name])
    return str(data)[:300]


def _retry_after(response: httpx.Response, detail: str, fallback: float) -> float:
    """How long a 429 asks to wait: Retry-After, else DRF's "Expected available in N seconds"."""
    header = response.headers.get("Retry-After")
    if header:
        try:
            return max(0.0, float(header))
        except ValueError:
            pass
    found = _EXPECTED.search(detail or "")
    if found:
        return float(found.group(1))
    return fallback


# -- reading slices -------------------------------------------------------------------------------


@dataclass
class CensusRow:
    """Events ingested on one day for one event hour (see hogql.census_query)."""

    ingest_day: datetime
    hour: datetime
    accepted: int
    read: int
    rejected: dict[str, int]


@dataclass
class IngestSlice:
    """A span of ingestion time a run commits as one: the hours its events touch, recomputed."""

    created_from: datetime
    created_to: datetime
    hours: list[datetime]
    accepted: int
    read: int
    rejected: dict[str, int]


@dataclass
class SliceRows:
    """What the writer takes for one slice (classify.CLASSIFIED_COLUMNS-derived Arrow tables)."""

    metrics: pa.Table
    breakdown: pa.Table
    hour_seekers: pa.Table
    seekers: pa.Table
    listers: pa.Table


# listing_analytics' key, as the rollups return it.
_HOUR_KEY_FIELDS = [("listing_id", pa.string()), ("date", pa.date32()), ("hour", pa.int16())]
METRICS_SCHEMA = pa.schema(
    [
        *_HOUR_KEY_FIELDS,
        *[(name, pa.int64()) for name in HOURLY_COUNTERS],
        ("conversion_rate", pa.float64()),
    ]
)
BREAKDOWN_SCHEMA = pa.schema(
    [*_HOUR_KEY_FIELDS, ("dimension", pa.string()), ("key", pa.string()), ("count", pa.int32())]
)
HOUR_SEEKERS_SCHEMA = pa.schema(
    [*_HOUR_KEY_FIELDS, ("viewers", pa.string()), ("lead_seekers", pa.string())]
)
SEEKERS_SCHEMA = pa.schema(
    [
        ("listing_id", pa.string()),
        ("date", pa.date32()),
        ("hour", pa.int16()),
        ("viewers", pa.string()),
        ("lead_seekers", pa.string()),
    ]
)
SEEKERS_SCHEMA = pa.schema(
    [("listing_id", pa.string()), ("kind", pa.string()), ("seeker_id", pa.string())]
)
LISTERS_SCHEMA = pa.schema([(name, pa.string()) for name in LISTER_COLUMNS])
LEAD_EVENTS_SCHEMA = pa.schema(
    [
        ("uuid", pa.string()),
        ("event", pa.string()),
        ("distinct_id", pa.string()),
        ("properties", pa.string()),
        ("timestamp", pa.timestamp("us", tz="UTC")),
        ("created_at", pa.timestamp("us", tz="UTC")),
        ("counted_copies", pa.int64()),
    ]
)


def _json(ids: list[str]) -> str:
    """A sorted list of seeker ids as a compact JSON array (the listing_hour_seekers spelling)."""
    return json.dumps(ids, ensure_ascii=False, separators=(",", ":"))


def _table(columns: list[str], rows: list[list[Any]], schema: pa.Schema) -> pa.Table:
    index = {name: i for i, name in enumerate(columns)}
    arrays = []
    for f in schema:
        values = [row[index[f.name]] for row in rows]
        if pa.types.is_date(f.type):
            values = [datetime.fromisoformat(v).date() if v is not None else None for v in values]
        elif pa.types.is_timestamp(f.type):
            values = [parse_time(v) if v is not None else None for v in values]
        elif pa.types.is_floating(f.type):
            values = [float(v) if v is not None else None for v in values]
        arrays.append(pa.array(values, f.type))
    return pa.Table.from_arrays(arrays, schema=schema)


class PostHogReader:
    """Reads one run's window from PostHog: the census that plans it, then slice by slice the
    rollups of the hours each slice touches and its raw lead events."""

    def __init__(
        self,
        client: QueryClient,
        taxonomy: Taxonomy,
        *,
        page_rows: int = hogql.MAX_ROWS,
        lateness: timedelta = timedelta(days=7),
    ) -> None:
        self.client = client
        self.taxonomy = taxonomy
        self.page_rows = page_rows
        self.lateness = lateness

    def time_bounds(
        self, created_from: datetime, created_to: datetime
    ) -> tuple[datetime, datetime]:
        """The event-time range of events ingested in the window (bounded for PostHog's sort key)."""
        return created_from - self.lateness, created_to + FUTURE_SKEW

    def census(
        self, created_from: datetime, created_to: datetime, counted_from: datetime
    ) -> list[CensusRow]:
        """The window's census (hogql.census_query); a span of ingestion time whose census hits
        PostHog's execution time limit is asked for in halves."""
        merged: dict[tuple[datetime, datetime], CensusRow] = {}
        for row in self._census_parts(created_from, created_to, counted_from):
            key = (row.ingest_day, row.hour)
            if key not in merged:
                merged[key] = row
                continue
            known = merged[key]
            known.accepted += row.accepted
            known.read += row.read
            for reason, n in row.rejected.items():
                known.rejected[reason] = known.rejected.get(reason, 0) + n
        return [merged[key] for key in sorted(merged)]

    def _census_parts(
        self, created_from: datetime, created_to: datetime, counted_from: datetime
    ) -> list[CensusRow]:
        try:
            return self._census(created_from, created_to, counted_from)
        except QueryTimeout:
            if created_to - created_from <= HOUR:
                raise
            middle = created_from + (created_to - created_from) / 2
            middle = max(created_from + HOUR, middle.replace(minute=0, second=0, microsecond=0))
            log.info("the census of %s..%s timed out; halving", created_from, created_to)
            return self._census_parts(created_from, middle, counted_from) + self._census_parts(
                middle, created_to, counted_from
            )

    def _census(
        self, created_from: datetime, created_to: datetime, counted_from: datetime
    ) -> list[CensusRow]:
        time_from, time_to = self.time_bounds(created_from, created_to)

        def build(after: Sequence[Any] | None, limit: int) -> Query:
            return hogql.census_query(
                self.taxonomy,
                created_from,
                created_to,
                counted_from,
                time_from,
                time_to,
                after,
                limit,
            )

        columns, rows = self.client.fetch_all(build, lambda row: (row[0], row[1]), self.page_rows)
        index = {name: i for i, name in enumerate(columns)}
        census = []
        for row in rows:
            rejected = {
                reason: int(row[index[reason]])
                for reason in (*hogql.CLASSIFIER_REASONS, "duplicate")
                if int(row[index[reason]])
            }
            census.append(
                CensusRow(
                    parse_time(row[index["ingest_day"]]),
                    parse_time(row[index["hour_ts"]]),
                    int(row[index["accepted"]]),
                    int(row[index["read"]]),
                    rejected,
                )
            )
        return census

    @staticmethod
    def plan(
        census: Sequence[CensusRow],
        created_from: datetime,
        created_to: datetime,
        max_events: int,
        max_days: int,
    ) -> list[IngestSlice]:
        """Cut the window at ingestion-day boundaries into slices of about `max_events` events.

        Days with no new event to count (the overlap re-read before the watermark) join the
        next slice: alone they would end where the last run ended, and a run whose request
        budget allows one slice would never get further."""
        by_day: dict[datetime, list[CensusRow]] = {}
        for row in census:
            by_day.setdefault(row.ingest_day, []).append(row)
        slices: list[IngestSlice] = []
        start = created_from
        pending: list[CensusRow] = []
        first_day: datetime | None = None
        for day in sorted(by_day):
            rows = by_day[day]
            events = sum(r.accepted for r in rows)
            pending_events = sum(r.accepted for r in pending)
            if any(r.read for r in pending) and (
                pending_events + events > max_events
                or (first_day is not None and day - first_day >= timedelta(days=max_days))
            ):
                slices.append(_slice(start, max(day, start), pending))
                start, pending, first_day = max(day, start), [], None
            pending.extend(rows)
            first_day = first_day or day
        slices.append(_slice(start, created_to, pending))
        return slices

    def rollups(self, hours: Sequence[datetime]) -> SliceRows:
        """The slice's metrics, breakdown, seekers and listers, from all events of `hours`;
        a query that hits PostHog's execution time limit is split in halves of hours."""
        if not hours:
            return SliceRows(
                METRICS_SCHEMA.empty_table(),
                BREAKDOWN_SCHEMA.empty_table(),
                HOUR_SEEKERS_SCHEMA.empty_table(),
                SEEKERS_SCHEMA.empty_table(),
                LISTERS_SCHEMA.empty_table(),
            )
        metrics_rows: list[list[Any]] = []
        breakdown_rows: list[list[Any]] = []
        metrics_columns: list[str] = []
        breakdown_columns: list[str] = []
        for part in self._rollup_parts(sorted(hours)):
            metrics_columns, rows, breakdown_columns, more = part
            metrics_rows.extend(rows)
            breakdown_rows.extend(more)
        index = {name: i for i, name in enumerate(metrics_columns)}
        # Seekers are the union of the hours'; a listing's lister is the one named by the hour
        # whose naming event is the latest (LISTER_COLUMNS).
        seekers: set[tuple[str, str, str]] = set()
        hour_seekers: list[list[Any]] = []
        listers: dict[str, list[Any]] = {}  # listing → lister_id, lister_type and their keys
        for row in sorted(metrics_rows, key=lambda r: (r[index["date"]], r[index["hour"]])):
            listing = row[index["listing_id"]]
            viewers = sorted(set(row[index["viewers"]] or ()))
            lead_seekers = sorted(set(row[index["lead_seekers"]] or ()))
            for seeker in viewers:
                seekers.add((listing, Kind.VIEW.value, seeker))
            for seeker in lead_seekers:
                seekers.add((listing, Kind.LEAD.value, seeker))
            if viewers or lead_seekers:
                hour_seekers.append(
                    [
                        listing,
                        row[index["date"]],
                        row[index["hour"]],
                        _json(viewers),
                        _json(lead_seekers),
                    ]
                )
            known = listers.setdefault(listing, [None, None, None, None])
            for i, name in enumerate(("lister_id", "lister_type")):
                key = row[index[f"{name}_key"]]
                if key is not None and (known[i + 2] is None or key > known[i + 2]):
                    known[i], known[i + 2] = row[index[name]], key
        ordered = sorted(seekers)
        names = sorted(listers)
        return SliceRows(
            _table(metrics_columns, metrics_rows, METRICS_SCHEMA),
            _table(breakdown_columns, breakdown_rows, BREAKDOWN_SCHEMA),
            _table(
                list(HOUR_SEEKERS_SCHEMA.names),
                sorted(hour_seekers, key=lambda r: (r[0], r[1], r[2])),
                HOUR_SEEKERS_SCHEMA,
            ),
            pa.Table.from_arrays(
                [pa.array([s[i] for s in ordered], pa.string()) for i in range(3)],
                schema=SEEKERS_SCHEMA,
            ),
            pa.Table.from_arrays(
                [pa.array(names, pa.string())]
                + [pa.array([listers[n][i] for n in names], pa.string()) for i in range(4)],
                schema=LISTERS_SCHEMA,
            ),
        )

    def _rollup_parts(
        self, hours: list[datetime]
    ) -> list[tuple[list[str], list[list[Any]], list[str], list[list[Any]]]]:
        ranges = hogql.hour_ranges(hours)
        try:
            return [self._rollup(ranges)]
        except QueryTimeout:
            if len(hours) == 1:
                raise QueryTimeout(
                    f"one hour's events ({hours[0]:%Y-%m-%d %H}:00 UTC) are more than PostHog "
                    "can aggregate within its execution time limit"
                ) from None
            middle = len(hours) // 2
            log.info("a query over %d hours timed out; halving", len(hours))
            return self._rollup_parts(hours[:middle]) + self._rollup_parts(hours[middle:])

    def _rollup(
        self, ranges: list[tuple[datetime, datetime]]
    ) -> tuple[list[str], list[list[Any]], list[str], list[list[Any]]]:
        t = self.taxonomy
        metrics_columns, metrics_rows = self.client.fetch_all(
            lambda after, limit: hogql.metrics_query(t, ranges, after, limit),
            lambda row: (row[1], row[2], row[0]),
            self.page_rows,
        )
        breakdown_columns, breakdown_rows = self.client.fetch_all(
            lambda after, limit: hogql.breakdown_query(t, ranges, after, limit),
            lambda row: (row[1], row[2], row[0], row[3], row[4]),
            self.page_rows,
        )
        return metrics_columns, metrics_rows, breakdown_columns, breakdown_rows

    def lead_events(
        self, created_from: datetime, created_to: datetime, counted_from: datetime
    ) -> pa.Table:
        """The lead events ingested in [created_from, created_to) (LEAD_EVENTS_SCHEMA): one row
        per uuid, its first copy, with the number of its copies ingested from `counted_from`."""
        time_from, time_to = self.time_bounds(created_from, created_to)
        columns, rows = self.client.fetch_all(
            lambda after, limit: hogql.lead_events_query(
                self.taxonomy,
                created_from,
                created_to,
                counted_from,
                time_from,
                time_to,
                after,
                limit,
            ),
            lambda row: (row[5], row[0]),
            self.page_rows,
        )
        renamed = [
            {
                "event_uuid": "uuid",
                "event_name": "event",
                "seeker_distinct_id": "distinct_id",
                "event_properties": "properties",
                "event_time": "timestamp",
                "ingested_at": "created_at",
            }.get(c, c)
            for c in columns
        ]
        return _table(renamed, rows, LEAD_EVENTS_SCHEMA)


def _slice(start: datetime, end: datetime, rows: list[CensusRow]) -> IngestSlice:
    rejected: dict[str, int] = {}
    for row in rows:
        for reason, n in row.rejected.items():
            rejected[reason] = rejected.get(reason, 0) + n
    return IngestSlice(
        start,
        end,
        sorted({row.hour for row in rows if row.accepted}),
        sum(row.accepted for row in rows),
        sum(row.read for row in rows),
        rejected,
    )


def client_from_settings(settings: Any, deadline: float | None = None) -> QueryClient:
    """The Query API client of `settings` (POSTHOG_HOST, POSTHOG_PROJECT_ID,
    POSTHOG_PERSONAL_API_KEY), with the run's budgets."""
    missing = [
        name
        for name, value in (
            ("POSTHOG_HOST", settings.posthog_host),
            ("POSTHOG_PROJECT_ID", settings.posthog_project_id),
            ("POSTHOG_PERSONAL_API_KEY", settings.posthog_personal_api_key),
        )
        if not value
    ]
    if missing:
        raise ConfigError(
            f"the PostHog source needs {', '.join(missing)}: POSTHOG_HOST is "
            "https://us.posthog.com, https://eu.posthog.com or your PostHog's address, "
            "POSTHOG_PROJECT_ID the project's id (Project settings), POSTHOG_PERSONAL_API_KEY a "
            "personal API key with the query:read scope"
        )
    host = str(settings.posthog_host)
    if not host.startswith(("http://", "https://")):
        raise ConfigError(
            f"POSTHOG_HOST must be a URL such as https://us.posthog.com, not {host!r}"
        )
    return QueryClient(
        host,
        str(settings.posthog_project_id),
        str(settings.posthog_personal_api_key),
        timeout_seconds=settings.posthog_timeout_seconds,
        max_retries=settings.posthog_max_retries,
        backoff_seconds=settings.posthog_backoff_seconds,
        request_budget=settings.posthog_request_budget,
        deadline=deadline,
    )


def utc_now() -> datetime:
    return datetime.now(UTC)
