"""analysis load comparison and load-generator health

Revision ID: 0018
Revises: 0017
Create Date: 2026-12-02 03:00:00
"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql


revision: str = '0018'
down_revision: str | None = '0017'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column('analyses', sa.Column('load', postgresql.JSONB(), nullable=True))
    op.add_column('analyses', sa.Column('load_generator', postgresql.JSONB(), nullable=True))


def downgrade() -> None:
    op.drop_column('analyses', 'load_generator')
    op.drop_column('analyses', 'load')
