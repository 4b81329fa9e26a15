"""What a source holds before (or after) migration, read-only and streamed batch by batch."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import sqlalchemy as sa

from core.blobcodec import CorruptBase64, decode_blob_text
from core.migration.references import is_reference
from core.migration.scan import UnreadableRow, iter_batches, parse_row, validate_source
from core.sources import BlobSource

GB = 1_000_000_000


@dataclass
class SourceInventory:
    source: str
    table: str
    rows: int = 0
    blobs: int = 0  # base64 values still in the table
    already_migrated: int = 0  # references written by earlier passes
    bytes_as_stored: int = 0  # characters of base64 in the rows
    decoded_bytes: int = 0
    unique_decoded_bytes: int = 0
    duplicates: int = 0  # blobs whose content appeared earlier in this source
    undecodable: int = 0
    table_bytes: int = 0  # pg_total_relation_size, heap + TOAST + indexes
    projected_monthly_saving_usd: float = 0.0


def table_size(conn: sa.Connection, source: BlobSource) -> int:
    return int(
        conn.execute(
            sa.text("SELECT pg_total_relation_size(to_regclass(:t))"), {"t": source.qualified_table}
        ).scalar()
        or 0
    )


def inventory_source(
    engine: sa.Engine,
    source: BlobSource,
    *,
    database_price_gb_month: float,
    object_price_gb_month: float,
    batch_bytes: int = 32 * 1024 * 1024,
) -> SourceInventory:
    """Count rows, blobs, bytes and duplicates; the saving is base64 bytes leaving the database minus
    the unique decoded bytes arriving in object storage, at the configured prices."""
    with engine.connect() as conn:
        pk_type = validate_source(conn, source)
        result = SourceInventory(source.name, source.table, table_bytes=table_size(conn, source))
    seen: set[bytes] = set()
    for batch in iter_batches(engine, source, pk_type, max_bytes=batch_bytes):
        for row in batch:
            result.rows += 1
            try:
                _doc, candidates = parse_row(source, row.value)
            except UnreadableRow:
                result.undecodable += 1
                continue
            for candidate in candidates:
                value = candidate.value
                if not isinstance(value, str):
                    continue
                if is_reference(value):
                    result.already_migrated += 1
                    continue
                result.blobs += 1
                result.bytes_as_stored += len(value)
                try:
                    data = decode_blob_text(value).data
                except CorruptBase64:
                    result.undecodable += 1
                    continue
                result.decoded_bytes += len(data)
                digest = hashlib.sha256(data).digest()
                if digest in seen:
                    result.duplicates += 1
                else:
                    seen.add(digest)
                    result.unique_decoded_bytes += len(data)
    # Unrounded: shown rounded (core.usage.formatting), so a small table's saving is not $0.0000.
    result.projected_monthly_saving_usd = (
        result.bytes_as_stored / GB * database_price_gb_month
        - result.unique_decoded_bytes / GB * object_price_gb_month
    )
    return result
