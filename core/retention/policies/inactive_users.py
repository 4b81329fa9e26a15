"""Owners inactive for `warn_after_months` are warned once; after `delete_after_months`, and warned at
least `min_warning_days` before, they are deleted everywhere."""

from __future__ import annotations

from core.retention import actions
from core.retention.config import INACTIVE_USERS, months_before
from core.retention.context import C, PolicyResult, SweepContext, owner_held


def run(ctx: SweepContext, result: PolicyResult) -> None:
    owners = ctx.sources.owners
    if not ctx.table_exists(owners.schema, owners.table):
        result.note = f"owners table {owners.table} missing"
        return
    if owners.last_active_column is None:
        # Inactivity is never guessed (e.g. from when the owner was created): the policy is off, and says so.
        result.note = (
            f"{INACTIVE_USERS} skipped: no last-activity column (owners.last_active_column) on "
            f"{owners.schema}.{owners.table}"
        )
        ctx.exec(
            f"""INSERT INTO {C}.retention_audit
                  (run_id, asset_key, partition_key,
                    policy, action, target_type, target_id, reason, dry_run, created_at)
                VALUES (:run, :asset, :partition,
                  :policy, 'skipped', 'policy', :policy, :reason, :dry, :now)""",
            **ctx.params(result.policy, result.note),
        )
        ctx.conn.commit()
        return
    warn_cutoff = months_before(ctx.now, ctx.config.warn_after_months)
    delete_cutoff = months_before(ctx.now, ctx.config.delete_after_months)
    table = f'"{owners.schema}"."{owners.table}"'
    pk, active = f'u."{owners.primary_key}"::text', f'u."{owners.last_active_column}"'
    warned = f"""EXISTS (SELECT 1 FROM {C}.retention_audit w
                 WHERE w.owner_id = {pk} AND w.action = 'warned' AND w.policy = :policy
                   AND NOT w.dry_run AND w.created_at >= {active}{{extra}})"""
    params = {
        "warn": warn_cutoff,
        "del": delete_cutoff,
        "policy": result.policy,
        "min_warned": ctx.now - ctx.config.min_warning,
    }
    rows = ctx.exec(
        f"""SELECT {pk}, {active}, {active} < :del AS due,
                   {warned.format(extra="")} AS was_warned,
                   {warned.format(extra=" AND w.created_at <= :min_warned")} AS warned_long_enough,
                   {owner_held(pk)} AS held
            FROM {table} u WHERE {active} < :warn ORDER BY {pk}""",
        **params,
    ).all()
    to_delete: list[str] = []
    for owner_id, last_active, due, was_warned, long_enough, held in rows:
        result.candidates += 1
        if held:
            result.skipped["owner under legal hold"] += 1
        elif due and long_enough:
            to_delete.append(owner_id)
        elif not was_warned:
            action = "would_warn" if ctx.dry_run else "warned"
            actions.audit_owner(
                ctx,
                result,
                owner_id,
                action,
                f"inactive since {last_active:%Y-%m-%d}; deleted once inactive "
                f"{ctx.config.delete_after_months} months and warned "
                f"{ctx.config.min_warning.days} days",
            )
            result.warned_owners.append(owner_id)
            result.counts["owners_warned"] += 1
            if due:
                result.skipped["due but not warned yet (warned now)"] += 1
        elif due:
            result.skipped["warned less than the minimum warning period ago"] += 1
        else:
            result.skipped["warned, not yet due"] += 1
    ctx.conn.commit()
    actions.delete_owners(
        ctx, result, to_delete, f"inactive since before {delete_cutoff:%Y-%m-%d}, warned", count=False
    )
