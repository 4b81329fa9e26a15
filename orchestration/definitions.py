"""The Definitions `workspace.yaml` loads: every asset, check, job, sensor and schedule, wired to the
resources built from the environment (resources/settings.py)."""

from __future__ import annotations

from dagster import Definitions

from assets.retention import retention_assets, retention_checks
from assets.sources import source_specs
from orchestration.gdpr import gdpr_delete_job, gdpr_export_job
from resources.settings import build_resources
from schedules.retention import retention_daily_schedule, retention_sweep_job


def build_definitions() -> Definitions:
    return Definitions(
        assets=[*source_specs, *retention_assets],
        asset_checks=[*retention_checks],
        jobs=[retention_sweep_job, gdpr_export_job, gdpr_delete_job],
        schedules=[retention_daily_schedule],
        resources=build_resources(),
    )


defs = build_definitions()
