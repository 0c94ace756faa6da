"""The store's tables, as SQLAlchemy Core metadata (DESIGN.md §3 plus leadflow's bookkeeping)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    Date,
    DateTime,
    Dialect,
    Float,
    Index,
    Integer,
    MetaData,
    SmallInteger,
    String,
    Table,
    Text,
    TypeDecorator,
)
from sqlalchemy.dialects.postgresql import JSONB

from leadflow.events import CHANNELS, LEAD_COUNTERS


class UtcDateTime(TypeDecorator[datetime]):
    """A UTC timestamp on every backend: aware datetimes in, aware UTC datetimes out.

    SQLite keeps no time zone, so values are stored as naive UTC there and given their zone back
    when read; PostgreSQL stores `timestamptz`.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError(f"naive datetime {value!r}: leadflow stores only aware UTC times")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


# JSON in SQLite, JSONB in PostgreSQL.
JsonDoc = JSON().with_variant(JSONB(), "postgresql")
# SQLite only auto-increments an INTEGER PRIMARY KEY.
BigId = BigInteger().with_variant(Integer(), "sqlite")


def _event_text(length: int) -> Any:
    """A column holding text an event brings (an id, a share platform): VARCHAR(length) in
    SQLite, which never enforces the length, and TEXT in PostgreSQL, which would otherwise refuse
    a longer value and fail the run over one event (migration 0004)."""
    return String(length).with_variant(Text(), "postgresql")


metadata = MetaData()

leads = Table(
    "leads",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("listing_id", _event_text(128), nullable=False),
    Column("seeker_id", _event_text(256), nullable=False),
    Column("lister_id", _event_text(128)),
    Column("lister_type", _event_text(32)),
    Column("lead_actions", JsonDoc, nullable=False),
    Column("total_actions", Integer, nullable=False),
    Column("lead_score", Integer, nullable=False),
    Column("first_action_date", UtcDateTime, nullable=False),
    Column("last_action_date", UtcDateTime, nullable=False),
    Column("last_action_type", String(32), nullable=False),
    Column("status", String(32), nullable=False, server_default="new"),
    Column("status_tracker", JsonDoc, nullable=False),
    Column("notes", JsonDoc, nullable=False),
    Column("run_id", BigInteger),
    Column("created_at", UtcDateTime, nullable=False),
    Column("updated_at", UtcDateTime, nullable=False),
    # A lead group's records, and every column the leads board's grouping reads (store/leads.py).
    Index("ix_leads_group", "listing_id", "seeker_id", "lead_score", "last_action_date", "id"),
    Index("ix_leads_lister_status", "lister_id", "status"),
    # The leads board's walk in last-action order, ties in (listing, seeker) order (store/leads.py).
    Index("ix_leads_last_action_pair", "last_action_date", "listing_id", "seeker_id"),
)

# Every lead event ever recorded, so an action is never recorded twice (DESIGN.md §4).
lead_events = Table(
    "lead_events",
    metadata,
    Column("event_uuid", _event_text(64), primary_key=True),
    Column("lead_id", BigInteger, nullable=False),
    sqlite_with_rowid=False,
)

HOURLY_COUNTERS: tuple[str, ...] = (
    "total_views",
    "unique_views",
    "impressions",
    "shares",
    "saves",
    "total_leads",
    *LEAD_COUNTERS,
    "unique_leads",
)

listing_analytics = Table(
    "listing_analytics",
    metadata,
    Column("listing_id", _event_text(128), primary_key=True),
    Column("date", Date, primary_key=True),
    Column("hour", SmallInteger, primary_key=True),
    *(Column(name, Integer, nullable=False, server_default="0") for name in HOURLY_COUNTERS),
    Column("conversion_rate", Float, nullable=False, server_default="0"),
    Column("updated_at", UtcDateTime, nullable=False),
    sqlite_with_rowid=False,
)

# Per-hour counts behind the listings' JSON breakdowns (share platform, lead channel), so that
# replacing an hour also replaces its share of the breakdowns.
listing_analytics_breakdown = Table(
    "listing_analytics_breakdown",
    metadata,
    Column("listing_id", _event_text(128), primary_key=True),
    Column("date", Date, primary_key=True),
    Column("hour", SmallInteger, primary_key=True),
    Column("dimension", String(16), primary_key=True),
    Column("key", _event_text(64), primary_key=True),
    Column("count", Integer, nullable=False),
    sqlite_with_rowid=False,
)

# The distinct seekers who ever viewed a listing or contacted its lister: the exact structure
# behind the listings' all-time unique_views and unique_leads.
listing_seekers = Table(
    "listing_seekers",
    metadata,
    Column("listing_id", _event_text(128), primary_key=True),
    Column("kind", String(8), primary_key=True),
    Column("seeker_id", _event_text(256), primary_key=True),
    sqlite_with_rowid=False,
)

# The distinct seekers who viewed a listing or contacted its lister in each UTC hour, as sorted
# JSON arrays of seeker ids: the exact structure behind unique counts over any range of hours (a
# day, a week, a month in any time zone). One row per hour with a viewer or a lead, keyed as
# listing_analytics and replaced along with its hour. An hour written before migration 0002 has
# no row: over a range holding such an hour, only hourly unique counts are known.
listing_hour_seekers = Table(
    "listing_hour_seekers",
    metadata,
    Column("listing_id", _event_text(128), primary_key=True),
    Column("date", Date, primary_key=True),
    Column("hour", SmallInteger, primary_key=True),
    Column("viewers", JsonDoc, nullable=False),
    Column("lead_seekers", JsonDoc, nullable=False),
    sqlite_with_rowid=False,
)

# Per listing, the lister named by its latest event that names one, with that event's time and
# uuid as sortable text (`Dialect.latest_key`): a run whose events are older (a late file) then
# leaves a newer lister in place, so that listings' lister_id and lister_type do not depend on
# the order in which events arrive.
listing_listers = Table(
    "listing_listers",
    metadata,
    Column("listing_id", _event_text(128), primary_key=True),
    Column("lister_id", _event_text(128)),
    Column("lister_type", _event_text(32)),
    Column("lister_id_key", Text),
    Column("lister_type_key", Text),
)

LEADS_BREAKDOWN_KEYS: tuple[str, ...] = tuple(channel.name for channel in CHANNELS)

listings = Table(
    "listings",
    metadata,
    Column("listing_id", _event_text(128), primary_key=True),
    Column("lister_id", _event_text(128)),
    Column("lister_type", _event_text(32)),
    Column("total_views", BigInteger, nullable=False, server_default="0"),
    Column("unique_views", BigInteger, nullable=False, server_default="0"),
    Column("total_impressions", BigInteger, nullable=False, server_default="0"),
    Column("total_shares", BigInteger, nullable=False, server_default="0"),
    Column("total_saves", BigInteger, nullable=False, server_default="0"),
    Column("total_leads", BigInteger, nullable=False, server_default="0"),
    *(Column(name, BigInteger, nullable=False, server_default="0") for name in LEAD_COUNTERS),
    Column("unique_leads", BigInteger, nullable=False, server_default="0"),
    Column("conversion_rate", Float, nullable=False, server_default="0"),
    Column("share_breakdown", JsonDoc),
    Column("leads_breakdown", JsonDoc),
    Column("analytics_updated_at", UtcDateTime),
)

cron_runs = Table(
    "cron_runs",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("started_at", UtcDateTime, nullable=False),
    Column("finished_at", UtcDateTime),
    Column("status", String(16), nullable=False),
    Column("source", Text),
    Column("window_start", UtcDateTime),
    Column("window_end", UtcDateTime),
    Column("events_read", BigInteger, nullable=False, server_default="0"),
    Column("events_accepted", BigInteger, nullable=False, server_default="0"),
    Column("leads_inserted", BigInteger, nullable=False, server_default="0"),
    Column("analytics_rows_written", BigInteger, nullable=False, server_default="0"),
    Column("listings_updated", BigInteger, nullable=False, server_default="0"),
    Column("slices_done", Integer, nullable=False, server_default="0"),
    Column("slices_total", Integer, nullable=False, server_default="0"),
    Column("rejects", JsonDoc, nullable=False),
    Column("error", Text),
    Index("ix_cron_runs_started_at", "started_at"),
    Index("ix_cron_runs_status_window_end", "status", "window_end"),
)

# The ledger of export files a run has read: the file source's cursor. A file is done once
# `processed_through` is past its last event; until then a run resumes it from there.
source_files = Table(
    "source_files",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("path", Text, nullable=False, unique=True),
    Column("size", BigInteger, nullable=False),
    Column("mtime_ns", BigInteger, nullable=False),
    Column("format", String(16), nullable=False),
    Column("events", BigInteger, nullable=False),
    Column("min_ts", UtcDateTime),
    Column("max_ts", UtcDateTime),
    Column("processed_through", UtcDateTime),
    Column("done", Boolean, nullable=False, server_default="0"),
    Column("run_id", BigInteger),
    Column("added_at", UtcDateTime, nullable=False),
    Index("ix_source_files_range", "min_ts", "max_ts"),
)

# One row while a run holds the lock (SQLite; PostgreSQL uses an advisory lock).
run_lock = Table(
    "run_lock",
    metadata,
    Column("name", String(32), primary_key=True),
    Column("run_id", BigInteger),
    Column("holder", String(256), nullable=False),
    Column("acquired_at", UtcDateTime, nullable=False),
    Column("heartbeat_at", UtcDateTime, nullable=False),
)


def utcnow() -> datetime:
    return datetime.now(UTC)


def row_dict(row: Any) -> dict[str, Any]:
    return dict(row._mapping)
