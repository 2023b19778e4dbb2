"""gates

Revision ID: 0021
Revises: 0020
Create Date: 2026-12-02 07:05:35.439636
"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = '0021'
down_revision: str | None = '0020'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('gates',
    sa.Column('owner', sa.String(length=200), nullable=False),
    sa.Column('idempotency_key', sa.String(length=200), nullable=True),
    sa.Column('fingerprint', sa.String(length=64), nullable=False),
    sa.Column('plan_id', sa.Uuid(), nullable=False),
    sa.Column('run_id', sa.Uuid(), nullable=True),
    sa.Column('baseline_run_ids', postgresql.JSONB(astext_type=sa.Text()), nullable=False),
    sa.Column('allow_warning', sa.Boolean(), nullable=False),
    sa.Column('build', postgresql.JSONB(astext_type=sa.Text()), nullable=False),
    sa.Column('settling_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('analysis_id', sa.Uuid(), nullable=True),
    sa.Column('verdict', sa.String(length=20), nullable=True),
    sa.Column('passed', sa.Boolean(), nullable=True),
    sa.Column('error', sa.String(length=2000), nullable=True),
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.ForeignKeyConstraint(['analysis_id'], ['analyses.id'], name=op.f('fk_gates_analysis_id_analyses'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['plan_id'], ['plans.id'], name=op.f('fk_gates_plan_id_plans'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['run_id'], ['runs.id'], name=op.f('fk_gates_run_id_runs'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_gates')),
    sa.UniqueConstraint('owner', 'idempotency_key', name='uq_gates_owner_idempotency_key')
    )
    op.create_index(op.f('ix_gates_plan_id'), 'gates', ['plan_id'], unique=False)


def downgrade() -> None:
    op.drop_index(op.f('ix_gates_plan_id'), table_name='gates')
    op.drop_table('gates')
