"""Object backups: each day's new objects (originals and ready variants) copied to the backup location,
content-addressed so identical content is copied once, with a manifest listing every object of the day.

`backup_object_copies` records what the backup location already holds; an object whose content is there
is listed in the manifest but not copied again. Objects that were never copied (the first backup, or a
day that failed) are caught up by the next run.
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from functools import partial
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert as pg_insert

from core.backups.verify import in_sample, sample_groups
from core.catalog.db import get_engine
from core.catalog.models import Backup, BackupObjectCopy
from core.lineage import RunLineage
from core.objectstore.base import (
    ObjectNotFound,
    ObjectStore,
    ObjectStoreError,
    TransientStorageError,
    sha256_hex,
)
from core.objectstore.retry import StoreUnavailable
from core.progress import ProgressReporter

MANIFEST_CONTENT_TYPE = "application/json"
COPY_CONTENT_TYPE = "application/octet-stream"


def copy_key(sha256: str) -> str:
    """Content-addressed location of a backed-up object: objects/ab/cd/<sha256>."""
    return f"objects/{sha256[:2]}/{sha256[2:4]}/{sha256}"


def manifest_key(day: date) -> str:
    return f"object-manifests/{day.isoformat()}/manifest.json"


@dataclass(frozen=True)
class ObjectEntry:
    """One object of the day as the manifest lists it."""

    kind: str  # original | variant
    id: int
    sha256: str
    size_bytes: int
    source_key: str
    mime_type: str
    owners: tuple[str, ...]

    def as_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "id": self.id,
            "sha256": self.sha256,
            "size_bytes": self.size_bytes,
            "source_key": self.source_key,
            "backup_key": copy_key(self.sha256),
            "mime_type": self.mime_type,
            "owners": list(self.owners),
        }


@dataclass
class ObjectBackupResult:
    backup_id: int
    day: date
    listed: int = 0
    copied: int = 0
    already_copied: int = 0
    bytes_copied: int = 0
    copies_read: int = 0  # copies whose bytes were re-read after the copy (sampled, or all)
    repaired: int = 0  # copies found missing or corrupt after the copy and copied again
    problems: list[str] = field(default_factory=list)
    seconds: float = 0.0
    status: str = "running"


_OWNERS = (
    "(SELECT coalesce(array_agg(DISTINCT r.owner_id ORDER BY r.owner_id), ARRAY[]::text[]) FROM "
    "media_catalog.object_references r WHERE r.object_id = {obj})"
)

_DAY_OBJECTS = sa.text(
    f"""
    SELECT 'original' AS kind, so.id, so.sha256, so.size_bytes, so.storage_key, so.mime_type,
           {_OWNERS.format(obj="so.id")} AS owners
      FROM media_catalog.stored_objects so
     WHERE so.status = 'verified' AND so.created_at < :end
       AND (so.created_at >= :start OR NOT EXISTS (
            SELECT 1 FROM media_catalog.backup_object_copies c WHERE c.sha256 = so.sha256))
    UNION ALL
    SELECT 'variant', v.id, v.sha256, v.size_bytes, v.storage_key, v.mime_type,
           {_OWNERS.format(obj="v.parent_object_id")}
      FROM media_catalog.variants v
     WHERE v.status = 'ready' AND v.sha256 IS NOT NULL AND v.storage_key IS NOT NULL AND v.created_at < :end
       AND (v.created_at >= :start OR NOT EXISTS (
            SELECT 1 FROM media_catalog.backup_object_copies c WHERE c.sha256 = v.sha256))
    ORDER BY 1, 2
    """
)


def day_totals(conn: sa.Connection, day: date) -> tuple[int, int]:
    """(objects, bytes) the day's backup will list: catalog rows only, for progress."""
    start, end = day_window(day)
    sql = _DAY_OBJECTS.text.replace("ORDER BY 1, 2", "")
    row = conn.execute(
        sa.text(f"SELECT count(*), coalesce(sum(size_bytes), 0) FROM ({sql}) day_objects"),
        {"start": start, "end": end},
    ).one()
    return int(row[0]), int(row[1])


def day_window(day: date) -> tuple[datetime, datetime]:
    start = datetime.combine(day, time.min, tzinfo=UTC)
    return start, start + timedelta(days=1)


def objects_of_day(conn: sa.Connection, day: date) -> Iterator[ObjectEntry]:
    """Objects created on `day` (UTC) plus any older ones that were never copied; streamed."""
    start, end = day_window(day)
    result = conn.execution_options(stream_results=True, yield_per=1000).execute(
        _DAY_OBJECTS, {"start": start, "end": end}
    )
    for row in result:
        yield ObjectEntry(
            kind=row.kind,
            id=int(row.id),
            sha256=row.sha256.strip(),
            size_bytes=int(row.size_bytes or 0),
            source_key=row.storage_key,
            mime_type=row.mime_type or COPY_CONTENT_TYPE,
            owners=tuple(row.owners or ()),
        )


#: Objects up to this size are copied through memory; larger ones through a temp file (flat memory).
IN_MEMORY_LIMIT = 8 * 1024 * 1024


def copy_object(
    source: ObjectStore, target: ObjectStore, source_key: str, sha256: str, size: int, work_dir: Path
) -> int:
    """Copy one object from `source` to its content address in `target`, checking its checksum on the way.

    Returns the bytes copied. The target store re-checks the digest before the copy becomes visible.
    """
    if size <= IN_MEMORY_LIMIT:
        data = source.get_bytes(source_key)
        if sha256_hex(data) != sha256:
            raise ObjectStoreError(f"source {source_key} does not hash to the catalog's {sha256}")
        put = partial(target.put_bytes, copy_key(sha256), data, sha256=sha256, content_type=COPY_CONTENT_TYPE)
        return put().size
    with tempfile.NamedTemporaryFile(dir=work_dir, prefix="copy-") as tmp:
        path = Path(tmp.name)
        actual = source.download_to(source_key, path)
        if actual != sha256:
            raise ObjectStoreError(f"source {source_key} hashes to {actual}, catalog says {sha256}")
        info = target.put_file(copy_key(sha256), path, sha256=sha256, content_type=COPY_CONTENT_TYPE)
        return info.size


def _already_copied(conn: sa.Connection, shas: list[str]) -> set[str]:
    if not shas:
        return set()
    rows = conn.execute(sa.select(BackupObjectCopy.sha256).where(BackupObjectCopy.sha256.in_(shas)))
    return {sha.strip() for (sha,) in rows}


def run_object_backup(
    database_url: str,
    source: ObjectStore,
    backup: ObjectStore,
    day: date,
    *,
    workers: int = 8,
    run_id: str | None = None,
    batch_size: int = 500,
    read_share: float = 1.0,
    lineage: RunLineage | None = None,
    progress: ProgressReporter | None = None,
) -> ObjectBackupResult:
    """Back up the objects of `day`; the catalog row ends verified only if every listed object is in the
    backup location with its checksum. Problems (a missing or corrupt source) are recorded, not fatal.

    After copying, every listed copy is checked by HEAD and a `read_share` sample of them (1.0: all) by
    re-reading its bytes; a copy found missing or corrupt is copied again from the source and re-checked.
    Copies made record `lineage` (run, asset, partition; by default just `run_id`).
    """
    lineage = lineage or RunLineage(run_id=run_id)
    engine = get_engine(database_url)
    started = datetime.now(UTC)
    with engine.begin() as conn:
        backup_id = int(
            conn.execute(
                sa.insert(Backup)
                .values(kind="objects", backup_date=day, status="running", run_id=run_id)
                .returning(Backup.id)
            ).scalar_one()
        )
    result = ObjectBackupResult(backup_id=backup_id, day=day)
    entries: list[dict[str, Any]] = []
    try:
        with tempfile.TemporaryDirectory(prefix="obj-backup-") as tmp, ThreadPoolExecutor(workers) as pool:
            work_dir = Path(tmp)
            with engine.connect() as read_conn:
                if progress is not None and progress.total is None:
                    progress.total, progress.total_bytes = day_totals(read_conn, day)
                batch: list[ObjectEntry] = []
                for entry in objects_of_day(read_conn, day):
                    batch.append(entry)
                    if len(batch) >= batch_size:
                        _copy_batch(
                            engine, source, backup, batch, backup_id, pool, work_dir, result, entries,
                            lineage, progress,
                        )  # fmt: skip
                        batch = []
                if batch:
                    _copy_batch(
                        engine, source, backup, batch, backup_id, pool, work_dir, result, entries, lineage,
                        progress,
                    )  # fmt: skip
            if progress is not None:
                progress.finish()
        # Every listed object must now be in the backup location with the right checksum.
        _check_and_repair(
            engine, source, backup, entries, backup_id, day, read_share, workers, result, lineage
        )
        manifest = {
            "kind": "objects",
            "backup_id": backup_id,
            "backup_date": day.isoformat(),
            "started_at": started.isoformat(),
            "object_count": len(entries),
            "bytes": sum(int(e["size_bytes"]) for e in entries),
            "problems": result.problems,
            "objects": entries,
        }
        encoded = json.dumps(manifest, sort_keys=True).encode("utf-8")
        key = manifest_key(day)
        backup.put_bytes(key, encoded, sha256=sha256_hex(encoded), content_type=MANIFEST_CONTENT_TYPE)
        finished = datetime.now(UTC)
        result.status = "complete" if result.problems else "verified"
        result.listed = len(entries)
        result.seconds = (finished - started).total_seconds()
        with engine.begin() as conn:
            conn.execute(
                sa.update(Backup)
                .where(Backup.id == backup_id)
                .values(
                    status=result.status,
                    manifest_key=key,
                    storage_key=key,
                    manifest=manifest,
                    size_bytes=len(encoded),
                    sha256=sha256_hex(encoded),
                    object_count=len(entries),
                    finished_at=finished,
                    verified_at=finished if result.status == "verified" else None,
                    error="; ".join(result.problems)[:2000] or None,
                )
            )
            # A rerun of the day replaces the earlier record (its manifest key was just overwritten).
            conn.execute(
                sa.update(Backup)
                .where(
                    Backup.kind == "objects",
                    Backup.backup_date == day,
                    Backup.id != backup_id,
                    Backup.status != "expired",
                )
                .values(status="expired", expired_at=finished, error=f"superseded by backup {backup_id}")
            )
    except BaseException as exc:
        with engine.begin() as conn:
            conn.execute(
                sa.update(Backup)
                .where(Backup.id == backup_id)
                .values(
                    status="failed",
                    error=f"{type(exc).__name__}: {exc}"[:2000],
                    finished_at=datetime.now(UTC),
                )
            )
        raise
    return result


def _copy_batch(
    engine: sa.Engine,
    source: ObjectStore,
    backup: ObjectStore,
    batch: list[ObjectEntry],
    backup_id: int,
    pool: ThreadPoolExecutor,
    work_dir: Path,
    result: ObjectBackupResult,
    entries: list[dict[str, Any]],
    lineage: RunLineage,
    progress: ProgressReporter | None = None,
) -> None:
    advance = progress.advance if progress is not None else lambda _items, _nbytes: None
    with engine.connect() as conn:
        present = _already_copied(conn, sorted({e.sha256 for e in batch}))
    to_copy: dict[str, ObjectEntry] = {}
    for entry in batch:
        if entry.sha256 not in present and entry.sha256 not in to_copy:
            to_copy[entry.sha256] = entry

    def attempt(entry: ObjectEntry) -> tuple[ObjectEntry, int | None, str | None]:
        try:
            return (
                entry,
                copy_object(source, backup, entry.source_key, entry.sha256, entry.size_bytes, work_dir),
                None,
            )
        except ObjectNotFound:
            return entry, None, "source object is missing"
        except ObjectStoreError as exc:
            return entry, None, str(exc)

    failed: dict[str, str] = {}
    copied_rows = []
    for entry, size, error in pool.map(attempt, to_copy.values()):
        advance(1, entry.size_bytes)  # per object: a batch of big objects takes longer than a log interval
        if error is not None:
            failed[entry.sha256] = error
            result.problems.append(f"{entry.source_key}: {error}")
            continue
        result.copied += 1
        result.bytes_copied += int(size or 0)
        copied_rows.append(
            {
                "sha256": entry.sha256,
                "backup_key": copy_key(entry.sha256),
                "size_bytes": size,
                "first_backup_id": backup_id,
                **lineage.columns(),
            }
        )
    if copied_rows:
        with engine.begin() as conn:
            conn.execute(pg_insert(BackupObjectCopy).values(copied_rows).on_conflict_do_nothing())
    skipped = [entry for entry in batch if to_copy.get(entry.sha256) is not entry]  # copied before, or twice
    if skipped:
        advance(len(skipped), sum(entry.size_bytes for entry in skipped))
    for entry in batch:
        item = entry.as_dict()
        if entry.sha256 in failed:
            item["problem"] = failed[entry.sha256]
        elif entry.sha256 in present:
            result.already_copied += 1
        entries.append(item)


def check_copy(backup: ObjectStore, entry: dict[str, Any], read: bool) -> str | None:
    """None if the copy is there with the entry's size and checksum (and, if `read`, its bytes hash to
    it); otherwise what is wrong. StoreUnavailable propagates: unreachable is not "wrong"."""
    info = backup.head(entry["backup_key"])
    if info is None:
        return "backup copy missing"
    if (info.sha256 or "") != entry["sha256"] or info.size != int(entry["size_bytes"]):
        return "backup copy checksum or size differs"
    if read and not backup.verify(entry["backup_key"], entry["sha256"]):
        return "backup copy bytes do not hash to its checksum"
    return None


def _check_and_repair(
    engine: sa.Engine,
    source: ObjectStore,
    backup: ObjectStore,
    entries: list[dict[str, Any]],
    backup_id: int,
    day: date,
    read_share: float,
    workers: int,
    result: ObjectBackupResult,
    lineage: RunLineage,
) -> None:
    groups = sample_groups(read_share)
    work_dir = Path(tempfile.gettempdir())
    unique: dict[str, dict[str, Any]] = {}
    for entry in entries:
        if not entry.get("problem"):
            unique.setdefault(entry["sha256"], entry)

    def check(entry: dict[str, Any]) -> tuple[bool, str | None]:
        read = in_sample(entry["sha256"], day, groups)
        try:
            return read, check_copy(backup, entry, read)
        except (StoreUnavailable, TransientStorageError) as exc:
            return read, f"backup store unavailable while checking the copy ({exc})"

    def repair(entry: dict[str, Any]) -> str | None:
        try:
            copy_object(
                source, backup, entry["source_key"], entry["sha256"], int(entry["size_bytes"]), work_dir
            )
            return check_copy(backup, entry, True)
        except ObjectNotFound:
            return "backup copy bad and the source object is missing"
        except ObjectStoreError as exc:
            return f"backup copy bad and copying it again failed: {exc}"

    problems: dict[str, str] = {}
    with ThreadPoolExecutor(workers) as pool:
        checked = list(pool.map(check, unique.values()))
        broken = []
        for entry, (read, problem) in zip(unique.values(), checked, strict=True):
            result.copies_read += int(read)
            if problem and "unavailable" not in problem:
                broken.append(entry)
            elif problem:
                problems[entry["sha256"]] = problem
        for entry, problem in zip(broken, pool.map(repair, broken), strict=True):
            if problem:
                problems[entry["sha256"]] = problem
            else:
                result.repaired += 1
    if broken:
        rows = [
            {"sha256": e["sha256"], "backup_key": e["backup_key"], "size_bytes": int(e["size_bytes"]),
             "first_backup_id": backup_id, **lineage.columns()}
            for e in broken
            if e["sha256"] not in problems
        ]  # fmt: skip
        if rows:
            with engine.begin() as conn:
                conn.execute(pg_insert(BackupObjectCopy).values(rows).on_conflict_do_nothing())
    for entry in entries:
        if not entry.get("problem") and entry["sha256"] in problems:
            entry["problem"] = problems[entry["sha256"]]
            result.problems.append(f"{entry['source_key']}: {entry['problem']}")


def read_day_manifest(store: ObjectStore, day: date) -> dict[str, Any]:
    return json.loads(store.get_bytes(manifest_key(day)))
