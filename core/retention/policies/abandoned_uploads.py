"""Uploads requested but never confirmed within `after_hours`: their staged objects are deleted and
the upload marked abandoned."""

from __future__ import annotations

from core.retention import actions
from core.retention.context import C, PolicyResult, SweepContext, owner_held


def run(ctx: SweepContext, result: PolicyResult) -> None:
    cutoff = ctx.now - ctx.config.upload_after
    pending = "u.status = 'pending' AND u.created_at < :cutoff"
    held = owner_held("u.owner_id")
    total, n_held = ctx.exec(
        f"SELECT count(*), count(*) FILTER (WHERE {held}) FROM {C}.uploads u WHERE {pending}",
        cutoff=cutoff,
    ).one()
    result.candidates = int(total)
    if n_held:
        result.skipped["owner under legal hold"] += int(n_held)
    reason = f"pending, never confirmed within {ctx.config.upload_after.total_seconds() / 3600:g}h"
    while True:
        before = result.counts["uploads_removed"]
        where = f"{pending} AND NOT {held}"
        if not ctx.dry_run:
            where = f"u.id IN (SELECT u.id FROM {C}.uploads u WHERE {where} ORDER BY u.id LIMIT :n)"
        actions.remove_uploads(
            ctx, result, where, reason, delete_rows=False, cutoff=cutoff, n=ctx.config.batch_size
        )
        ctx.conn.commit()
        if ctx.dry_run or result.counts["uploads_removed"] == before:
            break
    ctx.purge()
