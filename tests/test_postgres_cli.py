"""The `leadflow` command with a PostgreSQL store: upgrade, run, the lock, connection errors."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import inspect

from leadflow.store.db import create_store_engine, head_revision
from leadflow.store.lock import RunLock
from tests.eventfiles import event, write_jsonl
from tests.pgcluster import free_port
from tests.test_cli import assert_one_line_error, leadflow

T0 = datetime(2025, 5, 1, 10, 0, tzinfo=UTC)

pytestmark = pytest.mark.stores("postgresql")


def test_db_upgrade_then_run_on_postgres(make_store, store_kind, tmp_path):
    store = make_store(migrated=False)
    result = leadflow("db", "upgrade", "--database", store.url)
    assert result.returncode == 0, result.stderr
    assert head_revision() in result.stdout
    assert {"leads", "listing_analytics", "listings", "cron_runs"} <= set(
        inspect(store.engine).get_table_names()
    )
    path = write_jsonl(
        tmp_path / "e.jsonl",
        [event("a", "lead_phone", T0, "L1"), "garbage", event("b", "property_view", T0, "L1")],
    )
    result = leadflow("run", "--source", "file", str(path), "--database", store.url, "--json")
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    assert (summary["events_read"], summary["leads_inserted"]) == (3, 1)
    assert store.rows("leads")[0]["lead_score"] == 30


def test_a_second_run_is_refused_with_exit_3_while_one_holds_the_lock(store, store_kind, tmp_path):
    path = write_jsonl(tmp_path / "e.jsonl", [event("a", "lead_phone", T0, "L1")])
    lock = RunLock(create_store_engine(store.url), timedelta(hours=1))
    lock.acquire(run_id=12)
    try:
        result = leadflow("run", "--source", "file", str(path), "--database", store.url)
        assert result.returncode == 3
        assert_one_line_error(result, "run 12 is in progress", "refused")
    finally:
        lock.release()
    assert leadflow("run", "--source", "file", str(path), "--database", store.url).returncode == 0


@pytest.mark.parametrize("command", [["db", "upgrade"], ["run", "--source", "file", "."]])
@pytest.mark.parametrize(
    ("problem", "needles"),
    [
        ("unreachable", ["cannot connect", "is the server running"]),
        ("password", ["refused the credentials of user 'postgres'"]),
        ("database", ["createdb no_such_db"]),
        ("driver", ["postgresql+psycopg://"]),
    ],
)
def test_connection_problems_are_one_line_errors(
    store, store_kind, tmp_path, command, problem, needles
):
    url = {
        "unreachable": store.url.replace(f":{store.engine.url.port}/", f":{free_port()}/"),
        "password": store.url.replace(":leadflow-test@", ":Wr0ngPa55@"),
        "database": store.url.rsplit("/", 1)[0] + "/no_such_db",
        "driver": store.url.replace("+psycopg", "+asyncpg"),
    }[problem]
    result = leadflow(*command, "--database", url, cwd=tmp_path)
    assert_one_line_error(result, *needles)
    # Passwords never show.
    assert "leadflow-test" not in result.stderr and "Wr0ngPa55" not in result.stderr
