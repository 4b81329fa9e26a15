"""The retention sweep job; its daily schedule is in schedules/retention.py, GDPR jobs in gdpr.py."""

from __future__ import annotations

from dagster import AssetSelection, define_asset_job

from assets.retention import RETENTION_SWEEP_KEY, retention_partitions

RETENTION_SWEEP_JOB = "retention_sweep_job"

retention_sweep_job = define_asset_job(
    RETENTION_SWEEP_JOB,
    selection=AssetSelection.assets(RETENTION_SWEEP_KEY),
    partitions_def=retention_partitions,
    description="Run today's retention sweep (set `dry_run: true` in the asset's config to only audit).",
)
