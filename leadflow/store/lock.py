"""One run at a time: a lock row in the store, taken over only from a dead or silent holder."""

from __future__ import annotations

import os
import socket
from datetime import datetime, timedelta

from sqlalchemy import Engine, delete, select, update

from leadflow.errors import RunLocked
from leadflow.store.schema import run_lock, utcnow

LOCK_NAME = "cron"


def _holder() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def _holder_is_dead(holder: str) -> bool:
    """True when the holder ran on this host and its process is gone."""
    host, _, pid = holder.rpartition(":")
    if host != socket.gethostname() or not pid.isdigit():
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False


class RunLock:
    """The store-wide run lock. `acquire` refuses at once (RunLocked) while another run holds it.

    A holder refreshes `heartbeat_at` as it commits slices; a lock whose holder process is gone,
    or whose heartbeat is older than `timeout`, is stale and taken over.
    """

    def __init__(self, engine: Engine, timeout: timedelta) -> None:
        self.engine = engine
        self.timeout = timeout
        self.holder = _holder()

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

    def attach(self, run_id: int) -> None:
        with self.engine.begin() as conn:
            conn.execute(
                update(run_lock)
                .where(run_lock.c.name == LOCK_NAME, run_lock.c.holder == self.holder)
                .values(run_id=run_id)
            )

    def release(self) -> None:
        with self.engine.begin() as conn:
            conn.execute(
                delete(run_lock).where(
                    run_lock.c.name == LOCK_NAME, run_lock.c.holder == self.holder
                )
            )


def heartbeat_statement(holder: str, now: datetime):  # type: ignore[no-untyped-def]
    """The statement a slice's transaction runs to show the lock's holder is alive."""
    return (
        update(run_lock)
        .where(run_lock.c.name == LOCK_NAME, run_lock.c.holder == holder)
        .values(heartbeat_at=now)
    )


def _busy_message(run_id: int | None, holder: str, since: datetime) -> str:
    which = f"run {run_id}" if run_id is not None else "another run"
    return (
        f"{which} is in progress (held by {holder} since {since:%Y-%m-%d %H:%M:%S} UTC); "
        "this trigger is refused, try again when it finishes"
    )
