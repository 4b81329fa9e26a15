"""GDPR: export everything of one owner as a zip in object storage, and hard-delete an owner everywhere.

The export streams: source rows and catalog rows are written as JSON Lines straight into the archive,
objects are copied stream to stream, and the archive goes to storage from a temporary file, so memory
stays flat whatever the owner holds. The archive is itself catalogued as a generated document with an
expiry, so the `expired_documents` policy removes it after `gdpr_export.keep_days`.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import tempfile
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from core.catalog.models import CATALOG_SCHEMA as C
from core.ingest import StoredBlob, upsert_object, upsert_reference
from core.keys import build_key, owner_segment, safe_segment, validate_owner_id
from core.lineage import RunLineage
from core.media_types import MediaInfo
from core.objectstore.base import ObjectNotFound, ObjectStore
from core.retention import actions
from core.retention.config import RetentionConfig
from core.retention.context import PolicyResult, SweepContext, SweepReport
from core.sources import SourcesConfig, check_owner_joins

EXPORT_SOURCE = "gdpr_export"
ZIP_INFO = MediaInfo(mime_type="application/zip", extension="zip", kind="archive")
GDPR_DELETE_POLICY = "gdpr_delete"


class OwnerNotFound(LookupError):
    """Nothing anywhere belongs to this owner id."""


@dataclass
class ExportResult:
    owner_id: str
    storage_key: str
    signed_url: str
    size_bytes: int
    sha256: str
    objects: int
    rows: dict[str, int] = field(default_factory=dict)
    missing_objects: list[str] = field(default_factory=list)


def _json_line(row: dict[str, Any]) -> bytes:
    return (json.dumps(row, default=str, sort_keys=True) + "\n").encode()


def _table_exists(conn: sa.Connection, schema: str, table: str) -> bool:
    return bool(
        conn.execute(sa.text("SELECT to_regclass(:t) IS NOT NULL"), {"t": f'"{schema}"."{table}"'}).scalar()
    )


def _stream(conn: sa.Connection, sql: str, **params: Any) -> Iterator[dict[str, Any]]:
    result = conn.execution_options(stream_results=True, yield_per=500).execute(sa.text(sql), params)
    for row in result.mappings():
        yield dict(row)


def export_owner(
    engine: sa.Engine,
    store: ObjectStore,
    sources: SourcesConfig,
    config: RetentionConfig,
    *,
    owner_id: str,
    run_id: str,
    now: datetime,
) -> ExportResult:
    """Write `exports/<owner segment>/<run>.zip` (owner row, source rows, catalog rows as JSON Lines, and
    every object the owner references) and return its signed URL. The owner id is matched exactly."""
    owner_id = validate_owner_id(owner_id)
    counts: dict[str, int] = {}
    missing: list[str] = []
    objects = 0
    with tempfile.TemporaryDirectory(prefix="gdpr-export-") as tmp:
        archive = Path(tmp) / "export.zip"
        with engine.connect() as conn:
            check_owner_joins(conn, sources)
        with engine.connect() as conn, zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as zf:

            def write_lines(name: str, rows: Iterator[dict[str, Any]]) -> int:
                n = 0
                with zf.open(name, "w") as out:
                    for row in rows:
                        out.write(_json_line(row))
                        n += 1
                return n

            owners = sources.owners
            if _table_exists(conn, owners.schema, owners.table):
                counts["owner"] = write_lines(
                    "owner.jsonl",
                    _stream(
                        conn,
                        f'SELECT * FROM "{owners.schema}"."{owners.table}" WHERE '
                        f'"{owners.primary_key}"::text = :o',
                        o=owner_id,
                    ),
                )
            for source in sources.sources:
                if _table_exists(conn, source.schema, source.table):
                    counts[source.name] = write_lines(
                        f"rows/{source.name}.jsonl",
                        _stream(
                            conn,
                            f"SELECT s.* FROM {source.qualified_table} s "
                            f"WHERE {source.owner_sql('s')}::text = :o",
                            o=owner_id,
                        ),
                    )
            counts["uploads"] = write_lines(
                "catalog/uploads.jsonl",
                _stream(conn, f"SELECT * FROM {C}.uploads WHERE owner_id = :o ORDER BY id", o=owner_id),
            )
            counts["references"] = write_lines(
                "catalog/references.jsonl",
                _stream(
                    conn,
                    f"SELECT * FROM {C}.object_references WHERE owner_id = :o AND source_name <> :export "
                    "ORDER BY id",
                    o=owner_id,
                    export=EXPORT_SOURCE,
                ),
            )
            owned = f"""SELECT o.id, o.sha256, o.size_bytes, o.mime_type, o.kind, o.width, o.height,
                               o.storage_key, o.created_at
                        FROM {C}.stored_objects o
                        WHERE o.status = 'verified' AND o.id IN (
                            SELECT r.object_id FROM {C}.object_references r
                            WHERE r.owner_id = :o AND r.source_name <> :export)
                        ORDER BY o.id"""
            # zipfile allows one open member at a time: the listing goes to a side file first.
            listing_path = Path(tmp) / "objects.jsonl"
            with listing_path.open("wb") as listing:
                for row in _stream(conn, owned, o=owner_id, export=EXPORT_SOURCE):
                    name = f"objects/{row['storage_key'].rsplit('/', 1)[-1]}"
                    try:
                        with store.open_stream(row["storage_key"]) as src, zf.open(name, "w") as dst:
                            shutil.copyfileobj(src, dst, 1 << 20)
                        row["archive_path"] = name
                        objects += 1
                    except ObjectNotFound:
                        row["archive_path"] = None
                        row["missing"] = "object not found in storage"
                        missing.append(row["storage_key"])
                    listing.write(_json_line(row))
            zf.write(listing_path, "catalog/objects.jsonl")
            if not any(counts.values()) and objects == 0 and not missing:
                raise OwnerNotFound(f"no rows, references or uploads belong to owner {owner_id!r}")
            zf.writestr(
                "manifest.json",
                json.dumps(
                    {
                        "owner_id": owner_id,
                        "exported_at": now.isoformat(),
                        "run_id": run_id,
                        "rows": counts,
                        "objects": objects,
                        "missing_objects": missing,
                    },
                    indent=2,
                ),
            )
        digest = hashlib.sha256()
        with archive.open("rb") as handle:
            while chunk := handle.read(1 << 20):
                digest.update(chunk)
        sha256 = digest.hexdigest()
        size = archive.stat().st_size
        key = build_key("exports", owner_segment(owner_id), f"{safe_segment(run_id)}.zip")
        store.put_file(key, archive, sha256=sha256, content_type=ZIP_INFO.mime_type)
    with engine.begin() as conn:
        object_id = upsert_object(
            conn,
            StoredBlob(key, sha256, size, uploaded=True),
            ZIP_INFO,
            store.provider,
            store=store,
            lineage=RunLineage(run_id=run_id),
        )
        ref_id = upsert_reference(
            conn,
            object_id=object_id,
            owner_id=owner_id,
            origin="document",
            source_name=EXPORT_SOURCE,
            source_table="gdpr_exports",
            source_pk=run_id,
            lineage=RunLineage(run_id=run_id),
        )
        conn.execute(
            sa.text(f"UPDATE {C}.object_references SET expires_at = :e WHERE id = :id"),
            {"e": now + config.export_keep, "id": ref_id},
        )
    url = store.signed_url(key, int(config.export_url_expires.total_seconds()))
    return ExportResult(owner_id, key, url, size, sha256, objects, counts, missing)


def delete_owner_everywhere(
    engine: sa.Engine,
    store: ObjectStore,
    sources: SourcesConfig,
    config: RetentionConfig,
    *,
    owner_id: str,
    run_id: str,
    now: datetime,
    dry_run: bool = False,
) -> SweepReport:
    """Hard-delete an owner: rows in every configured source, the owner row, uploads, catalog references,
    and objects and variants nobody else references. Raises OwnerOnLegalHold (nothing deleted) when held.

    Backups are not rewritten: they hold the owner's data until backup retention expires them.
    The owner id is matched exactly (`validate_owner_id`): `alice` never erases `ålice` or `alice/`.
    """
    owner_id = validate_owner_id(owner_id)
    with engine.connect() as conn:
        ctx = SweepContext(conn, store, sources, config, run_id=run_id, now=now, dry_run=dry_run)
        ctx.purge()
        result = PolicyResult(policy=GDPR_DELETE_POLICY, candidates=1)
        ctx.report.policies[GDPR_DELETE_POLICY] = result
        try:
            actions.delete_owner(ctx, result, owner_id, f"GDPR erasure request for owner {owner_id}")
        finally:
            ctx.close()
        return ctx.report
