"""Upload and variant jobs: one batch of uploads per run (the sensor's), and the daily variant run."""

from __future__ import annotations

from dagster import AssetSelection, define_asset_job, in_process_executor

from assets.uploads import PROCESSED_UPLOADS_KEY, UPLOAD_DAYS
from assets.variants import IMAGE_VARIANTS_KEY
from orchestration.executors import distributed, platform_executor

PROCESS_UPLOADS_JOB = "process_uploads_job"

process_uploads_job = define_asset_job(
    PROCESS_UPLOADS_JOB,
    selection=[PROCESSED_UPLOADS_KEY],
    partitions_def=UPLOAD_DAYS,
    # One step per run: on one machine the multiprocess executor would start a second process for it
    # (seconds of imports on a busy host) before a fresh upload's thumbnails could begin. Under Celery or
    # Kubernetes the deployment's executor still decides where steps run.
    executor_def=platform_executor() if distributed() else in_process_executor,
    description=(
        "Validate and store one batch of uploads (run config: upload_ids): thumbnails first, then the "
        "full set."
    ),
)

#: Step processes fork from a server that has imported the platform once: a spawned step would spend
#: seconds of CPU re-importing Dagster, Pillow, pandas and boto3 before rendering anything, and a run has
#: five steps (plan, one render per core, summary, checks).
FORKSERVER_EXECUTION = {
    "multiprocess": {"start_method": {"forkserver": {"preload_modules": ["orchestration.definitions"]}}}
}

#: Renders what originals lack, one mapped batch per step: on one machine the multiprocess executor (one
#: batch per core, forkserver; `in_process` selectable), under Celery or Kubernetes the deployment's
#: executor (orchestration/executors.py), with no default run config of its own.
variants_job = define_asset_job(
    "variants_job",
    selection=AssetSelection.assets(IMAGE_VARIANTS_KEY),
    partitions_def=UPLOAD_DAYS,
    executor_def=platform_executor(),
    config=None if distributed() else {"execution": {"config": FORKSERVER_EXECUTION}},
    description="Variants for every image original (migrated and uploaded) lacking its current set.",
)
