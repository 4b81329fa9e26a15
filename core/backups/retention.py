"""Backup retention: grandfather-father-son over verified backups, per kind (database, objects).

Keeps the newest verified backup of each of the last `daily` calendar days, `weekly` ISO weeks and
`monthly` months (so `daily: 7` alone is seed 004's `find -mtime +7 -delete`), and ALWAYS the newest verified
backup whatever the policy says (so a run of failing backups never leaves nothing). Backups that never
verified (failed, corrupt, interrupted) go after a grace period. Object copies are content-addressed and
shared between days: a copy goes only when no kept manifest lists it and no live object has its content,
so an object deleted by retention stays restorable until the last backup that lists it expires.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

import sqlalchemy as sa

from core.backups.database import dump_manifest_key
from core.backups.settings import RetentionPolicy
from core.catalog.db import get_engine
from core.catalog.models import Backup, BackupObjectCopy, RetentionAudit
from core.lineage import RunLineage
from core.objectstore.base import ObjectStore

POLICY_NAME = "backup_retention"


@dataclass(frozen=True)
class BackupRecord:
    id: int
    kind: str
    backup_date: date
    status: str
    started_at: datetime
    storage_key: str | None = None
    manifest_key: str | None = None
    size_bytes: int | None = None


@dataclass(frozen=True)
class Decision:
    backup: BackupRecord
    keep: bool
    reason: str


def plan_retention(backups: list[BackupRecord], policy: RetentionPolicy, now: datetime) -> list[Decision]:
    """Decide, for every non-expired backup, whether it stays and why. Pure: no I/O."""
    decisions: list[Decision] = []
    today = now.date()
    this_monday = today - timedelta(days=today.weekday())
    month_index = today.year * 12 + today.month - 1
    windows: tuple[tuple[str, Callable[[date], object], Callable[[date], bool]], ...] = (
        ("daily", lambda d: d, lambda d: (today - d).days < policy.daily),
        (
            "weekly",
            lambda d: d - timedelta(days=d.weekday()),
            lambda d: (this_monday - (d - timedelta(days=d.weekday()))).days // 7 < policy.weekly,
        ),
        (
            "monthly",
            lambda d: (d.year, d.month),
            lambda d: month_index - (d.year * 12 + d.month - 1) < policy.monthly,
        ),
    )
    for kind in sorted({b.kind for b in backups}):
        mine = [b for b in backups if b.kind == kind and b.status != "expired"]
        verified = sorted(
            (b for b in mine if b.status == "verified"), key=lambda b: (b.backup_date, b.id), reverse=True
        )
        reasons: dict[int, list[str]] = {}
        if verified:
            reasons.setdefault(verified[0].id, []).append("newest verified backup (always kept)")
        for label, bucket, in_window in windows:
            seen: set[object] = set()
            for backup in verified:  # newest first: the newest backup of each period represents it
                period = bucket(backup.backup_date)
                if period in seen or not in_window(backup.backup_date):
                    continue
                seen.add(period)
                reasons.setdefault(backup.id, []).append(f"{label} {period}")
        grace = timedelta(days=policy.failed_grace_days)
        for backup in mine:
            if backup.id in reasons:
                decisions.append(Decision(backup, True, ", ".join(reasons[backup.id])))
            elif backup.status == "verified":
                decisions.append(Decision(backup, False, "verified backup beyond the retention policy"))
            elif now - backup.started_at < grace:
                decisions.append(
                    Decision(backup, True, f"{backup.status}, within the {grace.days}-day grace")
                )
            else:
                decisions.append(
                    Decision(backup, False, f"{backup.status} backup older than {grace.days} days")
                )
    return decisions


@dataclass
class RetentionResult:
    dry_run: bool
    kept: list[Decision]
    expired: list[Decision]
    copies_deleted: int
    copy_bytes_deleted: int
    bytes_freed: int
    failures: list[str]


def load_records(conn: sa.Connection) -> list[BackupRecord]:
    rows = conn.execute(
        sa.select(
            Backup.id,
            Backup.kind,
            Backup.backup_date,
            Backup.status,
            Backup.started_at,
            Backup.storage_key,
            Backup.manifest_key,
            Backup.size_bytes,
        ).where(Backup.status != "expired")
    ).all()
    return [BackupRecord(**row._mapping) for row in rows]


_ORPHAN_COPIES = sa.text(
    """
    SELECT c.sha256, c.backup_key, c.size_bytes FROM media_catalog.backup_object_copies c
     WHERE NOT EXISTS (
             SELECT 1 FROM media_catalog.backups b, jsonb_array_elements(b.manifest->'objects') e
              WHERE b.kind = 'objects' AND b.status <> 'expired' AND b.id <> ALL(:expiring)
                AND e->>'sha256' = c.sha256)
       AND NOT EXISTS (SELECT 1 FROM media_catalog.stored_objects so
                        WHERE so.sha256 = c.sha256 AND so.status = 'verified')
       AND NOT EXISTS (SELECT 1 FROM media_catalog.variants v
                        WHERE v.sha256 = c.sha256 AND v.status = 'ready')
    ORDER BY c.sha256
    """
)


def apply_retention(
    database_url: str,
    store: ObjectStore,
    policy: RetentionPolicy,
    *,
    dry_run: bool = True,
    run_id: str = "manual",
    now: datetime | None = None,
    lineage: RunLineage | None = None,
) -> RetentionResult:
    """Plan and (unless `dry_run`) carry out backup retention; every expiry is written to the audit,
    with `lineage` (run, asset, partition; by default just `run_id`)."""
    lineage = lineage or RunLineage(run_id=run_id)
    now = now or datetime.now(UTC)
    engine = get_engine(database_url)
    with engine.connect() as conn:
        decisions = plan_retention(load_records(conn), policy, now)
    kept = [d for d in decisions if d.keep]
    expired = [d for d in decisions if not d.keep]
    kept_days = {(d.backup.kind, d.backup.backup_date) for d in kept}
    failures: list[str] = []
    action = "would_delete" if dry_run else "deleted"
    audit: list[dict[str, object]] = []
    bytes_freed = 0
    for decision in expired:
        backup = decision.backup
        keys = [backup.storage_key] if backup.storage_key else []
        if backup.kind == "database" and backup.storage_key:
            keys.append(dump_manifest_key(backup.storage_key))  # the dump's own manifest goes with it
        # The day's manifest is shared by that day's backups of one kind: it goes with the last of them.
        if backup.manifest_key and (backup.kind, backup.backup_date) not in kept_days:
            keys.append(backup.manifest_key)
        keys = sorted(set(keys))
        if not dry_run:
            failed = store.delete_keys(keys)
            if failed:
                failures.extend(f"{key}: {error}" for key, error in failed)
                continue  # its row stays, so the next run tries again
            with engine.begin() as conn:
                conn.execute(
                    sa.update(Backup)
                    .where(Backup.id == backup.id)
                    .values(status="expired", expired_at=now, error=f"expired: {decision.reason}")
                )
        bytes_freed += int(backup.size_bytes or 0)
        audit.append(
            _audit_row(
                lineage,
                action,
                "backup",
                str(backup.id),
                backup.storage_key,
                backup.size_bytes,
                f"{backup.kind} {backup.backup_date}: {decision.reason}",
                dry_run,
            )
        )
    with engine.connect() as conn:
        expiring = [d.backup.id for d in expired] or [-1]
        orphans = conn.execute(_ORPHAN_COPIES, {"expiring": expiring}).all()
    copies_deleted = copy_bytes = 0
    for start in range(0, len(orphans), 1000):
        chunk = orphans[start : start + 1000]
        if not dry_run:
            failed_keys = {key for key, _ in store.delete_keys([row.backup_key for row in chunk])}
            chunk = [row for row in chunk if row.backup_key not in failed_keys]
            failures.extend(f"{key}: delete failed" for key in failed_keys)
            with engine.begin() as conn:
                conn.execute(
                    sa.delete(BackupObjectCopy).where(BackupObjectCopy.sha256.in_([r.sha256 for r in chunk]))
                )
        for row in chunk:
            copies_deleted += 1
            copy_bytes += int(row.size_bytes)
            audit.append(
                _audit_row(
                    lineage,
                    action,
                    "backup",
                    f"copy:{row.sha256.strip()}",
                    row.backup_key,
                    row.size_bytes,
                    "object copy no longer listed by any kept backup",
                    dry_run,
                )
            )
    if audit:
        with engine.begin() as conn:
            conn.execute(sa.insert(RetentionAudit), audit)
    return RetentionResult(
        dry_run, kept, expired, copies_deleted, copy_bytes, bytes_freed + copy_bytes, failures
    )


def _audit_row(
    lineage: RunLineage,
    action: str,
    target_type: str,
    target_id: str,
    key: str | None,
    size: int | None,
    reason: str,
    dry_run: bool,
) -> dict[str, object]:
    return {
        **lineage.columns(),
        "policy": POLICY_NAME,
        "action": action,
        "target_type": target_type,
        "target_id": target_id,
        "storage_key": key,
        "size_bytes": size,
        "reason": reason,
        "dry_run": dry_run,
    }
