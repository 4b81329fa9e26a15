"""Migration jobs: the read-only inventory of every source, and the migration of every source (one step
per source; the `media_references` pool lets them take turns). To migrate one source, materialize its
asset (`migration/<source>`) in the UI or on the command line (README)."""

from __future__ import annotations

from dagster import AssetSelection, define_asset_job

from assets.migration import INVENTORY_KEYS, MIGRATION_KEYS

migration_inventory_job = define_asset_job(
    "migration_inventory_job",
    selection=AssetSelection.assets(*INVENTORY_KEYS),
    description="Measure what the legacy tables hold, per source (read-only).",
)
migration_job = define_asset_job(
    "migration_job",
    selection=AssetSelection.assets(*MIGRATION_KEYS),
    description="Migrate every configured source to object storage, with its checks (one step per source).",
)

migration_jobs = [migration_inventory_job, migration_job]
