"""event text unbounded on PostgreSQL

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-26

The columns holding text that events bring (listing, seeker and lister ids, the lister type, an
event's uuid, a share platform) become TEXT on PostgreSQL, which enforced their VARCHAR lengths
and failed a whole run over one event with a longer id. SQLite never enforces them: nothing to
do there. VARCHAR to TEXT is a catalog change in PostgreSQL, not a table rewrite. A portal's
own `listings` table keeps its columns as the portal made them.
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

# (table, column, its former length)
COLUMNS = (
    ("leads", "listing_id", 128),
    ("leads", "seeker_id", 256),
    ("leads", "lister_id", 128),
    ("leads", "lister_type", 32),
    ("lead_events", "event_uuid", 64),
    ("listing_analytics", "listing_id", 128),
    ("listing_analytics_breakdown", "listing_id", 128),
    ("listing_analytics_breakdown", "key", 64),
    ("listing_seekers", "listing_id", 128),
    ("listing_seekers", "seeker_id", 256),
    ("listing_hour_seekers", "listing_id", 128),
    ("listings", "listing_id", 128),
    ("listings", "lister_id", 128),
    ("listings", "lister_type", 32),
)


# The columns of leadflow's own `listings` table; a table with any other column is a portal's.
LISTINGS_COLUMNS = {
    "listing_id",
    "lister_id",
    "lister_type",
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
    "conversion_rate",
    "share_breakdown",
    "leads_breakdown",
    "analytics_updated_at",
}


def _columns() -> list[tuple[str, str, int]]:
    names = {c["name"] for c in sa.inspect(op.get_bind()).get_columns("listings")}
    owned = names <= LISTINGS_COLUMNS
    return [c for c in COLUMNS if owned or c[0] != "listings"]


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    for table, column, length in _columns():
        op.alter_column(table, column, type_=sa.Text(), existing_type=sa.String(length))


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    for table, column, length in _columns():
        op.alter_column(table, column, type_=sa.String(length), existing_type=sa.Text())
