"""The retention sweep: set-based in SQL, decided at delete time, audited, and safe to interrupt.

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

import logging
import time
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime

import sqlalchemy as sa

from core.catalog.models import CATALOG_SCHEMA
from core.objectstore.base import DELETE_BATCH_SIZE, ObjectStore
from core.retention.policies import (
    ABANDONED_UPLOADS,
    EXPIRED_DOCUMENTS,
    INACTIVE_USERS,
    ORPHANED_OBJECTS,
    ORPHANED_VARIANTS,
    POLICY_ORDER,
    SOFT_DELETED_ROWS,
    RetentionConfig,
    months_before,
)
from core.sources import BlobSource, SourcesConfig

log = logging.getLogger(__name__)

C = CATALOG_SCHEMA

# -- SQL fragments about one stored object `o` -------------------------------------------------------------

#: A reference still holds the object: not released, and not released earlier in this (dry) run; or an
#: upload in flight still points at it.
LIVE_REFERENCE = f"""(
    EXISTS (SELECT 1 FROM {C}.object_references r
            WHERE r.object_id = o.id AND r.released_at IS NULL
              AND NOT EXISTS (SELECT 1 FROM _rt_released x WHERE x.ref_id = r.id))
    OR EXISTS (SELECT 1 FROM {C}.uploads u
               WHERE u.object_id = o.id AND u.status IN ('pending', 'confirmed')
                 AND NOT EXISTS (SELECT 1 FROM _rt_gone_uploads gu WHERE gu.upload_id = u.id))
)"""

#: A legal hold covers the object: its own flag, a hold on it, or a hold on any owner referring to it.
HELD_OBJECT = f"""(
    o.legal_hold
    OR EXISTS (SELECT 1 FROM {C}.legal_holds h WHERE h.object_id = o.id AND h.released_at IS NULL)
    OR EXISTS (SELECT 1 FROM {C}.object_references hr
               JOIN {C}.legal_holds h ON h.owner_id = hr.owner_id AND h.released_at IS NULL
               WHERE hr.object_id = o.id)
)"""

#: The owner to name in the audit row: the most recent reference's owner.
AUDIT_OWNER = f"""(SELECT ar.owner_id FROM {C}.object_references ar WHERE ar.object_id = m.id
                   ORDER BY ar.released_at DESC NULLS FIRST, ar.id DESC LIMIT 1)"""


def owner_held(owner_sql: str) -> str:
    return (
        f"EXISTS (SELECT 1 FROM {C}.legal_holds h WHERE h.released_at IS NULL AND h.owner_id = {owner_sql})"
    )


TEMP_TABLES = {
    "_rt_released": "ref_id bigint PRIMARY KEY",
    "_rt_gone": "object_id bigint PRIMARY KEY",
    "_rt_gone_uploads": "upload_id bigint PRIMARY KEY",
    "_rt_gone_variants": "variant_id bigint PRIMARY KEY",
    "_rt_cand": "object_id bigint PRIMARY KEY, outcome text",
    "_rt_locked": "object_id bigint PRIMARY KEY",
    "_rt_gone_rows": "source text, pk text, PRIMARY KEY (source, pk)",
}


@dataclass
class PolicyResult:
    """What one policy did in one run (numbers for the UI, reasons for what it left alone)."""

    policy: str
    enabled: bool = True
    note: str = ""
    candidates: int = 0  # items the policy selected (objects, rows, owners, uploads, references, variants)
    deleted: int = 0  # items removed from storage (objects, variants, staged uploads) or would be
    bytes_reclaimed: int = 0
    skipped: Counter[str] = field(default_factory=Counter)
    counts: Counter[str] = field(default_factory=Counter)  # rows_deleted, references_released, ...
    warned_owners: list[str] = field(default_factory=list)

    @property
    def skipped_total(self) -> int:
        return sum(self.skipped.values())


@dataclass
class SweepReport:
    run_id: str
    dry_run: bool
    now: datetime
    policies: dict[str, PolicyResult] = field(default_factory=dict)
    purged_keys: int = 0
    leftover_keys_purged: int = 0  # queued by an earlier, interrupted run and finished by this one
    purge_failures: dict[str, str] = field(default_factory=dict)  # key -> last storage error
    revived_keys: int = 0
    storage_seconds: float = 0.0  # time spent in delete_keys (overlaps catalog work)
    waiting_seconds: float = 0.0  # time the sweep itself waited for storage deletes to finish

    @property
    def deleted(self) -> int:
        return sum(p.deleted for p in self.policies.values())

    @property
    def bytes_reclaimed(self) -> int:
        return sum(p.bytes_reclaimed for p in self.policies.values())

    def markdown(self) -> str:
        verb = "would delete" if self.dry_run else "deleted"
        lines = [
            f"| policy | enabled | candidates | {verb} | bytes | rows deleted | refs released | "
            "skipped (why) |",
            "|---|---|---:|---:|---:|---:|---:|---|",
        ]
        for name, p in self.policies.items():
            why = ", ".join(f"{reason}: {n}" for reason, n in sorted(p.skipped.items())) or "-"
            enabled = "yes" if p.enabled else f"no ({p.note})"
            lines.append(
                f"| {name} | {enabled} | {p.candidates} | {p.deleted} | {p.bytes_reclaimed} | "
                f"{p.counts['rows_deleted']} | {p.counts['references_released']} | {why} |"
            )
        return "\n".join(lines)


class OwnerOnLegalHold(RuntimeError):
    """The owner (or something they own) is under legal hold; nothing was deleted."""


class Sweep:
    """One sweep run on one connection (its temporary tables live for the connection's session)."""

    def __init__(
        self,
        conn: sa.Connection,
        store: ObjectStore,
        sources: SourcesConfig,
        config: RetentionConfig,
        *,
        run_id: str,
        now: datetime,
        dry_run: bool,
        progress: Callable[[str], None] | None = None,
    ) -> None:
        self.conn = conn
        self.store = store
        self.sources = sources
        self.config = config
        self.run_id = run_id
        self.now = now
        self.dry_run = dry_run
        self.progress = progress or log.info
        self.report = SweepReport(run_id=run_id, dry_run=dry_run, now=now)
        self._tables_present: dict[tuple[str, str], bool] = {}
        self._purger: ThreadPoolExecutor | None = None
        self._purging: Future[None] | None = None
        for name, columns in TEMP_TABLES.items():
            self._exec(f"CREATE TEMP TABLE IF NOT EXISTS {name} ({columns})")
            self._exec(f"TRUNCATE {name}")
        self.conn.commit()

    # -- plumbing ----------------------------------------------------------------------------------------

    def _exec(self, sql: str, **params: object) -> sa.CursorResult:
        return self.conn.execute(sa.text(sql), params)

    def _params(self, policy: str, reason: str) -> dict[str, object]:
        return {"run": self.run_id, "policy": policy, "reason": reason, "now": self.now, "dry": self.dry_run}

    @property
    def _deleted_action(self) -> str:
        return "would_delete" if self.dry_run else "deleted"

    def table_exists(self, schema: str, table: str) -> bool:
        key = (schema, table)
        if key not in self._tables_present:
            self._tables_present[key] = bool(
                self._exec("SELECT to_regclass(:t) IS NOT NULL", t=f'"{schema}"."{table}"').scalar()
            )
        return self._tables_present[key]

    @contextmanager
    def _savepoint(self) -> Iterator[None]:
        nested = self.conn.begin_nested()
        try:
            yield
        except Exception:
            nested.rollback()
            raise
        else:
            nested.commit()

    # -- the one way objects are deleted ------------------------------------------------------------------

    def delete_candidates(self, result: PolicyResult, reason: str) -> None:
        """Delete (or in a dry run, record) every object in `_rt_cand` that is still unreferenced and
        unheld at delete time, in batches; leftover candidates are counted under why they were kept."""
        params = self._params(result.policy, reason)
        after = 0
        self._exec("ANALYZE _rt_cand")  # temporary tables get no statistics unless asked
        while True:
            upto = self._exec(
                "SELECT max(object_id) FROM (SELECT object_id FROM _rt_cand WHERE object_id > :after "
                "ORDER BY object_id LIMIT :n) s",
                after=after,
                n=self.config.batch_size,
            ).scalar()
            if upto is None:
                break
            window = {"after": after, "upto": upto}
            if self.dry_run:
                marked_sql = f"""
                    SELECT o.id, o.storage_key, o.size_bytes FROM {C}.stored_objects o
                    JOIN _rt_cand c ON c.object_id = o.id
                    WHERE c.object_id > :after AND c.object_id <= :upto
                      AND o.id > :after AND o.id <= :upto AND o.status = 'verified'
                      AND NOT EXISTS (SELECT 1 FROM _rt_gone g WHERE g.object_id = o.id)
                      AND NOT {LIVE_REFERENCE} AND NOT {HELD_OBJECT}"""
                queue_sql = "SELECT 1"
            else:
                self._exec("TRUNCATE _rt_locked")
                self._exec(
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
            row = self._exec(
                f"""WITH m AS ({marked_sql}),
                    a AS (INSERT INTO {C}.retention_audit
                            (run_id, policy, action, target_type, target_id, storage_key, owner_id,
                             size_bytes, reason, dry_run, created_at)
                          SELECT :run, :policy, '{self._deleted_action}', 'object', m.id::text,
                                 m.storage_key, {AUDIT_OWNER}, m.size_bytes, :reason, :dry, :now FROM m),
                    q AS ({queue_sql}),
                    g AS (INSERT INTO _rt_gone SELECT id FROM m ON CONFLICT DO NOTHING),
                    c AS (UPDATE _rt_cand SET outcome = 'deleted' FROM m WHERE _rt_cand.object_id = m.id)
                    SELECT count(*), coalesce(sum(size_bytes), 0) FROM m""",
                **params,
                **window,
            ).one()
            self.conn.commit()
            self.purge_in_background()
            result.deleted += int(row[0])
            result.bytes_reclaimed += int(row[1])
            result.counts["objects_deleted"] += int(row[0])
            after = upto
        for why, n in self._exec(
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
        self._exec("TRUNCATE _rt_cand")
        self.conn.commit()
        self.purge()

    # -- storage ------------------------------------------------------------------------------------------

    def purge(self) -> None:
        """Delete every queued key from storage (including leftovers of interrupted runs) and wait for it;
        never in a dry run."""
        if self.dry_run:
            return
        started = time.perf_counter()
        self._wait_for_purge()
        self._purge_queue()
        self.report.waiting_seconds += time.perf_counter() - started

    def purge_in_background(self) -> None:
        """Start purging what is queued so far on another connection, so storage deletes of one batch
        overlap the catalog work of the next; at most one purge runs at a time."""
        if self.dry_run:
            return
        if self._purging is not None and not self._purging.done():
            return
        self._wait_for_purge()
        if self._purger is None:
            self._purger = ThreadPoolExecutor(max_workers=1, thread_name_prefix="retention-purge")
        self._purging = self._purger.submit(self._purge_queue)

    def _wait_for_purge(self) -> None:
        if self._purging is not None:
            future, self._purging = self._purging, None
            future.result()  # re-raises whatever stopped it

    def close(self) -> None:
        try:
            self._wait_for_purge()
        finally:
            if self._purger is not None:
                self._purger.shutdown(wait=True)
                self._purger = None

    def _purge_queue(self) -> None:
        chunk = DELETE_BATCH_SIZE * self.config.storage_delete_workers
        with self.conn.engine.connect() as conn:
            while True:
                queued = conn.execute(
                    sa.text(
                        f"""SELECT p.storage_key, p.target_type, p.target_id,
                              CASE p.target_type
                                WHEN 'object' THEN EXISTS (SELECT 1 FROM {C}.stored_objects o
                                    WHERE o.id = p.target_id::bigint AND o.status = 'verified')
                                WHEN 'variant' THEN EXISTS (SELECT 1 FROM {C}.variants v
                                    WHERE v.id = p.target_id::bigint AND v.status <> 'deleted')
                                ELSE EXISTS (SELECT 1 FROM {C}.stored_objects o
                                    WHERE o.storage_key = p.storage_key AND o.status = 'verified')
                              END AS revived
                            FROM {C}.retention_pending_deletes p ORDER BY p.storage_key
                            LIMIT :n FOR UPDATE OF p SKIP LOCKED"""
                    ),
                    {"n": chunk},
                ).all()
                if not queued:
                    conn.commit()
                    return
                # A key whose row came back (re-ingested content, regenerated variant) must stay; the rows
                # still deleted are locked so nothing revives them while their bytes are being removed.
                # The status is read again once locked: a row revived while we waited for its lock (the
                # reviver re-checked the bytes under that lock) keeps them.
                lock_ids = [int(q.target_id) for q in queued if q.target_type == "object" and not q.revived]
                revived_now = {
                    int(row_id)
                    for row_id, status in conn.execute(
                        sa.text(f"SELECT id, status FROM {C}.stored_objects WHERE id = ANY(:ids) FOR UPDATE"),
                        {"ids": lock_ids},
                    )
                    if status == "verified"
                }
                keys = [q.storage_key for q in queued]
                doomed = [
                    q.storage_key
                    for q in queued
                    if not q.revived and not (q.target_type == "object" and int(q.target_id) in revived_now)
                ]
                started = time.perf_counter()
                failures = self._delete_from_storage(doomed)
                self.report.storage_seconds += time.perf_counter() - started
                failed = {k for k, _ in failures}
                conn.execute(
                    sa.text(f"DELETE FROM {C}.retention_pending_deletes WHERE storage_key = ANY(:keys)"),
                    {"keys": [k for k in keys if k not in failed]},
                )
                for key, error in failures:
                    conn.execute(
                        sa.text(
                            f"""UPDATE {C}.retention_pending_deletes
                                SET attempts = attempts + 1, last_error = :e WHERE storage_key = :k"""
                        ),
                        {"k": key, "e": error[:1000]},
                    )
                conn.commit()
                self.report.purged_keys += len(doomed) - len(failures)
                self.report.revived_keys += len(keys) - len(doomed)
                self.report.purge_failures.update(failures)
                if failures and len(failures) == len(doomed):
                    return  # storage refuses everything right now; the queue keeps them for the next run

    def _delete_from_storage(self, keys: list[str]) -> list[tuple[str, str]]:
        batches = [keys[i : i + DELETE_BATCH_SIZE] for i in range(0, len(keys), DELETE_BATCH_SIZE)]
        if len(batches) <= 1 or self.config.storage_delete_workers == 1:
            return [f for batch in batches for f in self.store.delete_keys(batch)]
        with ThreadPoolExecutor(max_workers=self.config.storage_delete_workers) as pool:
            return [f for failures in pool.map(self.store.delete_keys, batches) for f in failures]

    # -- references ---------------------------------------------------------------------------------------

    def release_refs(self, result: PolicyResult, where: str, reason: str, **params: object) -> int:
        """Release live references matching `where` (on `r`), audit them, and make their objects
        candidates. Batched with SKIP LOCKED in a real run; a dry run only records them."""
        p = {**self._params(result.policy, reason), **params}
        action = "would_release" if self.dry_run else "released"
        total = 0
        base = f"""SELECT r.id FROM {C}.object_references r
                   WHERE r.released_at IS NULL AND ({where})
                     AND NOT EXISTS (SELECT 1 FROM _rt_released x WHERE x.ref_id = r.id)"""
        while True:
            if self.dry_run:
                changed = f"""SELECT r.id, r.object_id, r.owner_id, r.source_name, r.source_pk, r.json_path
                              FROM {C}.object_references r WHERE r.id IN ({base})"""
            else:
                changed = f"""UPDATE {C}.object_references r SET released_at = :now
                              FROM (SELECT b.id FROM ({base} ORDER BY r.id LIMIT :n FOR UPDATE OF r SKIP
                                  LOCKED) b) l
                              WHERE r.id = l.id
                              RETURNING r.id, r.object_id, r.owner_id, r.source_name, r.source_pk,
                                  r.json_path"""
            n = self._exec(
                f"""WITH m AS ({changed}),
                    x AS (INSERT INTO _rt_released SELECT id FROM m ON CONFLICT DO NOTHING),
                    c AS (INSERT INTO _rt_cand (object_id) SELECT DISTINCT object_id FROM m
                          ON CONFLICT DO NOTHING),
                    a AS (INSERT INTO {C}.retention_audit
                            (run_id, policy, action, target_type, target_id, owner_id, reason, dry_run,
                             created_at)
                          SELECT :run, :policy, '{action}', 'reference',
                                 m.source_name || ':' || m.source_pk || CASE WHEN m.json_path = '' THEN ''
                                 ELSE ':' || m.json_path END, m.owner_id, :reason, :dry, :now FROM m)
                    SELECT count(*) FROM m""",
                n=self.config.batch_size,
                **p,
            ).scalar_one()
            self.conn.commit()
            total += int(n)
            if self.dry_run or n == 0:
                break
        result.counts["references_released"] += total
        return total

    # -- source rows --------------------------------------------------------------------------------------

    def delete_source_rows(
        self, result: PolicyResult, source: BlobSource, where: str, reason: str, **params: object
    ) -> int:
        """Hard-delete rows of a source matching `where` (on `s`), audit them and release their references.

        Runs inside the caller's transaction (so an owner's rows go all together); a row another table
        still points at raises IntegrityError for the caller to handle.
        """
        p = {**self._params(result.policy, reason), **params, "source_name": source.name}
        pk, owner = f's."{source.primary_key}"', f's."{source.owner_column}"'
        if self.dry_run:
            # A row a dry run already counted (e.g. by the row policy, then by its owner's deletion) once.
            gone = f"""SELECT {pk}::text AS pk, {owner}::text AS owner FROM {source.qualified_table} s
                       WHERE ({where}) AND NOT EXISTS (SELECT 1 FROM _rt_gone_rows x
                                                     WHERE x.source = :source_name AND x.pk = {pk}::text)"""
            rel = f"""SELECT r.id, r.object_id FROM {C}.object_references r JOIN gone g
                      ON r.source_name = :source_name AND r.source_pk = g.pk
                      WHERE r.released_at IS NULL"""
        else:
            gone = f"""DELETE FROM {source.qualified_table} s WHERE {where}
                       RETURNING {pk}::text AS pk, {owner}::text AS owner"""
            rel = f"""UPDATE {C}.object_references r SET released_at = :now FROM gone g
                      WHERE r.source_name = :source_name AND r.source_pk = g.pk AND r.released_at IS NULL
                      RETURNING r.id, r.object_id"""
        rows, refs = self._exec(
            f"""WITH gone AS ({gone}),
                a AS (INSERT INTO {C}.retention_audit
                        (run_id, policy, action, target_type, target_id, owner_id, reason, dry_run,
                            created_at)
                      SELECT :run, :policy, '{self._deleted_action}', 'row', :source_name || ':' || g.pk,
                             g.owner, :reason, :dry, :now FROM gone g),
                rel AS ({rel}),
                x AS (INSERT INTO _rt_released SELECT id FROM rel ON CONFLICT DO NOTHING),
                c AS (INSERT INTO _rt_cand (object_id) SELECT DISTINCT object_id FROM rel ON CONFLICT DO
                    NOTHING),
                gr AS (INSERT INTO _rt_gone_rows SELECT :source_name, pk FROM gone ON CONFLICT DO NOTHING)
                SELECT (SELECT count(*) FROM gone), (SELECT count(*) FROM rel)""",
            **p,
        ).one()
        result.counts["rows_deleted"] += int(rows)
        result.counts["references_released"] += int(refs)
        return int(rows)

    # -- owners -------------------------------------------------------------------------------------------

    def delete_owner(self, result: PolicyResult, owner_id: str, reason: str) -> None:
        """Delete an owner everywhere: rows in every configured source, the owner row, their uploads and
        catalog references, and every object (with variants) nobody else references."""
        if self._exec(f"SELECT {owner_held(':owner')}", owner=owner_id).scalar():
            raise OwnerOnLegalHold(f"owner {owner_id!r} is under legal hold; nothing deleted")
        sources = [s for s in self.sources.sources if self.table_exists(s.schema, s.table)]
        # Delete in whatever order foreign keys between the app's tables allow: retry a source that a
        # not-yet-deleted row of another source still points at, until a pass makes no progress.
        pending = list(sources)
        while pending:
            failed: list[BlobSource] = []
            errors: list[str] = []
            for source in pending:
                try:
                    with self._savepoint():
                        self.delete_source_rows(
                            result,
                            source,
                            f's."{source.owner_column}"::text = :owner',
                            reason,
                            owner=owner_id,
                        )
                except sa.exc.IntegrityError as exc:
                    failed.append(source)
                    errors.append(f"{source.name}: {exc.orig}")
            if len(failed) == len(pending):
                raise RuntimeError(f"cannot delete rows of owner {owner_id!r}: {'; '.join(errors)}")
            pending = failed
        # Whatever else the catalog holds for this owner (uploads, documents, exports).
        self.release_refs_in_tx(result, "r.owner_id = :owner", reason, owner=owner_id)
        self._exec(
            "INSERT INTO _rt_cand (object_id) SELECT DISTINCT object_id FROM "
            f"{C}.object_references WHERE owner_id = :owner ON CONFLICT DO NOTHING",
            owner=owner_id,
        )
        self.remove_uploads(result, "u.owner_id = :owner", reason, delete_rows=True, owner=owner_id)
        owners = self.sources.owners
        if self.table_exists(owners.schema, owners.table):
            owner_table = f'"{owners.schema}"."{owners.table}"'
            match = f'"{owners.primary_key}"::text = :owner'
            if self.dry_run:
                n = self._exec(
                    f"SELECT count(*) FROM {owner_table} WHERE {match}", owner=owner_id
                ).scalar_one()
            else:
                n = self._exec(f"DELETE FROM {owner_table} WHERE {match}", owner=owner_id).rowcount
            if n:
                self._audit_owner(result, owner_id, self._deleted_action, reason)
                result.counts["owners_deleted"] += 1
                result.counts["rows_deleted"] += n
        self.conn.commit()
        self.delete_candidates(result, reason)
        self.delete_variants(result, reason, parents_sql="SELECT object_id FROM _rt_gone")
        if not self.dry_run:
            # The owner's catalog references go too; other owners' references to shared objects stay.
            self._exec(f"DELETE FROM {C}.object_references WHERE owner_id = :owner", owner=owner_id)
            self.conn.commit()

    def release_refs_in_tx(self, result: PolicyResult, where: str, reason: str, **params: object) -> None:
        """Like release_refs but unbatched and inside the caller's transaction (owner deletion)."""
        p = {**self._params(result.policy, reason), **params}
        action = "would_release" if self.dry_run else "released"
        if self.dry_run:
            changed = f"""SELECT r.id, r.object_id, r.owner_id, r.source_name, r.source_pk, r.json_path
                          FROM {C}.object_references r WHERE r.released_at IS NULL AND ({where})
                            AND NOT EXISTS (SELECT 1 FROM _rt_released x WHERE x.ref_id = r.id)"""
        else:
            changed = f"""UPDATE {C}.object_references r SET released_at = :now
                          WHERE r.released_at IS NULL AND ({where})
                          RETURNING r.id, r.object_id, r.owner_id, r.source_name, r.source_pk, r.json_path"""
        n = self._exec(
            f"""WITH m AS ({changed}),
                x AS (INSERT INTO _rt_released SELECT id FROM m ON CONFLICT DO NOTHING),
                c AS (INSERT INTO _rt_cand (object_id) SELECT DISTINCT object_id FROM m ON CONFLICT DO
                    NOTHING),
                a AS (INSERT INTO {C}.retention_audit
                        (run_id, policy, action, target_type, target_id, owner_id, reason, dry_run,
                            created_at)
                      SELECT :run, :policy, '{action}', 'reference',
                             m.source_name || ':' || m.source_pk, m.owner_id, :reason, :dry, :now FROM m)
                SELECT count(*) FROM m""",
            **p,
        ).scalar_one()
        result.counts["references_released"] += int(n)

    def _audit_owner(self, result: PolicyResult, owner_id: str, action: str, reason: str) -> None:
        self._exec(
            f"""INSERT INTO {C}.retention_audit
                  (run_id, policy, action, target_type, target_id, owner_id, reason, dry_run, created_at)
                VALUES (:run, :policy, :action, 'owner', :owner, :owner, :reason, :dry, :now)""",
            action=action,
            owner=owner_id,
            **self._params(result.policy, reason),
        )

    # -- uploads ------------------------------------------------------------------------------------------

    def remove_uploads(
        self, result: PolicyResult, where: str, reason: str, *, delete_rows: bool, **params: object
    ) -> None:
        """Queue the staged objects of uploads matching `where` (on `u`) for deletion and mark them
        abandoned (or delete the rows, for an owner's deletion). Runs in the caller's transaction."""
        p = {**self._params(result.policy, reason), **params}
        select = f"SELECT u.id FROM {C}.uploads u WHERE {where}"
        if self.dry_run:
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
        n, size = self._exec(
            f"""WITH m AS ({changed}),
                g AS (INSERT INTO _rt_gone_uploads SELECT id FROM m ON CONFLICT DO NOTHING),
                q AS ({queue}),
                a AS (INSERT INTO {C}.retention_audit
                        (run_id, policy, action, target_type, target_id, storage_key, owner_id, size_bytes,
                         reason, dry_run, created_at)
                      SELECT :run, :policy, '{self._deleted_action}', 'upload', m.id::text, m.upload_key,
                             m.owner_id, m.size_bytes, :reason, :dry, :now FROM m)
                SELECT count(*), coalesce(sum(size_bytes), 0) FROM m""",
            **p,
        ).one()
        result.deleted += int(n)
        result.bytes_reclaimed += int(size)
        result.counts["uploads_removed"] += int(n)

    # -- variants -----------------------------------------------------------------------------------------

    def delete_variants(self, result: PolicyResult, reason: str, parents_sql: str | None = None) -> None:
        """Delete variants whose original is deleted (or deleted earlier in this dry run), unless the
        original is held; batched, each batch one transaction."""
        p = self._params(result.policy, reason)
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
                self._exec(
                    f"""SELECT count(*) FROM {C}.variants v JOIN {C}.stored_objects o ON o.id =
                        v.parent_object_id
                        WHERE v.status <> 'deleted' AND {not_listed} AND {gone_parent}"""
                ).scalar_one()
            )
        )
        if not parents_sql:
            held = self._exec(
                f"""SELECT count(*) FROM {C}.variants v JOIN {C}.stored_objects o ON o.id = v.parent_object_id
                    WHERE v.status <> 'deleted' AND {not_listed} AND {gone_parent} AND {HELD_OBJECT}"""
            ).scalar_one()
            if held:
                result.skipped["variant of a held original"] += int(held)
        if self.dry_run:
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
            n, size = self._exec(
                f"""WITH m AS ({changed}),
                    q AS ({queue}),
                    gv AS (INSERT INTO _rt_gone_variants SELECT id FROM m ON CONFLICT DO NOTHING),
                    a AS (INSERT INTO {C}.retention_audit
                            (run_id, policy, action, target_type, target_id, storage_key, owner_id,
                             size_bytes, reason, dry_run, created_at)
                          SELECT :run, :policy, '{self._deleted_action}', 'variant', m.id::text,
                              m.storage_key,
                                 (SELECT ar.owner_id FROM {C}.object_references ar
                                  WHERE ar.object_id = m.parent_object_id
                                  ORDER BY ar.released_at DESC NULLS FIRST, ar.id DESC LIMIT 1),
                                 m.size_bytes, :reason, :dry, :now FROM m)
                    SELECT count(*), coalesce(sum(size_bytes), 0) FROM m""",
                n=self.config.batch_size,
                **p,
            ).one()
            self.conn.commit()
            result.deleted += int(n)
            result.bytes_reclaimed += int(size)
            result.counts["variants_deleted"] += int(n)
            if self.dry_run or n == 0:
                break
        self.purge()

    # -- policies -----------------------------------------------------------------------------------------

    def run_expired_documents(self, result: PolicyResult) -> None:
        expired = "r.expires_at < :now"
        result.candidates = int(
            self._exec(
                f"SELECT count(*) FROM {C}.object_references r WHERE r.released_at IS NULL AND {expired}",
                now=self.now,
            ).scalar_one()
        )
        held = f"""({owner_held("r.owner_id")} OR EXISTS (SELECT 1 FROM {C}.stored_objects o
                     WHERE o.id = r.object_id AND {HELD_OBJECT}))"""
        n_held = self._exec(
            f"SELECT count(*) FROM {C}.object_references r WHERE r.released_at IS NULL AND "
            f"{expired} AND {held}",
            now=self.now,
        ).scalar_one()
        if n_held:
            result.skipped["legal hold"] += int(n_held)
        released = self.release_refs(result, f"{expired} AND NOT {held}", "generated document expired")
        if result.candidates - n_held - released > 0:
            result.skipped["locked by a concurrent transaction"] += result.candidates - n_held - released
        self.delete_candidates(result, "generated document expired and nothing else references it")

    def run_soft_deleted_rows(self, result: PolicyResult) -> None:
        cutoff = self.now - self.config.soft_delete_after
        wanted = self.config.soft_delete_sources
        for source in self.sources.sources:
            if wanted is not None and source.name not in wanted:
                continue
            if not source.soft_delete_column:
                continue
            if not self.table_exists(source.schema, source.table):
                result.note = (result.note + f" {source.name}: table missing;").strip()
                continue
            soft = f's."{source.soft_delete_column}" < :cutoff'
            held = owner_held(f's."{source.owner_column}"::text')
            table = source.qualified_table
            total, n_held = self._exec(
                f"SELECT count(*), count(*) FILTER (WHERE {held}) FROM {table} s WHERE {soft}", cutoff=cutoff
            ).one()
            result.candidates += int(total)
            if n_held:
                result.skipped["row of an owner under legal hold"] += int(n_held)
            reason = f"soft-deleted before {cutoff:%Y-%m-%d} (kept {self.config.soft_delete_after.days} days)"
            pk = f's."{source.primary_key}"'
            try:
                if self.dry_run:
                    self.delete_source_rows(result, source, f"{soft} AND NOT {held}", reason, cutoff=cutoff)
                    self.conn.commit()
                else:
                    while True:
                        with self._savepoint():
                            n = self.delete_source_rows(
                                result,
                                source,
                                f"{pk} IN (SELECT {pk} FROM {table} s WHERE {soft} AND NOT {held} "
                                f"LIMIT :n FOR UPDATE SKIP LOCKED)",
                                reason,
                                cutoff=cutoff,
                                n=self.config.batch_size,
                            )
                        self.conn.commit()
                        if n == 0:
                            break
            except sa.exc.IntegrityError as exc:
                self.conn.commit()
                result.skipped[f"{source.name}: row still referenced by another table"] += 1
                log.warning("retention: %s rows not deleted: %s", source.name, exc.orig)
        self.delete_candidates(result, "last reference removed with a soft-deleted row")
        owners = self.sources.owners
        if owners.soft_delete_column and self.table_exists(owners.schema, owners.table):
            ids = self._exec(
                f"""SELECT "{owners.primary_key}"::text FROM "{owners.schema}"."{owners.table}"
                    WHERE "{owners.soft_delete_column}" < :cutoff ORDER BY 1""",
                cutoff=cutoff,
            ).scalars()
            self._delete_owners(result, list(ids), f"owner soft-deleted before {cutoff:%Y-%m-%d}")

    def _delete_owners(
        self, result: PolicyResult, owner_ids: list[str], reason: str, *, count: bool = True
    ) -> None:
        if count:
            result.candidates += len(owner_ids)
        for owner_id in owner_ids:
            try:
                self.delete_owner(result, owner_id, reason)
            except OwnerOnLegalHold:
                self.conn.rollback()
                result.skipped["owner under legal hold"] += 1
            except RuntimeError as exc:
                self.conn.rollback()
                result.skipped["owner rows still referenced by another table"] += 1
                log.warning("retention: %s", exc)

    def run_inactive_users(self, result: PolicyResult) -> None:
        owners = self.sources.owners
        if not self.table_exists(owners.schema, owners.table):
            result.note = f"owners table {owners.table} missing"
            return
        warn_cutoff = months_before(self.now, self.config.warn_after_months)
        delete_cutoff = months_before(self.now, self.config.delete_after_months)
        table = f'"{owners.schema}"."{owners.table}"'
        pk, active = f'u."{owners.primary_key}"::text', f'u."{owners.last_active_column}"'
        warned = f"""EXISTS (SELECT 1 FROM {C}.retention_audit w
                     WHERE w.owner_id = {pk} AND w.action = 'warned' AND w.policy = :policy
                       AND NOT w.dry_run AND w.created_at >= {active}{{extra}})"""
        params = {
            "warn": warn_cutoff,
            "del": delete_cutoff,
            "policy": result.policy,
            "min_warned": self.now - self.config.min_warning,
        }
        rows = self._exec(
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
                action = "would_warn" if self.dry_run else "warned"
                self._audit_owner(
                    result,
                    owner_id,
                    action,
                    f"inactive since {last_active:%Y-%m-%d}; deleted once inactive "
                    f"{self.config.delete_after_months} months and warned "
                    f"{self.config.min_warning.days} days",
                )
                result.warned_owners.append(owner_id)
                result.counts["owners_warned"] += 1
                if due:
                    result.skipped["due but not warned yet (warned now)"] += 1
            elif due:
                result.skipped["warned less than the minimum warning period ago"] += 1
            else:
                result.skipped["warned, not yet due"] += 1
        self.conn.commit()
        self._delete_owners(
            result, to_delete, f"inactive since before {delete_cutoff:%Y-%m-%d}, warned", count=False
        )

    def run_abandoned_uploads(self, result: PolicyResult) -> None:
        cutoff = self.now - self.config.upload_after
        pending = "u.status = 'pending' AND u.created_at < :cutoff"
        held = owner_held("u.owner_id")
        total, n_held = self._exec(
            f"SELECT count(*), count(*) FILTER (WHERE {held}) FROM {C}.uploads u WHERE {pending}",
            cutoff=cutoff,
        ).one()
        result.candidates = int(total)
        if n_held:
            result.skipped["owner under legal hold"] += int(n_held)
        reason = f"pending, never confirmed within {self.config.upload_after.total_seconds() / 3600:g}h"
        while True:
            before = result.counts["uploads_removed"]
            where = f"{pending} AND NOT {held}"
            if not self.dry_run:
                where = f"u.id IN (SELECT u.id FROM {C}.uploads u WHERE {where} ORDER BY u.id LIMIT :n)"
            self.remove_uploads(
                result, where, reason, delete_rows=False, cutoff=cutoff, n=self.config.batch_size
            )
            self.conn.commit()
            if self.dry_run or result.counts["uploads_removed"] == before:
                break
        self.purge()

    def run_orphaned_objects(self, result: PolicyResult) -> None:
        cutoff = self.now - self.config.orphan_after
        result.candidates = int(
            self._exec(
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
        self.conn.commit()
        self.delete_candidates(result, f"no reference since before {cutoff:%Y-%m-%d %H:%M}")

    def run_orphaned_variants(self, result: PolicyResult) -> None:
        self.delete_variants(result, "original deleted")

    RUNNERS: dict[str, str] = {
        EXPIRED_DOCUMENTS: "run_expired_documents",
        SOFT_DELETED_ROWS: "run_soft_deleted_rows",
        INACTIVE_USERS: "run_inactive_users",
        ABANDONED_UPLOADS: "run_abandoned_uploads",
        ORPHANED_OBJECTS: "run_orphaned_objects",
        ORPHANED_VARIANTS: "run_orphaned_variants",
    }

    def run(self, policies: tuple[str, ...] = POLICY_ORDER) -> SweepReport:
        """Every enabled policy, in POLICY_ORDER; first finishes storage deletes a crashed run left."""
        self.purge()
        leftovers = self.report.purged_keys
        for name in POLICY_ORDER:
            if name not in policies:
                continue
            result = PolicyResult(policy=name)
            self.report.policies[name] = result
            if not self.config.is_enabled(name):
                result.enabled = False
                result.note = self.config.disabled_reason(name)
                continue
            self.progress(f"retention: {name}{' (dry run)' if self.dry_run else ''}")
            getattr(self, self.RUNNERS[name])(result)
        self.report.purged_keys -= leftovers
        self.report.leftover_keys_purged = leftovers
        return self.report


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
) -> SweepReport:
    """Run a sweep on its own connection (temporary tables are per session)."""
    with engine.connect() as conn:
        sweep = Sweep(
            conn, store, sources, config, run_id=run_id, now=now, dry_run=dry_run, progress=progress
        )
        try:
            return sweep.run(policies)
        finally:
            sweep.close()


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
