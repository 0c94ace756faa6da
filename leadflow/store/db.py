"""Opening the store: engines for SQLite and PostgreSQL, and its Alembic migrations."""

from __future__ import annotations

import logging
import os
import re
import sqlite3
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import URL, Engine, create_engine, event, inspect, text
from sqlalchemy.engine import Connection, make_url
from sqlalchemy.exc import ArgumentError, DBAPIError, NoSuchModuleError

from leadflow.errors import ConfigError, StoreError

if TYPE_CHECKING:
    from alembic.config import Config

log = logging.getLogger("leadflow.store")

# Alembic is imported only to migrate: a run on an up-to-date store reads the revision itself.

MIGRATIONS = Path(__file__).parent / "migrations"

URL_EXAMPLES = "sqlite:///PATH or postgresql+psycopg://USER:PASSWORD@HOST:PORT/DB"

# Query parameters of a PostgreSQL URL that leadflow reads itself (the pool, the session); every
# other parameter (sslmode, sslrootcert, connect_timeout, application_name, …) goes to libpq.
POOL_OPTIONS = {"pool_size": 5, "max_overflow": 5, "pool_timeout": 30, "pool_recycle": -1}
SESSION_OPTIONS = ("statement_timeout",)
DEFAULT_CONNECT_TIMEOUT = "10"
# How long a SQLite connection waits for another's lock before "database is locked".
SQLITE_BUSY_SECONDS = 30
# The execution option of `deferring_checkpoints`.
DEFER_CHECKPOINT = "leadflow_defer_checkpoint"
_DURATION = re.compile(r"\d+\s*(us|ms|s|min|h|d)?")


def create_store_engine(url: str) -> Engine:
    """An engine for the store at `url`, with clear errors for a bad URL or a missing folder.

    A PostgreSQL URL may carry pool and session settings as query parameters, next to libpq's
    own (sslmode, connect_timeout, …): `pool_size`, `max_overflow`, `pool_timeout`,
    `pool_recycle` (seconds) and `statement_timeout` (PostgreSQL units: `30s`, `5min`; bare
    numbers are milliseconds). See docs/postgres.md.
    """
    try:
        parsed = make_url(url)
    except ArgumentError as exc:
        raise ConfigError(f"bad database URL {url!r}: expected {URL_EXAMPLES}") from exc
    backend = parsed.get_backend_name()
    if backend == "sqlite":
        database = parsed.database or ""
        if database and database != ":memory:" and not database.startswith("file:"):
            folder = Path(database).expanduser().resolve().parent
            if not folder.is_dir():
                raise StoreError(
                    f"cannot create the SQLite database {database}: no folder {folder}"
                )
        try:
            engine = create_engine(parsed, connect_args={"timeout": SQLITE_BUSY_SECONDS})
        except NoSuchModuleError as exc:
            raise ConfigError(f"bad database URL {url!r}: {exc}") from exc
        _configure_sqlite(engine)
        return engine
    if backend in ("postgresql", "postgres"):
        return _postgres_engine(parsed)
    raise ConfigError(
        f"unsupported database {backend!r} in {parsed!r}: leadflow stores into SQLite or "
        f"PostgreSQL ({URL_EXAMPLES})"
    )


def _use_wal(dbapi_connection: sqlite3.Connection) -> None:
    """Put the database in WAL mode (a no-op once it is).

    Switching a new database to WAL needs its exclusive lock, and SQLite answers "database is
    locked" at once, without its busy handler, while another connection is in the middle of the
    same switch or of the migrations that follow: two runs started at the same moment on a new
    store. So the switch is retried for as long as the busy timeout would have waited."""
    deadline = time.monotonic() + SQLITE_BUSY_SECONDS
    pause = 0.005
    while True:
        try:
            dbapi_connection.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() + pause > deadline:
                raise
        time.sleep(pause)
        pause = min(pause * 2, 0.1)


def _configure_sqlite(engine: Engine) -> None:
    """WAL (readers never block the run), and transactions that leadflow begins itself."""

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Let SQLAlchemy, not the driver, decide where transactions begin (pysqlite's recipe).
        dbapi_connection.isolation_level = None
        _use_wal(dbapi_connection)
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA cache_size=-262144")
        cursor.execute("PRAGMA temp_store=MEMORY")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        options = conn.get_execution_options()
        # A run's transactions leave the write-ahead log to the run (`checkpoint`); any other
        # commit copies it into the database file once it passes SQLite's default 1000 pages.
        pages = 0 if options.get(DEFER_CHECKPOINT) else 1000
        conn.exec_driver_sql(f"PRAGMA wal_autocheckpoint={pages}")
        # A write transaction takes the write lock at once, so it cannot fail half-way on it.
        conn.exec_driver_sql(f"BEGIN {options.get('sqlite_begin', 'DEFERRED')}")


def deferring_checkpoints(engine: Engine) -> Engine:
    """`engine` (same pool) whose SQLite commits leave the write-ahead log's pages to
    `checkpoint`: a run checkpoints before each slice, and lets its caller copy the last slice's
    pages after it has answered (an hourly run's log is some 60 MB, about 0.3 s to copy)."""
    return engine.execution_options(**{DEFER_CHECKPOINT: True})


def checkpoint(engine: Engine) -> None:
    """Copy SQLite's write-ahead log into the database file (nothing to do for PostgreSQL).

    Passive: it copies what no reader still needs and never waits for one. A checkpoint that
    fails loses nothing (the log keeps the committed pages, and the next one copies them): it
    is logged, not raised, so that it cannot hide the outcome of the run before it."""
    if engine.dialect.name != "sqlite":
        return
    try:
        with engine.connect() as conn:
            # On the driver's connection: SQLAlchemy would first begin a transaction, which a
            # checkpoint cannot run in.
            driver = conn.connection.driver_connection
            assert driver is not None
            driver.execute("PRAGMA wal_checkpoint(PASSIVE)")
    except (DBAPIError, sqlite3.Error) as exc:
        log.warning("SQLite checkpoint failed (the write-ahead log keeps the data): %s", exc)


def _postgres_engine(parsed: URL) -> Engine:
    """PostgreSQL through psycopg 3, with the URL's pool and session settings applied."""
    driver = parsed.drivername.partition("+")[2]
    if driver not in ("", "psycopg"):
        raise ConfigError(
            f"unsupported PostgreSQL driver {driver!r} in {parsed!r}: leadflow uses psycopg 3, "
            "write postgresql+psycopg://USER:PASSWORD@HOST:PORT/DB"
        )
    query = dict(parsed.query)
    pool: dict[str, int] = {}
    for name, default in POOL_OPTIONS.items():
        value = query.pop(name, None)
        pool[name] = default if value is None else _int_option(parsed, name, value)
    if pool["pool_size"] + pool["max_overflow"] < 2:
        raise ConfigError(
            f"pool_size + max_overflow is {pool['pool_size'] + pool['max_overflow']} in the "
            "database URL: a run holds two connections at once (its lock's and its work's)"
        )
    session: dict[str, str] = {}
    for name in SESSION_OPTIONS:
        value = query.pop(name, None)
        if value is not None:
            if not isinstance(value, str) or not _DURATION.fullmatch(value.strip()):
                raise ConfigError(
                    f"bad {name}={value!r} in the database URL: expected a duration such as "
                    "30s, 5min or 30000 (milliseconds)"
                )
            session[name] = value.strip()
    query.setdefault("connect_timeout", DEFAULT_CONNECT_TIMEOUT)
    url = parsed.set(drivername="postgresql+psycopg", query=query)
    try:
        engine = create_engine(url, pool_pre_ping=True, **pool)
    except (NoSuchModuleError, ModuleNotFoundError) as exc:
        raise ConfigError(
            f"cannot use {parsed!r}: the PostgreSQL driver is missing "
            "(pip install 'psycopg[binary]')"
        ) from exc

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Session settings, committed so that the pool's rollback on check-in keeps them. UTC so
        # that anything rendering or truncating times in SQL sees the stored instants as UTC.
        with dbapi_connection.cursor() as cursor:
            cursor.execute("SET TIME ZONE 'UTC'")
            for name, value in session.items():
                cursor.execute(f"SET {name} = '{value}'")
        dbapi_connection.commit()

    return engine


def _int_option(url: URL, name: str, value: Any) -> int:
    try:
        number = int(value)
    except (TypeError, ValueError):
        number = -2
    if number < (-1 if name == "pool_recycle" else 0) or (name == "pool_size" and number < 1):
        raise ConfigError(f"bad {name}={value!r} in the database URL {url!r}: expected a count")
    return number


def describe_connect_error(engine: Engine, exc: DBAPIError) -> str:
    """One line on why the store could not be reached, and what to check."""
    url = engine.url
    detail = " ".join(str(exc.orig).split())
    if url.get_backend_name() != "postgresql":
        return f"cannot open the database {url!r}: {detail}"
    where = f"the PostgreSQL server at {url.host or 'localhost'}:{url.port or 5432}"
    who = f"user {url.username!r}" if url.username else "the default user"
    lowered = detail.lower()
    if "password authentication failed" in lowered or "no password supplied" in lowered:
        advice = (
            f"the server refused the credentials of {who}: check the user and password in the URL"
        )
    elif re.search(r'role ".*" does not exist', lowered):
        advice = f"{who} does not exist on the server: check the user in the URL"
    elif re.search(r'database ".*" does not exist', lowered):
        advice = f"create the database first (createdb {url.database}) or fix its name in the URL"
    elif "no pg_hba.conf entry" in lowered:
        advice = (
            "the server does not accept this client: check its pg_hba.conf and the URL's sslmode"
        )
    elif "ssl" in lowered:
        advice = "check the URL's sslmode (and sslrootcert) against the server's SSL setup"
    elif any(
        needle in lowered
        for needle in (
            "refused",
            "timeout",
            "timed out",
            "translate host",
            "resolve",
            "no route",
            "unreachable",
        )
    ):
        advice = "is the server running, and are the host and port right?"
    else:
        advice = "check the database URL"
    return f"cannot connect to {where} (database {url.database!r}): {advice} ({detail})"


def alembic_config(engine: Engine) -> Config:
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["engine"] = engine
    return config


def head_revision() -> str:
    """The newest migration: the highest of the files' numbers, which are their revision ids
    (`NNNN_name.py` holds revision "NNNN"; tests check this against Alembic's own reading)."""
    return max(path.name.partition("_")[0] for path in (MIGRATIONS / "versions").glob("*_*.py"))


def revisions() -> list[str]:
    """Every migration, oldest first."""
    from alembic.script import ScriptDirectory

    script = ScriptDirectory(str(MIGRATIONS))
    return [rev.revision for rev in reversed(list(script.walk_revisions()))]


def current_revision(engine: Engine) -> str | None:
    """The store's migration (Alembic's `alembic_version` table), None for an empty store."""
    check_connection(engine)
    with engine.connect() as conn:
        if not inspect(conn).has_table("alembic_version"):
            return None
        return conn.execute(text("SELECT version_num FROM alembic_version")).scalar_one_or_none()


def upgrade(engine: Engine, revision: str = "head") -> None:
    """Apply the migrations up to `revision` (`leadflow db upgrade`).

    Safe to start from several processes at once: the migrations take a lock (an advisory lock
    in PostgreSQL, the write lock in SQLite) and see what the others applied before them.
    """
    from alembic import command

    check_connection(engine)
    try:
        command.upgrade(alembic_config(engine), revision)
    except DBAPIError as exc:
        detail = " ".join(str(exc.orig).split())
        raise StoreError(f"cannot migrate the database: {detail}") from exc


def check_connection(engine: Engine) -> None:
    """Connect once, turning a refused or failed connection into a StoreError that says why."""
    try:
        with engine.connect():
            pass
    except DBAPIError as exc:
        raise StoreError(describe_connect_error(engine, exc)) from exc


def ensure_schema(engine: Engine) -> None:
    """Create or upgrade the tables when the database is not at the newest migration."""
    if current_revision(engine) != head_revision():
        upgrade(engine)


def sqlite_path(engine: Engine) -> str | None:
    """The file of a SQLite store (None for other stores or in-memory SQLite)."""
    if engine.url.get_backend_name() != "sqlite":
        return None
    database = engine.url.database or ""
    return os.path.abspath(database) if database and database != ":memory:" else None


def is_postgres(engine: Engine | Connection) -> bool:
    return engine.dialect.name == "postgresql"
