"""Create the notes table.

Revision ID: 0001_create_notes
Revises:
"""

import sqlalchemy as sa
from alembic import op

revision = "0001_create_notes"
down_revision = None


def upgrade() -> None:
    op.create_table(
        "notes",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=True), primary_key=True),
        sa.Column("title", sa.Text(), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
    )


def downgrade() -> None:
    raise NotImplementedError("forward-only: fix mistakes with a new migration")
