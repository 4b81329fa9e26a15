"""The restore drill: prove, every day, that the newest backups restore. The newest database backup is
restored into a scratch database and compared table by table with its manifest, then dropped; a random
sample of backed-up objects is restored into a scratch folder and checksummed."""

from __future__ import annotations

import tempfile
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import sqlalchemy as sa

from core.backups import database as db_backup
from core.backups.restore import RestoreError, drop_database, restore_database, restore_objects
from core.catalog.db import get_engine
from core.objectstore.base import ObjectStore
from core.objectstore.local import LocalObjectStore


@dataclass
class DrillResult:
    database_backup_date: str | None = None
    database: str | None = None
    tables: int = 0
    rows: int = 0
    dump_bytes: int = 0
    database_seconds: float = 0.0
    objects_sampled: int = 0
    objects_restored: int = 0
    object_bytes: int = 0
    problems: list[str] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return not self.problems and self.database_backup_date is not None


def sample_copies(database_url: str, size: int) -> list[dict[str, object]]:
    with get_engine(database_url).connect() as conn:
        rows = conn.execute(
            sa.text(
                "SELECT sha256, backup_key, size_bytes FROM media_catalog.backup_object_copies "
                "ORDER BY random() LIMIT :n"
            ),
            {"n": size},
        ).all()
    return [
        {
            "sha256": r.sha256.strip(),
            "backup_key": r.backup_key,
            "size_bytes": int(r.size_bytes),
            "source_key": f"drill/{r.sha256.strip()}",
        }
        for r in rows
    ]


def run_restore_drill(
    database_url: str,
    store: ObjectStore,
    *,
    object_sample: int = 25,
    pg_bin_dir: str = "",
    exclude_schemas: tuple[str, ...] = (),
) -> DrillResult:
    result = DrillResult()
    scratch = f"restore_drill_{datetime.now(UTC):%Y%m%d%H%M%S}_{time.monotonic_ns() % 100000}"
    try:
        restored = restore_database(
            database_url, store, None, scratch, pg_bin_dir=pg_bin_dir, exclude_schemas=exclude_schemas
        )
        result.database_backup_date = restored.backup_date
        result.database = scratch
        result.tables, result.rows = restored.tables, restored.rows
        result.dump_bytes, result.database_seconds = restored.size_bytes, restored.seconds
        result.problems.extend(f"database: {p}" for p in restored.problems)
    except RestoreError as exc:
        result.problems.append(f"database: {exc}")
    finally:
        drop_database(database_url, scratch)
    if db_backup.latest_manifest_day(store) is None:
        result.problems.append("database: no database backup to drill")
    entries = sample_copies(database_url, object_sample)
    result.objects_sampled = len(entries)
    with tempfile.TemporaryDirectory(prefix="drill-objects-") as tmp:
        scratch_store = LocalObjectStore(Path(tmp) / "store", signing_secret="restore-drill")
        restored_objects = restore_objects(store, scratch_store, entries, work_dir=Path(tmp))
    result.objects_restored, result.object_bytes = restored_objects.restored, restored_objects.bytes
    result.problems.extend(f"objects: {p}" for p in restored_objects.problems)
    return result
