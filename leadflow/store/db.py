"""Opening the store: engines for SQLite and PostgreSQL, and its Alembic migrations."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import Connection, make_url
from sqlalchemy.exc import ArgumentError, NoSuchModuleError, OperationalError

from leadflow.errors import ConfigError, StoreError

MIGRATIONS = Path(__file__).parent / "migrations"


def create_store_engine(url: str) -> Engine:
    """An engine for the store at `url`, with clear errors for a bad URL or a missing folder."""
    try:
        parsed = make_url(url)
    except ArgumentError as exc:
        raise ConfigError(
            f"bad database URL {url!r}: expected sqlite:///PATH or "
            "postgresql+psycopg://USER:PASSWORD@HOST:PORT/DB"
        ) from exc
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
            engine = create_engine(parsed, connect_args={"timeout": 30})
        except NoSuchModuleError as exc:
            raise ConfigError(f"bad database URL {url!r}: {exc}") from exc
        _configure_sqlite(engine)
        return engine
    if backend != "postgresql":
        raise ConfigError(
            f"unsupported database {backend!r} in {url!r}: leadflow stores into SQLite or PostgreSQL"
        )
    try:
        return create_engine(parsed, pool_pre_ping=True)
    except (NoSuchModuleError, ModuleNotFoundError) as exc:
        raise ConfigError(f"cannot use {url!r}: {exc}") from exc


def _configure_sqlite(engine: Engine) -> None:
    """WAL (readers never block the run), and transactions that leadflow begins itself."""

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Let SQLAlchemy, not the driver, decide where transactions begin (pysqlite's recipe).
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.execute("PRAGMA cache_size=-262144")
        cursor.execute("PRAGMA temp_store=MEMORY")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        # A write transaction takes the write lock at once, so it cannot fail half-way on it.
        mode = conn.get_execution_options().get("sqlite_begin", "DEFERRED")
        conn.exec_driver_sql(f"BEGIN {mode}")


def alembic_config(engine: Engine) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["engine"] = engine
    return config


def head_revision() -> str:
    script = ScriptDirectory(str(MIGRATIONS))
    head = script.get_current_head()
    assert head is not None
    return head


def current_revision(engine: Engine) -> str | None:
    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def upgrade(engine: Engine, revision: str = "head") -> None:
    """Apply the migrations up to `revision` (`leadflow db upgrade`)."""
    try:
        command.upgrade(alembic_config(engine), revision)
    except OperationalError as exc:
        raise StoreError(f"cannot migrate the database: {exc.orig}") from exc


def ensure_schema(engine: Engine) -> None:
    """Create or upgrade the tables when the database is not at the newest migration."""
    try:
        current = current_revision(engine)
    except OperationalError as exc:
        raise StoreError(f"cannot open the database {engine.url!r}: {exc.orig}") from exc
    if current != head_revision():
        upgrade(engine)


def sqlite_path(engine: Engine) -> str | None:
    """The file of a SQLite store (None for other stores or in-memory SQLite)."""
    if engine.url.get_backend_name() != "sqlite":
        return None
    database = engine.url.database or ""
    return os.path.abspath(database) if database and database != ":memory:" else None
