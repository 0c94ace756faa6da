"""The Query API client against the local PostHog, over real HTTP: PostHog's wire format and
limits, keyset paging, retries and waits, and the errors a user sees."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import httpx
import pytest

from leadflow.events import DEFAULT_TAXONOMY
from leadflow.sources import hogql
from leadflow.sources.hogql import Query
from leadflow.sources.local_posthog import MAX_ROWS, Fault, LocalPostHog
from leadflow.sources.posthog import (
    AuthError,
    OutOfBudget,
    PostHogError,
    PostHogReader,
    QueryClient,
    QueryRefused,
)
from tests.posthogdata import START, local_posthog, ph_event, random_events


def client(local: LocalPostHog, **options: object) -> QueryClient:
    defaults: dict[str, object] = {"backoff_seconds": 0.01, "timeout_seconds": 5.0}
    defaults.update(options)
    return QueryClient(local.url, str(local.project_id), local.api_key, **defaults)  # type: ignore[arg-type]


def post(local: LocalPostHog, body: dict[str, object], key: str | None = None) -> httpx.Response:
    return httpx.post(
        f"{local.url}/api/projects/{local.project_id}/query/",
        json=body,
        headers={"Authorization": f"Bearer {key or local.api_key}"},
        timeout=30,
    )


def hogql_body(sql: str, **extra: object) -> dict[str, object]:
    return {"query": {"kind": "HogQLQuery", "query": sql, **extra}, "refresh": "force_blocking"}


@pytest.fixture
def local() -> object:
    events = [ph_event(n, "property_view", START + timedelta(minutes=n), "L1") for n in range(250)]
    with local_posthog(events) as server:
        yield server


# -- the stand-in speaks PostHog's wire format ------------------------------------------------------


def test_a_query_without_limit_returns_100_rows_and_has_more(local):
    answer = post(local, hogql_body("SELECT toString(uuid) FROM events ORDER BY timestamp")).json()
    assert len(answer["results"]) == 100 and answer["hasMore"] is True
    assert (answer["limit"], answer["offset"]) == (100, 0)
    assert answer["is_cached"] is False and answer["types"][0][1] == "String"


def test_times_come_back_as_iso_utc_and_properties_as_a_json_string(local):
    sql = "SELECT timestamp, properties FROM events ORDER BY timestamp LIMIT 1"
    answer = post(local, hogql_body(sql, modifiers={"convertToProjectTimezone": False})).json()
    [[stamp, properties]] = answer["results"]
    assert stamp == START.strftime("%Y-%m-%dT%H:%M:%S.000000Z")
    assert json.loads(properties)["listing_id"] == "L1"


def test_a_limit_above_50000_is_cut_and_offset_is_refused(local):
    answer = post(local, hogql_body("SELECT 1 FROM events LIMIT 60000")).json()
    assert "hasMore" not in answer and MAX_ROWS == 50_000
    assert answer["clickhouse"].rstrip().endswith("LIMIT 50000")
    refused = post(local, hogql_body("SELECT 1 FROM events LIMIT 10 OFFSET 10"))
    assert refused.status_code == 400 and "OFFSET" in refused.json()["detail"]


def test_placeholders_are_filled_from_values_and_functions_outside_hogql_are_refused(local):
    sql = "SELECT count() FROM events WHERE distinct_id = {who} AND event = {what}"
    answer = post(local, hogql_body(sql, values={"who": "s1", "what": "property_view"})).json()
    assert answer["results"] == [[250]]
    refused = post(local, hogql_body("SELECT regexp_full_match(event, 'x') FROM events LIMIT 1"))
    assert refused.status_code == 400
    assert "regexp_full_match" in refused.json()["detail"]


def test_unmerged_duplicate_rows_stay_until_merged(local):
    local.add_events([ph_event(0, "property_view", START, "L1")])
    count = "SELECT count(), uniqExact(uuid) FROM events"
    assert post(local, hogql_body(count)).json()["results"] == [[251, 250]]
    local.merge()
    assert post(local, hogql_body(count)).json()["results"] == [[250, 250]]


def test_without_force_blocking_an_answer_may_come_from_the_cache(local):
    body = {"query": {"kind": "HogQLQuery", "query": "SELECT count() FROM events"}}
    assert post(local, body).json()["is_cached"] is False
    local.add_events([ph_event(999, "property_view", START, "L1")])
    stale = post(local, body).json()
    assert stale["is_cached"] is True and stale["results"] == [[250]]
    assert post(local, {**body, "refresh": "force_blocking"}).json()["results"] == [[251]]


# -- keyset paging ----------------------------------------------------------------------------------


def test_a_page_exactly_at_the_limit_is_followed_by_another(local):
    with client(local) as qc:
        reader = PostHogReader(qc, DEFAULT_TAXONOMY, page_rows=50)
        events = reader.lead_events(
            START - timedelta(days=1), START + timedelta(days=1), START - timedelta(days=1)
        )
    assert events.num_rows == 0  # no lead events among the views
    # 250 views in 250 distinct minutes of 5 hours: 5 metrics rows; pages of 5 rows, exactly full.
    with client(local) as qc:
        reader = PostHogReader(qc, DEFAULT_TAXONOMY, page_rows=5)
        rows = reader.rollups([START + timedelta(hours=h) for h in range(5)])
        assert qc.stats.by_name["leadflow listing metrics"] == 2  # a full page, then an empty one
    assert rows.metrics.num_rows == 5 and sum(rows.metrics.column("total_views").to_pylist()) == 250


def test_keyset_paging_keeps_events_that_share_an_ingestion_time():
    # Seven lead events ingested at the same instant, read three at a time.
    calls = [
        ph_event(
            n, "lead_phone", START + timedelta(minutes=n), "L1", created=START + timedelta(hours=1)
        )
        for n in range(7)
    ]
    with local_posthog(calls) as server, client(server) as qc:
        reader = PostHogReader(qc, DEFAULT_TAXONOMY, page_rows=3)
        events = reader.lead_events(START, START + timedelta(days=1), START)
        assert qc.stats.by_name["leadflow lead events"] == 3
    assert sorted(events.column("uuid").to_pylist()) == sorted(c["uuid"] for c in calls)


def test_a_census_over_a_year_of_hours_pages_by_day_and_hour():
    events = random_events(seed=1, count=200, hours=24 * 4)
    with local_posthog(events) as server, client(server) as qc:
        reader = PostHogReader(qc, DEFAULT_TAXONOMY, page_rows=40)
        census = reader.census(START - timedelta(days=1), START + timedelta(days=6), START)
    keys = [(row.ingest_day, row.hour) for row in census]
    assert keys == sorted(set(keys))
    assert sum(row.read for row in census) + sum(
        1
        for e in events
        if e["event"]
        in ("lead_phone", "lead_message", "lead_appointment", "lead", "impression_website_visit")
    ) == sum(1 for e in events if e["event"] != "$autocapture")


def test_a_census_that_hits_the_execution_time_limit_is_asked_for_in_halves():
    events = random_events(seed=4, count=120, hours=24 * 4)
    with local_posthog(events) as server, client(server) as qc:
        reader = PostHogReader(qc, DEFAULT_TAXONOMY)
        window = (START - timedelta(days=1), START + timedelta(days=6), START)
        whole = reader.census(*window)
        server.inject(Fault("timeout", match="census", times=3))
        halved = reader.census(*window)
        assert qc.stats.by_name["leadflow census"] > 4
    assert [(r.ingest_day, r.hour, r.accepted, r.read, r.rejected) for r in halved] == [
        (r.ingest_day, r.hour, r.accepted, r.read, r.rejected) for r in whole
    ]


# -- politeness: retries, waits, budgets ----------------------------------------------------------


@pytest.mark.parametrize(
    ("fault", "waited"),
    [
        (Fault("throttle", retry_after=2, wait=30), 2.0),  # Retry-After wins over the text
        (Fault("throttle", wait=3), 3.0),  # "Expected available in 3 seconds."
    ],
)
def test_a_429_waits_at_least_what_posthog_asks(local, fault, waited):
    slept: list[float] = []
    local.inject(fault)
    with client(local, sleep=slept.append) as qc:
        answer = qc.query(Query("count", "SELECT count() FROM events"))
    assert answer["results"] == [[250]]
    assert len(slept) == 1 and waited <= slept[0] <= waited + 5.5
    assert qc.stats.throttled == 1 and qc.stats.requests == 2


def test_5xx_and_dropped_connections_are_retried_with_growing_backoff(local):
    slept: list[float] = []
    local.inject(Fault("error", times=2), Fault("drop", times=2))
    with client(local, sleep=slept.append, backoff_seconds=1.0) as qc:
        assert qc.query(Query("count", "SELECT count() FROM events"))["results"] == [[250]]
    assert len(slept) == 4 and qc.stats.retries == 4
    assert [0.5 <= s <= 1 for s in slept[:1]] == [True] and 4 <= slept[3] <= 8


def test_a_wait_past_the_time_budget_stops_instead_of_waiting(local):
    local.inject(Fault("throttle", retry_after=1800, wait=1800))
    budget = client(local, deadline=60.0, clock=lambda: 0.0, sleep=pytest.fail)
    with budget as qc, pytest.raises(OutOfBudget, match="time budget"):
        qc.query(Query("count", "SELECT count() FROM events"))


def test_the_request_budget_is_never_exceeded(local):
    local.inject(Fault("error", times=10))
    with (
        client(local, request_budget=3, max_retries=10) as qc,
        pytest.raises(OutOfBudget, match="request budget"),
    ):
        qc.query(Query("count", "SELECT count() FROM events"))
    assert len(local.requests) == 3


def test_a_server_that_keeps_failing_is_an_error_after_the_retries(local):
    local.inject(Fault("error", times=10))
    with client(local, max_retries=2) as qc, pytest.raises(PostHogError, match="HTTP 500"):
        qc.query(Query("count", "SELECT count() FROM events"))
    assert len(local.requests) == 3


def test_every_query_is_named_fresh_and_in_utc(local):
    with client(local) as qc:
        qc.query(
            hogql.lead_events_query(DEFAULT_TAXONOMY, START, START, START, START, START, None, 10)
        )
    body = local.last_body
    assert body["refresh"] == "force_blocking" and body["name"] == "leadflow lead events"
    assert body["query"]["modifiers"] == {"convertToProjectTimezone": False}


# -- errors a user can act on ---------------------------------------------------------------------


def test_a_wrong_key_says_which_setting_and_scope(local):
    with QueryClient(local.url, "1", "phx_wrong") as qc, pytest.raises(AuthError) as refused:
        qc.query(Query("count", "SELECT 1"))
    assert "401" in str(refused.value) and "POSTHOG_PERSONAL_API_KEY" in str(refused.value)
    assert "query:read" in str(refused.value)


def test_a_key_without_the_query_read_scope_is_a_403_naming_the_scope():
    with (
        local_posthog(scopes=("insight:read",)) as server,
        client(server) as qc,
        pytest.raises(AuthError, match=r"403.*query:read"),
    ):
        qc.query(Query("count", "SELECT 1"))


def test_a_wrong_project_or_host_says_what_to_check(local):
    with QueryClient(local.url, "999", local.api_key) as qc, pytest.raises(PostHogError) as wrong:
        qc.query(Query("count", "SELECT 1"))
    assert "POSTHOG_PROJECT_ID" in str(wrong.value) and "POSTHOG_HOST" in str(wrong.value)
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with (
        QueryClient(
            f"http://127.0.0.1:{port}", "1", "k", max_retries=1, backoff_seconds=0.01
        ) as qc,
        pytest.raises(PostHogError, match="cannot reach PostHog"),
    ):
        qc.query(Query("count", "SELECT 1"))


def test_a_query_error_shows_posthogs_message(local):
    with client(local) as qc, pytest.raises(QueryRefused) as refused:
        qc.query(Query("broken", "SELECT no_such_column FROM events LIMIT 1"))
    assert "no_such_column" in str(refused.value) and "broken" in str(refused.value)


# -- the command line -----------------------------------------------------------------------------


def test_leadflow_run_reads_posthog_when_it_is_configured(tmp_path: Path):
    events = random_events(seed=2, count=40)
    with local_posthog(events) as server:
        env = {
            "POSTHOG_HOST": server.url,
            "POSTHOG_PROJECT_ID": "1",
            "POSTHOG_PERSONAL_API_KEY": server.api_key,
            "LEADFLOW_POSTHOG_SETTLE_SECONDS": "0",
            "LEADFLOW_DATABASE_URL": f"sqlite:///{tmp_path / 'cli.db'}",
            "PATH": "/usr/bin:/bin",
        }
        result = subprocess.run(
            [sys.executable, "-m", "leadflow.cli", "run", "--json"],
            capture_output=True,
            text=True,
            env=env,
            timeout=120,
        )
        assert result.returncode == 0, result.stderr
        summary = json.loads(result.stdout)
        assert summary["source"] == "posthog" and summary["status"] == "succeeded"
        assert summary["requests"] >= 4 and summary["events_read"] > 0
        env["POSTHOG_PERSONAL_API_KEY"] = "phx_wrong"
        refused = subprocess.run(
            [sys.executable, "-m", "leadflow.cli", "run", "--source", "posthog"],
            capture_output=True,
            text=True,
            env=env,
            timeout=120,
        )
    assert refused.returncode == 1 and "Traceback" not in refused.stderr
    assert "401" in refused.stderr and "POSTHOG_PERSONAL_API_KEY" in refused.stderr
