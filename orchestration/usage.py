"""Jobs for usage and cost: the daily snapshot + daily cost report, and the monthly cost report."""

from __future__ import annotations

from dagster import AssetSelection, define_asset_job

from assets.usage import DAILY_COST_REPORT_KEY, MONTHLY_COST_REPORT_KEY, USAGE_SNAPSHOT_KEY

USAGE_DAILY_JOB = "usage_daily_job"
USAGE_MONTHLY_JOB = "usage_monthly_job"

usage_daily_job = define_asset_job(
    USAGE_DAILY_JOB,
    selection=AssetSelection.assets(USAGE_SNAPSHOT_KEY, DAILY_COST_REPORT_KEY),
    description="Today's usage snapshot (quotas, growth, orphans) and the daily cost report.",
)
usage_monthly_job = define_asset_job(
    USAGE_MONTHLY_JOB,
    selection=AssetSelection.assets(MONTHLY_COST_REPORT_KEY),
    description="The month's cost report from its daily snapshots.",
)

usage_jobs = [usage_daily_job, usage_monthly_job]
