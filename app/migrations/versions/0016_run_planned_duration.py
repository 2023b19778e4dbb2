"""run planned duration

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-01 19:40:00
"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op


revision: str = '0016'
down_revision: str | None = '0015'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column('runs', sa.Column('planned_duration_s', sa.Float(), nullable=True))


def downgrade() -> None:
    op.drop_column('runs', 'planned_duration_s')
