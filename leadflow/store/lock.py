"""One run at a time: a PostgreSQL advisory lock, or a lock row in SQLite.

`RunLock(engine, timeout)` gives the store's kind of lock. Both refuse a second run at once
(RunLocked), never queue it, and both keep a row in `run_lock` that says who holds the lock
since when (what a refused trigger reports).
"""

from __future__ import annotations

import os
import socket
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Engine, delete, select, update
from sqlalchemy.engine import Connection
from sqlalchemy.exc import DBAPIError

from leadflow.errors import RunLocked
from leadflow.store.schema import run_lock, utcnow

LOCK_NAME = "cron"

# PostgreSQL advisory locks are keyed by two int4s: leadflow's namespace ("lflw") and the lock.
ADVISORY_NAMESPACE = 0x6C666C77
RUN_LOCK_KEY = (ADVISORY_NAMESPACE, 1)
MIGRATION_LOCK_KEY = (ADVISORY_NAMESPACE, 2)
_TRY_LOCK = f"SELECT pg_try_advisory_lock({RUN_LOCK_KEY[0]}, {RUN_LOCK_KEY[1]})"
_UNLOCK = f"SELECT pg_advisory_unlock({RUN_LOCK_KEY[0]}, {RUN_LOCK_KEY[1]})"


def _holder() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def _holder_is_dead(holder: str) -> bool:
    """True when the holder ran on this host and its process is gone."""
    host, _, pid = holder.rpartition(":")
    return host == socket.gethostname() and pid.isdigit() and process_is_gone(int(pid))


def process_is_gone(pid: int) -> bool:
    """Whether no process of this host has this id (another user's process is not gone)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False


class RunLock:
    """The store-wide run lock. `acquire` refuses at once (RunLocked) while another run holds it.

    Constructing a RunLock gives an AdvisoryRunLock on PostgreSQL and a RowRunLock on SQLite.
    """

    def __new__(cls, engine: Engine, timeout: timedelta) -> RunLock:
        if cls is RunLock:
            cls = AdvisoryRunLock if engine.dialect.name == "postgresql" else RowRunLock
        return super().__new__(cls)

    def __init__(self, engine: Engine, timeout: timedelta) -> None:
        self.engine = engine
        self.timeout = timeout
        self.holder = _holder()

    def acquire(self, run_id: int | None = None) -> None:
        raise NotImplementedError

    def attach(self, run_id: int) -> None:
        """Name the run that holds the lock (once it is recorded in cron_runs)."""
        with self.engine.begin() as conn:
            conn.execute(
                update(run_lock)
                .where(run_lock.c.name == LOCK_NAME, run_lock.c.holder == self.holder)
                .values(run_id=run_id)
            )

    def release(self) -> None:
        self._forget_holder()

    # -- the lock row --------------------------------------------------------------------------

    def _record_holder(self, conn: Connection, run_id: int | None, now: datetime) -> None:
        conn.execute(delete(run_lock).where(run_lock.c.name == LOCK_NAME))
        conn.execute(
            run_lock.insert().values(
                name=LOCK_NAME,
                run_id=run_id,
                holder=self.holder,
                acquired_at=now,
                heartbeat_at=now,
            )
        )

    def _forget_holder(self) -> None:
        with self.engine.begin() as conn:
            conn.execute(
                delete(run_lock).where(
                    run_lock.c.name == LOCK_NAME, run_lock.c.holder == self.holder
                )
            )


class RowRunLock(RunLock):
    """SQLite's lock: a row in `run_lock`, written under SQLite's write lock.

    A holder refreshes `heartbeat_at` as it commits slices; a lock whose holder process is gone,
    or whose heartbeat is older than `timeout`, is stale and taken over.
    """

    def acquire(self, run_id: int | None = None) -> None:
        now = utcnow()
        with (
            self.engine.connect().execution_options(sqlite_begin="IMMEDIATE") as conn,
            conn.begin(),
        ):
            row = conn.execute(select(run_lock).where(run_lock.c.name == LOCK_NAME)).first()
            if row is not None:
                stale = row.heartbeat_at < now - self.timeout or _holder_is_dead(row.holder)
                if not stale:
                    raise RunLocked(_busy_message(row.run_id, row.holder, row.acquired_at))
            self._record_holder(conn, run_id, now)


class AdvisoryRunLock(RunLock):
    """PostgreSQL's lock: a session advisory lock (`pg_try_advisory_lock`), across machines.

    The lock lives as long as the session of the connection that took it: `release` unlocks and
    closes it, and when the holder dies the server ends the session and the lock with it (a
    killed process at once; a vanished machine when TCP keepalives give up). The `run_lock` row
    is only information for a refused trigger; `timeout` does not apply.
    """

    def __init__(self, engine: Engine, timeout: timedelta) -> None:
        super().__init__(engine, timeout)
        self._session: Connection | None = None

    def acquire(self, run_id: int | None = None) -> None:
        if self._session is not None:
            raise RuntimeError("this RunLock is already held")
        session = self.engine.connect().execution_options(isolation_level="AUTOCOMMIT")
        try:
            session.exec_driver_sql(
                "SELECT set_config('application_name', %s, false)",
                (f"leadflow run lock {self.holder}"[:63],),
            )
            taken = session.exec_driver_sql(_TRY_LOCK).scalar_one()
        except BaseException:
            session.invalidate()
            session.close()
            raise
        if not taken:
            session.close()
            raise RunLocked(self._busy())
        self._session = session
        try:
            with self.engine.begin() as conn:
                self._record_holder(conn, run_id, utcnow())
        except BaseException:
            self._unlock()
            raise

    def release(self) -> None:
        if self._session is None:
            return
        try:
            self._forget_holder()
        finally:
            self._unlock()

    def _unlock(self) -> None:
        session, self._session = self._session, None
        if session is None:
            return
        try:
            session.exec_driver_sql(_UNLOCK)
        except DBAPIError:
            # The session is gone, and the server released its lock with it.
            session.invalidate()
        finally:
            session.close()

    def _busy(self) -> str:
        with self.engine.connect() as conn:
            row = conn.execute(select(run_lock).where(run_lock.c.name == LOCK_NAME)).first()
        if row is None:
            return _busy_message(None, None, None)
        return _busy_message(row.run_id, row.holder, row.acquired_at)


def heartbeat_statement(holder: str, now: datetime) -> Any:
    """The statement a slice's transaction runs to show the lock's holder is alive."""
    return (
        update(run_lock)
        .where(run_lock.c.name == LOCK_NAME, run_lock.c.holder == holder)
        .values(heartbeat_at=now)
    )


def _busy_message(run_id: int | None, holder: str | None, since: datetime | None) -> str:
    which = f"run {run_id}" if run_id is not None else "another run"
    held = f" (held by {holder} since {since:%Y-%m-%d %H:%M:%S} UTC)" if holder and since else ""
    return f"{which} is in progress{held}; this trigger is refused, try again when it finishes"
