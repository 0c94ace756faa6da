"""lead group indexes

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-26

The leads board lists lead groups in last-action order by walking this index (store/leads.py),
ties broken by (listing, seeker) as the page orders them. A plain CREATE INDEX: `leads` is small
next to the analytics tables (some 73,000 records for ten million events; about 10 s for a
million records), and the pipeline's next insert waits for it rather than failing.
"""

from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index(
        "ix_leads_last_action_pair",
        "leads",
        ["last_action_date", "listing_id", "seeker_id"],
        unique=False,
    )


def downgrade() -> None:
    op.drop_index("ix_leads_last_action_pair", table_name="leads")
