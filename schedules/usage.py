"""Schedules: the usage snapshot and daily cost report every night, the monthly report on the 1st.

Each tick targets the partition of the period that just ended, so a day is measured once it is complete
(the running day can still be materialized by hand or by `./dev demo`).
"""

from __future__ import annotations

from dagster import build_schedule_from_partitioned_job

from orchestration.usage import usage_daily_job, usage_monthly_job

usage_daily_schedule = build_schedule_from_partitioned_job(
    usage_daily_job, hour_of_day=1, minute_of_hour=30, name="usage_daily_schedule"
)
usage_monthly_schedule = build_schedule_from_partitioned_job(
    usage_monthly_job, day_of_month=1, hour_of_day=3, name="usage_monthly_schedule"
)

usage_schedules = [usage_daily_schedule, usage_monthly_schedule]
