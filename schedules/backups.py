"""Daily backup schedules (UTC): database and object backups late in the day they cover, then retention,
verification and the restore drill early the next morning, so every day ends proven restorable."""

from __future__ import annotations

from datetime import timedelta

from dagster import RunRequest, ScheduleEvaluationContext, SkipReason, schedule

from core.backups.verify import corrupt_dump_to_replace
from orchestration.backups import (
    backup_retention_job,
    backup_verification_job,
    database_backup_job,
    object_backup_job,
    restore_drill_job,
)
from resources.database import PostgresResource


def _day(context: ScheduleEvaluationContext, days_back: int = 0) -> str:
    return (context.scheduled_execution_time - timedelta(days=days_back)).date().isoformat()


@schedule(job=database_backup_job, cron_schedule="30 23 * * *", execution_timezone="UTC")
def daily_database_backup_schedule(context: ScheduleEvaluationContext) -> RunRequest:
    """The day's database dump, near its end (objects created after it are caught up next day)."""
    day = _day(context)
    return RunRequest(run_key=f"database-backup-{day}", partition_key=day)


@schedule(job=object_backup_job, cron_schedule="45 23 * * *", execution_timezone="UTC")
def daily_object_backup_schedule(context: ScheduleEvaluationContext) -> RunRequest:
    day = _day(context)
    return RunRequest(run_key=f"object-backup-{day}", partition_key=day)


@schedule(job=backup_retention_job, cron_schedule="0 2 * * *", execution_timezone="UTC")
def daily_backup_retention_schedule(context: ScheduleEvaluationContext) -> RunRequest:
    return RunRequest(run_key=f"backup-retention-{_day(context)}")


@schedule(job=backup_verification_job, cron_schedule="30 2 * * *", execution_timezone="UTC")
def daily_backup_verification_schedule(context: ScheduleEvaluationContext) -> RunRequest:
    return RunRequest(run_key=f"backup-verification-{_day(context)}")


@schedule(job=restore_drill_job, cron_schedule="0 3 * * *", execution_timezone="UTC")
def daily_restore_drill_schedule(context: ScheduleEvaluationContext) -> RunRequest:
    return RunRequest(run_key=f"restore-drill-{_day(context)}")


@schedule(job=database_backup_job, cron_schedule="15 * * * *", execution_timezone="UTC")
def corrupt_dump_redump_schedule(
    context: ScheduleEvaluationContext, postgres: PostgresResource
) -> RunRequest | SkipReason:
    """Hourly: if verification found the newest dump corrupt, take a fresh dump today (one per corrupt
    backup, by run key), rather than waiting for tonight's; restores meanwhile use the older dump."""
    with postgres.engine().connect() as conn:
        corrupt_id = corrupt_dump_to_replace(conn)
    if corrupt_id is None:
        return SkipReason("the newest database backup is not corrupt")
    day = _day(context)
    return RunRequest(run_key=f"database-redump-after-{corrupt_id}", partition_key=day)


backup_schedules = [
    daily_database_backup_schedule,
    daily_object_backup_schedule,
    daily_backup_retention_schedule,
    daily_backup_verification_schedule,
    daily_restore_drill_schedule,
    corrupt_dump_redump_schedule,
]
