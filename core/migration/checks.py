"""What the migration's asset checks measure: base64 left, references that resolve, space to reclaim."""

from __future__ import annotations

import random
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import sqlalchemy as sa

from core.catalog.models import ObjectReference, QuarantineRecord, StoredObject
from core.migration.references import is_reference, quarantine_of, references_of
from core.migration.scan import UnreadableRow, iter_batches, parse_row, validate_source
from core.objectstore.base import ObjectStore, TransientStorageError
from core.objectstore.retry import StoreUnavailable, retry_transient
from core.sources import BlobSource
from core.usage.formatting import round_mb

MB = 1024 * 1024


@dataclass
class Base64Left:
    values: int = 0
    quarantined_values: int = 0
    examples: list[str] = field(default_factory=list)  # "pk 12 images[3].data"


def base64_left(engine: sa.Engine, source: BlobSource, *, examples: int = 10) -> Base64Left:
    """Values at the source's blob places that are neither a reference nor a quarantined input."""
    with engine.connect() as conn:
        pk_type = validate_source(conn, source)
        quarantined = {
            (pk, path)
            for pk, path in conn.execute(
                sa.select(QuarantineRecord.source_pk, QuarantineRecord.json_path).where(
                    *quarantine_of(source)
                )
            )
        }
    report = Base64Left()
    for batch in iter_batches(engine, source, pk_type):
        for row in batch:
            pk = str(row.pk)
            try:
                _doc, candidates = parse_row(source, row.value)
            except UnreadableRow:
                if (pk, "") in quarantined:
                    report.quarantined_values += 1
                else:
                    report.values += 1
                continue
            for candidate in candidates:
                if candidate.value is None or is_reference(candidate.value):
                    continue
                if (pk, candidate.path) in quarantined:
                    report.quarantined_values += 1
                    continue
                report.values += 1
                if len(report.examples) < examples:
                    report.examples.append(f"pk {pk} {candidate.path or source.column}")
    return report


@dataclass
class ReferenceReport:
    references: int = 0
    objects: int = 0
    missing: list[str] = field(default_factory=list)
    mismatched: list[str] = field(default_factory=list)
    reread: int = 0
    reread_failed: list[str] = field(default_factory=list)
    unreachable: list[str] = field(default_factory=list)  # the store kept failing: not known to be wrong

    @property
    def ok(self) -> bool:
        return not (self.missing or self.mismatched or self.reread_failed or self.unreachable)

    @property
    def wrong(self) -> bool:
        """An object is missing or holds other bytes (as opposed to: the store could not be reached)."""
        return bool(self.missing or self.mismatched or self.reread_failed)


def verify_references(
    engine: sa.Engine, store: ObjectStore, source: BlobSource, *, sample: int = 25, workers: int = 4
) -> ReferenceReport:
    """HEAD every object this source refers to (size and recorded SHA-256 must match the catalog),
    then re-read and re-hash a random sample of them end to end."""
    with engine.connect() as conn:
        report = ReferenceReport(
            references=int(
                conn.execute(
                    sa.select(sa.func.count()).where(
                        *references_of(source), ObjectReference.released_at.is_(None)
                    )
                ).scalar_one()
            )
        )
        objects = conn.execute(
            sa.select(StoredObject.storage_key, StoredObject.sha256, StoredObject.size_bytes)
            .where(
                StoredObject.id.in_(
                    sa.select(ObjectReference.object_id).where(
                        *references_of(source), ObjectReference.released_at.is_(None)
                    )
                )
            )
            .order_by(StoredObject.id)
        ).all()
    report.objects = len(objects)

    def head(item: tuple[str, str, int]) -> tuple[str, str | None]:
        key, sha256, size = item
        try:
            info = retry_transient(lambda: store.head(key))
        except (StoreUnavailable, TransientStorageError) as exc:
            return key, f"unreachable: {exc}"
        if info is None:
            return key, "missing"
        if info.size != size or info.sha256 != sha256.strip():
            return key, f"stored size {info.size} sha256 {info.sha256}, catalog says {size} {sha256}"
        return key, None

    with ThreadPoolExecutor(max_workers=workers) as pool:
        for key, problem in pool.map(head, objects):
            if problem == "missing":
                report.missing.append(key)
            elif problem and problem.startswith("unreachable: "):
                report.unreachable.append(f"{key}: {problem}")
            elif problem:
                report.mismatched.append(f"{key}: {problem}")
    for key, sha256, _size in random.sample(objects, min(sample, len(objects))):
        report.reread += 1
        try:
            if not retry_transient(lambda k=key, s=sha256: store.verify(k, s.strip())):
                report.reread_failed.append(key)
        except (StoreUnavailable, TransientStorageError) as exc:
            report.unreachable.append(f"{key}: unreachable: {exc}")
    return report


@dataclass(frozen=True)
class SpaceReport:
    """Table size before and after a migration pass, and what the rows occupy now.

    Rewriting a row writes a new row version; PostgreSQL keeps the old one's space in the table files
    until a VACUUM FULL (or pg_repack) rewrites them, so right after a migration the table is usually
    *bigger* than before. That is expected, not a failure: the space is reclaimable, and the check says
    how much and how to reclaim it.
    """

    table: str
    bytes_before: int
    bytes_after: int
    live_bytes: int  # what the rows occupy now
    source: str = ""  # the configured source (partition) this report is for

    @property
    def reclaimable(self) -> int:
        return max(0, self.bytes_after - self.live_bytes)

    def advice(self) -> str:
        if self.reclaimable < MB:
            return f"{self.table}: nothing significant to reclaim."
        return (
            f"Run `VACUUM (FULL, ANALYZE) {self.table};` (takes an ACCESS EXCLUSIVE lock for its duration) "
            f"or `pg_repack --table={self.table}` (online) to return about "
            f"{self.reclaimable / MB:,.0f} MB to the OS. Plain (auto)VACUUM only makes the space reusable "
            "inside the table; it does not shrink the files."
        )

    def warns(self, warn_bytes: int) -> bool:
        """Only reclaimable space past the configured threshold is worth a warning."""
        return self.reclaimable > warn_bytes

    def summary(self, warn_bytes: int) -> str:
        """One sentence for the check's description: which source, what changed, and whether it warns."""
        table = self.table.replace('"', "")  # "public"."stories" reads public.stories in a sentence
        name = f"{self.source} ({table})" if self.source else table
        sizes = f"table {self.bytes_before / MB:,.1f} MB before, {self.bytes_after / MB:,.1f} MB after"
        if self.bytes_after > self.bytes_before:
            sizes += " (old row versions stay in the files until VACUUM FULL; expected after a rewrite)"
        verdict = "above" if self.warns(warn_bytes) else "within"
        return (
            f"{name}: {sizes}; {self.reclaimable / MB:,.1f} MB reclaimable, {verdict} the warning "
            f"threshold of {warn_bytes / MB:,.0f} MB."
        )

    def metadata(self, warn_bytes: int) -> dict[str, str | float]:
        """Figures for the check result (MB to 3 decimals), named for the source they are about."""
        return {
            "source": self.source,
            "table": self.table,
            "table_mb_before": round_mb(self.bytes_before / MB),
            "table_mb_after": round_mb(self.bytes_after / MB),
            "live_mb": round_mb(self.live_bytes / MB),
            "reclaimable_mb": round_mb(self.reclaimable / MB),
            "warn_above_mb": round_mb(warn_bytes / MB),
        }


def live_bytes(conn: sa.Connection, source: BlobSource) -> int:
    """Bytes the rows occupy now (stored, possibly compressed, sizes), plus indexes."""
    rows = conn.execute(
        sa.text(f"SELECT coalesce(sum(pg_column_size(t.*)), 0) FROM {source.qualified_table} t")
    ).scalar()
    indexes = conn.execute(
        sa.text("SELECT pg_indexes_size(to_regclass(:t))"), {"t": source.qualified_table}
    ).scalar()
    return int(rows or 0) + int(indexes or 0)
