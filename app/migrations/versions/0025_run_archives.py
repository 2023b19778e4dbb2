"""run_archives: a finished run's samples and histogram windows packed into one row

Revision ID: 0025
Revises: 0024
Create Date: 2026-12-03 07:40:00
"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0025'
down_revision: str | None = '0024'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        'run_archives',
        sa.Column('run_id', sa.Uuid(), nullable=False),
        sa.Column('format', sa.Integer(), nullable=False),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('samples', sa.LargeBinary(), nullable=False),
        sa.Column('windows', sa.LargeBinary(), nullable=False),
        sa.ForeignKeyConstraint(['run_id'], ['runs.id'], ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('run_id'),
    )
    # Deflated already: PostgreSQL's own compression would only spend CPU on them.
    op.execute("ALTER TABLE run_archives ALTER COLUMN samples SET STORAGE EXTERNAL")
    op.execute("ALTER TABLE run_archives ALTER COLUMN windows SET STORAGE EXTERNAL")


def downgrade() -> None:
    op.drop_table('run_archives')
