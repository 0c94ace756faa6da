"""per-hour seeker identities

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-26

Hours written before this migration get their row when a run next recomputes them; until then
a range holding them has no exact unique count beyond the hour (readers report it as unknown).
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    json_doc = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")
    op.create_table(
        "listing_hour_seekers",
        sa.Column("listing_id", sa.String(length=128), nullable=False),
        sa.Column("date", sa.Date(), nullable=False),
        sa.Column("hour", sa.SmallInteger(), nullable=False),
        sa.Column("viewers", json_doc, nullable=False),
        sa.Column("lead_seekers", json_doc, nullable=False),
        sa.PrimaryKeyConstraint("listing_id", "date", "hour"),
        sqlite_with_rowid=False,
    )


def downgrade() -> None:
    op.drop_table("listing_hour_seekers")
