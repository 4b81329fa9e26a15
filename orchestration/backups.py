"""Backup jobs: the daily backups, retention, verification and drill, and the two restore jobs a person in
a hurry can launch from the UI (Launchpad config) - the same code `python -m orchestration.restore` runs."""

import json
from datetime import date

from dagster import AssetSelection, Config, OpExecutionContext, define_asset_job, job, op
from pydantic import Field

from assets.backups import (
    BACKUP_SET_KEY,
    DATABASE_BACKUP_KEY,
    OBJECT_BACKUP_KEY,
    backup_bytes_verified,
    backup_partitions,
    restore_drill,
)
from core.backups.restore import (
    RestoreError,
    entries_for_day,
    entries_for_key,
    entries_for_owner,
    restore_database,
    restore_objects,
)
from core.backups.settings import load_settings
from resources.database import PostgresResource
from resources.object_store import ObjectStoreResource

DATABASE_BACKUP_JOB = "database_backup_job"
OBJECT_BACKUP_JOB = "object_backup_job"
BACKUP_RETENTION_JOB = "backup_retention_job"
BACKUP_VERIFICATION_JOB = "backup_verification_job"
RESTORE_DRILL_JOB = "restore_drill_job"
RESTORE_DATABASE_JOB = "restore_database_job"
RESTORE_OBJECTS_JOB = "restore_objects_job"

database_backup_job = define_asset_job(
    DATABASE_BACKUP_JOB,
    selection=AssetSelection.assets(DATABASE_BACKUP_KEY),
    partitions_def=backup_partitions,
    description="Daily compressed pg_dump of the app tables and the catalog, verified, with a manifest.",
)
object_backup_job = define_asset_job(
    OBJECT_BACKUP_JOB,
    selection=AssetSelection.assets(OBJECT_BACKUP_KEY),
    partitions_def=backup_partitions,
    description="Daily content-addressed copy of the day's new objects to the backup location.",
)
backup_retention_job = define_asset_job(
    BACKUP_RETENTION_JOB,
    selection=AssetSelection.assets(BACKUP_SET_KEY).without_checks(),
    description="Apply backup retention (GFS by default; set dry_run in the config to only report).",
)
backup_verification_job = define_asset_job(
    BACKUP_VERIFICATION_JOB,
    selection=AssetSelection.checks(backup_bytes_verified),
    description="Re-read backup bytes and compare checksums.",
)
restore_drill_job = define_asset_job(
    RESTORE_DRILL_JOB,
    selection=AssetSelection.checks(restore_drill),
    description="Restore the newest backups into scratch space and compare them with their manifests.",
)


class RestoreDatabaseConfig(Config):
    """Restore the newest verified database backup of `day` into a NEW database `into` (same server)."""

    day: str = Field(default="", description="YYYY-MM-DD; empty restores the newest backup day")
    into: str = Field(description="Name of the database to create and restore into (must not exist)")
    dump: str = Field(default="", description="A dump key to restore instead of the day's newest intact dump")


class RestoreObjectsConfig(Config):
    """Restore objects from the backup location into the media store under `target_prefix`.

    Exactly one of owner, key or day selects what to restore.
    """

    owner: str = Field(default="", description="Every object (and variant) this owner ever referenced")
    key: str = Field(default="", description="One object by its original storage key")
    day: str = Field(default="", description="Every object listed in that day's object backup manifest")
    target_prefix: str = Field(
        default="restored/", description="Prefix for restored keys ('' = original keys)"
    )


@op(description="Restore a database backup into a new database and compare it with the manifest.")
def restore_database_op(
    context: OpExecutionContext,
    config: RestoreDatabaseConfig,
    postgres: PostgresResource,
    backup_store: ObjectStoreResource,
) -> None:
    settings = load_settings()
    result = restore_database(
        postgres.database_url,
        backup_store.store(),
        date.fromisoformat(config.day) if config.day else None,
        config.into,
        pg_bin_dir=settings.pg_bin_dir,
        exclude_schemas=settings.exclude_schemas,
        dump_key=config.dump or None,
    )
    for skipped in result.skipped:
        context.log.warning(f"skipped {skipped}")
    context.log.info(
        f"restored {result.backup_date} into {result.database}: {result.tables} tables, {result.rows} rows"
    )
    if result.problems:
        raise RestoreError("restored database differs from the manifest: " + "; ".join(result.problems))


@op(description="Restore objects (by owner, key or day) from the backup location into the media store.")
def restore_objects_op(
    context: OpExecutionContext,
    config: RestoreObjectsConfig,
    postgres: PostgresResource,
    object_store: ObjectStoreResource,
    backup_store: ObjectStoreResource,
) -> None:
    chosen = [name for name in ("owner", "key", "day") if getattr(config, name)]
    if len(chosen) != 1:
        raise RestoreError("set exactly one of owner, key or day")
    backup = backup_store.store()
    if config.owner:
        entries = entries_for_owner(postgres.database_url, config.owner)
    elif config.key:
        entries = entries_for_key(postgres.database_url, config.key)
    else:
        entries = entries_for_day(backup, date.fromisoformat(config.day))
    result = restore_objects(backup, object_store.store(), entries, config.target_prefix)
    context.log.info(
        f"restored {result.restored}/{result.requested} objects ({result.bytes} bytes); "
        f"{result.already_restored} already in place"
    )
    if result.missing:
        context.log.error(f"not restored (rerun to fetch only these): {json.dumps(result.missing)}")
    if result.problems or not entries:
        raise RestoreError("; ".join(result.problems) or "nothing matched: no objects to restore")


@job(name=RESTORE_DATABASE_JOB, description="Restore the database from a given day into a named database.")
def restore_database_job() -> None:
    restore_database_op()


@job(name=RESTORE_OBJECTS_JOB, description="Restore objects for one owner, one key, or a whole day.")
def restore_objects_job() -> None:
    restore_objects_op()


backup_jobs = [
    database_backup_job,
    object_backup_job,
    backup_retention_job,
    backup_verification_job,
    restore_drill_job,
    restore_database_job,
    restore_objects_job,
]
