"""The retention sweep: set-based in SQL, decided at delete time, audited, and safe to interrupt.

Layout: `context.SweepContext` (connection, temporary tables, purging), `actions` (the ways things are
deleted), `policies/` (one function per policy and the REGISTRY), and this module, which runs them.

How one deletion happens (the same for every policy):
1. A policy fills the temporary table `_rt_cand` with candidate object ids (one INSERT ... SELECT).
2. Per batch, one transaction: lock the candidates' `stored_objects` rows `FOR UPDATE SKIP LOCKED`
   (a concurrent writer adding a reference holds a key-share lock on the row, so it is skipped), then a
   *new statement* (fresh snapshot, rows still locked so no reference can be added) re-checks "no live
   reference, no legal hold", marks them `deleted`, writes the audit rows and queues the storage keys in
   `retention_pending_deletes`; commit.
3. The queue is purged with `delete_keys` (1000 keys per request); a key leaves the queue only once the
   store confirmed it. A rerun after a crash purges whatever is left, and a key whose row was revived in
   the meantime is dropped from the queue instead of deleted.

A dry run runs the same selection and re-checks, writing `would_delete` audit rows; what it "released" or
"deleted" is tracked in temporary tables so later policies in the same dry run see the same world a real
run would, and nothing outside the audit table changes.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

import sqlalchemy as sa

from core.objectstore.base import ObjectStore
from core.retention.config import INACTIVE_USERS, POLICY_ORDER, RetentionConfig
from core.retention.context import C, OwnerOnLegalHold, PolicyResult, SweepContext, SweepReport, log
from core.retention.policies import REGISTRY
from core.sources import SourcesConfig


def run_policies(ctx: SweepContext, policies: tuple[str, ...] = POLICY_ORDER) -> SweepReport:
    """Every enabled policy, in POLICY_ORDER; first finishes storage deletes a crashed run left."""
    ctx.purge()
    leftovers = ctx.report.purged_keys
    for name in POLICY_ORDER:
        if name not in policies:
            continue
        result = PolicyResult(policy=name)
        ctx.report.policies[name] = result
        if not ctx.config.is_enabled(name):
            result.enabled = False
            result.note = ctx.config.disabled_reason(name)
            continue
        ctx.progress(f"retention: {name}{' (dry run)' if ctx.dry_run else ''}")
        REGISTRY[name](ctx, result)
    ctx.report.purged_keys -= leftovers
    ctx.report.leftover_keys_purged = leftovers
    return ctx.report


def run_sweep(
    engine: sa.Engine,
    store: ObjectStore,
    sources: SourcesConfig,
    config: RetentionConfig,
    *,
    run_id: str,
    now: datetime,
    dry_run: bool,
    policies: tuple[str, ...] = POLICY_ORDER,
    progress: Callable[[str], None] | None = None,
    asset_key: str | None = None,
    partition_key: str | None = None,
) -> SweepReport:
    """Run a sweep on its own connection (temporary tables are per session); audit rows record the run
    id, asset key and partition key (lineage)."""
    with engine.connect() as conn:
        ctx = SweepContext(
            conn,
            store,
            sources,
            config,
            run_id=run_id,
            now=now,
            dry_run=dry_run,
            progress=progress,
            asset_key=asset_key,
            partition_key=partition_key,
        )
        try:
            return run_policies(ctx, policies)
        finally:
            ctx.close()


def inactive_warning_list(report: SweepReport) -> list[str]:
    result = report.policies.get(INACTIVE_USERS)
    return list(result.warned_owners) if result else []


def referenced_but_deleted(conn: sa.Connection) -> int:
    """The invariant retention must never break: objects marked deleted that a live reference points at."""
    return int(
        conn.execute(
            sa.text(
                f"""SELECT count(DISTINCT o.id) FROM {C}.stored_objects o
                    JOIN {C}.object_references r ON r.object_id = o.id AND r.released_at IS NULL
                    WHERE o.status = 'deleted'"""
            )
        ).scalar_one()
    )


__all__ = [
    "OwnerOnLegalHold",
    "PolicyResult",
    "SweepContext",
    "SweepReport",
    "inactive_warning_list",
    "log",
    "referenced_but_deleted",
    "run_policies",
    "run_sweep",
]
