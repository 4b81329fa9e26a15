"""Migration jobs: the read-only inventory, and the per-source migration (one run per partition)."""

from __future__ import annotations

from dagster import AssetSelection, define_asset_job

from assets.migration import migrated_blobs, migration_inventory, migration_partitions

migration_inventory_job = define_asset_job(
    "migration_inventory_job",
    selection=AssetSelection.assets(migration_inventory),
    description="Measure what the legacy tables hold (read-only).",
)
migration_job = define_asset_job(
    "migration_job",
    selection=AssetSelection.assets(migrated_blobs),
    partitions_def=migration_partitions,
    description="Migrate one source (partition) to object storage, with its checks.",
)

migration_jobs = [migration_inventory_job, migration_job]
