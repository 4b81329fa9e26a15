"""Upload processing: a daily-partitioned asset whose runs each carry a batch of uploads (the sensor's
run config), validating them, storing the valid ones as originals with their variants and quarantining
the rest. One partition per upload day, never one per image."""

import datetime as dt

from dagster import (
    AssetCheckResult,
    AssetCheckSeverity,
    AssetExecutionContext,
    AssetKey,
    Config,
    MaterializeResult,
    MetadataValue,
    asset,
    asset_check,
)
from pydantic import Field

from assets.partitions import daily_partitions
from assets.sources import OWNER, UPLOADS_AREA_KEY
from core.imaging import load_variant_plan
from core.objectstore.retry import report_store_stats
from core.uploads import UploadStats, pending_uploads, percentile, process_uploads
from core.usage.formatting import round_rate
from orchestration.lineage import run_lineage
from resources.database import PostgresResource
from resources.object_store import ObjectStoreResource

#: Short enough for the graph's collapsed group box (longer names are cut in the middle).
GROUP = "uploads_variants"
#: Upload days: the shared calendar (today's still open day is a partition, so uploads run the same day).
UPLOAD_DAYS = daily_partitions
PROCESSED_UPLOADS_KEY = AssetKey(["media", "processed_uploads"])
#: Alert threshold from the design (seed 001): more pending uploads than this means a stuck flow.
PENDING_UPLOADS_WARN = 100
PENDING_UPLOADS_CHECK = "pending_uploads_below_100"
#: Run tag naming the batch a run carries (the upload sensor's run key); `uploads.batch_key` holds the same
#: value, so each upload leads to its run, including uploads the run took on while it ran.
BATCH_TAG = "uploads/batch"


class UploadBatchConfig(Config):
    """The batch a run carries. Empty: every confirmed/queued upload of the partition's day."""

    upload_ids: list[int] = Field(default_factory=list, description="uploads rows to process")


def upload_metadata(stats: UploadStats) -> dict[str, object]:
    variants = stats.variants
    return {
        "uploads": stats.uploads,
        "uploads_taken_on": stats.taken_on,
        "rounds": stats.rounds,
        "full_sets_of_other_runs": stats.full_sets_shared,
        "accepted": stats.accepted,
        "rejected": stats.rejected,
        "deferred": stats.deferred,
        "documents": stats.documents,
        "images": variants.images,
        "variants": variants.variants_ready,
        "variants_skipped": variants.variants_skipped,
        "variants_failed": variants.variants_failed,
        # per second of work: a sensor's run also waits up to linger_seconds for new uploads
        "uploads_per_second": round_rate(stats.uploads / stats.busy_seconds) if stats.busy_seconds else 0.0,
        "seconds_waiting_for_uploads": round(stats.lingered_seconds, 1),
        "latency_p95_seconds": round(percentile(stats.latencies, 95), 2),
        "rejected_by_reason": MetadataValue.md(
            "| reason | uploads |\n|---|---|\n"
            + "".join(f"| {code} | {n} |\n" for code, n in sorted(stats.rejected_by_reason.items()))
        ),
    }


@asset(
    key=PROCESSED_UPLOADS_KEY,
    deps=[UPLOADS_AREA_KEY],
    partitions_def=UPLOAD_DAYS,
    group_name=GROUP,
    owners=[OWNER],
    kinds={"python", "postgres", "s3"},
    description=(
        "Uploads validated (magic bytes, allowlist, size and pixel limits) and stored as "
        "content-addressed originals with their variants; rejects are quarantined with the reason."
    ),
)
def processed_uploads(
    context: AssetExecutionContext,
    config: UploadBatchConfig,
    postgres: PostgresResource,
    object_store: ObjectStoreResource,
) -> MaterializeResult:
    day = dt.date.fromisoformat(context.partition_key)
    store = object_store.store()
    plan = load_variant_plan()
    batch_key = context.run.tags.get(BATCH_TAG)
    stats = process_uploads(
        postgres.engine(),
        store,
        plan,
        upload_ids=config.upload_ids or None,
        day=day,
        run_id=context.run_id,
        lineage=run_lineage(context),
        batch_key=batch_key,
        # the sensor's runs wait for the next uploads; a run launched by hand ends with its batch
        linger_seconds=plan.uploads.linger_seconds if batch_key else 0.0,
    )
    context.log.info(
        f"{stats.uploads} uploads ({stats.taken_on} taken on while running, {stats.rounds} rounds): "
        f"{stats.accepted} accepted, {stats.rejected} rejected, {stats.deferred} deferred; "
        f"{stats.variants.variants_ready} variants ({stats.full_sets_shared} other runs' full sets)"
    )
    return MaterializeResult(
        metadata={**upload_metadata(stats), **report_store_stats(context.log, "uploads", (store, "store"))}
    )


@asset_check(asset=processed_uploads, name=PENDING_UPLOADS_CHECK, blocking=False)
def pending_uploads_below_threshold(postgres: PostgresResource) -> AssetCheckResult:
    """Uploads requested but never confirmed pile up when the app's confirm step breaks."""
    pending = pending_uploads(postgres.engine())
    return AssetCheckResult(
        passed=pending < PENDING_UPLOADS_WARN,
        severity=AssetCheckSeverity.WARN,
        metadata={"pending_uploads": pending, "threshold": PENDING_UPLOADS_WARN},
        description="Pending uploads are left for the retention capability (abandoned after its policy).",
    )
