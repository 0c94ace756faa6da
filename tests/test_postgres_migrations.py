"""The Alembic migrations, on SQLite and PostgreSQL: the same tables, the indexes the queries use,
upgrades from every earlier migration, and a portal's own `listings` table."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect, text

from bench.baseline import canonical, compute
from leadflow.errors import StoreError
from leadflow.store.db import (
    alembic_config,
    current_revision,
    ensure_schema,
    head_revision,
    revisions,
    upgrade,
)
from leadflow.store.schema import metadata
from tests.eventfiles import event, write_jsonl

T0 = datetime(2025, 5, 1, 10, 0, tzinfo=UTC)


def schema_differences(engine):
    """What autogenerate would change to make the database match schema.py (nothing, we want)."""
    with engine.connect() as conn:
        differences = compare_metadata(
            MigrationContext.configure(conn, opts={"compare_type": True}), metadata
        )
    return differences


def test_migrations_create_exactly_the_tables_of_schema_py(make_store, store_kind):
    store = make_store(migrated=False)
    upgrade(store.engine)
    assert current_revision(store.engine) == head_revision()
    assert schema_differences(store.engine) == []


@pytest.mark.parametrize("start", [None, *revisions()[:-1]], ids=lambda r: f"from-{r or 'empty'}")
def test_upgrade_from_every_earlier_migration(make_store, store_kind, tmp_path, start):
    store = make_store(migrated=False)
    if start is not None:
        upgrade(store.engine, start)
        with store.engine.begin() as conn:
            conn.execute(
                text(
                    "INSERT INTO cron_runs (started_at, status, rejects) "
                    "VALUES (:at, 'succeeded', '{}')"
                ),
                {"at": T0},
            )
    upgrade(store.engine)
    assert current_revision(store.engine) == head_revision()
    assert schema_differences(store.engine) == []
    path = write_jsonl(tmp_path / "e.jsonl", [event("a", "lead_phone", T0, "L1", "s1")])
    store.run(path)
    assert store.snapshot() == canonical(compute([path]))
    assert store.count("cron_runs") == (2 if start is not None else 1)


def test_downgrade_to_empty_and_up_again(make_store, store_kind):
    store = make_store(migrated=False)
    upgrade(store.engine)
    command.downgrade(alembic_config(store.engine), "base")
    assert set(inspect(store.engine).get_table_names()) <= {"alembic_version"}
    upgrade(store.engine)
    assert schema_differences(store.engine) == []


# -- the indexes the pipeline's and the API's queries need ----------------------------------

QUERIES = {
    "ix_leads_lister_status": "SELECT id FROM leads WHERE lister_id = 'x' AND status = 'new'",
    "ix_leads_group": "SELECT id FROM leads WHERE listing_id = 'x' AND seeker_id = 'y'",
    "listing_analytics": (
        "SELECT total_views FROM listing_analytics "
        "WHERE listing_id = 'x' AND date BETWEEN '2025-01-01' AND '2025-01-31' AND hour = 3"
    ),
    "ix_cron_runs_started_at": "SELECT id FROM cron_runs ORDER BY started_at DESC LIMIT 20",
}


@pytest.mark.parametrize("index", QUERIES)
def test_the_queries_use_their_index(store, store_kind, index):
    ensure_schema(store.engine)
    with store.engine.connect() as conn:
        if store_kind == "postgresql":
            conn.execute(text("SET enable_seqscan = off"))
            plan = " ".join(r[0] for r in conn.execute(text(f"EXPLAIN {QUERIES[index]}")))
            expected = "listing_analytics_pkey" if index == "listing_analytics" else index
        else:
            plan = " ".join(
                str(r[-1]) for r in conn.execute(text(f"EXPLAIN QUERY PLAN {QUERIES[index]}"))
            )
            expected = "PRIMARY KEY" if index == "listing_analytics" else index
    assert expected in plan, plan


# -- a portal's own listings table ------------------------------------------------------------


def _portal_listings_sql(store_kind: str, with_key: str) -> list[str]:
    if store_kind == "postgresql":
        ident = "id bigserial PRIMARY KEY"
        generated = "listing_id text GENERATED ALWAYS AS (id::text) STORED"
    else:
        ident = "id INTEGER PRIMARY KEY"
        generated = "listing_id TEXT GENERATED ALWAYS AS (CAST(id AS TEXT)) STORED"
    key = {
        "column": "listing_id varchar(64) UNIQUE",
        "generated": generated,
        "none": "",
        "integer": "listing_id integer",
    }[with_key]
    columns = ", ".join(c for c in (ident, "title text NOT NULL", "price integer", key) if c)
    rows = (
        "INSERT INTO listings (id, title, price) VALUES (1, 'Flat', 900), (2, 'House', 2000)"
        if with_key in ("generated", "none")
        else "INSERT INTO listings (id, title, price, listing_id) "
        "VALUES (1, 'Flat', 900, '1'), (2, 'House', 2000, '2')"
    )
    return [f"CREATE TABLE listings ({columns})", rows]


def _doc(value: Any) -> Any:
    """A JSON column's value as read with text(): text from SQLite, parsed from PostgreSQL."""
    return json.loads(value) if isinstance(value, str) else value


@pytest.mark.parametrize("with_key", ["column", "generated"])
def test_a_portals_listings_table_gets_only_leadflows_analytics_columns(
    make_store, store_kind, tmp_path, with_key
):
    store = make_store(migrated=False)
    with store.engine.begin() as conn:
        for statement in _portal_listings_sql(store_kind, with_key):
            conn.execute(text(statement))
    events = [
        event("v1", "property_view", T0, "1", "s1", lister_id="agent-7"),
        event("l1", "lead_phone", T0, "1", "s1"),
        event("s1", "listing_share", T0, "2", "s2", platform="whatsapp"),
        event("v2", "property_view", T0, "3", "s3"),  # a listing the portal does not have
    ]
    path = write_jsonl(tmp_path / "e.jsonl", events)
    store.run(path)

    columns = {c["name"] for c in inspect(store.engine).get_columns("listings")}
    assert {"title", "price", "total_views", "leads_breakdown"} <= columns
    assert not {"lister_id", "lister_type"} & columns  # the portal knows its listers
    rows = {
        r.id: r._mapping for r in store.engine.connect().execute(text("SELECT * FROM listings"))
    }
    assert set(rows) == {1, 2}  # nothing inserted for listing 3, nothing deleted
    assert (rows[1]["title"], rows[1]["price"]) == ("Flat", 900)
    assert (rows[1]["total_views"], rows[1]["phone_leads"], rows[1]["conversion_rate"]) == (
        1,
        1,
        100.0,
    )
    assert rows[2]["total_shares"] == 1
    # listing 3 is still counted where leadflow owns the table
    assert {r["listing_id"] for r in store.rows("listing_analytics")} == {"1", "2", "3"}
    assert store.run(path).events_read == 0

    # A later delivery: the portal's rows, now kept by leadflow, get the new hour's counts
    # added, the hour before recomputed with its late event, and their breakdowns updated.
    later = [
        event("v3", "property_view", T0 + timedelta(hours=1), "1", "s4"),
        event("v4", "property_view", T0, "1", "s5"),  # late, into the first hour
        event("s2", "listing_share", T0 + timedelta(hours=1), "1", "s4", platform="email"),
        event("s3", "listing_share", T0, "2", "s6", platform="whatsapp"),
    ]
    store.run(write_jsonl(tmp_path / "later.jsonl", later))
    rows = {
        r.id: r._mapping for r in store.engine.connect().execute(text("SELECT * FROM listings"))
    }
    assert set(rows) == {1, 2}
    assert (rows[1]["title"], rows[1]["price"]) == ("Flat", 900)
    assert (rows[1]["total_views"], rows[1]["unique_views"], rows[1]["total_shares"]) == (3, 3, 1)
    assert rows[1]["conversion_rate"] == pytest.approx(100 / 3)
    assert _doc(rows[1]["share_breakdown"]) == {"email": 1}
    assert (rows[2]["total_shares"], _doc(rows[2]["share_breakdown"])) == (2, {"whatsapp": 2})


@pytest.mark.parametrize("with_key", ["none", "integer"])
def test_a_portals_listings_table_without_a_text_listing_id_is_explained(
    make_store, store_kind, with_key
):
    store = make_store(migrated=False)
    with store.engine.begin() as conn:
        for statement in _portal_listings_sql(store_kind, with_key):
            conn.execute(text(statement))
    with pytest.raises(StoreError, match="GENERATED ALWAYS AS"):
        upgrade(store.engine)


def test_downgrade_leaves_a_portals_listings_table(make_store, store_kind):
    store = make_store(migrated=False)
    with store.engine.begin() as conn:
        for statement in _portal_listings_sql(store_kind, "column"):
            conn.execute(text(statement))
    upgrade(store.engine)
    command.downgrade(alembic_config(store.engine), "base")
    assert "listings" in inspect(store.engine).get_table_names()
    with store.engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM listings")).scalar_one() == 2


def test_the_store_reads_revisions_as_alembic_does(make_store, store_kind):
    """Runs check the store's revision without importing Alembic: the same answers as Alembic's."""
    from alembic.script import ScriptDirectory

    from leadflow.store.db import MIGRATIONS

    assert head_revision() == ScriptDirectory(str(MIGRATIONS)).get_current_head()
    store = make_store(migrated=False)
    assert current_revision(store.engine) is None
    for revision in revisions():
        upgrade(store.engine, revision)
        with store.engine.connect() as conn:
            assert current_revision(store.engine) == (
                MigrationContext.configure(conn).get_current_revision()
            )
            assert current_revision(store.engine) == revision
