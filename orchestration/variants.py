"""Upload and variant jobs: one batch of uploads per run (the sensor's), and the daily variant run."""

from __future__ import annotations

from dagster import AssetSelection, define_asset_job, multi_or_in_process_executor

from assets.uploads import PROCESSED_UPLOADS_KEY, UPLOAD_DAYS
from assets.variants import IMAGE_VARIANTS_KEY

PROCESS_UPLOADS_JOB = "process_uploads_job"

process_uploads_job = define_asset_job(
    PROCESS_UPLOADS_JOB,
    selection=[PROCESSED_UPLOADS_KEY],
    partitions_def=UPLOAD_DAYS,
    description="Validate and store one batch of uploads (run config: upload_ids) with their variants.",
)

#: Renders what originals lack; multiprocess by default (one mapped batch per core), `in_process` selectable.
variants_job = define_asset_job(
    "variants_job",
    selection=AssetSelection.assets(IMAGE_VARIANTS_KEY),
    partitions_def=UPLOAD_DAYS,
    executor_def=multi_or_in_process_executor,
    description="Variants for every image original (migrated and uploaded) lacking its current set.",
)
