"""Migration assets: what each legacy table holds, and the blobs moved out of it, one asset of each per
configured source (config/sources.yaml), with checks that nothing was left behind or lost.

Thin wiring: the logic is in core/migration (no Dagster there)."""

from typing import Any

from dagster import (
    AssetCheckResult,
    AssetCheckSeverity,
    AssetCheckSpec,
    AssetExecutionContext,
    AssetKey,
    AssetsDefinition,
    MaterializeResult,
    MetadataValue,
    asset,
)

from assets.partitions import REFERENCES_POOL
from assets.sources import OWNER, SOURCES, tables_read
from core.migration.checks import SpaceReport, base64_left, live_bytes, verify_references
from core.migration.engine import migrate_source
from core.migration.inventory import inventory_source, table_size
from core.migration.settings import load_migration_config
from core.objectstore.retry import report_store_stats
from core.progress import logged_progress
from core.sources import BlobSource, SourcesConfig, check_against_database
from core.usage.formatting import round_money, round_rate
from core.usage.pricing import load_price_table
from orchestration.lineage import run_lineage
from resources.database import PostgresResource
from resources.object_store import ObjectStoreResource

GROUP = "migration"
#: Check names (blocking: a source with base64 left is not done).
NO_BASE64_LEFT = "no_base64_left"
REFERENCES_RESOLVE = "references_resolve"
SPACE_RECLAIMED = "space_reclaimed"

#: Inventory per source in a group of its own, so the graph shows "inventory" and "migration" apart
#: (group and key names stay under the 18 characters the zoomed-out graph shows uncut).
INVENTORY_GROUP = "inventory"
MB = 1_000_000


def _refuse_unusable(postgres: PostgresResource, config: SourcesConfig) -> None:
    """Refuse, before anything runs, a source naming a table or column the database lacks."""
    with postgres.engine().connect() as conn:
        check_against_database(conn, config)


def _md_table(header: list[str], rows: list[list[Any]]) -> MetadataValue:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return MetadataValue.md("\n".join(lines))


def inventory_key(source: BlobSource) -> AssetKey:
    return AssetKey(["migration", "inventory", source.name])


def migration_key(source: BlobSource) -> AssetKey:
    return AssetKey(["migration", source.name])


def build_inventory_asset(source: BlobSource) -> AssetsDefinition:
    @asset(
        key=inventory_key(source),
        group_name=INVENTORY_GROUP,
        deps=tables_read(source),
        owners=[OWNER],
        kinds={"postgres", "python"},
        description=f"Source `{source.name}` ({source.schema}.{source.table}.{source.column}): rows, base64 "
        "blobs, bytes as stored, decoded bytes, duplicates and the projected monthly saving of moving them "
        "to object storage. Read-only and streamed.",
    )
    def _inventory(context: AssetExecutionContext, postgres: PostgresResource) -> MaterializeResult:
        return inventory_result(context, postgres, source)

    return _inventory


def inventory_result(
    context: AssetExecutionContext, postgres: PostgresResource, source: BlobSource
) -> MaterializeResult:
    config = load_migration_config()
    # The configured providers' prices from the price table, as in the cost reports (one source of truth).
    prices = load_price_table()
    database_price, object_price = prices.postgres.per_gb_month, prices.object_storage.per_gb_month
    _refuse_unusable(postgres, SourcesConfig(owners=SOURCES.owners, sources=(source,)))
    inv = inventory_source(
        postgres.engine(),
        source,
        database_price_gb_month=database_price,
        object_price_gb_month=object_price,
        batch_bytes=config.engine.batch_bytes,
    )
    context.log.info(f"{source.name}: {inv}")
    return MaterializeResult(
        metadata={
            "source": source.name,
            "table": f"{source.schema}.{source.table}",
            "rows": inv.rows,
            "blobs": inv.blobs,
            "already_migrated": inv.already_migrated,
            "mb_as_stored": round(inv.bytes_as_stored / MB, 3),
            "mb_decoded": round(inv.decoded_bytes / MB, 3),
            "duplicates": inv.duplicates,
            "undecodable": inv.undecodable,
            "table_mb": round(inv.table_bytes / MB, 3),
            "projected_monthly_saving_usd": round_money(inv.projected_monthly_saving_usd),
            "postgres_price_per_gb_month": database_price,
            "object_storage_price_per_gb_month": object_price,
        }
    )


def build_migration_asset(source: BlobSource) -> AssetsDefinition:
    key = migration_key(source)

    @asset(
        key=key,
        group_name=GROUP,
        deps=tables_read(source),
        owners=[OWNER],
        kinds={"postgres", "s3", "python"},
        pool=REFERENCES_POOL,
        description=f"Base64 blobs of source `{source.name}` "
        f"({source.schema}.{source.table}.{source.column}) moved to content-addressed object storage, "
        "verified, with catalog rows and the source rows rewritten to references. "
        "Resumable; a rerun moves nothing new.",
        check_specs=[
            AssetCheckSpec(
                NO_BASE64_LEFT,
                asset=key,
                blocking=True,
                description="No base64 left at the source's blob places, except quarantined inputs.",
            ),
            AssetCheckSpec(
                REFERENCES_RESOLVE,
                asset=key,
                description="Every reference resolves to a stored object with the recorded size and "
                "SHA-256 (all HEADed, a sample re-read).",
            ),
            AssetCheckSpec(
                SPACE_RECLAIMED,
                asset=key,
                description="Table size before and after, and the VACUUM a DBA must run to return the "
                "space.",
            ),
        ],
    )
    def _migration(
        context: AssetExecutionContext, postgres: PostgresResource, object_store: ObjectStoreResource
    ) -> MaterializeResult:
        return migration_result(context, postgres, object_store, source)

    return _migration


def migration_result(
    context: AssetExecutionContext,
    postgres: PostgresResource,
    object_store: ObjectStoreResource,
    source: BlobSource,
) -> MaterializeResult:
    config = load_migration_config()
    _refuse_unusable(postgres, SourcesConfig(owners=SOURCES.owners, sources=(source,)))
    engine = postgres.engine()
    store = object_store.store()
    with engine.connect() as conn:
        size_before = table_size(conn, source)
    progress = logged_progress(context.log.info, f"migration of {source.name}")
    with progress.ticking():  # a streamed row of gigabytes is one batch: still a line per interval
        stats = migrate_source(
            engine,
            store,
            source,
            settings=config.engine,
            run_id=context.run_id,
            lineage=run_lineage(context),
            progress=progress,
        )
    context.log.info(f"{source.name}: {stats}")

    left = base64_left(engine, source)
    refs = verify_references(engine, store, source, sample=config.reference_sample)
    with engine.connect() as conn:
        space = SpaceReport(
            source.qualified_table,
            size_before,
            table_size(conn, source),
            live_bytes(conn, source),
            source=source.name,
        )
    checks = [
        AssetCheckResult(
            check_name=NO_BASE64_LEFT,
            passed=left.values == 0,
            metadata={
                "base64_values_left": left.values,
                "quarantined_values_left_in_place": left.quarantined_values,
                "examples": MetadataValue.text(", ".join(left.examples) or "none"),
            },
        ),
        AssetCheckResult(
            check_name=REFERENCES_RESOLVE,
            passed=refs.ok,
            # An unreachable store (retries exhausted) is a WARN apart from a wrong or missing object.
            severity=AssetCheckSeverity.ERROR if refs.wrong or refs.ok else AssetCheckSeverity.WARN,
            metadata={
                "references": refs.references,
                "objects_checked": refs.objects,
                "missing": len(refs.missing),
                "checksum_or_size_mismatch": len(refs.mismatched),
                "objects_reread": refs.reread,
                "reread_failed": len(refs.reread_failed),
                "store_unreachable": len(refs.unreachable),
                "problems": MetadataValue.text(
                    "; ".join((refs.missing + refs.mismatched + refs.reread_failed + refs.unreachable)[:20])
                    or "none"
                ),
            },
        ),
        AssetCheckResult(
            check_name=SPACE_RECLAIMED,
            passed=not space.warns(config.reclaim_warn_bytes),
            severity=AssetCheckSeverity.WARN,
            description=space.summary(config.reclaim_warn_bytes),
            metadata={
                **space.metadata(config.reclaim_warn_bytes),
                "advice": MetadataValue.md(space.advice()),
            },
        ),
    ]
    reasons = sorted(stats.quarantine_reasons.items())
    return MaterializeResult(
        metadata={
            "source": source.name,
            "table": source.qualified_table,
            "blobs_moved": stats.blobs_moved,
            "mb_moved": round(stats.bytes_moved / MB, 3),
            "mb_base64_removed": round(stats.encoded_bytes_moved / MB, 3),
            "objects_uploaded": stats.objects_uploaded,
            "duplicates_stored_once": stats.duplicates_stored_once,
            "already_migrated": stats.already_migrated,
            "references_restored": stats.references_restored,
            "dangling_references": MetadataValue.json(stats.dangling_references[:100]),
            "quarantined": stats.quarantined,
            "quarantine_reasons": _md_table(["reason", "values"], [list(r) for r in reasons] or [["-", 0]]),
            "rows_scanned": stats.rows_scanned,
            "rows_rewritten": stats.rows_rewritten,
            "rows_changed_by_app_during_run": stats.rows_changed_concurrently,
            "resumed_from_pk": MetadataValue.text(stats.resumed_from_pk or "start"),
            "elapsed_s": round(stats.elapsed_seconds, 3),
            "mb_per_s": round_rate(stats.mb_per_second),
            **report_store_stats(context.log, f"migration of {source.name}", (store, "store")),
        },
        check_results=checks,
    )


#: One asset per configured source (and one inventory per source): each is downstream of its own table
#: only, so the graph tells which table a migration read; materializing one node migrates one source.
inventory_assets = [build_inventory_asset(source) for source in SOURCES.sources]
migrated_assets = [build_migration_asset(source) for source in SOURCES.sources]
MIGRATION_KEYS = [migration_key(source) for source in SOURCES.sources]
INVENTORY_KEYS = [inventory_key(source) for source in SOURCES.sources]
migration_assets = [*inventory_assets, *migrated_assets]
