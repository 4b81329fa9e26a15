"""Re-read backup bytes and compare them with the checksums recorded at backup time.

With a sample share s < 1, files are bucketed by checksum into n = ceil(1/s) groups and day d re-reads
group d mod n, so every file is re-read at least once every n days (restic's --read-data-subset idea).
The newest database backup is always re-read. A missing or corrupt file is a problem, never a skip; an
object copy found so loses its `backup_object_copies` row, so the next object backup copies it again. A
file the store would not serve (retries exhausted) is reported as unreachable, not as corrupt. A day
whose database backups are all failed or corrupt is reported on every run until it has a verified one.
"""

from __future__ import annotations

import math
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, date, datetime

import sqlalchemy as sa

from core.catalog.db import get_engine
from core.catalog.models import Backup, BackupObjectCopy
from core.objectstore.base import ObjectStore, ObjectStoreError, TransientStorageError
from core.objectstore.retry import StoreUnavailable


@dataclass
class VerificationResult:
    day: date
    groups: int
    database_files: int = 0
    manifests: int = 0
    object_copies: int = 0
    bytes_read: int = 0
    problems: list[str] = field(default_factory=list)
    unreachable: list[str] = field(default_factory=list)  # the store failed; the file may well be fine
    copies_to_repair: int = 0  # object copies dropped from the catalog so the next backup re-copies them
    days_without_verified_dump: list[str] = field(default_factory=list)

    @property
    def files(self) -> int:
        return self.database_files + self.manifests + self.object_copies


def sample_groups(share: float) -> int:
    return max(1, math.ceil(1 / share - 1e-9))


def in_sample(sha256: str, day: date, groups: int) -> bool:
    return int(sha256[:8], 16) % groups == day.toordinal() % groups


UNREACHABLE = "unreachable"


def _check(store: ObjectStore, key: str, sha256: str, size: int | None) -> tuple[str | None, int]:
    """None if the file re-reads to `sha256`; otherwise what is wrong with it (UNREACHABLE first when the
    store itself kept failing)."""
    try:
        info = store.head(key)
        if info is None:
            return f"{key}: missing from the backup store", 0
        if size is not None and info.size != size:
            return f"{key}: size {info.size}, expected {size}", info.size
        if not store.verify(key, sha256):
            return f"{key}: bytes do not hash to the recorded {sha256[:12]}", info.size
        return None, info.size
    except (StoreUnavailable, TransientStorageError) as exc:
        return f"{UNREACHABLE}: {key}: {exc}", 0
    except ObjectStoreError as exc:
        return f"{key}: cannot be read ({exc})", 0


def verify_backups(
    database_url: str, store: ObjectStore, day: date, *, sample_share: float = 1.0, workers: int = 4
) -> VerificationResult:
    """Verify the day's sample of backup files; mark database/object backups whose files fail as corrupt."""
    engine = get_engine(database_url)
    groups = sample_groups(sample_share)
    result = VerificationResult(day=day, groups=groups)
    with engine.connect() as conn:
        backups = conn.execute(
            sa.select(Backup.id, Backup.kind, Backup.storage_key, Backup.sha256, Backup.size_bytes)
            .where(Backup.status.in_(("complete", "verified")), Backup.storage_key.is_not(None))
            .order_by(Backup.id)
        ).all()
        copies = conn.execution_options(yield_per=5000).execute(
            sa.select(
                BackupObjectCopy.sha256, BackupObjectCopy.backup_key, BackupObjectCopy.size_bytes
            ).order_by(BackupObjectCopy.sha256)
        )
        copy_jobs = [
            (row.backup_key, row.sha256.strip(), int(row.size_bytes))
            for row in copies
            if in_sample(row.sha256, day, groups)
        ]
    newest_db = max((b.id for b in backups if b.kind == "database"), default=None)
    backup_jobs = [b for b in backups if b.id == newest_db or in_sample(b.sha256, day, groups)]
    corrupt: dict[int, str] = {}
    with ThreadPoolExecutor(workers) as pool:
        checked = pool.map(
            lambda b: _check(store, b.storage_key, b.sha256.strip(), b.size_bytes), backup_jobs
        )
        for backup, (problem, size) in zip(backup_jobs, checked, strict=True):
            result.bytes_read += size
            if backup.kind == "database":
                result.database_files += 1
            else:
                result.manifests += 1
            if problem and problem.startswith(UNREACHABLE):
                result.unreachable.append(f"{backup.kind} backup {backup.id}: {problem}")
            elif problem:
                result.problems.append(f"{backup.kind} backup {backup.id}: {problem}")
                corrupt[backup.id] = problem
        bad_copies: list[str] = []
        copy_checks = pool.map(lambda job: _check(store, *job), copy_jobs)
        for job, (problem, size) in zip(copy_jobs, copy_checks, strict=True):
            result.object_copies += 1
            result.bytes_read += size
            if problem and problem.startswith(UNREACHABLE):
                result.unreachable.append(f"object copy {problem}")
            elif problem:
                result.problems.append(f"object copy {problem} (copied again by the next object backup)")
                bad_copies.append(job[1])
    if bad_copies:
        with engine.begin() as conn:
            conn.execute(sa.delete(BackupObjectCopy).where(BackupObjectCopy.sha256.in_(bad_copies)))
        result.copies_to_repair = len(bad_copies)
    if corrupt:
        with engine.begin() as conn:
            for backup_id, problem in corrupt.items():
                conn.execute(
                    sa.update(Backup)
                    .where(Backup.id == backup_id)
                    .values(
                        status="corrupt", error=f"verification {datetime.now(UTC):%Y-%m-%d}: {problem}"[:2000]
                    )
                )
    with engine.connect() as conn:
        result.days_without_verified_dump = days_without_verified_dump(conn)
    for day_text in result.days_without_verified_dump:
        result.problems.append(f"database backups of {day_text}: none verified (all failed or corrupt)")
    return result


def days_without_verified_dump(conn: sa.Connection) -> list[str]:
    """Days that have database backups, none running or verified: a restore of that day has nothing."""
    rows = conn.execute(
        sa.select(Backup.backup_date)
        .where(Backup.kind == "database", Backup.status != "expired")
        .group_by(Backup.backup_date)
        .having(sa.func.count().filter(Backup.status.in_(("verified", "running"))) == 0)
        .order_by(Backup.backup_date)
    ).all()
    return [d.isoformat() for (d,) in rows]


def corrupt_dump_to_replace(conn: sa.Connection) -> int | None:
    """The id of the newest finished database backup if verification found it corrupt (and no dump has
    been verified since), so a fresh dump can be taken the same day; else None."""
    newest = conn.execute(
        sa.select(Backup.id, Backup.status)
        .where(Backup.kind == "database", Backup.status.not_in(("running", "expired", "failed")))
        .order_by(Backup.id.desc())
        .limit(1)
    ).first()
    return int(newest.id) if newest is not None and newest.status == "corrupt" else None
