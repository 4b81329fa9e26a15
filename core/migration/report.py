"""One-line summaries of what the migration has done so far, from the catalog (for the quick start)."""

from __future__ import annotations

import sqlalchemy as sa

from core.catalog.models import ObjectReference, QuarantineRecord, StoredObject


def migration_summary_lines(engine: sa.Engine) -> list[str]:
    with engine.connect() as conn:
        refs, objects = conn.execute(
            sa.select(sa.func.count(ObjectReference.id), sa.func.count(sa.distinct(StoredObject.id)))
            .select_from(ObjectReference)
            .join(StoredObject, StoredObject.id == ObjectReference.object_id)
            .where(ObjectReference.origin == "migration")
        ).one()
        stored = conn.execute(
            sa.select(sa.func.coalesce(sa.func.sum(StoredObject.size_bytes), 0)).where(
                StoredObject.id.in_(
                    sa.select(ObjectReference.object_id).where(ObjectReference.origin == "migration")
                )
            )
        ).scalar_one()
        quarantined = conn.execute(
            sa.select(QuarantineRecord.reason_code, sa.func.count()).group_by(QuarantineRecord.reason_code)
        ).all()
    reasons = ", ".join(f"{code} {n}" for code, n in sorted(quarantined)) or "none"
    return [
        f"migration: {refs} blobs moved out of the legacy tables into {objects} distinct objects "
        f"({int(stored) / 1_000_000:,.1f} MB stored once)",
        f"migration: {sum(n for _, n in quarantined)} values quarantined ({reasons})",
    ]
