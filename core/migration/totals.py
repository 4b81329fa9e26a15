"""Cheap totals for a migration pass's progress: rows left and the stored bytes of their blob column.

`octet_length` / `pg_column_size` read a TOASTed value's size from its pointer without detoasting it, so
these are a scan of the table's main heap (kilobytes per row), not of the blobs' gigabytes.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

from core.migration.scan import _size_expr
from core.sources import BlobSource


def remaining_totals(
    conn: sa.Connection, source: BlobSource, pk_type: str, after: str | None
) -> tuple[int, int]:
    """(rows, stored bytes of the blob column) with primary key after `after` (all rows when None)."""
    pk = f'"{source.primary_key}"'
    where = f"WHERE {pk} > CAST(:after AS {pk_type})" if after is not None else ""
    rows, nbytes = conn.execute(
        sa.text(
            f"SELECT count(*), coalesce(sum(coalesce({_size_expr(source)}, 0)), 0) "
            f"FROM {source.qualified_table} {where}"
        ),
        {"after": after},
    ).one()
    return int(rows), int(nbytes)


def stored_bytes(conn: sa.Connection, source: BlobSource, pk_type: str, pks: list[Any]) -> int:
    """Stored bytes of the blob column of these rows, as they are now (read before they are rewritten)."""
    if not pks:
        return 0
    pk = f'"{source.primary_key}"'
    return int(
        conn.execute(
            sa.text(
                f"SELECT coalesce(sum(coalesce({_size_expr(source)}, 0)), 0) FROM {source.qualified_table} "
                f"WHERE {pk} = ANY(CAST(:pks AS {pk_type}[]))"
            ),
            {"pks": [str(p) for p in pks]},
        ).scalar_one()
    )
