"""Restores, for a person in a hurry: a database from a day's backup into a named database, and objects
(one owner's, one key, or a whole day's) into a target store/prefix. Every byte is checked against the
checksum recorded at backup time before it is used.

A database restore needs only the backup store (the manifest names the dump), so it works when the
catalog itself is what was lost. Restoring objects by owner or key looks them up in the catalog (restore
the database first if it is gone); restoring a day reads that day's manifest from the backup store.
"""

from __future__ import annotations

import re
import subprocess
import tempfile
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from core.backups import database as db_backup
from core.backups import objects as obj_backup
from core.backups.pgtools import find_tool, libpq_target, server_major_version
from core.backups.tables import TableDigest, compare_digests, digest_database
from core.catalog.db import get_engine, sqlalchemy_url
from core.keys import validate_key, validate_prefix
from core.objectstore.base import ObjectNotFound, ObjectStore, ObjectStoreError
from core.objectstore.retry import StoreUnavailable

_DB_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,62}")


class RestoreError(RuntimeError):
    """The restore could not be done (missing or corrupt backup, target exists, pg_restore failed)."""


@dataclass
class DatabaseRestoreResult:
    database: str
    backup_date: str
    dump_key: str
    size_bytes: int
    tables: int
    rows: int
    problems: list[str]
    seconds: float
    skipped: list[str] = field(default_factory=list)  # newer dumps of the day passed over, and why

    @property
    def matches_manifest(self) -> bool:
        return not self.problems


def _admin_engine(server_url: str) -> sa.Engine:
    return sa.create_engine(
        sqlalchemy_url(server_url), isolation_level="AUTOCOMMIT", poolclass=sa.pool.NullPool
    )


def create_database(server_url: str, name: str) -> None:
    if not _DB_NAME.fullmatch(name):
        raise RestoreError(f"{name!r} is not a plain database name (letters, digits, _; max 63)")
    engine = _admin_engine(server_url)
    try:
        with engine.connect() as conn:
            if conn.execute(sa.text("SELECT 1 FROM pg_database WHERE datname = :n"), {"n": name}).scalar():
                raise RestoreError(f"database {name!r} already exists; choose another name or drop it first")
            conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    finally:
        engine.dispose()


def drop_database(server_url: str, name: str) -> None:
    if not _DB_NAME.fullmatch(name):
        raise RestoreError(f"{name!r} is not a plain database name")
    engine = _admin_engine(server_url)
    try:
        with engine.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    finally:
        engine.dispose()


def database_url_for(server_url: str, name: str) -> str:
    return (
        sa.engine.make_url(sqlalchemy_url(server_url))
        .set(database=name)
        .render_as_string(hide_password=False)
    )


def digest_restored(url: str, exclude_schemas: tuple[str, ...] = ()) -> dict[str, TableDigest]:
    engine = sa.create_engine(sqlalchemy_url(url), poolclass=sa.pool.NullPool)
    try:
        with engine.connect() as conn:
            conn = conn.execution_options(isolation_level="REPEATABLE READ")
            with conn.begin():
                return digest_database(conn, exclude_schemas)
    finally:
        engine.dispose()


def restore_database(
    server_url: str,
    store: ObjectStore,
    day: date | None,
    into: str,
    *,
    pg_bin_dir: str = "",
    exclude_schemas: tuple[str, ...] = (),
    work_dir: Path | None = None,
    dump_key: str | None = None,
) -> DatabaseRestoreResult:
    """Restore the newest intact dump of `day` (None: the newest day), or the dump named by `dump_key`,
    into a new database `into` on the server `server_url` points at, then compare every table with that
    dump's manifest. A listed dump that is missing or does not hash to its checksum is skipped (and
    reported) for the next older one of the day."""
    import time

    started = time.monotonic()
    if day is None and dump_key:
        day = date.fromisoformat(dump_key.split("/")[1])
    day = day or db_backup.latest_manifest_day(store)
    if day is None:
        raise RestoreError("the backup store holds no database backup manifest")
    try:
        candidates = db_backup.dump_candidates(store, day)
    except ObjectNotFound:
        raise RestoreError(f"no database backup manifest for {day} in the backup store") from None
    if dump_key:
        named = [c for c in candidates if c["dump_key"] == dump_key]
        candidates = named or [{"dump_key": dump_key, "sha256": None}]
    major = server_major_version(get_engine(server_url))
    restore_tool = find_tool("pg_restore", major, pg_bin_dir)
    skipped: list[str] = []
    with tempfile.TemporaryDirectory(prefix="db-restore-", dir=work_dir) as tmp:
        path = Path(tmp) / "restore.dump"
        chosen: dict[str, Any] | None = None
        for candidate in candidates:
            key = candidate["dump_key"]
            try:
                manifest = db_backup.manifest_of_dump(store, day, candidate)
                expected = candidate.get("sha256") or manifest["sha256"]
                actual = store.download_to(key, path)
            except ObjectNotFound:
                skipped.append(f"{key}: missing from the backup store")
                continue
            except ObjectStoreError as exc:
                skipped.append(f"{key}: cannot be read ({exc})")
                continue
            if actual != expected:
                skipped.append(f"{key}: corrupt (hashes to {actual[:12]}, the manifest says {expected[:12]})")
                continue
            chosen = manifest
            break
        if chosen is None:
            raise RestoreError(f"no intact database dump of {day}: " + "; ".join(skipped))
        manifest = chosen
        key = manifest["dump_key"]
        create_database(server_url, into)
        target = libpq_target(database_url_for(server_url, into))
        command = [
            str(restore_tool.path),
            "--exit-on-error",
            "--no-owner",
            "--no-privileges",
            "--no-password",
            f"--dbname={target.conninfo}",
            str(path),
        ]
        out = subprocess.run(command, env=target.env, capture_output=True, text=True)
        if out.returncode != 0:
            drop_database(server_url, into)
            raise RestoreError(f"pg_restore failed (exit {out.returncode}): {out.stderr.strip()[:1000]}")
        size = path.stat().st_size
    restored = digest_restored(database_url_for(server_url, into), exclude_schemas)
    problems = compare_digests(manifest["tables"], restored)
    return DatabaseRestoreResult(
        database=into,
        backup_date=day.isoformat(),
        dump_key=key,
        size_bytes=size,
        tables=len(restored),
        rows=sum(d.rows for d in restored.values()),
        problems=problems,
        seconds=time.monotonic() - started,
        skipped=skipped,
    )


# -- objects -------------------------------------------------------------------------------------------

_CATALOG_ENTRIES = """
    SELECT so.id, 'original' AS kind, so.sha256, so.size_bytes, so.storage_key, c.backup_key
      FROM media_catalog.stored_objects so
      LEFT JOIN media_catalog.backup_object_copies c ON c.sha256 = so.sha256
     WHERE {original_filter}
    UNION ALL
    SELECT v.id, 'variant', v.sha256, v.size_bytes, v.storage_key, c.backup_key
      FROM media_catalog.variants v
      LEFT JOIN media_catalog.backup_object_copies c ON c.sha256 = v.sha256
     WHERE v.sha256 IS NOT NULL AND v.storage_key IS NOT NULL AND {variant_filter}
    ORDER BY 2, 1
"""
_BY_OWNER = "so.id IN (SELECT object_id FROM media_catalog.object_references WHERE owner_id = :owner)"


def entries_for_owner(database_url: str, owner: str) -> list[dict[str, Any]]:
    """Every original an owner ever referenced (released and deleted ones too) and its variants."""
    sql = _CATALOG_ENTRIES.format(
        original_filter=_BY_OWNER, variant_filter=_BY_OWNER.replace("so.id", "v.parent_object_id")
    )
    return _catalog_entries(database_url, sql, {"owner": owner})


def entries_for_key(database_url: str, key: str) -> list[dict[str, Any]]:
    sql = _CATALOG_ENTRIES.format(
        original_filter="so.storage_key = :key", variant_filter="v.storage_key = :key"
    )
    return _catalog_entries(database_url, sql, {"key": key})


def _catalog_entries(database_url: str, sql: str, params: dict[str, str]) -> list[dict[str, Any]]:
    with get_engine(database_url).connect() as conn:
        rows = conn.execute(sa.text(sql), params).all()
    return [
        {
            "kind": row.kind,
            "id": int(row.id),
            "sha256": row.sha256.strip(),
            "size_bytes": int(row.size_bytes or 0),
            "source_key": row.storage_key,
            "backup_key": row.backup_key,
        }
        for row in rows
    ]


def entries_for_day(store: ObjectStore, day: date) -> list[dict[str, Any]]:
    try:
        return list(obj_backup.read_day_manifest(store, day)["objects"])
    except ObjectNotFound:
        raise RestoreError(f"no object backup manifest for {day} in the backup store") from None


@dataclass
class ObjectRestoreResult:
    requested: int = 0
    restored: int = 0
    already_restored: int = 0  # the target already held the right bytes (a rerun fetches only the rest)
    bytes: int = 0
    restored_keys: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    missing: list[dict[str, str]] = field(default_factory=list)  # {"key", "sha256", "reason"} per object

    def report(self) -> dict[str, Any]:
        """What a person (or the rerun) needs: counts and every object not restored, with why."""
        return {
            "requested": self.requested,
            "restored": self.restored,
            "already_restored": self.already_restored,
            "bytes": self.bytes,
            "missing": self.missing,
        }


def _already_there(target: ObjectStore, key: str, sha256: str) -> bool:
    try:
        info = target.head(key)
    except ObjectStoreError:
        return False  # unknown: fetch it again
    return info is not None and (info.sha256 or "") == sha256


def restore_objects(
    backup: ObjectStore,
    target: ObjectStore,
    entries: list[dict[str, Any]],
    target_prefix: str = "",
    *,
    work_dir: Path | None = None,
) -> ObjectRestoreResult:
    """Copy each entry's backup bytes to `target_prefix + source_key` in `target`, verifying checksums.
    An entry that cannot be restored is reported with its reason and the rest go on; an entry whose
    target already holds the right bytes is skipped, so rerunning after a partial restore fetches only
    what is missing."""
    if target_prefix:
        validate_prefix(target_prefix)
    result = ObjectRestoreResult(requested=len(entries))

    def missing(label: str, entry: dict[str, Any], reason: str) -> None:
        result.problems.append(f"{label}: {reason}")
        result.missing.append({"key": str(label), "sha256": str(entry.get("sha256", "")), "reason": reason})

    with tempfile.TemporaryDirectory(prefix="obj-restore-", dir=work_dir) as tmp:
        for entry in entries:
            source_key = entry.get("backup_key") or ""
            label = entry.get("source_key") or entry["sha256"]
            if not source_key:
                missing(label, entry, "never copied to the backup location")
                continue
            try:
                key = validate_key(f"{target_prefix}{entry['source_key']}")
                if _already_there(target, key, entry["sha256"]):
                    result.already_restored += 1
                    result.restored_keys.append(key)
                    continue
                path = Path(tmp) / entry["sha256"]
                actual = backup.download_to(source_key, path)
                if actual != entry["sha256"]:
                    missing(label, entry, f"backup copy is corrupt (hashes to {actual[:12]})")
                    continue
                info = target.put_file(
                    key,
                    path,
                    sha256=actual,
                    content_type=entry.get("mime_type") or "application/octet-stream",
                )
                path.unlink()
            except ObjectNotFound:
                missing(label, entry, f"backup copy {source_key} is missing")
                continue
            except StoreUnavailable as exc:
                missing(label, entry, f"store unavailable, rerun to fetch it: {exc}")
                continue
            except (ObjectStoreError, ValueError) as exc:
                missing(label, entry, str(exc))
                continue
            result.restored += 1
            result.bytes += info.size
            result.restored_keys.append(key)
    return result
