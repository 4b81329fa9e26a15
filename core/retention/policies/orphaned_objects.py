"""Objects with no reference (or none since `after_days`): deleted, re-checked at delete time."""

from __future__ import annotations

from core.retention import actions
from core.retention.context import C, PolicyResult, SweepContext


def run(ctx: SweepContext, result: PolicyResult) -> None:
    cutoff = ctx.now - ctx.config.orphan_after
    result.candidates = int(
        ctx.exec(
            f"""WITH ins AS (
                  INSERT INTO _rt_cand (object_id)
                  SELECT o.id FROM {C}.stored_objects o
                  WHERE o.status = 'verified' AND o.created_at < :cutoff
                    AND NOT EXISTS (SELECT 1 FROM _rt_gone g WHERE g.object_id = o.id)
                    AND NOT EXISTS (SELECT 1 FROM {C}.object_references r WHERE r.object_id = o.id
                                    AND (r.released_at IS NULL OR r.released_at >= :cutoff))
                  ON CONFLICT DO NOTHING RETURNING 1)
                SELECT count(*) FROM ins""",
            cutoff=cutoff,
        ).scalar_one()
    )
    ctx.conn.commit()
    actions.delete_candidates(ctx, result, f"no reference since before {cutoff:%Y-%m-%d %H:%M}")
