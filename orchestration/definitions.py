"""The Definitions `workspace.yaml` loads: every asset, check, job, sensor and schedule, wired to the
resources built from the environment (resources/settings.py)."""

from __future__ import annotations

from dagster import AssetSelection, Definitions, define_asset_job, multi_or_in_process_executor

from assets.backups import backup_assets, backup_checks
from assets.migration import migration_assets, migration_jobs
from assets.retention import retention_assets, retention_checks
from assets.sources import source_specs
from assets.uploads import UPLOAD_DAYS, pending_uploads_below_threshold, processed_uploads
from assets.usage import usage_assets
from assets.variants import IMAGE_VARIANTS_KEY, failed_variant_rate_check, full_variant_set, image_variants
from orchestration.backups import backup_jobs
from orchestration.gdpr import gdpr_delete_job, gdpr_export_job
from orchestration.sensors import process_uploads_job, upload_sensor
from orchestration.usage import usage_jobs
from resources.settings import build_resources
from schedules.backups import backup_schedules
from schedules.retention import retention_daily_schedule, retention_sweep_job
from schedules.usage import usage_schedules

#: Renders what originals lack; multiprocess by default (one mapped batch per core), `in_process` selectable.
variants_job = define_asset_job(
    "variants_job",
    selection=AssetSelection.assets(IMAGE_VARIANTS_KEY),
    partitions_def=UPLOAD_DAYS,
    executor_def=multi_or_in_process_executor,
    description="Variants for every image original (migrated and uploaded) lacking its current set.",
)


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
            full_variant_set,
            failed_variant_rate_check,
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
        schedules=[*backup_schedules, *usage_schedules, retention_daily_schedule],
        sensors=[upload_sensor],
        resources=build_resources(),
    )


defs = build_definitions()
