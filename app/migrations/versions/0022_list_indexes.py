"""indexes for keyset-paged lists and a run's newest analysis

Revision ID: 0022
Revises: 0021
Create Date: 2026-12-02 17:20:00
"""
from collections.abc import Sequence

from alembic import op

revision: str = '0022'
down_revision: str | None = '0021'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

INDEXES = (
    ('ix_runs_created', 'runs', ['created_at', 'id']),
    ('ix_runs_plan_created', 'runs', ['plan_id', 'created_at', 'id']),
    ('ix_runs_status_created', 'runs', ['status', 'created_at', 'id']),
    ('ix_analyses_run_created', 'analyses', ['run_id', 'created_at']),
    ('ix_plans_created', 'plans', ['created_at', 'id']),
    ('ix_plans_family_created', 'plans', ['family_id', 'created_at', 'id']),
    ('ix_plans_name_created', 'plans', ['name', 'created_at', 'id']),
)


def upgrade() -> None:
    for name, table, columns in INDEXES:
        op.create_index(name, table, columns, unique=False)


def downgrade() -> None:
    for name, table, _ in reversed(INDEXES):
        op.drop_index(name, table_name=table)
