"""PostgreSQL as the store: its types, ids, times, connection settings and connection errors."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import insert, text
from sqlalchemy.exc import OperationalError

from bench.baseline import canonical, compute
from leadflow.errors import ConfigError, StoreError
from leadflow.store.db import create_store_engine, ensure_schema, upgrade
from leadflow.store.schema import leads
from tests.eventfiles import event, write_jsonl
from tests.pgcluster import free_port

T0 = datetime(2025, 5, 1, 10, 0, tzinfo=UTC)

pytestmark = pytest.mark.stores("postgresql")


def at(minutes: float) -> datetime:
    return T0 + timedelta(minutes=minutes)


def test_json_columns_are_jsonb_and_times_are_timestamptz(store, store_kind):
    with store.engine.connect() as conn:
        types = {
            (row.table_name, row.column_name): row.data_type
            for row in conn.execute(
                text(
                    "SELECT table_name, column_name, data_type FROM information_schema.columns "
                    "WHERE table_schema = current_schema()"
                )
            )
        }
    for column in ("lead_actions", "status_tracker", "notes"):
        assert types[("leads", column)] == "jsonb"
    for table, column in (
        ("listings", "share_breakdown"),
        ("listings", "leads_breakdown"),
        ("cron_runs", "rejects"),
    ):
        assert types[(table, column)] == "jsonb"
    for table, column in (
        ("leads", "first_action_date"),
        ("listing_analytics", "updated_at"),
        ("cron_runs", "started_at"),
    ):
        assert types[(table, column)] == "timestamp with time zone"


def test_a_run_on_postgres_matches_the_independent_reading(store, store_kind, tmp_path):
    events = [
        event("a", "listing_view", at(1), "L1", "s1"),
        event("b", "lead_message", at(2), "L1", "s1", message_type="whatsapp", lister_id="x"),
        event("c", "listing_share", at(3), "L2", "s2", platform="facebook"),
        event("d", "lead_appointment", at(70), "L2", "s3", appointment_type="video"),
        event("e", "lead_phone", at(75), "L2", "s3", lister_id="y", lister_type="agent"),
        event("f", "listing_share", at(80), "L2", "s3", platform='quote"and,comma'),
    ]
    path = write_jsonl(tmp_path / "e.jsonl", events)
    store.run(path)
    assert store.snapshot() == canonical(compute([path]))
    listing = {r["listing_id"]: r for r in store.rows("listings")}["L2"]
    assert listing["share_breakdown"] == {"facebook": 1, 'quote"and,comma': 1}
    assert (listing["lister_id"], listing["lister_type"]) == ("y", "agent")


def test_times_are_stored_as_utc_whatever_the_session_time_zone(store, store_kind, tmp_path):
    with store.engine.begin() as conn:
        database = conn.execute(text("SELECT current_database()")).scalar_one()
        conn.execute(text(f"ALTER DATABASE \"{database}\" SET timezone = 'Asia/Kolkata'"))
    store.engine.dispose()
    path = write_jsonl(
        tmp_path / "e.jsonl", [event("a", "lead_phone", "2025-05-01T23:30:00.250000Z", "L", "s")]
    )
    store.run(path)
    (lead,) = store.rows("leads")
    assert lead["first_action_date"] == datetime(2025, 5, 1, 23, 30, 0, 250000, tzinfo=UTC)
    assert lead["lead_actions"][0]["timestamp"] == "2025-05-01T23:30:00.250000Z"
    (hour,) = store.rows("listing_analytics")
    assert (hour["date"].isoformat(), hour["hour"]) == ("2025-05-01", 23)
    with store.engine.connect() as conn:
        # leadflow's own sessions are in UTC, whatever the database's default.
        assert conn.execute(text("SHOW timezone")).scalar_one() == "UTC"
        local = conn.execute(
            text(
                "SELECT to_char(first_action_date AT TIME ZONE 'Asia/Kolkata', 'HH24:MI') FROM leads"
            )
        ).scalar_one()
    assert local == "05:00"


def test_the_writer_spells_times_with_their_zone(store, store_kind):
    """Even in a session whose time zone is not UTC, the rows' naive UTC times stay UTC."""
    import pyarrow as pa

    from leadflow.store.db import ensure_schema
    from leadflow.store.writer import SliceWriter

    ensure_schema(store.engine)
    moment = datetime(2025, 5, 1, 23, 30, 0, 250000)
    records = pa.table(
        {
            "listing_id": ["L"],
            "seeker_id": ["s"],
            "lister_id": [None],
            "lister_type": [None],
            "lead_actions": ['[{"event_uuid": "a"}]'],
            "total_actions": pa.array([1], pa.int32()),
            "lead_score": pa.array([30], pa.int32()),
            "first_action_date": pa.array([moment], pa.timestamp("us")),
            "last_action_date": pa.array([moment], pa.timestamp("us", tz="UTC")),
            "last_action_type": ["phone"],
        }
    )
    actions = pa.table({"uuid": ["a"], "listing_id": ["L"], "seeker_id": ["s"]})
    with store.engine.connect() as conn, conn.begin():
        conn.execute(text("SET LOCAL TIME ZONE 'America/New_York'"))
        SliceWriter(conn, datetime.now(UTC)).insert_leads(records, actions, run_id=1)
    (lead,) = store.rows("leads")
    utc = moment.replace(tzinfo=UTC)
    assert lead["first_action_date"] == lead["last_action_date"] == utc


def test_lead_ids_come_from_the_tables_sequence(store, store_kind, tmp_path):
    folder = tmp_path / "export"
    write_jsonl(folder / "1.jsonl", [event("a", "lead_phone", at(1), "L1", "s1")])
    store.run(folder)
    # Someone else (the portal, the API) inserts a lead the ordinary way …
    with store.engine.begin() as conn:
        (other,) = conn.execute(
            insert(leads)
            .values(
                listing_id="L9",
                seeker_id="s9",
                lead_actions=[],
                total_actions=0,
                lead_score=0,
                first_action_date=T0,
                last_action_date=T0,
                last_action_type="phone",
                status_tracker=[],
                notes=[],
                created_at=T0,
                updated_at=T0,
            )
            .returning(leads.c.id)
        ).one()
    # … and the next run's leads get ids after it, never the same one.
    write_jsonl(
        folder / "2.jsonl",
        [event("b", "lead_phone", at(2), "L2", "s2"), event("c", "lead_phone", at(3), "L3", "s3")],
    )
    store.run(folder)
    ids = sorted(r["id"] for r in store.rows("leads"))
    assert len(ids) == len(set(ids)) == 4
    assert other in ids and max(ids) > other


def test_a_big_slice_goes_through_copy_and_upsert(store, store_kind, tmp_path, monkeypatch):
    """Enough rows for several COPY batches, with rows that upsert over existing ones."""
    monkeypatch.setattr("leadflow.store.writer.BATCH_ROWS", 100)
    events = [
        event(f"v{i}", "property_view", at(i % 600), f"L{i % 97}", f"s{i % 389}")
        for i in range(6_000)
    ] + [event(f"l{i}", "lead_phone", at(i % 600), f"L{i % 97}", f"s{i % 53}") for i in range(400)]
    first = write_jsonl(tmp_path / "export" / "1.jsonl", events[::2])
    store.run(first.parent, slice_events=2_000)
    assert store.snapshot() == canonical(compute([first]))
    second = write_jsonl(tmp_path / "export" / "2.jsonl", events[1::2])
    store.run(first.parent, slice_events=2_000)
    assert store.snapshot() == canonical(compute([first, second]))


# -- connection settings ----------------------------------------------------------------------


def test_pool_and_statement_timeout_come_from_the_url(store, store_kind):
    engine = create_store_engine(store.url + "?pool_size=3&max_overflow=0&statement_timeout=1s")
    try:
        assert engine.pool.size() == 3  # type: ignore[attr-defined]
        with engine.connect() as conn:
            assert conn.execute(text("SHOW statement_timeout")).scalar_one() == "1s"
            with pytest.raises(OperationalError, match="statement timeout"):
                conn.execute(text("SELECT pg_sleep(3)"))
    finally:
        engine.dispose()


def test_sslmode_and_other_libpq_settings_pass_through(store, store_kind):
    engine = create_store_engine(store.url + "?sslmode=disable&application_name=portal-cron")
    try:
        with engine.connect() as conn:
            assert conn.execute(text("SHOW application_name")).scalar_one() == "portal-cron"
    finally:
        engine.dispose()
    # The test server has no SSL: requiring it must fail, and say where to look.
    with pytest.raises(StoreError, match="sslmode"):
        ensure_schema(create_store_engine(store.url + "?sslmode=require"))


def test_plain_postgresql_urls_use_psycopg(store, store_kind):
    url = store.url.replace("postgresql+psycopg://", "postgresql://")
    engine = create_store_engine(url)
    try:
        assert engine.dialect.driver == "psycopg"
        ensure_schema(engine)
    finally:
        engine.dispose()


@pytest.mark.parametrize(
    ("suffix", "needle"),
    [
        ("?pool_size=none", "pool_size"),
        ("?pool_size=0", "pool_size"),
        ("?statement_timeout=soon", "statement_timeout"),
        ("?pool_size=1&max_overflow=0", "two connections"),
    ],
)
def test_bad_connection_settings_are_config_errors(store, store_kind, suffix, needle):
    with pytest.raises(ConfigError, match=needle):
        create_store_engine(store.url + suffix)


def test_other_postgresql_drivers_are_refused_with_the_right_spelling(store, store_kind):
    with pytest.raises(ConfigError, match=r"postgresql\+psycopg://"):
        create_store_engine(store.url.replace("+psycopg", "+psycopg2"))


def test_an_unreachable_server_is_a_clear_error(store, store_kind):
    url = store.url.replace(f":{store.engine.url.port}/", f":{free_port()}/")
    for action in (ensure_schema, upgrade):
        with pytest.raises(StoreError, match="is the server running") as caught:
            action(create_store_engine(url))
        assert "\n" not in str(caught.value) and "leadflow-test" not in str(caught.value)


def test_wrong_credentials_are_a_clear_error(store, store_kind):
    url = store.url.replace(":leadflow-test@", ":not-the-password@")
    with pytest.raises(StoreError, match="refused the credentials of user 'postgres'") as caught:
        ensure_schema(create_store_engine(url))
    assert "not-the-password" not in str(caught.value)


def test_a_missing_database_is_a_clear_error(store, store_kind):
    url = store.url.rsplit("/", 1)[0] + "/no_such_database"
    with pytest.raises(StoreError, match="createdb no_such_database"):
        ensure_schema(create_store_engine(url))
