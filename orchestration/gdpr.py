"""GDPR jobs: export one owner's data as a signed-URL archive, and erase one owner everywhere.

Both take the owner id from run config with no default, so nothing runs without someone naming the
owner; the erasure also has a `dry_run` switch that only writes `would_delete` audit rows.
"""

from datetime import UTC, datetime

from dagster import Config, Failure, MetadataValue, OpExecutionContext, Output, job, op
from pydantic import Field

from assets.partitions import REFERENCES_POOL
from core.keys import InvalidOwnerId, validate_owner_id
from core.retention.gdpr import OwnerNotFound, delete_owner_everywhere, export_owner
from core.retention.policies import load_retention_config
from core.retention.sweep import OwnerOnLegalHold
from core.sources import load_sources_config
from resources.database import PostgresResource
from resources.object_store import ObjectStoreResource

GDPR_EXPORT_JOB = "gdpr_export_job"
GDPR_DELETE_JOB = "gdpr_delete_job"


class GdprExportConfig(Config):
    owner_id: str = Field(description="The owner (users primary key) whose data to export; required")


class GdprDeleteConfig(Config):
    owner_id: str = Field(description="The owner (users primary key) to erase everywhere; required")
    dry_run: bool = Field(default=False, description="Only record what would be deleted")


def _owner(owner_id: str) -> str:
    """The owner id exactly as given (never trimmed: ` alice` and `alice` are two owners)."""
    if not owner_id.strip():
        raise Failure("owner_id must name an owner")
    try:
        return validate_owner_id(owner_id)
    except InvalidOwnerId as exc:
        raise Failure(str(exc)) from None


@op(description="Zip the owner's rows, catalog entries and objects into object storage; log a signed URL.")
def gdpr_export_owner(
    context: OpExecutionContext,
    config: GdprExportConfig,
    postgres: PostgresResource,
    object_store: ObjectStoreResource,
) -> Output[str]:
    try:
        result = export_owner(
            postgres.engine(),
            object_store.store(),
            load_sources_config(),
            load_retention_config(),
            owner_id=_owner(config.owner_id),
            run_id=context.run_id,
            now=datetime.now(UTC),
        )
    except OwnerNotFound as exc:
        raise Failure(str(exc)) from exc
    context.log.info(
        f"GDPR export of {result.owner_id}: {result.storage_key}\nsigned URL: {result.signed_url}"
    )
    return Output(
        result.storage_key,
        metadata={
            "owner_id": result.owner_id,
            "storage_key": result.storage_key,
            "signed_url": MetadataValue.url(result.signed_url),
            "size_bytes": result.size_bytes,
            "objects": result.objects,
            "missing_objects": len(result.missing_objects),
            "rows": MetadataValue.json(result.rows),
        },
    )


@op(
    pool=REFERENCES_POOL,
    description="Erase the owner: source rows, owner row, uploads, references, unshared objects and variants."
)
def gdpr_delete_owner(
    context: OpExecutionContext,
    config: GdprDeleteConfig,
    postgres: PostgresResource,
    object_store: ObjectStoreResource,
) -> Output[int]:
    try:
        report = delete_owner_everywhere(
            postgres.engine(),
            object_store.store(),
            load_sources_config(),
            load_retention_config(),
            owner_id=_owner(config.owner_id),
            run_id=context.run_id,
            now=datetime.now(UTC),
            dry_run=config.dry_run,
        )
    except OwnerOnLegalHold as exc:
        raise Failure(str(exc)) from exc
    result = next(iter(report.policies.values()))
    context.log.info(f"GDPR erasure of {config.owner_id} (dry run: {config.dry_run})\n{report.markdown()}")
    return Output(
        result.deleted,
        metadata={
            "owner_id": config.owner_id,
            "dry_run": config.dry_run,
            "objects_deleted": result.counts["objects_deleted"],
            "variants_deleted": result.counts["variants_deleted"],
            "rows_deleted": result.counts["rows_deleted"],
            "references_released": result.counts["references_released"],
            "bytes_reclaimed": result.bytes_reclaimed,
            "kept_shared_or_held": result.skipped_total,
            "storage_delete_failures": len(report.purge_failures),
            "summary": MetadataValue.md(report.markdown()),
        },
    )


@job(name=GDPR_EXPORT_JOB, description="Export everything of one owner (run config names the owner).")
def gdpr_export_job() -> None:
    gdpr_export_owner()


@job(name=GDPR_DELETE_JOB, description="Hard-delete one owner everywhere (run config names the owner).")
def gdpr_delete_job() -> None:
    gdpr_delete_owner()
