"""The daily retention sweep: one partitioned asset with a result per policy, plus the invariant check.

Thin on purpose: the policies, the delete-time re-checks and the audit live in `core.retention`.
"""

from datetime import UTC, datetime, timedelta

from dagster import (
    AssetCheckResult,
    AssetExecutionContext,
    AssetKey,
    Config,
    MaterializeResult,
    MetadataValue,
    asset,
    asset_check,
)
from pydantic import Field

from assets.migration import MIGRATION_KEYS
from assets.partitions import REFERENCES_POOL, daily_partitions
from assets.sources import LEGACY_KEYS, OWNER, UPLOADS_AREA_KEY
from assets.uploads import PROCESSED_UPLOADS_KEY
from assets.variants import IMAGE_VARIANTS_KEY
from core.objectstore.retry import report_store_stats
from core.progress import AnnouncedSteps, logged_progress
from core.retention.policies import POLICY_ORDER, load_retention_config
from core.retention.sweep import SweepReport, referenced_but_deleted, run_sweep
from core.sources import load_sources_config
from orchestration.lineage import run_lineage
from resources.database import PostgresResource
from resources.object_store import ObjectStoreResource

RETENTION_GROUP = "retention"
RETENTION_SWEEP_KEY = AssetKey(["retention", "sweep"])
NO_REFERENCED_OBJECT_DELETED_CHECK = "no_referenced_object_deleted"

#: The shared calendar: today's partition exists, so the daily schedule and the demo can run "today".
retention_partitions = daily_partitions
#: What retention reads: the app's tables (owners, rows, soft deletes), the uploads area, and every asset
#: that creates references, so a sweep sits after them in the graph (and sees their latest rows).
RETENTION_DEPS = [*LEGACY_KEYS, UPLOADS_AREA_KEY, *MIGRATION_KEYS, PROCESSED_UPLOADS_KEY, IMAGE_VARIANTS_KEY]


class RetentionSweepConfig(Config):
    dry_run: bool = Field(
        default=False, description="Record what would be deleted (`would_delete` audit rows); delete nothing"
    )


def reference_time(partition_key: str, now: datetime | None = None) -> datetime:
    """A partition's sweep judges ages as of the end of its day, never later than now: a backfill of an
    old day deletes no more than that day's sweep would have."""
    end = datetime.fromisoformat(partition_key).replace(tzinfo=UTC) + timedelta(days=1)
    return min(now or datetime.now(UTC), end)


def report_metadata(report: SweepReport) -> dict[str, object]:
    metadata: dict[str, object] = {
        "dry_run": report.dry_run,
        "reference_time": report.now.isoformat(),
        "deleted": report.deleted,
        "bytes_reclaimed": report.bytes_reclaimed,
        "storage_keys_deleted": report.purged_keys,
        "leftover_keys_finished": report.leftover_keys_purged,
        "storage_delete_failures": len(report.purge_failures),
        "policies": MetadataValue.md(report.markdown()),
    }
    for name, result in report.policies.items():
        metadata[f"{name}/candidates"] = result.candidates
        metadata[f"{name}/deleted"] = result.deleted
        metadata[f"{name}/bytes_reclaimed"] = result.bytes_reclaimed
        metadata[f"{name}/skipped"] = result.skipped_total
    warned = report.policies.get("inactive_users")
    if warned is not None and warned.warned_owners:
        shown = warned.warned_owners[:200]
        table = "\n".join(["| owner to warn |", "|---|", *(f"| {owner} |" for owner in shown)])
        if len(warned.warned_owners) > len(shown):
            table += f"\n\n… and {len(warned.warned_owners) - len(shown)} more (see retention_audit)"
        metadata["owners_to_warn"] = MetadataValue.md(table)
        metadata["owners_to_warn_count"] = len(warned.warned_owners)
    return metadata


@asset(
    key=RETENTION_SWEEP_KEY,
    partitions_def=retention_partitions,
    deps=RETENTION_DEPS,
    pool=REFERENCES_POOL,
    group_name=RETENTION_GROUP,
    owners=[OWNER],
    kinds={"postgres", "s3"},
    description=(
        "Daily retention sweep over the catalog and the app's tables (config/retention.yaml): orphaned "
        "objects, soft-deleted rows, inactive users (with a warning stage), abandoned uploads, expired "
        "documents and variants of deleted originals. Every deletion has a row in "
        "media_catalog.retention_audit; legal holds exempt an owner or object from every policy."
    ),
)
def retention_sweep(
    context: AssetExecutionContext,
    config: RetentionSweepConfig,
    postgres: PostgresResource,
    object_store: ObjectStoreResource,
) -> MaterializeResult:
    store = object_store.store()
    lineage = run_lineage(context)
    retention_config = load_retention_config()
    enabled = sum(retention_config.is_enabled(name) for name in POLICY_ORDER)
    progress = logged_progress(context.log.info, "retention", unit="policies", total=enabled)
    steps = AnnouncedSteps(progress, context.log.info)
    with progress.ticking():  # one policy over a big catalog takes longer than the interval
        report = run_sweep(
            postgres.engine(),
            store,
            load_sources_config(),
            retention_config,
            run_id=context.run_id,
            asset_key=lineage.asset_key,
            partition_key=lineage.partition_key,
            now=reference_time(context.partition_key),
            dry_run=config.dry_run,
            progress=steps,
        )
        steps.finish()
    verb = "would delete" if report.dry_run else "deleted"
    context.log.info(
        f"retention sweep {verb} {report.deleted} items, {report.bytes_reclaimed} bytes\n{report.markdown()}"
    )
    if report.purge_failures:
        context.log.warning(
            f"{len(report.purge_failures)} storage deletes failed and stay queued for the next run, e.g. "
            f"{list(report.purge_failures.items())[:3]}"
        )
    return MaterializeResult(
        metadata={
            **report_metadata(report),
            **report_store_stats(context.log, "retention sweep", (store, "store")),
        }
    )


@asset_check(
    asset=RETENTION_SWEEP_KEY,
    name=NO_REFERENCED_OBJECT_DELETED_CHECK,
    description="No object marked deleted is still pointed at by a live reference.",
)
def no_referenced_object_deleted(postgres: PostgresResource) -> AssetCheckResult:
    with postgres.engine().connect() as conn:
        broken = referenced_but_deleted(conn)
    return AssetCheckResult(passed=broken == 0, metadata={"referenced_but_deleted": broken})


retention_assets = [retention_sweep]
retention_checks = [no_referenced_object_deleted]
