"""The one schedule: the daily retention sweep (02:30 UTC, the quiet hour of seed 003's cron). Everything else
runs from the graph (assets/automation.py)."""

from __future__ import annotations

from dagster import build_schedule_from_partitioned_job

from orchestration.retention import retention_sweep_job

retention_daily_schedule = build_schedule_from_partitioned_job(
    retention_sweep_job,
    name="retention_daily_schedule",
    hour_of_day=2,
    minute_of_hour=30,
    description="Daily retention sweep for the day's partition.",
)
