"""The daily retention sweep job and its schedule (02:30 UTC, the quiet hour of seed 003's cron)."""

from __future__ import annotations

from dagster import AssetSelection, build_schedule_from_partitioned_job, define_asset_job

from assets.retention import RETENTION_SWEEP_KEY, retention_partitions

RETENTION_SWEEP_JOB = "retention_sweep_job"

retention_sweep_job = define_asset_job(
    RETENTION_SWEEP_JOB,
    selection=AssetSelection.assets(RETENTION_SWEEP_KEY),
    partitions_def=retention_partitions,
    description="Run today's retention sweep (set `dry_run: true` in the asset's config to only audit).",
)

retention_daily_schedule = build_schedule_from_partitioned_job(
    retention_sweep_job,
    name="retention_daily_schedule",
    hour_of_day=2,
    minute_of_hour=30,
    description="Daily retention sweep for the day's partition.",
)
