"""The cron endpoint: secrets, one run per trigger, 409 while a run holds the lock, run history."""

from __future__ import annotations

import shutil
import sqlite3
import threading
import time
from contextlib import closing
from datetime import timedelta
from pathlib import Path

import httpx
import pyarrow as pa
import pyarrow.parquet as pq

from leadflow.sources.local_posthog import LocalPostHog
from tests.apidata import CRON_SECRET, T0, at, standard_events
from tests.eventfiles import event
from tests.posthogdata import file_canonical, local_posthog, random_events

pytest_plugins = ("tests.apiserver",)


def test_a_trigger_without_the_secret_is_refused_with_401(api_factory):
    api = api_factory()
    for method in ("POST", "GET"):
        for headers in (
            {},
            {"Authorization": "Bearer wrong-secret"},
            {"Authorization": f"Basic {CRON_SECRET}"},
            {"Authorization": f"Bearer {CRON_SECRET}x"},
        ):
            response = httpx.request(method, f"{api.url}/api/cron/analytics", headers=headers)
            assert response.status_code == 401, (method, headers, response.text)
            assert response.headers["www-authenticate"].startswith("Bearer")
            assert "secret" in response.json()["detail"].lower()
    assert api.store.count("cron_runs") == 0


def test_the_cron_endpoint_refuses_to_run_when_no_secret_is_configured(api_factory):
    api = api_factory(cron_secret=None)
    response = httpx.post(
        f"{api.url}/api/cron/analytics", headers={"Authorization": "Bearer anything"}
    )
    assert response.status_code == 503
    assert "LEADFLOW_CRON_SECRET" in response.json()["detail"]
    assert api.store.count("cron_runs") == 0


def test_a_trigger_runs_the_pipeline_and_answers_its_summary(api_factory):
    api = api_factory()
    api.write(standard_events())
    response = api.cron().post("/api/cron/analytics")
    assert response.status_code == 200, response.text
    summary = response.json()
    assert summary["status"] == "succeeded"
    assert summary["events_read"] == len(standard_events())
    assert summary["leads_inserted"] == 4  # (seeker, listing) pairs with lead actions
    assert summary["window_start"] == "2025-05-01T10:00:00Z"
    assert api.store.count("leads") == 4

    again = api.cron().post("/api/cron/analytics").json()
    assert (again["events_read"], again["leads_inserted"]) == (0, 0)
    assert again["run_id"] == summary["run_id"] + 1


def test_the_service_copies_a_runs_write_ahead_log_after_answering(api_factory, tmp_path):
    """SQLite: the trigger is answered before the run's log is copied into the database file,
    which a background thread of the service then does."""
    api = api_factory()
    if api.store.kind != "sqlite":
        assert api.store.kind == "postgresql"  # no write-ahead log of leadflow's to copy
        return
    api.write(standard_events())
    assert api.cron().post("/api/cron/analytics").status_code == 200
    database = Path(api.store.url.removeprefix("sqlite:///"))

    def runs_in_database_file() -> int:
        copy = tmp_path / "copy.db"
        shutil.copyfile(database, copy)
        with closing(sqlite3.connect(copy)) as db:
            (count,) = db.execute(
                "SELECT count(*) FROM cron_runs WHERE status = 'succeeded'"
            ).fetchone()
        copy.unlink()
        return int(count)

    deadline = time.monotonic() + 30
    while runs_in_database_file() != 1:
        assert time.monotonic() < deadline, "the run's log was not copied"
        time.sleep(0.05)


def test_schedulers_that_send_get_can_trigger_too(api_factory):
    api = api_factory()
    api.write([event("a", "lead_phone", at(0), "listing-1", lister_id="lister-a")])
    response = api.cron().get("/api/cron/analytics")
    assert response.status_code == 200, response.text
    assert response.json()["leads_inserted"] == 1


def test_wait_false_answers_202_with_the_run_id_and_the_run_can_be_followed(api_factory):
    api = api_factory()
    api.write(standard_events())
    cron = api.cron()
    response = cron.post("/api/cron/analytics", params={"wait": "false"})
    assert response.status_code == 202, response.text
    started = response.json()
    run_id = started["run_id"]
    assert started["status_url"] == f"/api/cron/runs/{run_id}"
    assert response.headers["location"] == started["status_url"]

    deadline = time.monotonic() + 60
    while (run := cron.get(started["status_url"]).json())["status"] == "running":
        assert time.monotonic() < deadline, "the background run did not finish"
        time.sleep(0.05)
    assert run["status"] == "succeeded", run
    assert run["leads_inserted"] == 4 and run["finished_at"] is not None

    history = cron.get("/api/cron/runs").json()
    assert [r["id"] for r in history["items"]] == [run_id]
    assert history["next_cursor"] is None


def many_views(path: Path, count: int) -> None:
    """A PostHog export Parquet file of `count` listing views, built column by column (fast)."""
    micros = int(T0.timestamp() * 1_000_000)
    times = pa.array([micros + i * 7_200_000 for i in range(count)], pa.int64()).cast(
        pa.timestamp("us", tz="UTC")
    )
    table = pa.table(
        {
            "uuid": [f"v{i}" for i in range(count)],
            "event": ["property_view"] * count,
            "distinct_id": [f"seeker-{i % 977}" for i in range(count)],
            "person_id": pa.nulls(count, pa.string()),
            "properties": [f'{{"listing_id": "listing-{i % 300}"}}' for i in range(count)],
            "person_properties": ["{}"] * count,
            "elements_chain": [""] * count,
            "timestamp": times,
            "created_at": times,
            "_inserted_at": times,
        }
    )
    pq.write_table(table, path)


def test_concurrent_triggers_give_exactly_one_200_and_the_rest_409(api_factory):
    api = api_factory()
    # Enough events that the run lasts (a second or two) while every trigger arrives.
    many_views(api.source / "views.parquet", 60_000)
    triggers = 6
    barrier = threading.Barrier(triggers)
    statuses: list[int] = []
    bodies: list[dict] = []

    def trigger() -> None:
        with httpx.Client(base_url=api.url, timeout=120) as client:
            barrier.wait()
            response = client.post(
                "/api/cron/analytics", headers={"Authorization": f"Bearer {CRON_SECRET}"}
            )
        statuses.append(response.status_code)
        bodies.append(response.json())

    threads = [threading.Thread(target=trigger) for _ in range(triggers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(180)
    assert sorted(statuses) == [200] + [409] * (triggers - 1), bodies
    refused = [b for b in bodies if "run_id" not in b]
    assert all("in progress" in b["detail"] for b in refused)
    assert api.store.count("cron_runs") == 1


def test_a_trigger_while_another_process_holds_the_lock_gets_409(api_factory):
    from leadflow.store.lock import RunLock

    api = api_factory()
    lock = RunLock(api.store.engine, timedelta(hours=1))
    lock.holder = "another-host:1"  # a live holder elsewhere
    lock.acquire(run_id=99)
    try:
        response = api.cron().post("/api/cron/analytics")
        assert response.status_code == 409
        assert "run 99 is in progress" in response.json()["detail"]
        assert api.cron().post("/api/cron/analytics", params={"wait": "false"}).status_code == 409
    finally:
        lock.release()
    assert api.cron().post("/api/cron/analytics").status_code == 200


def test_a_failing_run_answers_500_with_its_id_and_is_recorded(api_factory):
    api = api_factory()
    (api.source / "broken.parquet").write_bytes(b"this is not parquet")
    response = api.cron().post("/api/cron/analytics")
    assert response.status_code == 500, response.text
    body = response.json()
    assert body["run_id"] >= 1 and body["error"]
    assert f"run {body['run_id']} failed" in body["detail"]
    run = api.cron().get(f"/api/cron/runs/{body['run_id']}").json()
    assert run["status"] == "failed" and run["error"] == body["error"]


def test_a_missing_source_is_a_503_that_names_it(api_factory, tmp_path):
    api = api_factory(source=f"file:{tmp_path / 'no-such-folder'}")
    response = api.cron().post("/api/cron/analytics")
    assert response.status_code == 503
    assert "no-such-folder" in response.json()["detail"]
    unconfigured = api_factory(source=None)
    response = unconfigured.cron().post("/api/cron/analytics")
    assert response.status_code == 503
    assert "LEADFLOW_SOURCE" in response.json()["detail"]
    misspelt = api_factory(source="postgres")
    response = misspelt.cron().post("/api/cron/analytics")
    assert response.status_code == 503
    assert "LEADFLOW_SOURCE='postgres' is neither" in response.json()["detail"]
    # PostHog named, but not how to reach it: the missing settings are named, no run recorded.
    no_keys = api_factory(source="posthog")
    for wait in ("true", "false"):
        response = no_keys.cron().post("/api/cron/analytics", params={"wait": wait})
        assert response.status_code == 503
        assert "POSTHOG_HOST, POSTHOG_PROJECT_ID" in response.json()["detail"]
    assert api.store.count("cron_runs") == 0


# -- the PostHog source ----------------------------------------------------------------------------

POSTHOG_EVENTS = random_events(seed=21, count=90)


def posthog_settings(local: LocalPostHog | None = None) -> dict[str, object]:
    """POSTHOG_* settings for the local stand-in (or for a PostHog that is never called)."""
    return {
        "posthog_host": local.url if local else "http://127.0.0.1:9",
        "posthog_project_id": str(local.project_id) if local else "1",
        "posthog_personal_api_key": local.api_key if local else "phx_never_used",
        "posthog_settle_seconds": 0,  # the stand-in has every event ingested already
        "posthog_page_rows": 50,  # several pages per query
        "posthog_backoff_seconds": 0.01,
        "posthog_timeout_seconds": 10.0,
    }


def test_leadflow_source_posthog_makes_a_trigger_read_posthog_into_the_file_sources_tables(
    api_factory, tmp_path
):
    expected = file_canonical(tmp_path / "reference", POSTHOG_EVENTS)
    with local_posthog(POSTHOG_EVENTS) as local:
        api = api_factory(source="posthog", **posthog_settings(local))
        response = api.cron().post("/api/cron/analytics")
        assert response.status_code == 200, response.text
        summary = response.json()
        assert summary["source"] == "posthog"
        assert summary["requests"] > 0 and summary["requests"] == len(local.requests)
        assert (summary["files_read"], summary["stopped"], summary["warnings"]) == (0, None, [])
        assert summary["events_read"] == sum(
            1 for e in POSTHOG_EVENTS if e["event"] != "$autocapture"
        )
        assert summary["leads_inserted"] > 0
        assert api.store.snapshot() == expected

        again = api.cron().post("/api/cron/analytics").json()
        assert (again["source"], again["events_read"], again["leads_inserted"]) == ("posthog", 0, 0)
        assert again["requests"] > 0
    assert api.store.snapshot() == expected
    runs = api.cron().get("/api/cron/runs").json()["items"]
    assert [(r["source"], r["status"]) for r in runs] == [("posthog", "succeeded")] * 2


def test_without_leadflow_source_the_posthog_settings_make_a_trigger_read_posthog(
    api_factory, tmp_path
):
    expected = file_canonical(tmp_path / "reference", POSTHOG_EVENTS)
    with local_posthog(POSTHOG_EVENTS) as local:
        api = api_factory(source=None, **posthog_settings(local))
        cron = api.cron()
        started = cron.post("/api/cron/analytics", params={"wait": "false"})
        assert started.status_code == 202, started.text
        deadline = time.monotonic() + 120
        while (run := cron.get(started.json()["status_url"]).json())["status"] == "running":
            assert time.monotonic() < deadline, "the background run did not finish"
            time.sleep(0.05)
        assert local.requests
    assert (run["status"], run["source"]) == ("succeeded", "posthog"), run
    assert api.store.snapshot() == expected


def test_a_configured_file_source_wins_over_posthog_settings(api_factory):
    api = api_factory(**posthog_settings())  # LEADFLOW_SOURCE=file:… and POSTHOG_* both set
    api.write(standard_events())
    response = api.cron().post("/api/cron/analytics")
    assert response.status_code == 200, response.text
    summary = response.json()
    assert (summary["source"], summary["requests"]) == (str(api.source), 0)
    assert summary["files_read"] == 1 and summary["leads_inserted"] == 4


def test_run_history_is_for_the_scheduler_and_admins_and_pages_newest_first(api):
    cron = api.cron()
    for _ in range(4):
        assert cron.post("/api/cron/analytics").status_code == 200
    # api's fixture ran the pipeline once itself: 5 runs.
    first = cron.get("/api/cron/runs", params={"limit": 2}).json()
    assert [r["id"] for r in first["items"]] == [5, 4]
    second = cron.get("/api/cron/runs", params={"limit": 2, "cursor": first["next_cursor"]}).json()
    third = cron.get("/api/cron/runs", params={"limit": 2, "cursor": second["next_cursor"]}).json()
    assert [r["id"] for r in second["items"] + third["items"]] == [3, 2, 1]
    assert third["next_cursor"] is None

    assert api.admin().get("/api/cron/runs/1").json()["status"] == "succeeded"
    assert api.lister("lister-a").get("/api/cron/runs").status_code == 403
    assert httpx.get(f"{api.url}/api/cron/runs").status_code == 401
    assert api.client("not-the-secret").get("/api/cron/runs").status_code == 401
    missing = cron.get("/api/cron/runs/999")
    assert missing.status_code == 404 and missing.json()["detail"] == "no run 999"
