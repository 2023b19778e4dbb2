"""performance budgets

Revision ID: 0020
Revises: 0019
Create Date: 2026-12-02 06:46:26.911647
"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = '0020'
down_revision: str | None = '0019'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('performance_budgets',
    sa.Column('plan_id', sa.Uuid(), nullable=False),
    sa.Column('sli', sa.String(length=20), nullable=False),
    sa.Column('endpoint', sa.String(length=200), nullable=True),
    sa.Column('target_ms', sa.Float(), nullable=False),
    sa.Column('max_iterations', sa.Integer(), nullable=False),
    sa.Column('status', sa.String(length=20), nullable=False),
    sa.Column('created_by', sa.String(length=200), nullable=True),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.ForeignKeyConstraint(['plan_id'], ['plans.id'], name=op.f('fk_performance_budgets_plan_id_plans'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_performance_budgets'))
    )
    op.create_index(op.f('ix_performance_budgets_plan_id'), 'performance_budgets', ['plan_id'], unique=False)
    op.create_table('budget_iterations',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('budget_id', sa.Uuid(), nullable=False),
    sa.Column('number', sa.Integer(), nullable=False),
    sa.Column('run_id', sa.Uuid(), nullable=False),
    sa.Column('analysis_id', sa.Uuid(), nullable=True),
    sa.Column('value_ms', sa.Float(), nullable=True),
    sa.Column('met', sa.Boolean(), nullable=False),
    sa.Column('verdict', sa.String(length=20), nullable=True),
    sa.Column('change', sa.Float(), nullable=True),
    sa.Column('comparison', postgresql.JSONB(astext_type=sa.Text()), nullable=True),
    sa.Column('top_finding', sa.Text(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['analysis_id'], ['analyses.id'], name=op.f('fk_budget_iterations_analysis_id_analyses'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['budget_id'], ['performance_budgets.id'], name=op.f('fk_budget_iterations_budget_id_performance_budgets'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['run_id'], ['runs.id'], name=op.f('fk_budget_iterations_run_id_runs'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_budget_iterations')),
    sa.UniqueConstraint('budget_id', 'number', name='uq_budget_iterations_number')
    )
    op.create_index(op.f('ix_budget_iterations_budget_id'), 'budget_iterations', ['budget_id'], unique=False)


def downgrade() -> None:
    op.drop_index(op.f('ix_budget_iterations_budget_id'), table_name='budget_iterations')
    op.drop_table('budget_iterations')
    op.drop_index(op.f('ix_performance_budgets_plan_id'), table_name='performance_budgets')
    op.drop_table('performance_budgets')
