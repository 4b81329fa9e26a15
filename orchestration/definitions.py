"""The Definitions `workspace.yaml` loads: every asset, check, job, sensor and schedule, wired to the
resources built from the environment (resources/settings.py).

Loading checks the settings first: a process without DATABASE_URL, a store or a configuration file fails
here with every missing name, before any asset module reads a file. It never starts a server.
"""

from __future__ import annotations

from resources.settings import check_settings

check_settings()

from dagster import Definitions

from assets.backups import backup_assets, backup_checks
from assets.migration import migration_assets
from assets.retention import retention_assets, retention_checks
from assets.sources import source_specs
from assets.uploads import pending_uploads_below_threshold, processed_uploads
from assets.usage import usage_assets
from assets.variants import image_variants
from orchestration.alerts import alert_sensors
from orchestration.backups import backup_jobs
from orchestration.executors import platform_executor, step_output_resources
from orchestration.gdpr import gdpr_delete_job, gdpr_export_job
from orchestration.migration import migration_jobs
from orchestration.retention import retention_sweep_job
from orchestration.sensors import media_automation, upload_sensor
from orchestration.usage import usage_jobs
from orchestration.variants import process_uploads_job, variants_job
from resources.settings import build_resources
from schedules.backups import backup_schedules
from schedules.retention import retention_daily_schedule


def build_definitions() -> Definitions:
    return Definitions(
        assets=[
            *source_specs,
            *migration_assets,
            *backup_assets,
            *usage_assets,
            processed_uploads,
            image_variants,
            *retention_assets,
        ],
        asset_checks=[
            *backup_checks,
            pending_uploads_below_threshold,
            *retention_checks,
        ],
        jobs=[
            *migration_jobs,
            *backup_jobs,
            *usage_jobs,
            process_uploads_job,
            variants_job,
            retention_sweep_job,
            gdpr_export_job,
            gdpr_delete_job,
        ],
        schedules=[*backup_schedules, retention_daily_schedule],
        sensors=[upload_sensor, media_automation, *alert_sensors],
        resources={**build_resources(), **step_output_resources()},
        executor=platform_executor(),
    )


defs = build_definitions()
