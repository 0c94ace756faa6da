"""The `leadflow` command as a user meets it: real processes, exit codes, one-line errors."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import inspect

from bench.baseline import canonical, compute
from bench.canonical import canonical_from_db
from leadflow.store.db import create_store_engine, head_revision
from leadflow.store.lock import RunLock
from tests.eventfiles import event, write_jsonl

T0 = datetime(2025, 5, 1, 10, 0, tzinfo=UTC)


def leadflow(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "leadflow.cli", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        timeout=120,
    )


def assert_one_line_error(result: subprocess.CompletedProcess[str], *needles: str) -> None:
    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    text = lines[0]
    assert text.startswith("error:"), result.stderr
    for needle in needles:
        assert needle in text, result.stderr


def test_run_prints_a_json_summary(tmp_path):
    path = write_jsonl(
        tmp_path / "e.jsonl",
        [event("a", "lead_phone", T0, "L1"), "garbage", event("b", "property_view", T0, "L1")],
    )
    result = leadflow(
        "run", "--source", "file", str(path), "--database", f"sqlite:///{tmp_path}/x.db", "--json"
    )
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    assert summary["status"] == "succeeded"
    assert (summary["events_read"], summary["events_accepted"]) == (3, 2)
    assert summary["rejected"] == {"malformed_json": 1}
    assert summary["leads_inserted"] == 1 and summary["hours_written"] == 1
    assert summary["window_start"] == "2025-05-01T10:00:00Z"
    assert set(summary["timings"]) == {"read", "aggregate", "write"}


def test_run_reads_several_paths_as_a_shell_expands_an_unquoted_glob(tmp_path):
    day = [event(f"e{i}", "lead_phone", T0 + timedelta(hours=i), f"L{i % 2}") for i in range(6)]
    files = [
        write_jsonl(tmp_path / "exports" / f"{i}.jsonl", day[i * 2 : i * 2 + 2]) for i in range(3)
    ]
    store = f"sqlite:///{tmp_path}/x.db"
    # Two files named one by one, and a folder holding one of them and a third: each file once.
    args = [str(files[0]), str(files[1]), str(files[1]), str(tmp_path / "exports")]
    result = leadflow("run", "--source", "file", *args, "--database", store, "--json")
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    assert (summary["files_read"], summary["events_read"]) == (3, 6)
    assert summary["source"] == " ".join(args)
    many = [str(f) for f in files] * 2  # as a shell expands a glob: six paths, three files
    again = leadflow("run", "--source", "file", *many, "--database", store, "--json")
    assert again.returncode == 0, again.stderr
    assert json.loads(again.stdout)["source"] == " ".join([*many[:3], "… (6 paths)"])
    assert json.loads(again.stdout)["events_read"] == 0
    engine = create_store_engine(store)
    try:
        assert canonical_from_db(engine) == canonical(compute(files))
    finally:
        engine.dispose()

    refused = leadflow("run", "--source", "posthog", str(files[0]), "--database", store)
    assert_one_line_error(refused, "takes no PATH")


def test_run_reads_the_source_from_the_environment(tmp_path):
    path = write_jsonl(tmp_path / "e.jsonl", [event("a", "lead_phone", T0, "L1")])
    result = subprocess.run(
        [sys.executable, "-m", "leadflow.cli", "run", "--json"],
        capture_output=True,
        text=True,
        env={
            "PATH": "/usr/bin:/bin",
            "LEADFLOW_SOURCE": f"file:{path}",
            "LEADFLOW_DATABASE_URL": f"sqlite:///{tmp_path}/env.db",
        },
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["events_read"] == 1


@pytest.mark.parametrize(
    ("args", "needles"),
    [
        (["run", "--source", "file", "/no/such/export"], ["no such file or folder"]),
        (["run"], ["no source given"]),
        (["run", "--source", "kafka", "x"], ["unknown source"]),
        (["run", "--source", "file", ".", "--database", "nonsense://"], ["database"]),
        (
            ["run", "--source", "file", ".", "--database", "sqlite:////no/such/dir/x.db"],
            ["no folder"],
        ),
    ],
)
def test_errors_are_one_line_and_a_non_zero_exit(tmp_path, args, needles):
    assert_one_line_error(leadflow(*args, cwd=tmp_path), *needles)


def test_an_unreadable_file_is_one_line_naming_it(tmp_path):
    bad = tmp_path / "broken.parquet"
    bad.write_bytes(b"not parquet at all")
    result = leadflow(
        "run", "--source", "file", str(bad), "--database", f"sqlite:///{tmp_path}/x.db"
    )
    assert_one_line_error(result, "broken.parquet")


def test_a_corrupt_gzip_file_fails_the_run_with_its_name(tmp_path):
    bad = tmp_path / "events.jsonl.gz"
    bad.write_bytes(b"\x1f\x8b\x08\x00garbage that is not deflate")
    result = leadflow(
        "run", "--source", "file", str(bad), "--database", f"sqlite:///{tmp_path}/x.db"
    )
    assert_one_line_error(result, "failed")


def test_a_second_run_is_refused_while_one_holds_the_lock(tmp_path):
    url = f"sqlite:///{tmp_path}/locked.db"
    path = write_jsonl(tmp_path / "e.jsonl", [event("a", "lead_phone", T0, "L1")])
    assert leadflow("db", "upgrade", "--database", url).returncode == 0
    lock = RunLock(create_store_engine(url), timedelta(hours=1))
    lock.acquire()
    try:
        result = leadflow("run", "--source", "file", str(path), "--database", url)
        assert result.returncode == 3
        assert_one_line_error(result, "in progress", "refused")
    finally:
        lock.release()
    assert leadflow("run", "--source", "file", str(path), "--database", url).returncode == 0


def test_a_lock_left_by_a_dead_process_is_taken_over(tmp_path):
    url = f"sqlite:///{tmp_path}/stale.db"
    assert leadflow("db", "upgrade", "--database", url).returncode == 0
    # A process takes the lock and dies without releasing it.
    code = (
        "from datetime import timedelta; from leadflow.store.db import create_store_engine;"
        "from leadflow.store.lock import RunLock;"
        f"RunLock(create_store_engine({url!r}), timedelta(hours=1)).acquire()"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)
    path = write_jsonl(tmp_path / "e.jsonl", [event("a", "lead_phone", T0, "L1")])
    result = leadflow("run", "--source", "file", str(path), "--database", url)
    assert result.returncode == 0, result.stderr


def test_db_upgrade_creates_every_table_at_the_newest_migration(tmp_path):
    url = f"sqlite:///{tmp_path}/new.db"
    result = leadflow("db", "upgrade", "--database", url)
    assert result.returncode == 0, result.stderr
    assert head_revision() in result.stdout
    tables = set(inspect(create_store_engine(url)).get_table_names())
    assert {"leads", "listing_analytics", "listings", "cron_runs", "source_files"} <= tables


def test_demo_on_the_local_posthog_without_chdb_says_what_to_install(tmp_path):
    hide_chdb = (
        "import sys; sys.modules['chdb'] = None; from leadflow.cli import main; "
        "sys.argv = ['leadflow', 'demo', '--posthog', '--no-serve', '--events', '1000', "
        f"'--database', 'sqlite:///{tmp_path}/d.db', '--dir', '{tmp_path}/export']; main()"
    )
    result = subprocess.run(
        [sys.executable, "-c", hide_chdb], capture_output=True, text=True, timeout=120
    )
    assert_one_line_error(result, "leadflow[local-posthog]")
