"""Put content into object storage and the catalog, verified, content-addressed and idempotent.

Split in two so callers control the ordering that makes "nothing lost" hold:
1. `store_verified` uploads (or finds) the object and confirms size and checksum: no database writes.
2. `upsert_object` / `upsert_reference` / `record_quarantine` run inside the caller's transaction, the
   same one that rewrites the source row, so the catalog and the source can never disagree.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert

from core.catalog.models import ObjectReference, QuarantineRecord, StoredObject
from core.keys import original_key
from core.lineage import NO_RUN, RunLineage
from core.media_types import MediaInfo
from core.objectstore.base import ChecksumMismatch, ObjectInfo, ObjectStore, ObjectStoreError
from core.objectstore.retry import retry_transient


class VerificationFailed(ObjectStoreError):
    """The stored object does not match what was written; the source must not be rewritten."""


class ObjectVanished(VerificationFailed):
    """Retention deleted the object between `store_verified` and `upsert_object`: upload it again."""


@dataclass(frozen=True)
class StoredBlob:
    key: str
    sha256: str
    size: int
    uploaded: bool  # False when identical content was already there (deduplicated)


def store_verified(
    store: ObjectStore,
    data: bytes,
    sha256: str,
    info: MediaInfo,
    *,
    catalog_knows: Callable[[str], bool] | None = None,
) -> StoredBlob:
    """Upload `data` to its content-addressed key unless it is already there, then confirm it.

    Re-running after a crash at any point is safe: an object already present with the same size and
    checksum is reused; one with a different checksum (a torn earlier write) is overwritten.

    With `catalog_knows` (the migration, over a remote store), the catalog is asked instead of the
    store: content it holds as verified is not touched at all (no request; if retention deletes it
    before the caller's commit, `upsert_object` finds out under the row lock and says ObjectVanished),
    and other content is PUT straight away without a HEAD first (a PUT of content-addressed bytes is
    idempotent). A PUT whose response proves the bytes (`ObjectInfo.confirmed`: ETag = MD5 of what was
    sent, or the server's SHA-256) needs no confirming HEAD: one request per new blob.
    """
    return _store_verified(
        store,
        len(data),
        sha256,
        info,
        lambda key: store.put_bytes(key, data, sha256=sha256, content_type=info.mime_type),
        catalog_knows=catalog_knows,
    )


def store_verified_file(
    store: ObjectStore, path: Path, size: int, sha256: str, info: MediaInfo
) -> StoredBlob:
    """`store_verified` for content spooled to a file (a blob too big to hold in memory)."""
    return _store_verified(
        store,
        size,
        sha256,
        info,
        lambda key: store.put_file(key, path, sha256=sha256, content_type=info.mime_type),
    )


def _store_verified(
    store: ObjectStore,
    size: int,
    sha256: str,
    info: MediaInfo,
    put: Callable[[str], object],
    *,
    catalog_knows: Callable[[str], bool] | None = None,
) -> StoredBlob:
    key = original_key(sha256, info.extension)
    if catalog_knows is not None:
        if catalog_knows(sha256):
            return StoredBlob(key, sha256, size, uploaded=False)
    elif _holds(retry_transient(lambda: store.head(key)), size, sha256):
        return StoredBlob(key, sha256, size, uploaded=False)
    written = retry_transient(lambda: put(key))
    if (
        isinstance(written, ObjectInfo)
        and written.confirmed
        and written.size == size
        and written.sha256 == sha256
    ):
        return StoredBlob(key, sha256, size, uploaded=True)
    confirmed = retry_transient(lambda: store.head(key))
    if not _holds(confirmed, size, sha256):
        raise VerificationFailed(
            f"{key}: stored object does not match (size {confirmed.size if confirmed else None} vs "
            f"{size}, sha256 {confirmed.sha256 if confirmed else None})"
        )
    return StoredBlob(key, sha256, size, uploaded=True)


def _holds(found: ObjectInfo | None, size: int, sha256: str) -> bool:
    """The stored object exists with exactly these bytes (size and SHA-256)."""
    return found is not None and found.size == size and found.sha256 == sha256


def upsert_object(
    conn: sa.Connection,
    blob: StoredBlob,
    info: MediaInfo,
    provider: str,
    *,
    store: ObjectStore,
    lineage: RunLineage = NO_RUN,
) -> int:
    """The catalog row for this content (one per SHA-256); revives it if retention had deleted it.

    Reviving is only safe if the bytes are still there: retention may have marked the row deleted and
    purged the key after `store_verified` confirmed it. The upsert takes the row lock either way (ON
    CONFLICT locks the row even when its WHERE is false) but only updates a `verified` row; for one that
    is not, the object is confirmed again while the lock is held (a purge locks the row and re-reads its
    status before deleting bytes, so none can run in between) and the row revived only if the bytes are
    there. If they are gone, ObjectVanished: the caller's transaction rolls back and it uploads again.
    `lineage` is recorded on a new or revived row; identical content found already stored keeps the run
    that first stored it.
    """
    object_id = upsert_objects(conn, [(blob, info)], provider, lineage=lineage).get(blob.sha256)
    if object_id is not None:
        return object_id
    if not _holds(retry_transient(lambda: store.head(blob.key)), blob.size, blob.sha256):
        raise ObjectVanished(f"{blob.key}: deleted by retention after it was verified; upload it again")
    revived = conn.execute(
        sa.update(StoredObject)
        .where(StoredObject.sha256 == blob.sha256)
        .values(status="verified", deleted_at=None, storage_key=blob.key, **lineage.columns())
        .returning(StoredObject.id)
    ).scalar_one()
    return int(revived)


def upsert_objects(
    conn: sa.Connection,
    items: list[tuple[StoredBlob, MediaInfo]],
    provider: str,
    *,
    lineage: RunLineage = NO_RUN,
) -> dict[str, int]:
    """`upsert_object` for many contents in one statement: {sha256: id} of the rows that are `verified`.

    One fixed statement over arrays (`unnest`), so it is compiled and planned once per connection
    whatever the group's size: a multi-row VALUES list was a new statement for SQLAlchemy and psycopg to
    build and parse every time, and cost the migration more CPU than its uploads. Content whose row is
    not `verified` (retention deleted it) is left out of the answer: the caller revives it row by row
    with `upsert_object`, which re-checks the bytes under the lock."""
    if not items:
        return {}
    rows = conn.execute(
        sa.text(
            f"""INSERT INTO {StoredObject.__table__.fullname} AS o (sha256, size_bytes, mime_type, kind,
                    width, height, trailing_bytes, storage_key, provider, status, run_id, asset_key,
                    partition_key)
                SELECT v.sha256, v.size_bytes, v.mime_type, v.kind, v.width, v.height, v.trailing_bytes,
                       v.storage_key, :provider, 'verified', :run_id, :asset_key, :partition_key
                FROM unnest(CAST(:sha256 AS text[]), CAST(:size_bytes AS bigint[]),
                            CAST(:mime_type AS text[]), CAST(:kind AS text[]), CAST(:width AS integer[]),
                            CAST(:height AS integer[]), CAST(:trailing_bytes AS bigint[]),
                            CAST(:storage_key AS text[]))
                     AS v(sha256, size_bytes, mime_type, kind, width, height, trailing_bytes, storage_key)
                ON CONFLICT (sha256) DO UPDATE SET storage_key = EXCLUDED.storage_key
                    WHERE o.status = 'verified'
                RETURNING o.sha256, o.id"""
        ),
        {
            "sha256": [blob.sha256 for blob, _info in items],
            "size_bytes": [blob.size for blob, _info in items],
            "mime_type": [info.mime_type for _blob, info in items],
            "kind": [info.kind for _blob, info in items],
            "width": [info.width for _blob, info in items],
            "height": [info.height for _blob, info in items],
            "trailing_bytes": [info.trailing_bytes for _blob, info in items],
            "storage_key": [blob.key for blob, _info in items],
            "provider": provider,
            **lineage.columns(),
        },
    )
    return {sha256.strip(): int(object_id) for sha256, object_id in rows}


@dataclass(frozen=True)
class PlaceReference:
    """One reference for `upsert_references`: a place (pk and JSON path within a source) to an object."""

    object_id: int
    owner_id: str
    source_pk: str
    json_path: str = ""


def upsert_references(
    conn: sa.Connection,
    references: list[PlaceReference],
    *,
    origin: str,
    source_name: str,
    source_table: str,
    source_schema: str = "",
    source_column: str = "",
    lineage: RunLineage = NO_RUN,
) -> list[int]:
    """`upsert_reference` for many places of one source in one fixed statement over arrays; the
    references' ids, in no particular order."""
    if not references:
        return []
    rows = conn.execute(
        sa.text(
            f"""INSERT INTO {ObjectReference.__table__.fullname} (object_id, owner_id, origin, source_name,
                    source_schema, source_table, source_column, source_pk, json_path, run_id, asset_key,
                    partition_key)
                SELECT v.object_id, v.owner_id, :origin, :source_name, :source_schema, :source_table,
                       :source_column, v.source_pk, v.json_path, :run_id, :asset_key, :partition_key
                FROM unnest(CAST(:object_id AS bigint[]), CAST(:owner_id AS text[]),
                            CAST(:source_pk AS text[]), CAST(:json_path AS text[]))
                     AS v(object_id, owner_id, source_pk, json_path)
                ON CONFLICT ON CONSTRAINT uq_object_references_origin DO UPDATE SET
                    object_id = EXCLUDED.object_id, owner_id = EXCLUDED.owner_id, released_at = NULL,
                    run_id = EXCLUDED.run_id, asset_key = EXCLUDED.asset_key,
                    partition_key = EXCLUDED.partition_key
                RETURNING id"""
        ),
        {
            "object_id": [ref.object_id for ref in references],
            "owner_id": [ref.owner_id for ref in references],
            "source_pk": [ref.source_pk for ref in references],
            "json_path": [ref.json_path for ref in references],
            "origin": origin,
            "source_name": source_name,
            "source_schema": source_schema,
            "source_table": source_table,
            "source_column": source_column,
            **lineage.columns(),
        },
    )
    return [int(reference_id) for (reference_id,) in rows]


def upsert_reference(
    conn: sa.Connection,
    *,
    object_id: int,
    owner_id: str,
    origin: str,
    source_name: str,
    source_table: str,
    source_pk: str,
    json_path: str = "",
    source_schema: str = "",
    source_column: str = "",
    lineage: RunLineage = NO_RUN,
) -> int:
    """Record that this place refers to `object_id` (every owner's reference is kept); `lineage` is the
    run that (re)wrote the reference.

    A place is (source, schema, table, column, primary key, JSON path): two sources on one table or
    same-named tables in two schemas are different places. Schema and column stay "" for places that
    are not a column of the app's tables (uploads, generated documents)."""
    (reference_id,) = upsert_references(
        conn,
        [PlaceReference(object_id, owner_id, source_pk, json_path)],
        origin=origin,
        source_name=source_name,
        source_table=source_table,
        source_schema=source_schema,
        source_column=source_column,
        lineage=lineage,
    )
    return reference_id


def record_quarantine(
    conn: sa.Connection,
    *,
    source_name: str,
    source_table: str,
    source_pk: str,
    json_path: str,
    reason_code: str,
    reason: str,
    sha256: str | None = None,
    size_bytes: int | None = None,
    source_schema: str = "",
    source_column: str = "",
    lineage: RunLineage = NO_RUN,
) -> None:
    """Say which input was refused and why; a rerun updates the record (and its run) instead of
    duplicating it. Identified like a reference (see upsert_reference)."""
    values = {
        "source_name": source_name,
        "source_schema": source_schema,
        "source_table": source_table,
        "source_column": source_column,
        "source_pk": source_pk,
        "json_path": json_path,
        "reason_code": reason_code,
        "reason": reason,
        "sha256": sha256,
        "size_bytes": size_bytes,
        **lineage.columns(),
    }
    stmt = insert(QuarantineRecord).values(**values)
    stmt = stmt.on_conflict_do_update(
        constraint="uq_quarantine_origin",
        set_={
            k: stmt.excluded[k] for k in ("reason_code", "reason", "sha256", "size_bytes", *lineage.columns())
        },
    )
    conn.execute(stmt)


__all__ = [
    "ChecksumMismatch",
    "ObjectVanished",
    "StoredBlob",
    "VerificationFailed",
    "record_quarantine",
    "store_verified",
    "store_verified_file",
    "upsert_object",
    "upsert_reference",
]
