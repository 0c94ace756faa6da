"""One run at a time, across processes, and crashes mid-slice: on SQLite and on PostgreSQL.

Every test here runs real processes: runs triggered at the same moment, a run killed with SIGKILL
in the middle of a slice, a lock holder killed while it holds the lock.
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import event as sqlalchemy_event

from bench.baseline import canonical, compute
from leadflow.errors import RunLocked
from leadflow.store.db import create_store_engine
from leadflow.store.lock import AdvisoryRunLock, RowRunLock, RunLock
from tests.eventfiles import event, write_jsonl

T0 = datetime(2025, 3, 1, tzinfo=UTC)
ROOT = Path(__file__).resolve().parent.parent

# A run in a process of its own: it waits for the start signal (a file), then runs; a run that
# takes the lock stays in its first slice a moment, so that the other trigger meets the lock.
TRIGGER = """
import json, os, sys, time
from leadflow import pipeline
from leadflow.config import Settings
from leadflow.errors import RunLocked
url, source, start = sys.argv[1:4]
print("ready", flush=True)
while not os.path.exists(start):
    time.sleep(0.001)
def linger(step):
    if step == "leads":
        time.sleep(1.5)
try:
    summary = pipeline.run(Settings(database_url=url), source, fault=linger)
except RunLocked as refused:
    print(json.dumps({"refused": str(refused), "at": time.time()}))
    sys.exit(3)
print(json.dumps({"run_id": summary.run_id, "events_read": summary.events_read}))
"""

# A run that kills itself with SIGKILL at the given write step of a slice (its transaction open).
KILLED_RUN = """
import os, signal, sys
from leadflow import pipeline
from leadflow.config import Settings
url, source, step, occurrence, slice_events = sys.argv[1:6]
seen = 0
def die(name):
    global seen
    if name == step:
        seen += 1
        if seen == int(occurrence):
            os.kill(os.getpid(), signal.SIGKILL)
pipeline.run(Settings(database_url=url, slice_events=int(slice_events)), source, fault=die)
"""

# A process that takes the run lock and holds it until it is killed.
HOLDER = """
import sys, time
from datetime import timedelta
from leadflow.store.db import create_store_engine, ensure_schema
from leadflow.store.lock import RunLock
engine = create_store_engine(sys.argv[1])
ensure_schema(engine)
RunLock(engine, timedelta(hours=1)).acquire(run_id=41)
print("locked", flush=True)
time.sleep(600)
"""


def python(code: str, *args: str, **kwargs) -> subprocess.Popen[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.Popen(
        [sys.executable, "-c", code, *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        cwd=ROOT,
        **kwargs,
    )


def export(folder: Path) -> Path:
    """Leads and views over a day, enough for several slices."""
    events = []
    for i in range(240):
        at = T0 + timedelta(minutes=6 * i)
        events.append(event(f"v{i}", "property_view", at, f"L{i % 7}", f"s{i % 11}"))
        if i % 3 == 0:
            events.append(event(f"l{i}", "lead_phone", at, f"L{i % 7}", f"s{i % 5}"))
    write_jsonl(folder / "events.jsonl", events)
    return folder


def test_two_runs_triggered_at_the_same_moment_one_runs_the_other_is_refused(
    make_store, store_kind, tmp_path
):
    folder = export(tmp_path / "export")
    store = make_store(migrated=False)  # a new store: both triggers also meet the migrations
    start = tmp_path / "start"
    runs = [python(TRIGGER, store.url, str(folder), str(start)) for _ in range(2)]
    try:
        for child in runs:
            assert child.stdout is not None
            assert child.stdout.readline().strip() == "ready"
        start.touch()
        outputs = [child.communicate(timeout=120) for child in runs]
    finally:
        for child in runs:
            child.kill()
    codes = sorted(child.returncode for child in runs)
    assert codes == [0, 3], outputs
    refused = next(
        json.loads(out) for (out, _), c in zip(outputs, runs, strict=True) if c.returncode == 3
    )
    assert "in progress" in refused["refused"] and "refused" in refused["refused"]

    single = make_store()
    single.run(folder)
    assert store.snapshot() == single.snapshot() == canonical(compute([folder / "events.jsonl"]))
    assert [r["status"] for r in store.rows("cron_runs")] == ["succeeded"]


def test_connections_opening_a_new_sqlite_store_at_the_same_moment_all_open(tmp_path):
    """Both triggers of a new store switch it to WAL as they connect; SQLite refuses one of two
    switches made at the same moment ("database is locked", without waiting) one time in twenty
    or so, which must not fail the connection. Each thread opens its own DBAPI connection as its
    own process would, and connects its engine through it at the same moment as the other."""
    failures: list[str] = []
    for attempt in range(150):
        path = tmp_path / f"store-{attempt}.db"
        barrier = threading.Barrier(2)

        def connect(path: Path = path, barrier: threading.Barrier = barrier) -> None:
            engine = create_store_engine(f"sqlite:///{path}")

            @sqlalchemy_event.listens_for(engine, "do_connect")
            def opened(_dialect: Any, _record: Any, args: Any, kwargs: Any) -> sqlite3.Connection:
                connection = sqlite3.connect(*args, **kwargs)
                barrier.wait()
                return connection

            try:
                with engine.connect() as conn:
                    mode = conn.exec_driver_sql("PRAGMA journal_mode").scalar()
                    if mode != "wal":
                        failures.append(f"journal mode {mode}")
            except Exception as exc:  # collected: an exception in a thread would be lost
                failures.append(f"{type(exc).__name__}: {exc}")
            finally:
                engine.dispose()

        threads = [threading.Thread(target=connect) for _ in range(2)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    assert failures == []


@pytest.mark.parametrize(
    ("step", "occurrence"),
    [("leads", 1), ("analytics", 2), ("listings", 3), ("run_record", 2)],
    ids=lambda v: str(v),
)
def test_a_run_killed_mid_slice_is_completed_exactly_once_by_the_next(
    make_store, store_kind, tmp_path, step, occurrence
):
    folder = export(tmp_path / "export")
    store = make_store()
    killed = python(KILLED_RUN, store.url, str(folder), step, str(occurrence), "150")
    _, errors = killed.communicate(timeout=120)
    assert killed.returncode == -signal.SIGKILL, errors

    resumed = store.run(folder, slice_events=150)
    expected = canonical(compute([folder / "events.jsonl"]))
    assert store.snapshot() == expected
    # Every lead action once: one lead event row per valid lead event, one record per run.
    assert store.count("lead_events") == 80
    per_run = Counter((r["run_id"], r["listing_id"], r["seeker_id"]) for r in store.rows("leads"))
    assert all(n == 1 for n in per_run.values())
    assert resumed.status == "succeeded"
    again = store.run(folder, slice_events=150)
    assert again.events_read == 0 and store.snapshot() == expected


def test_a_second_trigger_is_refused_at_once_not_queued(store, store_kind):
    from leadflow.store.db import ensure_schema

    ensure_schema(store.engine)
    holder = RunLock(store.engine, timedelta(hours=1))
    assert isinstance(holder, AdvisoryRunLock if store_kind == "postgresql" else RowRunLock)
    holder.acquire()
    holder.attach(7)
    try:
        started = time.monotonic()
        with pytest.raises(RunLocked, match=r"run 7 is in progress \(held by .*:\d+ since"):
            RunLock(store.engine, timedelta(hours=1)).acquire()
        assert time.monotonic() - started < 2
    finally:
        holder.release()
    again = RunLock(store.engine, timedelta(hours=1))
    again.acquire()
    again.release()


def test_a_crashed_holders_lock_is_released(store, store_kind):
    """PostgreSQL ends the lock with the holder's connection; SQLite sees the holder is dead."""
    child = python(HOLDER, store.url)
    try:
        assert child.stdout is not None
        line = child.stdout.readline().strip()
        assert line == "locked", child.stderr.read() if child.stderr else ""
        with pytest.raises(RunLocked, match="run 41 is in progress"):
            RunLock(store.engine, timedelta(hours=1)).acquire()
    finally:
        child.send_signal(signal.SIGKILL)
        child.communicate(timeout=30)
    deadline = time.monotonic() + 10
    while True:
        lock = RunLock(store.engine, timedelta(hours=1))
        try:
            lock.acquire()
            break
        except RunLocked:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)
    lock.release()


@pytest.mark.stores("postgresql")
def test_the_advisory_lock_is_per_database(make_store, store_kind):
    """Two stores on one server (two portals) run side by side."""
    from leadflow.store.db import ensure_schema

    one, two = make_store(), make_store()
    for s in (one, two):
        ensure_schema(s.engine)
    first = RunLock(one.engine, timedelta(hours=1))
    first.acquire()
    try:
        second = RunLock(two.engine, timedelta(hours=1))
        second.acquire()
        second.release()
    finally:
        first.release()


def test_two_upgrades_of_a_new_store_at_once_both_succeed(make_store, store_kind):
    store = make_store(migrated=False)
    code = (
        "import sys; from leadflow.store.db import create_store_engine, upgrade;"
        "upgrade(create_store_engine(sys.argv[1]))"
    )
    children = [python(code, store.url) for _ in range(3)]
    results = [child.communicate(timeout=120) for child in children]
    assert [child.returncode for child in children] == [0, 0, 0], results
