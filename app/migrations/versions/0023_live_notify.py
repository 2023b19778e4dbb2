"""NOTIFY perf_agent_runs on a run's new samples, events and states (live fan-out)

Revision ID: 0023
Revises: 0022
Create Date: 2026-12-02 17:20:00

Every API process LISTENs on one channel and relays to its viewers (app/runs/fanout.py);
a trigger covers every writer (any worker, the API's own events), and PostgreSQL delivers
at commit, folding a transaction's identical payloads into one.
"""
from collections.abc import Sequence

from alembic import op

revision: str = '0023'
down_revision: str | None = '0022'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.execute(
        """
        CREATE FUNCTION perf_agent_notify_run() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            PERFORM pg_notify('perf_agent_runs', NEW.run_id::text);
            RETURN NULL;
        END $$;
        CREATE FUNCTION perf_agent_notify_run_state() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            PERFORM pg_notify('perf_agent_runs', NEW.id::text);
            RETURN NULL;
        END $$;
        CREATE TRIGGER run_samples_notify AFTER INSERT ON run_samples
            FOR EACH ROW EXECUTE FUNCTION perf_agent_notify_run();
        CREATE TRIGGER run_events_notify AFTER INSERT ON run_events
            FOR EACH ROW EXECUTE FUNCTION perf_agent_notify_run();
        CREATE TRIGGER runs_state_notify AFTER UPDATE OF status ON runs
            FOR EACH ROW WHEN (OLD.status IS DISTINCT FROM NEW.status)
            EXECUTE FUNCTION perf_agent_notify_run_state();
        """
    )


def downgrade() -> None:
    op.execute(
        """
        DROP TRIGGER runs_state_notify ON runs;
        DROP TRIGGER run_events_notify ON run_events;
        DROP TRIGGER run_samples_notify ON run_samples;
        DROP FUNCTION perf_agent_notify_run_state();
        DROP FUNCTION perf_agent_notify_run();
        """
    )
