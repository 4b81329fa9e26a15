"""Daily backup schedules (UTC): database and object backups late in the day they cover, then retention,
verification and the restore drill early the next morning, so every day ends proven restorable."""

from __future__ import annotations

from datetime import timedelta

from dagster import RunRequest, ScheduleEvaluationContext, schedule

from orchestration.backups import (
    backup_retention_job,
    backup_verification_job,
    database_backup_job,
    object_backup_job,
    restore_drill_job,
)


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


backup_schedules = [
    daily_database_backup_schedule,
    daily_object_backup_schedule,
    daily_backup_retention_schedule,
    daily_backup_verification_schedule,
    daily_restore_drill_schedule,
]
