"""Backups as assets: daily database dumps and object copies, the kept backup set (retention), and the
checks that re-read backup bytes and drill a full restore. Thin wiring; the logic is in core/backups."""

from datetime import UTC, date, datetime

from dagster import (
    AssetCheckExecutionContext,
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

from assets.automation import after_upstreams, daily_after_upstreams
from assets.migration import MIGRATION_KEYS
from assets.partitions import REFERENCES_POOL, daily_partitions
from assets.sources import LEGACY_KEYS, OWNER
from assets.uploads import PROCESSED_UPLOADS_KEY
from assets.variants import IMAGE_VARIANTS_KEY
from core.backups.database import run_database_backup
from core.backups.drill import run_restore_drill
from core.backups.objects import run_object_backup
from core.backups.retention import apply_retention
from core.backups.settings import load_settings
from core.backups.verify import verify_backups
from core.objectstore.retry import report_store_stats
from core.progress import logged_progress
from core.usage.formatting import round_rate
from orchestration.lineage import run_lineage
from resources.database import PostgresResource
from resources.object_store import ObjectStoreResource

GROUP = "backups"
DATABASE_BACKUP_KEY = AssetKey(["backups", "database"])
OBJECT_BACKUP_KEY = AssetKey(["backups", "objects"])
BACKUP_SET_KEY = AssetKey(["backups", "kept_set"])

#: check names (module constants so schedules, jobs and tests refer to one spelling)
BACKUP_BYTES_VERIFIED = "backup_bytes_verified"
RESTORE_DRILL = "restore_drill"

#: The shared calendar; today's partition exists so today's backup can run today.
backup_partitions = daily_partitions
#: What writes the catalog (and the media store): the database backup comes after it and the app tables,
#: the object backup after the originals (migrated and uploaded) and the variants.
CATALOG_WRITERS = [*MIGRATION_KEYS, PROCESSED_UPLOADS_KEY, IMAGE_VARIANTS_KEY]


def mb(n: float) -> float:
    return round(n / 1_000_000, 3)


def _problems_md(problems: list[str], limit: int = 50) -> MetadataValue:
    if not problems:
        return MetadataValue.md("none")
    lines = [f"- {p}" for p in problems[:limit]]
    if len(problems) > limit:
        lines.append(f"- ... and {len(problems) - limit} more")
    return MetadataValue.md("\n".join(lines))


class DatabaseBackupConfig(Config):
    """Per-run overrides of config/backups.yaml."""

    pg_bin_dir: str = Field(default="", description="Folder with a server-matching pg_dump/pg_restore")
    compression_level: int = Field(default=-1, description="pg_dump -Z level 0-9; -1 uses the configured one")


@asset(
    key=DATABASE_BACKUP_KEY,
    deps=[*LEGACY_KEYS, *CATALOG_WRITERS],
    partitions_def=backup_partitions,
    automation_condition=daily_after_upstreams(),
    pool=REFERENCES_POOL,
    group_name=GROUP,
    owners=[OWNER],
    kinds={"postgres", "s3"},
    description=(
        "Compressed custom-format pg_dump of the whole database (app tables and the media catalog), "
        "with a manifest of per-table row counts and content hashes taken in the dump's own snapshot. "
        "Written to the backup store under database/YYYY-MM-DD/; verified by re-reading it."
    ),
)
def database_backup(
    context: AssetExecutionContext,
    config: DatabaseBackupConfig,
    postgres: PostgresResource,
    backup_store: ObjectStoreResource,
) -> MaterializeResult:
    settings = load_settings()
    day = date.fromisoformat(context.partition_key)
    store = backup_store.store()
    # Lines per table digested beside pg_dump, and every interval while the dump and upload go on.
    progress = logged_progress(context.log.info, f"database backup {day}", unit="tables")
    with progress.ticking():
        result = run_database_backup(
            postgres.database_url,
            store,
            day,
            compression=config.compression_level
            if config.compression_level >= 0
            else settings.compression_level,
            pg_bin_dir=config.pg_bin_dir or settings.pg_bin_dir,
            exclude_schemas=settings.exclude_schemas,
            run_id=context.run.run_id,
            progress=progress,
        )
        progress.finish()
    tables = "\n".join(
        f"| {name} | {t['rows']} | `{str(t['sha256'])[:16]}` |" for name, t in sorted(result.tables.items())
    )
    context.log.info(
        f"database backup {result.storage_key}: {mb(result.size_bytes)} MB in {result.seconds:.1f}s"
    )
    return MaterializeResult(
        metadata={
            "dump_key": result.storage_key,
            "dump_mb": mb(result.size_bytes),
            "sha256": result.sha256,
            "tables": len(result.tables),
            "rows": result.rows,
            "seconds": round(result.seconds, 2),
            "mb_per_second": round_rate(result.size_bytes / 1_000_000 / max(result.seconds, 1e-6)),
            "manifest": MetadataValue.md("| table | rows | sha256 |\n|---|---|---|\n" + tables),
            **report_store_stats(context.log, "database backup", (store, "backup_store")),
        }
    )


class ObjectBackupConfig(Config):
    read_all: bool = Field(
        default=False,
        description="Re-read every copy's bytes after copying (default: verification.sample_share of them)",
    )


@asset(
    key=OBJECT_BACKUP_KEY,
    deps=CATALOG_WRITERS,
    partitions_def=backup_partitions,
    automation_condition=daily_after_upstreams(),
    pool=REFERENCES_POOL,
    group_name=GROUP,
    owners=[OWNER],
    kinds={"s3"},
    description=(
        "The day's objects (originals and ready variants) copied to the backup store content-addressed "
        "(objects/ab/cd/<sha256>, identical content copied once), with a manifest of every object of the "
        "day and its checksum. Objects never copied before are caught up."
    ),
)
def object_backup(
    context: AssetExecutionContext,
    config: ObjectBackupConfig,
    postgres: PostgresResource,
    object_store: ObjectStoreResource,
    backup_store: ObjectStoreResource,
) -> MaterializeResult:
    settings = load_settings()
    day = date.fromisoformat(context.partition_key)
    media, backup = object_store.store(), backup_store.store()
    progress = logged_progress(context.log.info, f"object backup {day}", unit="objects")
    with progress.ticking():  # a big object, and the check of every copy after the copying
        result = run_object_backup(
            postgres.database_url,
            media,
            backup,
            day,
            workers=settings.copy_workers,
            run_id=context.run.run_id,
            read_share=1.0 if config.read_all else settings.sample_share,
            lineage=run_lineage(context),
            progress=progress,
        )
    for problem in result.problems:
        context.log.warning(f"object backup problem: {problem}")
    return MaterializeResult(
        metadata={
            "status": result.status,
            "objects_listed": result.listed,
            "objects_copied": result.copied,
            "already_in_backup": result.already_copied,
            "mb_copied": mb(result.bytes_copied),
            "seconds": round(result.seconds, 2),
            "copies_read_back": result.copies_read,
            "copies_repaired": result.repaired,
            "problems": len(result.problems),
            "problem_list": _problems_md(result.problems),
            **report_store_stats(
                context.log, "object backup", (media, "media_store"), (backup, "backup_store")
            ),
        }
    )


class BackupRetentionConfig(Config):
    dry_run: bool = Field(default=False, description="Only report what would be deleted")
    policy: str = Field(
        default="", description="Preset from config/backups.yaml; empty uses retention.policy"
    )


@asset(
    key=BACKUP_SET_KEY,
    deps=[DATABASE_BACKUP_KEY, OBJECT_BACKUP_KEY],
    automation_condition=after_upstreams("after the day's backups"),
    group_name=GROUP,
    owners=[OWNER],
    kinds={"s3"},
    description=(
        "The backups being kept: GFS retention (config/backups.yaml) applied to database and object "
        "backups. The newest verified backup of each kind is never deleted; object copies go only when "
        "no kept manifest lists them and no live object has their content. Checks: bytes re-read, and "
        "the daily restore drill."
    ),
)
def backup_kept_set(
    context: AssetExecutionContext,
    config: BackupRetentionConfig,
    postgres: PostgresResource,
    backup_store: ObjectStoreResource,
) -> MaterializeResult:
    settings = load_settings(config.policy or None)
    store = backup_store.store()
    result = apply_retention(
        postgres.database_url,
        store,
        settings.retention,
        dry_run=config.dry_run,
        run_id=context.run.run_id,
        lineage=run_lineage(context),
    )
    rows = "\n".join(
        f"| {d.backup.kind} | {d.backup.backup_date} | {d.backup.status} | {'keep' if d.keep else 'expire'} "
        f"| {d.reason} |"
        for d in sorted(result.kept + result.expired, key=lambda d: (d.backup.kind, d.backup.backup_date))
    )
    return MaterializeResult(
        metadata={
            "policy": settings.retention_name,
            "dry_run": config.dry_run,
            "backups_kept": len(result.kept),
            "backups_expired": len(result.expired),
            "object_copies_expired": result.copies_deleted,
            "mb_freed": mb(result.bytes_freed),
            "failures": len(result.failures),
            "decisions": MetadataValue.md(
                "| kind | day | status | decision | why |\n|---|---|---|---|---|\n" + rows
            ),
            **report_store_stats(context.log, "backup retention", (store, "backup_store")),
        }
    )


@asset_check(
    asset=BACKUP_SET_KEY,
    name=BACKUP_BYTES_VERIFIED,
    automation_condition=after_upstreams("after the kept set changes"),
    description=(
        "Re-reads backup bytes (dumps, manifests, object copies; all, or the configured daily sample so "
        "everything is covered over a cycle) and compares SHA-256s. A missing or corrupt file fails."
    ),
)
def backup_bytes_verified(
    context: AssetCheckExecutionContext, postgres: PostgresResource, backup_store: ObjectStoreResource
) -> AssetCheckResult:
    settings = load_settings()
    store = backup_store.store()
    result = verify_backups(
        postgres.database_url,
        store,
        datetime.now(UTC).date(),
        sample_share=settings.sample_share,
    )
    # A wrong or missing file is an ERROR; a store that would not answer (retries exhausted) is reported
    # apart, as a WARN: the files may be fine and the next run reads them again.
    return AssetCheckResult(
        passed=not result.problems and not result.unreachable,
        severity=AssetCheckSeverity.ERROR if result.problems else AssetCheckSeverity.WARN,
        description="backup store unreachable for some files" if result.unreachable else None,
        metadata={
            "files_checked": result.files,
            "database_dumps": result.database_files,
            "manifests": result.manifests,
            "object_copies": result.object_copies,
            "mb_read": mb(result.bytes_read),
            "cycle_days": result.groups,
            "problems": len(result.problems),
            "problem_list": _problems_md(result.problems),
            "unreachable": len(result.unreachable),
            "unreachable_list": _problems_md(result.unreachable),
            "copies_to_repair": result.copies_to_repair,
            "days_without_verified_dump": ", ".join(result.days_without_verified_dump) or "none",
            **report_store_stats(context.log, "backup verification", (store, "backup_store")),
        },
    )


@asset_check(
    asset=BACKUP_SET_KEY,
    name=RESTORE_DRILL,
    automation_condition=after_upstreams("after the kept set changes"),
    description=(
        "Restores the newest database backup into a scratch database, compares every table's row count "
        "and content hash with the manifest, drops it; restores a sample of objects and checks their "
        "SHA-256s. Passes only if everything matches."
    ),
)
def restore_drill(
    context: AssetCheckExecutionContext, postgres: PostgresResource, backup_store: ObjectStoreResource
) -> AssetCheckResult:
    settings = load_settings()
    result = run_restore_drill(
        postgres.database_url,
        backup_store.store(),
        object_sample=settings.drill_object_sample,
        pg_bin_dir=settings.pg_bin_dir,
        exclude_schemas=settings.exclude_schemas,
    )
    return AssetCheckResult(
        passed=result.passed,
        severity=AssetCheckSeverity.ERROR,
        metadata={
            "database_backup_date": result.database_backup_date or "none",
            "tables_compared": result.tables,
            "rows_restored": result.rows,
            "dump_mb": mb(result.dump_bytes),
            "database_restore_seconds": round(result.database_seconds, 2),
            "objects_sampled": result.objects_sampled,
            "objects_restored": result.objects_restored,
            "problems": len(result.problems),
            "problem_list": _problems_md(result.problems),
        },
    )


backup_assets = [database_backup, object_backup, backup_kept_set]
backup_checks = [backup_bytes_verified, restore_drill]
