"""retention: when a finished run's per-second samples were rolled up, or why they were kept

Revision ID: 0024
Revises: 0023
Create Date: 2026-12-03 06:40:00
"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0024'
down_revision: str | None = '0023'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

QUEUE = 'samples_rolled_up_at IS NULL AND samples_kept_reason IS NULL AND finished_at IS NOT NULL'


def upgrade() -> None:
    op.add_column('runs', sa.Column('samples_rolled_up_at', sa.DateTime(timezone=True), nullable=True))
    op.add_column('runs', sa.Column('samples_kept_reason', sa.Text(), nullable=True))
    # The retention job's queue: finished runs it has not handled yet.
    op.create_index(
        'ix_runs_to_roll_up', 'runs', ['finished_at'], unique=False,
        postgresql_where=sa.text(QUEUE),
    )


def downgrade() -> None:
    op.drop_index('ix_runs_to_roll_up', table_name='runs', postgresql_where=sa.text(QUEUE))
    op.drop_column('runs', 'samples_kept_reason')
    op.drop_column('runs', 'samples_rolled_up_at')
