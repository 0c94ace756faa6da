"""lead group indexes

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-26

The leads board at scale (store/leads.py):
- it lists lead groups in last-action order by walking ix_leads_last_action_pair, ties broken
  by (listing, seeker) as the page orders them (it supersedes ix_leads_last_action, its prefix);
- it groups a scope's records by (listing, seeker) for the score order from ix_leads_group,
  which holds every column that grouping reads (it supersedes ix_leads_listing_seeker).
Plain CREATE INDEX: `leads` is small next to the analytics tables (some 73,000 records for ten
million events; seconds for a million records), and a run started meanwhile waits for it.
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
    op.drop_index("ix_leads_last_action", table_name="leads")
    op.create_index(
        "ix_leads_group",
        "leads",
        ["listing_id", "seeker_id", "lead_score", "last_action_date", "id"],
        unique=False,
    )
    op.drop_index("ix_leads_listing_seeker", table_name="leads")


def downgrade() -> None:
    op.create_index("ix_leads_listing_seeker", "leads", ["listing_id", "seeker_id"], unique=False)
    op.drop_index("ix_leads_group", table_name="leads")
    op.create_index("ix_leads_last_action", "leads", ["last_action_date"], unique=False)
    op.drop_index("ix_leads_last_action_pair", table_name="leads")
