"""Restore from backups, for a person in a hurry. Reads the same environment as the platform
(DATABASE_URL, BACKUP_STORE_*, OBJECT_STORE_*; see resources/settings.py).

    python -m orchestration.restore database --day 2026-11-21 --into restored_db
    python -m orchestration.restore database --into restored_db            # newest backup day
    python -m orchestration.restore database --dump database/2026-11-21/<name>.dump --into restored_db
    python -m orchestration.restore objects --owner user-42 --target-prefix restored/
    python -m orchestration.restore objects --key originals/ab/cd/<sha>.png --target-prefix restored/
    python -m orchestration.restore objects --day 2026-11-21 --target-prefix restored/
    python -m orchestration.restore list                                    # what backups exist

The database is restored into a NEW database on the same server and then compared table by table with
the manifest written at backup time (the newest intact dump of the day; a corrupt newer one is skipped
and reported); objects are checksummed before they are written. An object restore goes on past objects it
cannot fetch, prints and writes (--report) the list of what is missing and why, and exits 2; run it again
to fetch only what is missing. Exit status is 0 only if everything requested was restored and matched.
"""

from __future__ import annotations

import argparse
import json
import sys
from datetime import UTC, date, datetime
from pathlib import Path

from core.backups.restore import (
    RestoreError,
    entries_for_day,
    entries_for_key,
    entries_for_owner,
    restore_database,
    restore_objects,
)
from core.backups.settings import load_settings
from core.objectstore.base import ObjectStore, ObjectStoreError


def _stores() -> tuple[ObjectStore, ObjectStore]:
    """(media store, backup store) from the environment, secrets resolved as a Dagster run would."""
    from resources.settings import backup_store_resource, object_store_resource

    with (
        object_store_resource().process_config_and_initialize_cm() as media,
        backup_store_resource().process_config_and_initialize_cm() as backup,
    ):
        return media.store(), backup.store()


def cmd_database(args: argparse.Namespace, database_url: str) -> int:
    settings = load_settings()
    _, backup = _stores()
    result = restore_database(
        database_url,
        backup,
        date.fromisoformat(args.day) if args.day else None,
        args.into,
        pg_bin_dir=settings.pg_bin_dir,
        exclude_schemas=settings.exclude_schemas,
        dump_key=args.dump or None,
    )
    for skipped in result.skipped:
        print(f"skipped {skipped}")
    print(
        f"restored database backup of {result.backup_date} ({result.dump_key}) into {result.database}: "
        f"{result.tables} tables, {result.rows} rows in {result.seconds:.1f}s"
    )
    if result.problems:
        print("DIFFERS from the manifest:", *result.problems, sep="\n  ")
        return 2
    print("every table matches the row count and content hash recorded at backup time")
    return 0


def cmd_objects(args: argparse.Namespace, database_url: str) -> int:
    media, backup = _stores()
    if args.owner:
        entries = entries_for_owner(database_url, args.owner)
    elif args.key:
        entries = entries_for_key(database_url, args.key)
    else:
        entries = entries_for_day(backup, date.fromisoformat(args.day))
    result = restore_objects(backup, media, entries, args.target_prefix)
    print(
        f"restored {result.restored} of {result.requested} objects ({result.bytes:,} bytes); "
        f"{result.already_restored} already in place"
    )
    for key in result.restored_keys[:20]:
        print(f"  {key}")
    if len(result.restored_keys) > 20:
        print(f"  ... and {len(result.restored_keys) - 20} more")
    if result.problems:
        print(f"NOT RESTORED ({len(result.missing)}):", *result.problems, sep="\n  ")
        report = Path(args.report or f"restore-missing-{datetime.now(UTC):%Y%m%dT%H%M%SZ}.json")
        report.write_text(json.dumps(result.report(), indent=1))
        print(f"list written to {report}; run the same command again to fetch only what is missing")
        return 2
    if not entries:
        print("nothing matched")
        return 1
    return 0


def cmd_list(database_url: str) -> int:
    import sqlalchemy as sa

    from core.catalog.db import get_engine

    with get_engine(database_url).connect() as conn:
        rows = conn.execute(
            sa.text(
                "SELECT id, kind, backup_date, status, size_bytes, object_count, storage_key "
                "FROM media_catalog.backups WHERE status <> 'expired' ORDER BY backup_date, kind, id"
            )
        ).all()
    for row in rows:
        print(
            f"{row.backup_date}  {row.kind:<8} {row.status:<9} #{row.id:<5} "
            f"{(row.size_bytes or 0):>12,} B  {row.storage_key or ''}"
        )
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m orchestration.restore", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    sub = parser.add_subparsers(dest="command", required=True)
    db = sub.add_parser("database", help="restore a day's database backup into a new database")
    db.add_argument("--day", help="YYYY-MM-DD (default: the newest backup day)")
    db.add_argument("--into", required=True, help="name of the database to create")
    db.add_argument("--dump", help="restore this dump key instead of the day's newest intact one")
    objects = sub.add_parser("objects", help="restore objects into the media store under a prefix")
    which = objects.add_mutually_exclusive_group(required=True)
    which.add_argument("--owner", help="every object this owner referenced")
    which.add_argument("--key", help="one object by its storage key")
    which.add_argument("--day", help="every object in that day's backup manifest (YYYY-MM-DD)")
    objects.add_argument("--target-prefix", default="restored/", help="prefix for restored keys")
    objects.add_argument("--report", help="where to write the list of objects not restored (JSON)")
    sub.add_parser("list", help="list the backups that are kept")
    args = parser.parse_args(argv)

    from resources.settings import resolved_database_url

    database_url = resolved_database_url()
    try:
        if args.command == "database":
            return cmd_database(args, database_url)
        if args.command == "objects":
            return cmd_objects(args, database_url)
        return cmd_list(database_url)
    except (RestoreError, ObjectStoreError) as exc:
        print(f"restore failed: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
