"""initial tables

Revision ID: 0001
Revises:
Create Date: 2026-11-25
"""

from typing import Any

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

from leadflow.errors import StoreError

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "cron_runs",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("source", sa.Text(), nullable=True),
        sa.Column("window_start", sa.DateTime(timezone=True), nullable=True),
        sa.Column("window_end", sa.DateTime(timezone=True), nullable=True),
        sa.Column("events_read", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("events_accepted", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("leads_inserted", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("analytics_rows_written", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("listings_updated", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("slices_done", sa.Integer(), server_default="0", nullable=False),
        sa.Column("slices_total", sa.Integer(), server_default="0", nullable=False),
        sa.Column(
            "rejects",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column("error", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_cron_runs_started_at", "cron_runs", ["started_at"], unique=False)
    op.create_index(
        "ix_cron_runs_status_window_end", "cron_runs", ["status", "window_end"], unique=False
    )

    op.create_table(
        "lead_events",
        sa.Column("event_uuid", sa.String(length=64), nullable=False),
        sa.Column("lead_id", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("event_uuid"),
        sqlite_with_rowid=False,
    )
    op.create_table(
        "leads",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("listing_id", sa.String(length=128), nullable=False),
        sa.Column("seeker_id", sa.String(length=256), nullable=False),
        sa.Column("lister_id", sa.String(length=128), nullable=True),
        sa.Column("lister_type", sa.String(length=32), nullable=True),
        sa.Column(
            "lead_actions",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column("total_actions", sa.Integer(), nullable=False),
        sa.Column("lead_score", sa.Integer(), nullable=False),
        sa.Column("first_action_date", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_action_date", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_action_type", sa.String(length=32), nullable=False),
        sa.Column("status", sa.String(length=32), server_default="new", nullable=False),
        sa.Column(
            "status_tracker",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column(
            "notes",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column("run_id", sa.BigInteger(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_leads_last_action", "leads", ["last_action_date"], unique=False)
    op.create_index("ix_leads_lister_status", "leads", ["lister_id", "status"], unique=False)
    op.create_index("ix_leads_listing_seeker", "leads", ["listing_id", "seeker_id"], unique=False)

    op.create_table(
        "listing_analytics",
        sa.Column("listing_id", sa.String(length=128), nullable=False),
        sa.Column("date", sa.Date(), nullable=False),
        sa.Column("hour", sa.SmallInteger(), nullable=False),
        sa.Column("total_views", sa.Integer(), server_default="0", nullable=False),
        sa.Column("unique_views", sa.Integer(), server_default="0", nullable=False),
        sa.Column("impressions", sa.Integer(), server_default="0", nullable=False),
        sa.Column("shares", sa.Integer(), server_default="0", nullable=False),
        sa.Column("saves", sa.Integer(), server_default="0", nullable=False),
        sa.Column("total_leads", sa.Integer(), server_default="0", nullable=False),
        sa.Column("phone_leads", sa.Integer(), server_default="0", nullable=False),
        sa.Column("message_leads", sa.Integer(), server_default="0", nullable=False),
        sa.Column("email_leads", sa.Integer(), server_default="0", nullable=False),
        sa.Column("appointment_leads", sa.Integer(), server_default="0", nullable=False),
        sa.Column("website_leads", sa.Integer(), server_default="0", nullable=False),
        sa.Column("unique_leads", sa.Integer(), server_default="0", nullable=False),
        sa.Column("conversion_rate", sa.Float(), server_default="0", nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("listing_id", "date", "hour"),
        sqlite_with_rowid=False,
    )
    op.create_table(
        "listing_analytics_breakdown",
        sa.Column("listing_id", sa.String(length=128), nullable=False),
        sa.Column("date", sa.Date(), nullable=False),
        sa.Column("hour", sa.SmallInteger(), nullable=False),
        sa.Column("dimension", sa.String(length=16), nullable=False),
        sa.Column("key", sa.String(length=64), nullable=False),
        sa.Column("count", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("listing_id", "date", "hour", "dimension", "key"),
        sqlite_with_rowid=False,
    )
    op.create_table(
        "listing_seekers",
        sa.Column("listing_id", sa.String(length=128), nullable=False),
        sa.Column("kind", sa.String(length=8), nullable=False),
        sa.Column("seeker_id", sa.String(length=256), nullable=False),
        sa.PrimaryKeyConstraint("listing_id", "kind", "seeker_id"),
        sqlite_with_rowid=False,
    )
    if sa.inspect(op.get_bind()).has_table("listings"):
        _adopt_portal_listings()
    else:
        op.create_table(
            "listings",
            sa.Column("listing_id", sa.String(length=128), nullable=False),
            sa.Column("lister_id", sa.String(length=128), nullable=True),
            sa.Column("lister_type", sa.String(length=32), nullable=True),
            *_listings_analytics_columns(),
            sa.PrimaryKeyConstraint("listing_id"),
        )
    op.create_table(
        "run_lock",
        sa.Column("name", sa.String(length=32), nullable=False),
        sa.Column("run_id", sa.BigInteger(), nullable=True),
        sa.Column("holder", sa.String(length=256), nullable=False),
        sa.Column("acquired_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("heartbeat_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("name"),
    )
    op.create_table(
        "source_files",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("path", sa.Text(), nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("mtime_ns", sa.BigInteger(), nullable=False),
        sa.Column("format", sa.String(length=16), nullable=False),
        sa.Column("events", sa.BigInteger(), nullable=False),
        sa.Column("min_ts", sa.DateTime(timezone=True), nullable=True),
        sa.Column("max_ts", sa.DateTime(timezone=True), nullable=True),
        sa.Column("processed_through", sa.DateTime(timezone=True), nullable=True),
        sa.Column("done", sa.Boolean(), server_default="0", nullable=False),
        sa.Column("run_id", sa.BigInteger(), nullable=True),
        sa.Column("added_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("path"),
    )
    op.create_index("ix_source_files_range", "source_files", ["min_ts", "max_ts"], unique=False)


def _listings_analytics_columns() -> list[sa.Column[Any]]:
    """leadflow's analytics columns of `listings` (DESIGN.md §3)."""
    counters = [
        "total_views",
        "unique_views",
        "total_impressions",
        "total_shares",
        "total_saves",
        "total_leads",
        "phone_leads",
        "message_leads",
        "email_leads",
        "appointment_leads",
        "website_leads",
        "unique_leads",
    ]
    json_doc = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")
    return [
        *(
            sa.Column(name, sa.BigInteger(), server_default="0", nullable=False)
            for name in counters
        ),
        sa.Column("conversion_rate", sa.Float(), server_default="0", nullable=False),
        sa.Column("share_breakdown", json_doc, nullable=True),
        sa.Column("leads_breakdown", json_doc, nullable=True),
        sa.Column("analytics_updated_at", sa.DateTime(timezone=True), nullable=True),
    ]


LEADFLOW_LISTINGS_COLUMNS = {"listing_id", "lister_id", "lister_type"} | {
    column.name for column in _listings_analytics_columns()
}


def _adopt_portal_listings() -> None:
    """The portal already has a `listings` table: add leadflow's analytics columns to it.

    leadflow finds a portal's listing by the text column `listing_id` (the id its events carry);
    it never inserts, deletes or renames anything else there (docs/postgres.md).
    """
    inspector = sa.inspect(op.get_bind())
    columns = {column["name"]: column for column in inspector.get_columns("listings")}
    key = columns.get("listing_id")
    if key is None or not isinstance(key["type"], sa.String):
        problem = (
            "has no listing_id column"
            if key is None
            else f"has a listing_id column of type {key['type']}, not text"
        )
        raise StoreError(
            f"the database already has a listings table, and it {problem}: leadflow finds a "
            "listing by the id its events carry, as text. Add one, e.g. ALTER TABLE listings ADD "
            "COLUMN listing_id text GENERATED ALWAYS AS (id::text) STORED (see docs/postgres.md), "
            "then run leadflow db upgrade again"
        )
    for column in _listings_analytics_columns():
        if column.name not in columns:
            op.add_column("listings", column)
    indexed: list[list[Any]] = [
        *(list(index["column_names"]) for index in inspector.get_indexes("listings")),
        *(list(unique["column_names"]) for unique in inspector.get_unique_constraints("listings")),
        list(inspector.get_pk_constraint("listings").get("constrained_columns") or []),
    ]
    if not any(names[:1] == ["listing_id"] for names in indexed):
        op.create_index("ix_listings_listing_id", "listings", ["listing_id"], unique=False)


def _owns_listings() -> bool:
    columns = {column["name"] for column in sa.inspect(op.get_bind()).get_columns("listings")}
    return columns <= LEADFLOW_LISTINGS_COLUMNS


def downgrade() -> None:
    op.drop_index("ix_source_files_range", table_name="source_files")

    op.drop_table("source_files")
    op.drop_table("run_lock")
    if _owns_listings():
        op.drop_table("listings")
    op.drop_table("listing_seekers")
    op.drop_table("listing_analytics_breakdown")
    op.drop_table("listing_analytics")
    op.drop_index("ix_leads_listing_seeker", table_name="leads")
    op.drop_index("ix_leads_lister_status", table_name="leads")
    op.drop_index("ix_leads_last_action", table_name="leads")

    op.drop_table("leads")
    op.drop_table("lead_events")
    op.drop_index("ix_cron_runs_status_window_end", table_name="cron_runs")
    op.drop_index("ix_cron_runs_started_at", table_name="cron_runs")

    op.drop_table("cron_runs")
