"""The shared context of one retention sweep: its connection and temporary tables, the SQL facts every
policy asks about an object, the report, and purging queued storage keys.

See core/retention/sweep.py for how one deletion happens; the deleting primitives are in
core/retention/actions.py and each policy is one function in core/retention/policies/.
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
from core.retention.config import RetentionConfig
from core.sources import SourcesConfig, check_owner_joins

log = logging.getLogger("core.retention.sweep")

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
    "_rt_gone_rows": "source text, pk text, PRIMARY KEY (source, pk)",  # source: "schema.table"
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
            enabled = ("yes" + (f" ({p.note})" if p.note else "")) if p.enabled else f"no ({p.note})"
            lines.append(
                f"| {name} | {enabled} | {p.candidates} | {p.deleted} | {p.bytes_reclaimed} | "
                f"{p.counts['rows_deleted']} | {p.counts['references_released']} | {why} |"
            )
        return "\n".join(lines)


class OwnerOnLegalHold(RuntimeError):
    """The owner (or something they own) is under legal hold; nothing was deleted."""


class SweepContext:
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
        asset_key: str | None = None,
        partition_key: str | None = None,
    ) -> None:
        self.conn = conn
        self.store = store
        self.sources = sources
        self.config = config
        self.run_id = run_id
        # recorded with run_id on every audit row (lineage): the asset and partition of the sweep's run
        self.asset_key = asset_key
        self.partition_key = partition_key
        self.now = now
        self.dry_run = dry_run
        self.progress = progress or log.info
        self.report = SweepReport(run_id=run_id, dry_run=dry_run, now=now)
        self._tables_present: dict[tuple[str, str], bool] = {}
        self._purger: ThreadPoolExecutor | None = None
        self._purging: Future[None] | None = None
        check_owner_joins(conn, sources)  # before anything is deleted
        for name, columns in TEMP_TABLES.items():
            self.exec(f"CREATE TEMP TABLE IF NOT EXISTS {name} ({columns})")
            self.exec(f"TRUNCATE {name}")
        self.conn.commit()

    # -- plumbing ----------------------------------------------------------------------------------------

    def exec(self, sql: str, **params: object) -> sa.CursorResult:
        return self.conn.execute(sa.text(sql), params)

    def params(self, policy: str, reason: str) -> dict[str, object]:
        lineage = {"run": self.run_id, "asset": self.asset_key, "partition": self.partition_key}
        return {**lineage, "policy": policy, "reason": reason, "now": self.now, "dry": self.dry_run}

    @property
    def deleted_action(self) -> str:
        return "would_delete" if self.dry_run else "deleted"

    def table_exists(self, schema: str, table: str) -> bool:
        key = (schema, table)
        if key not in self._tables_present:
            self._tables_present[key] = bool(
                self.exec("SELECT to_regclass(:t) IS NOT NULL", t=f'"{schema}"."{table}"').scalar()
            )
        return self._tables_present[key]

    @contextmanager
    def savepoint(self) -> Iterator[None]:
        nested = self.conn.begin_nested()
        try:
            yield
        except Exception:
            nested.rollback()
            raise
        else:
            nested.commit()

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
                                WHEN 'quarantine' THEN EXISTS (SELECT 1 FROM {C}.quarantine qr
                                    WHERE qr.id = p.target_id::bigint AND qr.purged_at IS NULL)
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
