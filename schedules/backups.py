"""The backups' one schedule. The daily backups, the kept set and its checks run from the graph
(assets/automation.py); this hourly check repairs a corrupt newest dump the same day instead of waiting
for tonight's."""

from __future__ import annotations

from dagster import RunRequest, ScheduleEvaluationContext, SkipReason, schedule

from core.backups.verify import corrupt_dump_to_replace
from orchestration.backups import database_backup_job
from resources.database import PostgresResource


@schedule(
    job=database_backup_job,
    cron_schedule="15 * * * *",
    execution_timezone="UTC",
    description="Hourly: a fresh dump today when verification found the newest dump corrupt.",
)
def corrupt_dump_redump_schedule(
    context: ScheduleEvaluationContext, postgres: PostgresResource
) -> RunRequest | SkipReason:
    """Hourly: if verification found the newest dump corrupt, take a fresh dump today (one per corrupt
    backup, by run key), rather than waiting for tonight's; restores meanwhile use the older dump."""
    with postgres.engine().connect() as conn:
        corrupt_id = corrupt_dump_to_replace(conn)
    if corrupt_id is None:
        return SkipReason("the newest database backup is not corrupt")
    day = context.scheduled_execution_time.date().isoformat()
    return RunRequest(run_key=f"database-redump-after-{corrupt_id}", partition_key=day)


backup_schedules = [corrupt_dump_redump_schedule]
