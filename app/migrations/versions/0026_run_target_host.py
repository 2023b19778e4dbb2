"""runs.target_host: the host a run loads, for the per-target limit on runs at once

Revision ID: 0026
Revises: 0025
Create Date: 2026-12-06 21:20:00
"""

from collections.abc import Sequence
from urllib.parse import urlsplit

import sqlalchemy as sa
from alembic import op

revision: str = "0026"
down_revision: str | None = "0025"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("runs", sa.Column("target_host", sa.String(length=255), nullable=True))
    # Runs still to claim get their host (what is finished keeps none: nothing counts it).
    # Lower-cased as the service's normalise_host does for every name a plan can hold today.
    bind = op.get_bind()
    rows = bind.execute(
        sa.text(
            "SELECT r.id, p.spec -> 'target' ->> 'base_url' FROM runs r "
            "JOIN plans p ON p.id = r.plan_id WHERE r.status IN ('queued', 'running')"
        )
    ).all()
    for run_id, base_url in rows:
        host = urlsplit(base_url or "").hostname
        if host:
            bind.execute(
                sa.text("UPDATE runs SET target_host = :host WHERE id = :id"),
                {"host": host.lower().rstrip("."), "id": run_id},
            )
    op.create_index(
        "ix_runs_running_target",
        "runs",
        ["target_host"],
        postgresql_where=sa.text("status = 'running'"),
    )


def downgrade() -> None:
    op.drop_index("ix_runs_running_target", table_name="runs")
    op.drop_column("runs", "target_host")
