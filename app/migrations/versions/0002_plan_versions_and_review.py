"""plan versions and review states

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-25
"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("plans", sa.Column("family_id", sa.Uuid(), nullable=True))
    op.add_column("plans", sa.Column("status", sa.String(length=16), nullable=True))
    op.add_column("plans", sa.Column("reviewed_by", sa.String(length=200), nullable=True))
    op.add_column("plans", sa.Column("review_comment", sa.Text(), nullable=True))
    op.add_column("plans", sa.Column("reviewed_at", sa.DateTime(timezone=True), nullable=True))
    # Plans stored before review existed were executable: they stay so, as approved version 1s.
    op.execute(
        "UPDATE plans SET family_id = id, status = 'approved', reviewed_by = 'migration 0002', "
        "review_comment = 'stored before plan review existed', reviewed_at = now()"
    )
    op.alter_column("plans", "family_id", nullable=False)
    op.alter_column("plans", "status", nullable=False)
    op.create_index(op.f("ix_plans_family_id"), "plans", ["family_id"], unique=False)
    op.create_unique_constraint("uq_plans_family_version", "plans", ["family_id", "version"])
    op.create_check_constraint(
        op.f("ck_plans_status_known"), "plans", "status IN ('draft', 'approved', 'archived')"
    )


def downgrade() -> None:
    op.drop_constraint(op.f("ck_plans_status_known"), "plans", type_="check")
    op.drop_constraint("uq_plans_family_version", "plans", type_="unique")
    op.drop_index(op.f("ix_plans_family_id"), table_name="plans")
    for column in ("reviewed_at", "review_comment", "reviewed_by", "status", "family_id"):
        op.drop_column("plans", column)
