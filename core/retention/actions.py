"""The ways a sweep deletes: objects (re-checked at delete time), references, source rows, owners,
staged uploads and variants. Every policy (core/retention/policies/) is built from these.
"""

from __future__ import annotations

import sqlalchemy as sa

from core.retention.context import (
    AUDIT_OWNER,
    HELD_OBJECT,
    LIVE_REFERENCE,
    C,
    OwnerOnLegalHold,
    PolicyResult,
    SweepContext,
    log,
    owner_held,
)
from core.sources import BlobSource

# -- the one way objects are deleted ------------------------------------------------------------------


def delete_candidates(ctx: SweepContext, result: PolicyResult, reason: str) -> None:
    """Delete (or in a dry run, record) every object in `_rt_cand` that is still unreferenced and
    unheld at delete time, in batches; leftover candidates are counted under why they were kept."""
    params = ctx.params(result.policy, reason)
    after = 0
    ctx.exec("ANALYZE _rt_cand")  # temporary tables get no statistics unless asked
    while True:
        upto = ctx.exec(
            "SELECT max(object_id) FROM (SELECT object_id FROM _rt_cand WHERE object_id > :after "
            "ORDER BY object_id LIMIT :n) s",
            after=after,
            n=ctx.config.batch_size,
        ).scalar()
        if upto is None:
            break
        window = {"after": after, "upto": upto}
        if ctx.dry_run:
            marked_sql = f"""
                SELECT o.id, o.storage_key, o.size_bytes FROM {C}.stored_objects o
                JOIN _rt_cand c ON c.object_id = o.id
                WHERE c.object_id > :after AND c.object_id <= :upto
                  AND o.id > :after AND o.id <= :upto AND o.status = 'verified'
                  AND NOT EXISTS (SELECT 1 FROM _rt_gone g WHERE g.object_id = o.id)
                  AND NOT {LIVE_REFERENCE} AND NOT {HELD_OBJECT}"""
            queue_sql = "SELECT 1"
        else:
            ctx.exec("TRUNCATE _rt_locked")
            ctx.exec(
                f"""WITH l AS (
                      SELECT o.id FROM {C}.stored_objects o JOIN _rt_cand c ON c.object_id = o.id
                      WHERE c.object_id > :after AND c.object_id <= :upto
                        AND o.id > :after AND o.id <= :upto AND o.status = 'verified'
                      FOR UPDATE OF o SKIP LOCKED)
                    INSERT INTO _rt_locked SELECT id FROM l""",
                **window,
            )
            # New statement, new snapshot: references committed before we locked are visible now.
            marked_sql = f"""
                UPDATE {C}.stored_objects o SET status = 'deleted', deleted_at = :now
                FROM _rt_locked l
                WHERE o.id = l.object_id AND o.id > :after AND o.id <= :upto AND o.status = 'verified'
                  AND NOT {LIVE_REFERENCE} AND NOT {HELD_OBJECT}
                RETURNING o.id, o.storage_key, o.size_bytes"""
            queue_sql = f"""INSERT INTO {C}.retention_pending_deletes
                              (storage_key, target_type, target_id, run_id)
                            SELECT storage_key, 'object', id::text, :run FROM m
                            ON CONFLICT (storage_key) DO NOTHING"""
        row = ctx.exec(
            f"""WITH m AS ({marked_sql}),
                a AS (INSERT INTO {C}.retention_audit
                        (run_id, asset_key, partition_key,
                          policy, action, target_type, target_id, storage_key, owner_id,
                         size_bytes, reason, dry_run, created_at)
                      SELECT :run, :asset, :partition, :policy, '{ctx.deleted_action}', 'object', m.id::text,
                             m.storage_key, {AUDIT_OWNER}, m.size_bytes, :reason, :dry, :now FROM m),
                q AS ({queue_sql}),
                g AS (INSERT INTO _rt_gone SELECT id FROM m ON CONFLICT DO NOTHING),
                c AS (UPDATE _rt_cand SET outcome = 'deleted' FROM m WHERE _rt_cand.object_id = m.id)
                SELECT count(*), coalesce(sum(size_bytes), 0) FROM m""",
            **params,
            **window,
        ).one()
        ctx.conn.commit()
        ctx.purge_in_background()
        result.deleted += int(row[0])
        result.bytes_reclaimed += int(row[1])
        result.counts["objects_deleted"] += int(row[0])
        after = upto
    for why, n in ctx.exec(
        f"""SELECT CASE WHEN o.status = 'deleted' OR EXISTS (SELECT 1 FROM _rt_gone g WHERE
            g.object_id = o.id)
                            THEN 'already deleted'
                        WHEN {HELD_OBJECT} THEN 'legal hold'
                        WHEN {LIVE_REFERENCE} THEN 'still referenced'
                        ELSE 'locked by a concurrent transaction' END, count(*)
            FROM _rt_cand c JOIN {C}.stored_objects o ON o.id = c.object_id
            WHERE c.outcome IS NULL GROUP BY 1"""
    ).all():
        result.skipped[f"object {why}"] += int(n)
    ctx.exec("TRUNCATE _rt_cand")
    ctx.conn.commit()
    ctx.purge()


# -- references ---------------------------------------------------------------------------------------


def release_refs(ctx: SweepContext, result: PolicyResult, where: str, reason: str, **params: object) -> int:
    """Release live references matching `where` (on `r`), audit them, and make their objects
    candidates. Batched with SKIP LOCKED in a real run; a dry run only records them."""
    p = {**ctx.params(result.policy, reason), **params}
    action = "would_release" if ctx.dry_run else "released"
    total = 0
    base = f"""SELECT r.id FROM {C}.object_references r
               WHERE r.released_at IS NULL AND ({where})
                 AND NOT EXISTS (SELECT 1 FROM _rt_released x WHERE x.ref_id = r.id)"""
    while True:
        if ctx.dry_run:
            changed = f"""SELECT r.id, r.object_id, r.owner_id, r.source_name, r.source_pk, r.json_path
                          FROM {C}.object_references r WHERE r.id IN ({base})"""
        else:
            changed = f"""UPDATE {C}.object_references r SET released_at = :now
                          FROM (SELECT b.id FROM ({base} ORDER BY r.id LIMIT :n FOR UPDATE OF r SKIP
                              LOCKED) b) l
                          WHERE r.id = l.id
                          RETURNING r.id, r.object_id, r.owner_id, r.source_name, r.source_pk,
                              r.json_path"""
        n = ctx.exec(
            f"""WITH m AS ({changed}),
                x AS (INSERT INTO _rt_released SELECT id FROM m ON CONFLICT DO NOTHING),
                c AS (INSERT INTO _rt_cand (object_id) SELECT DISTINCT object_id FROM m
                      ON CONFLICT DO NOTHING),
                a AS (INSERT INTO {C}.retention_audit
                        (run_id, asset_key, partition_key,
                          policy, action, target_type, target_id, owner_id, reason, dry_run,
                         created_at)
                      SELECT :run, :asset, :partition, :policy, '{action}', 'reference',
                             m.source_name || ':' || m.source_pk || CASE WHEN m.json_path = '' THEN ''
                             ELSE ':' || m.json_path END, m.owner_id, :reason, :dry, :now FROM m)
                SELECT count(*) FROM m""",
            n=ctx.config.batch_size,
            **p,
        ).scalar_one()
        ctx.conn.commit()
        total += int(n)
        if ctx.dry_run or n == 0:
            break
    result.counts["references_released"] += total
    return total


# -- source rows --------------------------------------------------------------------------------------


def delete_source_rows(
    ctx: SweepContext, result: PolicyResult, source: BlobSource, where: str, reason: str, **params: object
) -> int:
    """Hard-delete rows of a source matching `where` (on `s`), audit them and release their references.

    Runs inside the caller's transaction (so an owner's rows go all together); a row another table
    still points at raises IntegrityError for the caller to handle.
    """
    # The row holds the places of every source configured on its table (two columns can be two
    # sources): all of their references go with it, matched on the whole identity but the column.
    sharing = [
        other for other in ctx.sources.sources if (other.schema, other.table) == (source.schema, source.table)
    ] or [source]
    p = {
        **ctx.params(result.policy, reason),
        **params,
        "source_name": source.name,
        "row_table": f"{source.schema}.{source.table}",
        "src_schema": source.schema,
        "src_table": source.table,
        "sharing_names": [other.name for other in sharing],
        "sharing_columns": [other.column for other in sharing],
    }
    pk, owner = f's."{source.primary_key}"', source.owner_sql("s")
    # Each (gone row, sharing source) pair is one lookup of the whole identity but the JSON path: the
    # unique key's index serves it.
    places = (
        "(gone g CROSS JOIN unnest(CAST(:sharing_names AS text[]), CAST(:sharing_columns AS text[])) "
        "sh(name, col))"
    )
    same_place = (
        "r.source_name = sh.name AND r.source_schema = :src_schema AND r.source_table = :src_table "
        "AND r.source_column = sh.col AND r.source_pk = g.pk"
    )
    if ctx.dry_run:
        # A row a dry run already counted (e.g. by the row policy, then by its owner's deletion) once.
        gone = f"""SELECT {pk}::text AS pk, {owner}::text AS owner FROM {source.qualified_table} s
                   WHERE ({where}) AND NOT EXISTS (SELECT 1 FROM _rt_gone_rows x
                                                 WHERE x.source = :row_table AND x.pk = {pk}::text)"""
        rel = f"""SELECT r.id, r.object_id FROM {C}.object_references r JOIN {places} ON {same_place}
                  WHERE r.released_at IS NULL"""
    else:
        gone = f"""DELETE FROM {source.qualified_table} s WHERE {where}
                   RETURNING {pk}::text AS pk, {owner}::text AS owner"""
        rel = f"""UPDATE {C}.object_references r SET released_at = :now FROM {places}
                  WHERE {same_place} AND r.released_at IS NULL
                  RETURNING r.id, r.object_id"""
    rows, refs = ctx.exec(
        f"""WITH gone AS ({gone}),
            a AS (INSERT INTO {C}.retention_audit
                    (run_id, asset_key, partition_key,
                      policy, action, target_type, target_id, owner_id, reason, dry_run,
                        created_at)
                  SELECT :run, :asset, :partition,
                    :policy, '{ctx.deleted_action}', 'row', :source_name || ':' || g.pk,
                         g.owner, :reason, :dry, :now FROM gone g),
            rel AS ({rel}),
            x AS (INSERT INTO _rt_released SELECT id FROM rel ON CONFLICT DO NOTHING),
            c AS (INSERT INTO _rt_cand (object_id) SELECT DISTINCT object_id FROM rel ON CONFLICT DO
                NOTHING),
            gr AS (INSERT INTO _rt_gone_rows SELECT :row_table, pk FROM gone ON CONFLICT DO NOTHING)
            SELECT (SELECT count(*) FROM gone), (SELECT count(*) FROM rel)""",
        **p,
    ).one()
    result.counts["rows_deleted"] += int(rows)
    result.counts["references_released"] += int(refs)
    return int(rows)


# -- owners -------------------------------------------------------------------------------------------


def delete_owner(ctx: SweepContext, result: PolicyResult, owner_id: str, reason: str) -> None:
    """Delete an owner everywhere: rows in every configured source, the owner row, their uploads and
    catalog references, and every object (with variants) nobody else references."""
    if ctx.exec(f"SELECT {owner_held(':owner')}", owner=owner_id).scalar():
        raise OwnerOnLegalHold(f"owner {owner_id!r} is under legal hold; nothing deleted")
    sources = [s for s in ctx.sources.sources if ctx.table_exists(s.schema, s.table)]
    # Delete in whatever order foreign keys between the app's tables allow: retry a source that a
    # not-yet-deleted row of another source still points at, until a pass makes no progress.
    pending = list(sources)
    while pending:
        failed: list[BlobSource] = []
        errors: list[str] = []
        for source in pending:
            try:
                with ctx.savepoint():
                    delete_source_rows(
                        ctx,
                        result,
                        source,
                        f"{source.owner_sql('s')}::text = :owner",
                        reason,
                        owner=owner_id,
                    )
            except sa.exc.IntegrityError as exc:
                failed.append(source)
                errors.append(f"{source.name}: {exc.orig}")
        if len(failed) == len(pending):
            raise RuntimeError(f"cannot delete rows of owner {owner_id!r}: {'; '.join(errors)}")
        pending = failed
    delete_parent_rows(ctx, result, owner_id, reason)
    # Whatever else the catalog holds for this owner (uploads, documents, exports).
    release_refs_in_tx(ctx, result, "r.owner_id = :owner", reason, owner=owner_id)
    ctx.exec(
        "INSERT INTO _rt_cand (object_id) SELECT DISTINCT object_id FROM "
        f"{C}.object_references WHERE owner_id = :owner ON CONFLICT DO NOTHING",
        owner=owner_id,
    )
    remove_uploads(ctx, result, "u.owner_id = :owner", reason, delete_rows=True, owner=owner_id)
    owners = ctx.sources.owners
    if ctx.table_exists(owners.schema, owners.table):
        owner_table = f'"{owners.schema}"."{owners.table}"'
        match = f'"{owners.primary_key}"::text = :owner'
        if ctx.dry_run:
            n = ctx.exec(f"SELECT count(*) FROM {owner_table} WHERE {match}", owner=owner_id).scalar_one()
        else:
            n = ctx.exec(f"DELETE FROM {owner_table} WHERE {match}", owner=owner_id).rowcount
        if n:
            audit_owner(ctx, result, owner_id, ctx.deleted_action, reason)
            result.counts["owners_deleted"] += 1
            result.counts["rows_deleted"] += n
    ctx.conn.commit()
    delete_candidates(ctx, result, reason)
    delete_variants(ctx, result, reason, parents_sql="SELECT object_id FROM _rt_gone")
    if not ctx.dry_run:
        # The owner's catalog references go too; other owners' references to shared objects stay.
        ctx.exec(f"DELETE FROM {C}.object_references WHERE owner_id = :owner", owner=owner_id)
        ctx.conn.commit()


def delete_parent_rows(ctx: SweepContext, result: PolicyResult, owner_id: str, reason: str) -> None:
    """The owner's parent rows that sources find their owner through (e.g. albums.owner_email), once the
    blob rows pointing at them are gone: they are the owner's rows too. One another table still points
    at stops the owner's deletion (RuntimeError, rolled back by the caller)."""
    parents: dict[tuple[str, str], tuple[str, str]] = {}
    for source in ctx.sources.sources:
        join = source.owner_join
        if join is not None:
            parents[(join.db_schema or source.schema, join.table)] = (join.key, join.column)
    for (schema, table), (key, column) in parents.items():
        if not ctx.table_exists(schema, table):
            continue
        qualified, match = f'"{schema}"."{table}"', f'"{column}"::text = :owner'
        params = {**ctx.params(result.policy, reason), "owner": owner_id, "label": f"{schema}.{table}:"}
        gone = (
            f'SELECT "{key}"::text AS pk FROM {qualified} WHERE {match}'
            if ctx.dry_run
            else f'DELETE FROM {qualified} WHERE {match} RETURNING "{key}"::text AS pk'
        )
        try:
            with ctx.savepoint():
                n = ctx.exec(
                    f"""WITH gone AS ({gone}),
                        a AS (INSERT INTO {C}.retention_audit
                                (run_id, asset_key, partition_key,
                                  policy, action, target_type, target_id, owner_id, reason, dry_run,
                                 created_at)
                              SELECT :run, :asset, :partition,
                                :policy, '{ctx.deleted_action}', 'row', :label || g.pk, :owner,
                                     :reason, :dry, :now FROM gone g)
                        SELECT count(*) FROM gone""",
                    **params,
                ).scalar_one()
        except sa.exc.IntegrityError as exc:
            raise RuntimeError(
                f"cannot delete {schema}.{table} rows of owner {owner_id!r}: {exc.orig}"
            ) from exc
        result.counts["rows_deleted"] += int(n)


def release_refs_in_tx(
    ctx: SweepContext, result: PolicyResult, where: str, reason: str, **params: object
) -> None:
    """Like release_refs but unbatched and inside the caller's transaction (owner deletion)."""
    p = {**ctx.params(result.policy, reason), **params}
    action = "would_release" if ctx.dry_run else "released"
    if ctx.dry_run:
        changed = f"""SELECT r.id, r.object_id, r.owner_id, r.source_name, r.source_pk, r.json_path
                      FROM {C}.object_references r WHERE r.released_at IS NULL AND ({where})
                        AND NOT EXISTS (SELECT 1 FROM _rt_released x WHERE x.ref_id = r.id)"""
    else:
        changed = f"""UPDATE {C}.object_references r SET released_at = :now
                      WHERE r.released_at IS NULL AND ({where})
                      RETURNING r.id, r.object_id, r.owner_id, r.source_name, r.source_pk, r.json_path"""
    n = ctx.exec(
        f"""WITH m AS ({changed}),
            x AS (INSERT INTO _rt_released SELECT id FROM m ON CONFLICT DO NOTHING),
            c AS (INSERT INTO _rt_cand (object_id) SELECT DISTINCT object_id FROM m ON CONFLICT DO
                NOTHING),
            a AS (INSERT INTO {C}.retention_audit
                    (run_id, asset_key, partition_key,
                      policy, action, target_type, target_id, owner_id, reason, dry_run,
                        created_at)
                  SELECT :run, :asset, :partition, :policy, '{action}', 'reference',
                         m.source_name || ':' || m.source_pk, m.owner_id, :reason, :dry, :now FROM m)
            SELECT count(*) FROM m""",
        **p,
    ).scalar_one()
    result.counts["references_released"] += int(n)


def audit_owner(ctx: SweepContext, result: PolicyResult, owner_id: str, action: str, reason: str) -> None:
    ctx.exec(
        f"""INSERT INTO {C}.retention_audit
              (run_id, asset_key, partition_key,
                policy, action, target_type, target_id, owner_id, reason, dry_run, created_at)
            VALUES (:run, :asset, :partition,
              :policy, :action, 'owner', :owner, :owner, :reason, :dry, :now)""",
        action=action,
        owner=owner_id,
        **ctx.params(result.policy, reason),
    )


# -- uploads ------------------------------------------------------------------------------------------


def remove_uploads(
    ctx: SweepContext, result: PolicyResult, where: str, reason: str, *, delete_rows: bool, **params: object
) -> None:
    """Queue the staged objects of uploads matching `where` (on `u`) for deletion and mark them
    abandoned (or delete the rows, for an owner's deletion). Runs in the caller's transaction."""
    p = {**ctx.params(result.policy, reason), **params}
    select = f"SELECT u.id FROM {C}.uploads u WHERE {where}"
    if ctx.dry_run:
        changed = f"""SELECT u.id, u.upload_key, u.owner_id, u.size_bytes FROM {C}.uploads u
                      WHERE u.id IN ({select})
                        AND NOT EXISTS (SELECT 1 FROM _rt_gone_uploads g WHERE g.upload_id = u.id)"""
        queue = "SELECT 1"
    else:
        locked = f"{select} FOR UPDATE OF u SKIP LOCKED"
        if delete_rows:
            changed = f"""DELETE FROM {C}.uploads u WHERE u.id IN ({locked})
                          RETURNING u.id, u.upload_key, u.owner_id, u.size_bytes"""
        else:
            changed = f"""UPDATE {C}.uploads u SET status = 'abandoned',
                              error = 'abandoned: never confirmed; staged object deleted by retention'
                          WHERE u.id IN ({locked}) AND u.status = 'pending'
                          RETURNING u.id, u.upload_key, u.owner_id, u.size_bytes"""
        # Never queue a key the catalog uses for a live object.
        queue = f"""INSERT INTO {C}.retention_pending_deletes (storage_key, target_type, target_id,
            run_id)
                    SELECT m.upload_key, 'upload', m.id::text, :run FROM m
                    WHERE NOT EXISTS (SELECT 1 FROM {C}.stored_objects o
                                      WHERE o.storage_key = m.upload_key AND o.status = 'verified')
                    ON CONFLICT (storage_key) DO NOTHING"""
    n, size = ctx.exec(
        f"""WITH m AS ({changed}),
            g AS (INSERT INTO _rt_gone_uploads SELECT id FROM m ON CONFLICT DO NOTHING),
            q AS ({queue}),
            a AS (INSERT INTO {C}.retention_audit
                    (run_id, asset_key, partition_key,
                      policy, action, target_type, target_id, storage_key, owner_id, size_bytes,
                     reason, dry_run, created_at)
                  SELECT :run, :asset, :partition,
                    :policy, '{ctx.deleted_action}', 'upload', m.id::text, m.upload_key,
                         m.owner_id, m.size_bytes, :reason, :dry, :now FROM m)
            SELECT count(*), coalesce(sum(size_bytes), 0) FROM m""",
        **p,
    ).one()
    result.deleted += int(n)
    result.bytes_reclaimed += int(size)
    result.counts["uploads_removed"] += int(n)


# -- variants -----------------------------------------------------------------------------------------


def delete_variants(
    ctx: SweepContext, result: PolicyResult, reason: str, parents_sql: str | None = None
) -> None:
    """Delete variants whose original is deleted (or deleted earlier in this dry run), unless the
    original is held; batched, each batch one transaction."""
    p = ctx.params(result.policy, reason)
    gone_parent = "(o.status = 'deleted' OR EXISTS (SELECT 1 FROM _rt_gone g WHERE g.object_id = o.id))"
    scope = f"AND o.id IN ({parents_sql})" if parents_sql else ""
    # A variant a dry run already listed (by an earlier policy's cascade) is not listed again.
    not_listed = "NOT EXISTS (SELECT 1 FROM _rt_gone_variants gv WHERE gv.variant_id = v.id)"
    base = f"""SELECT v.id FROM {C}.variants v JOIN {C}.stored_objects o ON o.id = v.parent_object_id
               WHERE v.status <> 'deleted' AND {not_listed} AND {gone_parent} {scope}
                 AND NOT {HELD_OBJECT}"""
    result.candidates += (
        0
        if parents_sql
        else int(
            ctx.exec(
                f"""SELECT count(*) FROM {C}.variants v JOIN {C}.stored_objects o ON o.id =
                    v.parent_object_id
                    WHERE v.status <> 'deleted' AND {not_listed} AND {gone_parent}"""
            ).scalar_one()
        )
    )
    if not parents_sql:
        held = ctx.exec(
            f"""SELECT count(*) FROM {C}.variants v JOIN {C}.stored_objects o ON o.id = v.parent_object_id
                WHERE v.status <> 'deleted' AND {not_listed} AND {gone_parent} AND {HELD_OBJECT}"""
        ).scalar_one()
        if held:
            result.skipped["variant of a held original"] += int(held)
    if ctx.dry_run:
        changed = f"""SELECT v.id, v.storage_key, v.size_bytes, v.parent_object_id FROM {C}.variants v
                      WHERE v.id IN ({base})"""
        queue = "SELECT 1"
    else:
        changed = f"""UPDATE {C}.variants v SET status = 'deleted', deleted_at = :now
                      WHERE v.id IN ({base} ORDER BY v.id LIMIT :n FOR UPDATE OF v SKIP LOCKED)
                      RETURNING v.id, v.storage_key, v.size_bytes, v.parent_object_id"""
        queue = f"""INSERT INTO {C}.retention_pending_deletes (storage_key, target_type, target_id,
            run_id)
                    SELECT storage_key, 'variant', id::text, :run FROM m WHERE storage_key IS NOT NULL
                    ON CONFLICT (storage_key) DO NOTHING"""
    while True:
        n, size = ctx.exec(
            f"""WITH m AS ({changed}),
                q AS ({queue}),
                gv AS (INSERT INTO _rt_gone_variants SELECT id FROM m ON CONFLICT DO NOTHING),
                a AS (INSERT INTO {C}.retention_audit
                        (run_id, asset_key, partition_key,
                          policy, action, target_type, target_id, storage_key, owner_id,
                         size_bytes, reason, dry_run, created_at)
                      SELECT :run, :asset, :partition, :policy, '{ctx.deleted_action}', 'variant', m.id::text,
                          m.storage_key,
                             (SELECT ar.owner_id FROM {C}.object_references ar
                              WHERE ar.object_id = m.parent_object_id
                              ORDER BY ar.released_at DESC NULLS FIRST, ar.id DESC LIMIT 1),
                             m.size_bytes, :reason, :dry, :now FROM m)
                SELECT count(*), coalesce(sum(size_bytes), 0) FROM m""",
            n=ctx.config.batch_size,
            **p,
        ).one()
        ctx.conn.commit()
        result.deleted += int(n)
        result.bytes_reclaimed += int(size)
        result.counts["variants_deleted"] += int(n)
        if ctx.dry_run or n == 0:
            break
    ctx.purge()


def delete_owners(
    ctx: SweepContext, result: PolicyResult, owner_ids: list[str], reason: str, *, count: bool = True
) -> None:
    if count:
        result.candidates += len(owner_ids)
    for owner_id in owner_ids:
        try:
            delete_owner(ctx, result, owner_id, reason)
        except OwnerOnLegalHold:
            ctx.conn.rollback()
            result.skipped["owner under legal hold"] += 1
        except RuntimeError as exc:
            ctx.conn.rollback()
            result.skipped["owner rows still referenced by another table"] += 1
            log.warning("retention: %s", exc)
