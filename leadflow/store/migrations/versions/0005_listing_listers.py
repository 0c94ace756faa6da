"""the event behind each listing's lister

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-26

`listing_listers` keeps, per listing, the lister its latest event names and that event's time
and uuid, so that a run over older events (a late export file) does not replace a newer lister.
A listing written before this migration gets its row from the next run that touches it; until
then that run's lister is taken, as before.
"""

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    event_text = sa.String(length=128).with_variant(sa.Text(), "postgresql")
    op.create_table(
        "listing_listers",
        sa.Column("listing_id", event_text, nullable=False),
        sa.Column("lister_id", event_text, nullable=True),
        sa.Column("lister_type", sa.String(length=32).with_variant(sa.Text(), "postgresql")),
        sa.Column("lister_id_key", sa.Text(), nullable=True),
        sa.Column("lister_type_key", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("listing_id"),
    )


def downgrade() -> None:
    op.drop_table("listing_listers")
