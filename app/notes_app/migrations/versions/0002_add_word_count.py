"""Expand: add notes.word_count.

The column is nullable: the previous release keeps running during the rollout and inserts rows without it.
The new release writes it; its worker backfills rows the old release wrote. A later release may add
NOT NULL (contract step) once no writer can omit it.

Revision ID: 0002_add_word_count
Revises: 0001_create_notes
"""

import sqlalchemy as sa
from alembic import op

revision = "0002_add_word_count"
down_revision = "0001_create_notes"


def upgrade() -> None:
    op.add_column("notes", sa.Column("word_count", sa.BigInteger(), nullable=True))


def downgrade() -> None:
    raise NotImplementedError("forward-only: fix mistakes with a new migration")
