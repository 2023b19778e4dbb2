"""analysis profile

Revision ID: 0019
Revises: 0018
Create Date: 2026-12-02 04:00:00
"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql


revision: str = '0019'
down_revision: str | None = '0018'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column('analyses', sa.Column('profile', postgresql.JSONB(), nullable=True))


def downgrade() -> None:
    op.drop_column('analyses', 'profile')
