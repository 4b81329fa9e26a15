"""Generated documents (GDPR exports) past their expiry: release the reference, delete the object
unless something else still references it."""

from __future__ import annotations

from core.retention import actions
from core.retention.context import HELD_OBJECT, C, PolicyResult, SweepContext, owner_held


def run(ctx: SweepContext, result: PolicyResult) -> None:
    expired = "r.expires_at < :now"
    result.candidates = int(
        ctx.exec(
            f"SELECT count(*) FROM {C}.object_references r WHERE r.released_at IS NULL AND {expired}",
            now=ctx.now,
        ).scalar_one()
    )
    held = f"""({owner_held("r.owner_id")} OR EXISTS (SELECT 1 FROM {C}.stored_objects o
                 WHERE o.id = r.object_id AND {HELD_OBJECT}))"""
    n_held = ctx.exec(
        f"SELECT count(*) FROM {C}.object_references r WHERE r.released_at IS NULL AND {expired} AND {held}",
        now=ctx.now,
    ).scalar_one()
    if n_held:
        result.skipped["legal hold"] += int(n_held)
    released = actions.release_refs(ctx, result, f"{expired} AND NOT {held}", "generated document expired")
    if result.candidates - n_held - released > 0:
        result.skipped["locked by a concurrent transaction"] += result.candidates - n_held - released
    actions.delete_candidates(ctx, result, "generated document expired and nothing else references it")
