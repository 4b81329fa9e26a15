"""Small read-only summaries of the backups catalog, for run metadata and the quick start's summary."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

import sqlalchemy as sa

from core.catalog.db import get_engine


@dataclass(frozen=True)
class BackupOverview:
    newest_database_day: date | None
    newest_database_bytes: int
    newest_objects_day: date | None
    copies: int
    copy_bytes: int
    verified: int
    unverified: int


def overview(database_url: str) -> BackupOverview:
    with get_engine(database_url).connect() as conn:
        db = conn.execute(
            sa.text(
                "SELECT backup_date, size_bytes FROM media_catalog.backups WHERE kind = 'database' "
                "AND status = 'verified' ORDER BY backup_date DESC, id DESC LIMIT 1"
            )
        ).first()
        objects_day = conn.execute(
            sa.text(
                "SELECT max(backup_date) FROM media_catalog.backups "
                "WHERE kind = 'objects' AND status = 'verified'"
            )
        ).scalar()
        copies, copy_bytes = conn.execute(
            sa.text("SELECT count(*), coalesce(sum(size_bytes), 0) FROM media_catalog.backup_object_copies")
        ).one()
        verified, unverified = conn.execute(
            sa.text(
                "SELECT count(*) FILTER (WHERE status = 'verified'), "
                "count(*) FILTER (WHERE status IN ('failed', 'corrupt', 'complete', 'running')) "
                "FROM media_catalog.backups"
            )
        ).one()
    return BackupOverview(
        newest_database_day=db.backup_date if db else None,
        newest_database_bytes=int(db.size_bytes or 0) if db else 0,
        newest_objects_day=objects_day,
        copies=int(copies),
        copy_bytes=int(copy_bytes),
        verified=int(verified),
        unverified=int(unverified),
    )
