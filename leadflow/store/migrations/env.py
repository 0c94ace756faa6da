"""Alembic environment: migrations run on the engine leadflow hands over, one process at a time."""

from __future__ import annotations

from alembic import context

from leadflow.store.lock import MIGRATION_LOCK_KEY
from leadflow.store.schema import metadata

engine = context.config.attributes["engine"]

# Two processes may upgrade the same empty store at once (two cron triggers on a new database):
# the second waits for the first's lock, then reads the version the first committed and has
# nothing left to do. SQLite: the write lock, taken at BEGIN; PostgreSQL: an advisory lock held
# to the end of the migration's transaction.
with (
    engine.connect().execution_options(sqlite_begin="IMMEDIATE") as connection,
    connection.begin(),
):
    if connection.dialect.name == "postgresql":
        connection.exec_driver_sql("SELECT pg_advisory_xact_lock(%s, %s)", MIGRATION_LOCK_KEY)
    context.configure(
        connection=connection,
        target_metadata=metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()
