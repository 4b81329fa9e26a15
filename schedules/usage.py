"""Schedules: the usage snapshot and daily cost report every night, the monthly report on the 1st.

Each tick targets the period that just ended (yesterday, last month), so a period is measured once it is
complete; the partitions include the running period (end_offset=1) so it can be materialized by hand or
by `./dev demo`, which is why the partition is chosen here rather than by
`build_schedule_from_partitioned_job` (that would pick the running period).
"""

from __future__ import annotations

import datetime as dt

from dagster import RunRequest, ScheduleEvaluationContext, schedule

from orchestration.usage import usage_daily_job, usage_monthly_job


def previous_day_key(at: dt.datetime) -> str:
    return (at.date() - dt.timedelta(days=1)).isoformat()


def previous_month_key(at: dt.datetime) -> str:
    return (at.date().replace(day=1) - dt.timedelta(days=1)).replace(day=1).isoformat()


@schedule(job=usage_daily_job, cron_schedule="30 1 * * *", execution_timezone="UTC")
def usage_daily_schedule(context: ScheduleEvaluationContext) -> RunRequest:
    key = previous_day_key(context.scheduled_execution_time)
    return RunRequest(run_key=key, partition_key=key)


@schedule(job=usage_monthly_job, cron_schedule="0 3 1 * *", execution_timezone="UTC")
def usage_monthly_schedule(context: ScheduleEvaluationContext) -> RunRequest:
    key = previous_month_key(context.scheduled_execution_time)
    return RunRequest(run_key=key, partition_key=key)


usage_schedules = [usage_daily_schedule, usage_monthly_schedule]
