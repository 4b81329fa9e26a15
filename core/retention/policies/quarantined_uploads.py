"""Rejected upload bytes kept in the quarantine area (`quarantine/...`, see core/uploads.py) longer than
`after_days`: deleted through the shared queue; the quarantine row (what was refused and why) stays with
`purged_at` set. A dry run only writes `would_delete` audit rows; an owner under legal hold keeps them."""

from __future__ import annotations

from datetime import datetime

from core.retention.context import C, PolicyResult, SweepContext, owner_held

#: Quarantine rows whose bytes are still kept and are older than the cutoff; `u` is the upload (if any).
_DUE = f"""{C}.quarantine q LEFT JOIN {C}.uploads u ON q.source_name = 'uploads' AND u.id::text = q.source_pk
           WHERE q.storage_key IS NOT NULL AND q.purged_at IS NULL AND q.quarantined_at < :cutoff"""
_HELD = owner_held("u.owner_id")


def select(ctx: SweepContext, cutoff: datetime) -> tuple[int, int]:
    """(rows due, of which held): bytes quarantined before `cutoff`; held = owner under legal hold."""
    total, held = ctx.exec(
        f"SELECT count(*), count(*) FILTER (WHERE {_HELD}) FROM {_DUE}", cutoff=cutoff
    ).one()
    return int(total), int(held)


def delete(ctx: SweepContext, result: PolicyResult, cutoff: datetime, reason: str) -> None:
    """Queue (or, dry run, list) the due, unheld quarantined bytes for deletion, in audited batches; the
    purge's revival check keeps a key whose quarantine row was used again meanwhile."""
    params = {**ctx.params(result.policy, reason), "cutoff": cutoff, "n": ctx.config.batch_size}
    if ctx.dry_run:
        changed = f"""SELECT q.id, q.storage_key, q.size_bytes, q.reason_code, u.owner_id
                      FROM {C}.quarantine q LEFT JOIN {C}.uploads u
                        ON q.source_name = 'uploads' AND u.id::text = q.source_pk
                      WHERE q.id IN (SELECT q.id FROM {_DUE} AND NOT {_HELD})"""
        queue = "SELECT 1"
    else:
        changed = f"""UPDATE {C}.quarantine q SET purged_at = :now
                      FROM (SELECT q.id, u.owner_id FROM {_DUE} AND NOT {_HELD}
                            ORDER BY q.id LIMIT :n FOR UPDATE OF q SKIP LOCKED) l
                      WHERE q.id = l.id
                      RETURNING q.id, q.storage_key, q.size_bytes, q.reason_code, l.owner_id"""
        queue = f"""INSERT INTO {C}.retention_pending_deletes (storage_key, target_type, target_id, run_id)
                    SELECT m.storage_key, 'quarantine', m.id::text, :run FROM m
                    ON CONFLICT (storage_key) DO NOTHING"""
    while True:
        n, size = ctx.exec(
            f"""WITH m AS ({changed}),
                q AS ({queue}),
                a AS (INSERT INTO {C}.retention_audit
                        (run_id, asset_key, partition_key, policy, action, target_type, target_id,
                         storage_key, owner_id, size_bytes, reason, dry_run, created_at)
                      SELECT :run, :asset, :partition, :policy, '{ctx.deleted_action}', 'quarantine',
                             m.id::text, m.storage_key,
                             m.owner_id, m.size_bytes, :reason || ' (' || m.reason_code || ')', :dry, :now
                      FROM m)
                SELECT count(*), coalesce(sum(size_bytes), 0) FROM m""",
            **params,
        ).one()
        ctx.conn.commit()
        result.deleted += int(n)
        result.bytes_reclaimed += int(size)
        result.counts["quarantined_deleted"] += int(n)
        if ctx.dry_run or n == 0:
            break
    ctx.purge()


def run(ctx: SweepContext, result: PolicyResult) -> None:
    keep = ctx.config.quarantine_keep
    cutoff = ctx.now - keep
    total, held = select(ctx, cutoff)
    result.candidates = total
    if held:
        result.skipped["owner under legal hold"] += held
    reason = f"rejected upload kept in quarantine since before {cutoff:%Y-%m-%d} ({keep.days} days)"
    delete(ctx, result, cutoff, reason)
