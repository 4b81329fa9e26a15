"""Database backups: a compressed custom-format pg_dump of the whole database (the app's tables and the
catalog), taken in the same snapshot as the per-table counts and hashes that its manifest records.

Lifecycle of the catalog row: running -> complete (dump uploaded, size and checksum confirmed by the
store) -> verified (bytes re-read from the store match, archive readable by pg_restore). Anything else
(non-zero exit, a killed pg_dump, a mismatch after upload) ends as failed and is never verified.
"""

from __future__ import annotations

import json
import subprocess
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from core.backups.pgtools import PgTool, find_tool, libpq_target, server_major_version
from core.backups.tables import digest_database
from core.catalog.db import get_engine
from core.catalog.models import Backup
from core.keys import safe_segment
from core.objectstore.base import ObjectStore, sha256_file, sha256_hex
from core.progress import ProgressReporter

DUMP_CONTENT_TYPE = "application/vnd.postgresql.custom-dump"
MANIFEST_CONTENT_TYPE = "application/json"


class BackupFailed(RuntimeError):
    """The backup did not produce a complete, confirmed dump; its catalog row says why."""


@dataclass
class DatabaseBackupResult:
    backup_id: int
    day: date
    storage_key: str
    manifest_key: str
    size_bytes: int
    sha256: str
    seconds: float
    tables: dict[str, dict[str, Any]] = field(default_factory=dict)

    @property
    def rows(self) -> int:
        return sum(int(t["rows"]) for t in self.tables.values())


def day_prefix(day: date) -> str:
    return f"database/{day.isoformat()}"


def day_manifest_key(day: date) -> str:
    return f"{day_prefix(day)}/manifest.json"


def _now() -> datetime:
    return datetime.now(UTC)


def _insert_row(engine: sa.Engine, day: date, run_id: str | None) -> int:
    with engine.begin() as conn:
        return int(
            conn.execute(
                sa.insert(Backup)
                .values(kind="database", backup_date=day, status="running", run_id=run_id)
                .returning(Backup.id)
            ).scalar_one()
        )


def _update_row(engine: sa.Engine, backup_id: int, **values: Any) -> None:
    with engine.begin() as conn:
        conn.execute(sa.update(Backup).where(Backup.id == backup_id).values(**values))


def dump_command(
    tool: PgTool, conninfo: str, target: Path, compression: int, snapshot: str | None
) -> list[str]:
    """The pg_dump argv; the password is never part of it (libpq reads PGPASSWORD)."""
    command = [str(tool.path), "--format=custom", f"--compress={compression}", "--no-password"]
    if snapshot:
        command.append(f"--snapshot={snapshot}")
    return [*command, f"--file={target}", f"--dbname={conninfo}"]


def archive_table_count(restore_tool: PgTool, path: Path) -> int:
    """Read the archive's table of contents with pg_restore --list: proves the file is a whole archive."""
    out = subprocess.run(
        [str(restore_tool.path), "--list", str(path)], capture_output=True, text=True, timeout=600
    )
    if out.returncode != 0:
        raise BackupFailed(f"pg_restore cannot read the archive: {out.stderr.strip()[:500]}")
    return sum(1 for line in out.stdout.splitlines() if " TABLE DATA " in line)


def run_database_backup(
    database_url: str,
    store: ObjectStore,
    day: date,
    *,
    compression: int = 6,
    pg_bin_dir: str = "",
    exclude_schemas: tuple[str, ...] = (),
    run_id: str | None = None,
    work_dir: Path | None = None,
    on_dump_started: Callable[[subprocess.Popen[bytes]], None] | None = None,
    progress: ProgressReporter | None = None,
) -> DatabaseBackupResult:
    """Dump the database for `day` into `store`; return what was written. Raises BackupFailed.
    `progress` follows the table digests taken beside pg_dump (tables and MB read)."""
    engine = get_engine(database_url)
    started = _now()
    backup_id = _insert_row(engine, day, run_id)
    try:
        major = server_major_version(engine)
        dump_tool = find_tool("pg_dump", major, pg_bin_dir)
        restore_tool = find_tool("pg_restore", major, pg_bin_dir)
        target = libpq_target(database_url)
        stamp = started.strftime("%Y%m%dT%H%M%SZ")
        key = f"{day_prefix(day)}/{safe_segment(target.database or 'database')}-{stamp}-{backup_id}.dump"
        with tempfile.TemporaryDirectory(prefix="db-backup-", dir=work_dir) as tmp:
            path = Path(tmp) / "backup.dump"
            tables, snapshot_time = _dump_in_snapshot(
                engine, dump_tool, target, path, compression, exclude_schemas, on_dump_started, progress
            )
            size = path.stat().st_size
            sha256 = sha256_file(path)
            archived_tables = archive_table_count(restore_tool, path)
            # Recorded before the upload, so a run killed mid-upload leaves a row retention can clean up.
            _update_row(engine, backup_id, storage_key=key, size_bytes=size, sha256=sha256)
            store.put_file(key, path, sha256=sha256, content_type=DUMP_CONTENT_TYPE)
        info = store.head(key)
        if info is None or info.size != size or (info.sha256 or "").lower() != sha256:
            raise BackupFailed(f"uploaded dump {key} does not match the local file (size/checksum)")
        _update_row(engine, backup_id, status="complete", storage_key=key, size_bytes=size, sha256=sha256)
        if not store.verify(key, sha256):
            raise BackupFailed(f"re-reading {key} from the backup store did not reproduce {sha256}")
        finished = _now()
        manifest = {
            "kind": "database",
            "backup_id": backup_id,
            "backup_date": day.isoformat(),
            "database": target.database,
            "dump_key": key,
            "size_bytes": size,
            "sha256": sha256,
            "format": "pg_dump custom, compressed",
            "compression_level": compression,
            "server_major_version": major,
            "pg_dump_version": dump_tool.version,
            "snapshot_time": snapshot_time,
            "archived_tables": archived_tables,
            "started_at": started.isoformat(),
            "finished_at": finished.isoformat(),
            "tables": {name: digest.as_dict() for name, digest in tables.items()},
        }
        # This dump's own manifest first, then the day's, which lists every verified dump of the day
        # (newest first) so a restore can fall back to an earlier one if the newest proves corrupt.
        own_key = dump_manifest_key(key)
        _put_json(store, own_key, manifest)
        manifest["manifest_key"] = own_key
        manifest["dumps"] = [
            {**entry, "manifest_key": dump_manifest_key(entry["dump_key"])}
            for entry in _verified_dumps(engine, day, backup_id, manifest)
        ]
        manifest_key = day_manifest_key(day)
        _put_json(store, manifest_key, manifest)
        _update_row(
            engine,
            backup_id,
            status="verified",
            manifest_key=manifest_key,
            manifest=manifest,
            object_count=len(tables),
            finished_at=finished,
            verified_at=finished,
        )
    except BaseException as exc:
        _update_row(
            engine,
            backup_id,
            status="failed",
            error=f"{type(exc).__name__}: {exc}"[:2000],
            finished_at=_now(),
        )
        if isinstance(exc, BackupFailed):
            raise
        if isinstance(exc, Exception):
            raise BackupFailed(str(exc)) from exc
        raise
    return DatabaseBackupResult(
        backup_id=backup_id,
        day=day,
        storage_key=key,
        manifest_key=manifest_key,
        size_bytes=size,
        sha256=sha256,
        seconds=(finished - started).total_seconds(),
        tables=manifest["tables"],
    )


def _dump_in_snapshot(
    engine: sa.Engine,
    dump_tool: PgTool,
    target: Any,
    path: Path,
    compression: int,
    exclude_schemas: tuple[str, ...],
    on_dump_started: Callable[[subprocess.Popen[bytes]], None] | None,
    progress: ProgressReporter | None = None,
) -> tuple[dict[str, Any], str]:
    """Export a snapshot, run pg_dump on it, and digest the tables in that same snapshot meanwhile."""
    with engine.connect() as conn:
        conn = conn.execution_options(isolation_level="REPEATABLE READ")
        with conn.begin():
            conn.execute(sa.text("SET TRANSACTION READ ONLY"))
            snapshot = str(conn.execute(sa.text("SELECT pg_export_snapshot()")).scalar_one())
            snapshot_time = str(conn.execute(sa.text("SELECT now()")).scalar_one())
            command = dump_command(dump_tool, target.conninfo, path, compression, snapshot)
            with subprocess.Popen(
                command, env=target.env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
            ) as proc:
                try:
                    if on_dump_started is not None:
                        on_dump_started(proc)
                    tables = digest_database(conn, exclude_schemas, progress)
                    _, stderr = proc.communicate()
                except BaseException:
                    proc.kill()
                    raise
            if proc.returncode != 0:
                detail = stderr.decode("utf-8", "replace").strip()[:1000]
                how = (
                    f"killed by signal {-proc.returncode}"
                    if proc.returncode < 0
                    else f"exit {proc.returncode}"
                )
                raise BackupFailed(f"pg_dump failed ({how}): {detail}")
    return tables, snapshot_time


def dump_manifest_key(dump_key: str) -> str:
    """Each dump's own manifest sits beside it: database/<day>/<name>.manifest.json."""
    return dump_key.removesuffix(".dump") + ".manifest.json"


def _put_json(store: ObjectStore, key: str, document: dict[str, Any]) -> None:
    encoded = json.dumps(document, indent=1, sort_keys=True).encode("utf-8")
    store.put_bytes(key, encoded, sha256=sha256_hex(encoded), content_type=MANIFEST_CONTENT_TYPE)


def _verified_dumps(
    engine: sa.Engine, day: date, backup_id: int, current: dict[str, Any]
) -> list[dict[str, Any]]:
    """Every dump of `day` that was verified and not expired or found corrupt since, plus this one."""
    with engine.connect() as conn:
        rows = conn.execute(
            sa.select(Backup.id, Backup.storage_key, Backup.sha256, Backup.size_bytes, Backup.finished_at)
            .where(
                Backup.kind == "database",
                Backup.backup_date == day,
                Backup.status == "verified",
                Backup.id != backup_id,
            )
            .order_by(Backup.id.desc())
        ).all()
    dumps = [
        {
            "backup_id": backup_id,
            "dump_key": current["dump_key"],
            "sha256": current["sha256"],
            "size_bytes": current["size_bytes"],
            "finished_at": current["finished_at"],
        }
    ]
    dumps.extend(
        {
            "backup_id": int(row.id),
            "dump_key": row.storage_key,
            "sha256": (row.sha256 or "").strip(),
            "size_bytes": int(row.size_bytes or 0),
            "finished_at": row.finished_at.isoformat() if row.finished_at else None,
        }
        for row in rows
        if row.storage_key
    )
    return dumps


def read_manifest(store: ObjectStore, day: date) -> dict[str, Any]:
    """The manifest of the newest verified database backup of `day`, from the backup store alone; its
    `dumps` lists every verified dump of the day, newest first (manifests written before it have none)."""
    return json.loads(store.get_bytes(day_manifest_key(day)))


def dump_candidates(store: ObjectStore, day: date) -> list[dict[str, Any]]:
    """The dumps of `day` a restore may use, newest first: those the day's manifest lists, else the
    newest alone (manifests written before the list existed)."""
    manifest = read_manifest(store, day)
    listed = manifest.get("dumps") or [
        {
            "backup_id": manifest.get("backup_id"),
            "dump_key": manifest["dump_key"],
            "sha256": manifest["sha256"],
        }
    ]
    return [dict(entry) for entry in listed]


def manifest_of_dump(store: ObjectStore, day: date, entry: dict[str, Any]) -> dict[str, Any]:
    """The full manifest (table digests) of one listed dump."""
    day_manifest = read_manifest(store, day)
    if day_manifest.get("dump_key") == entry["dump_key"]:
        return day_manifest
    return json.loads(store.get_bytes(entry.get("manifest_key") or dump_manifest_key(entry["dump_key"])))


def latest_manifest_day(store: ObjectStore) -> date | None:
    days = sorted(
        {
            info.key.split("/")[1]
            for info in store.list_objects("database/")
            if info.key.endswith("/manifest.json")
        }
    )
    return date.fromisoformat(days[-1]) if days else None
