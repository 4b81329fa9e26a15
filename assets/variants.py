"""Image variants: a daily-partitioned, graph-backed asset that fans the originals lacking their current
variant set out to parallel steps (`DynamicOut` -> `.map()` -> `.collect()`), so Dagster's multiprocess
executor puts one batch on each core. Covers migrated and uploaded originals alike (selected from the
catalog); an original is re-rendered only for the specs whose hash changed.

The asset's two checks are evaluated by the fan-in step that records the materialization (`check_specs`
on the graph asset), not as steps of their own: under the multiprocess executor each step is a process
(under Kubernetes a pod), and two one-query checks cost a process start-up each (~0.9 s of every run
here). They run whenever the asset materializes and cannot be launched on their own."""

import datetime as dt

from dagster import (
    AssetCheckResult,
    AssetCheckSeverity,
    AssetCheckSpec,
    AssetIn,
    AssetKey,
    AutomationCondition,
    Config,
    DynamicOut,
    DynamicOutput,
    In,
    MetadataValue,
    Nothing,
    OpExecutionContext,
    Out,
    Output,
    graph_asset,
    op,
)

from assets.automation import after_upstreams, catch_up_after_upstreams
from assets.migration import MIGRATION_KEYS
from assets.sources import OWNER
from assets.uploads import GROUP, PROCESSED_UPLOADS_KEY, UPLOAD_DAYS
from core.imaging import load_variant_plan
from core.objectstore.retry import StoreStats, report_store_stats, stats_of
from core.progress import logged_progress
from core.usage.formatting import round_pct, round_rate
from core.variants import (
    VariantStats,
    failed_variant_rate,
    ids_needing_variants,
    process_batch,
    split_batches,
    variant_set_gaps,
)
from orchestration.lineage import run_lineage
from resources.database import PostgresResource
from resources.object_store import ObjectStoreResource

IMAGE_VARIANTS_KEY = AssetKey(["media", "image_variants"])

#: key of the store's request/fault counters in a batch's result
STORE_COUNTS = "store_counts"
FULL_VARIANT_SET_CHECK = "every_original_has_full_variant_set"
FAILED_RATE_CHECK = "failed_variant_rate_below_5_percent"
FAILED_RATE_WARN = 0.05
VARIANT_CHECK_SPECS = [
    AssetCheckSpec(
        FULL_VARIANT_SET_CHECK,
        asset=IMAGE_VARIANTS_KEY,
        description="Every valid image original has a ready or skipped row for every current spec.",
    ),
    AssetCheckSpec(
        FAILED_RATE_CHECK,
        asset=IMAGE_VARIANTS_KEY,
        description="Failed variants stay under 5 % of the live ones (WARN).",
    ),
]
#: The graph's output name for each check (Dagster's naming: asset key identifier + check name).
CHECK_OUTPUTS = [spec.get_python_identifier() for spec in VARIANT_CHECK_SPECS]


class VariantRunConfig(Config):
    retry_failed: bool = False
    """Re-attempt variants recorded as failed with the current spec (after fixing a decoder, say)."""


def _partition_end(context: OpExecutionContext) -> dt.datetime | None:
    """Originals created before the end of the partition's day (today's partition: all of them)."""
    if not context.has_partition_key:
        return None
    day = dt.date.fromisoformat(context.partition_key)
    return dt.datetime.combine(day + dt.timedelta(days=1), dt.time(), tzinfo=dt.UTC)


@op(ins={"after": In(Nothing)}, out=DynamicOut(list))
def plan_variant_batches(context: OpExecutionContext, config: VariantRunConfig, postgres: PostgresResource):
    """Ids and sizes only (pages of 5,000 by keyset), split into at least `parallelism` batches of
    about equal bytes for the cores."""
    plan = load_variant_plan()
    ids: list[int] = []
    sizes: list[int] = []
    # Uploads processed within the last `requeue_after_minutes` are their upload runs' to finish.
    in_flight_since = dt.datetime.now(dt.UTC) - dt.timedelta(minutes=plan.uploads.requeue_after_minutes)
    for page in ids_needing_variants(
        postgres.engine(),
        plan,
        created_before=_partition_end(context),
        retry_failed=config.retry_failed,
        uploads_processed_since=in_flight_since,
    ):
        ids.extend(original for original, _ in page)
        sizes.extend(size for _, size in page)
    batches = split_batches(ids, plan.batch_size, plan.parallelism, sizes)
    context.log.info(f"{len(ids)} originals lack variants; {len(batches)} batches")
    for i, batch in enumerate(batches):
        yield DynamicOutput(batch, mapping_key=f"batch_{i}")


@op
def render_variant_batch(
    context: OpExecutionContext,
    config: VariantRunConfig,
    postgres: PostgresResource,
    object_store: ObjectStoreResource,
    batch: list,
) -> dict:
    store = object_store.store()
    progress = logged_progress(context.log.info, "variant batch", unit="originals", total=len(batch))
    with progress.ticking():  # a large original (a 50 MP photo, an animation) takes a while
        stats = process_batch(
            store,
            postgres.engine(),
            batch,
            load_variant_plan(),
            retry_failed=config.retry_failed,
            lineage=run_lineage(context, IMAGE_VARIANTS_KEY),
            progress=progress,
        )
    return {**stats.__dict__, STORE_COUNTS: stats_of(store).counts()}


def full_variant_set(postgres: PostgresResource) -> AssetCheckResult:
    """Every valid image original has a ready or skipped row for every current spec."""
    gaps = variant_set_gaps(postgres.engine(), load_variant_plan())
    return AssetCheckResult(
        check_name=FULL_VARIANT_SET_CHECK, passed=gaps == 0, metadata={"originals_missing_variants": gaps}
    )


def failed_variant_rate_check(postgres: PostgresResource) -> AssetCheckResult:
    failed, total = failed_variant_rate(postgres.engine())
    rate = failed / total if total else 0.0
    return AssetCheckResult(
        check_name=FAILED_RATE_CHECK,
        passed=rate < FAILED_RATE_WARN,
        severity=AssetCheckSeverity.WARN,
        metadata={"failed_variants": failed, "variants": total, "failed_pct": round_pct(rate * 100)},
    )


@op(out={"result": Out(Nothing), **{output: Out(Nothing) for output in CHECK_OUTPUTS}})
def summarize_variants(context: OpExecutionContext, postgres: PostgresResource, results: list):
    """The run's metadata from every batch's stats, then the asset's checks on the catalog it left."""
    total = VariantStats()
    store_stats = StoreStats()
    wall = 0.0
    for item in results:
        item = dict(item)
        store_stats.add(item.pop(STORE_COUNTS, {}))
        wall = max(wall, item["seconds"])
        total.merge(VariantStats(**item))
    metadata: dict[str, object] = {
        "images": total.images,
        "variants": total.variants_ready,
        "variants_skipped": total.variants_skipped,
        "variants_failed": total.variants_failed,
        "images_failed": total.images_failed,
        "images_deferred": total.images_deferred,
        "images_left_to_another_run": total.images_busy,
        "batches": len(results),
        "bytes_saved_by_webp": total.bytes_original_webp - total.bytes_webp,
        "bytes_saved_by_avif": total.bytes_original_avif - total.bytes_avif,
        "images_per_second": round_rate(total.images / wall) if wall else 0.0,
        "errors": MetadataValue.md("\n".join(f"- {e}" for e in total.errors) or "none"),
        **report_store_stats(context.log, "variants", (store_stats, "store")),
    }
    context.log.info(f"{total.images} images, {total.variants_ready} variants, {total.images_failed} failed")
    yield Output(None, output_name="result", metadata=metadata)
    yield full_variant_set(postgres)
    yield failed_variant_rate_check(postgres)


#: How often variants catch up on upload batches (each upload run renders its own full sets).
UPLOADS_CATCH_UP_CRON = "0 * * * *"


def _variants_automation() -> AutomationCondition:
    """After a migration at once: upload batches arrive as a stream of short runs and must not hold it
    back. After upload batches only hourly, once upstreams are quiet: their runs render their own full
    sets, so this run only catches what one missed, and must not race a burst's runs for the same
    originals (or their cores)."""
    after_uploads = catch_up_after_upstreams(
        "hourly after upload batches (their runs render their own sets)",
        only=[PROCESSED_UPLOADS_KEY],
        cron=UPLOADS_CATCH_UP_CRON,
    )
    if not MIGRATION_KEYS:
        return after_uploads
    after_migrations = after_upstreams(
        "after a migration (upload runs in progress do not hold it back)",
        only=MIGRATION_KEYS,
        running_ok=[PROCESSED_UPLOADS_KEY],
    )
    return (after_migrations | after_uploads).with_label(
        "after migrations, and hourly after upload batches their runs missed"
    )


VARIANTS_AUTOMATION = _variants_automation()


@graph_asset(
    key=IMAGE_VARIANTS_KEY,
    ins={
        "after_uploads": AssetIn(PROCESSED_UPLOADS_KEY, dagster_type=Nothing),
        **{
            f"after_{key.to_python_identifier()}": AssetIn(key, dagster_type=Nothing)
            for key in MIGRATION_KEYS
        },
    },
    partitions_def=UPLOAD_DAYS,
    check_specs=VARIANT_CHECK_SPECS,
    group_name=GROUP,
    owners=[OWNER],
    kinds={"python", "postgres", "s3"},
    automation_condition=VARIANTS_AUTOMATION,
    description=(
        "Thumbnails (150/300/600 px boxes), full-size WebP and AVIF for every image original, per "
        "config/variants.yaml; EXIF orientation applied and EXIF/GPS stripped. Each run renders what is "
        "missing or stale (spec hash changed) for originals created up to the end of its day."
    ),
)
def image_variants(**upstreams):
    """Upstreams: the day's processed uploads and every source's migration (all Nothing inputs)."""
    batches = plan_variant_batches(after=list(upstreams.values()))
    summary = summarize_variants(batches.map(render_variant_batch).collect())
    return {
        "result": summary.result,
        **{output: getattr(summary, output) for output in CHECK_OUTPUTS},
    }
