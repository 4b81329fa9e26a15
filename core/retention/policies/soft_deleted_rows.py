"""Rows the app soft-deleted longer ago than `after_days`: hard-delete them with their references, then
the objects nothing else references; owners soft-deleted that long ago go everywhere."""

from __future__ import annotations

import sqlalchemy as sa

from core.retention import actions
from core.retention.context import PolicyResult, SweepContext, log, owner_held


def run(ctx: SweepContext, result: PolicyResult) -> None:
    cutoff = ctx.now - ctx.config.soft_delete_after
    wanted = ctx.config.soft_delete_sources
    for source in ctx.sources.sources:
        if wanted is not None and source.name not in wanted:
            continue
        if not source.soft_delete_column:
            continue
        if not ctx.table_exists(source.schema, source.table):
            result.note = (result.note + f" {source.name}: table missing;").strip()
            continue
        soft = f's."{source.soft_delete_column}" < :cutoff'
        held = owner_held(f"{source.owner_sql('s')}::text")
        table = source.qualified_table
        total, n_held = ctx.exec(
            f"SELECT count(*), count(*) FILTER (WHERE {held}) FROM {table} s WHERE {soft}", cutoff=cutoff
        ).one()
        result.candidates += int(total)
        if n_held:
            result.skipped["row of an owner under legal hold"] += int(n_held)
        reason = f"soft-deleted before {cutoff:%Y-%m-%d} (kept {ctx.config.soft_delete_after.days} days)"
        pk = f's."{source.primary_key}"'
        try:
            if ctx.dry_run:
                actions.delete_source_rows(
                    ctx, result, source, f"{soft} AND NOT {held}", reason, cutoff=cutoff
                )
                ctx.conn.commit()
            else:
                while True:
                    with ctx.savepoint():
                        n = actions.delete_source_rows(
                            ctx,
                            result,
                            source,
                            f"{pk} IN (SELECT {pk} FROM {table} s WHERE {soft} AND NOT {held} "
                            f"LIMIT :n FOR UPDATE SKIP LOCKED)",
                            reason,
                            cutoff=cutoff,
                            n=ctx.config.batch_size,
                        )
                    ctx.conn.commit()
                    if n == 0:
                        break
        except sa.exc.IntegrityError as exc:
            ctx.conn.commit()
            result.skipped[f"{source.name}: row still referenced by another table"] += 1
            log.warning("retention: %s rows not deleted: %s", source.name, exc.orig)
    actions.delete_candidates(ctx, result, "last reference removed with a soft-deleted row")
    owners = ctx.sources.owners
    if owners.soft_delete_column and ctx.table_exists(owners.schema, owners.table):
        ids = ctx.exec(
            f"""SELECT "{owners.primary_key}"::text FROM "{owners.schema}"."{owners.table}"
                WHERE "{owners.soft_delete_column}" < :cutoff ORDER BY 1""",
            cutoff=cutoff,
        ).scalars()
        actions.delete_owners(ctx, result, list(ids), f"owner soft-deleted before {cutoff:%Y-%m-%d}")
