"""Per-table row counts and content hashes, computed in one snapshot so they describe exactly what a dump
holds, and recomputed after a restore to prove the restored database is the same data.

Rows are read in primary-key order through a server-side cursor, so memory stays flat however big a table
is. Each row is hashed (by the server: SHA-256 of PostgreSQL's own text form of the row, `t::text`, with
fixed output settings, identical in the original and in a restored copy on the same major version) and
the table's hash is the SHA-256 of those row digests in key order.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass

import sqlalchemy as sa

from core.progress import ProgressReporter

#: Session settings that make the text form of timestamps and floats independent of the server's defaults.
_STABLE_OUTPUT = (
    "SET LOCAL TimeZone = 'UTC'",
    "SET LOCAL DateStyle = 'ISO, YMD'",
    "SET LOCAL IntervalStyle = 'postgres'",
    "SET LOCAL extra_float_digits = 1",
    "SET LOCAL bytea_output = 'hex'",
)
_SYSTEM_SCHEMAS = ("pg_catalog", "information_schema")


@dataclass(frozen=True)
class TableDigest:
    """What a table held at one instant: its row count and the SHA-256 of its rows in key order."""

    table: str  # schema.table
    rows: int
    sha256: str

    def as_dict(self) -> dict[str, int | str]:
        return {"rows": self.rows, "sha256": self.sha256}


def _ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def list_tables(conn: sa.Connection, exclude_schemas: Iterable[str] = ()) -> list[tuple[str, str]]:
    """Ordinary tables (and leaf partitions) outside the system schemas, sorted by schema and name."""
    excluded = [*_SYSTEM_SCHEMAS, *exclude_schemas]
    rows = conn.execute(
        sa.text(
            "SELECT n.nspname, c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
            "WHERE c.relkind = 'r' AND n.nspname <> ALL(:excluded) AND n.nspname NOT LIKE 'pg\\_%' "
            "ORDER BY 1, 2"
        ),
        {"excluded": excluded},
    )
    return [(schema, table) for schema, table in rows]


def primary_key_columns(conn: sa.Connection, schema: str, table: str) -> list[str]:
    rows = conn.execute(
        sa.text(
            "SELECT a.attname FROM pg_index i "
            "JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = ANY(i.indkey) "
            "WHERE i.indrelid = (quote_ident(:s) || '.' || quote_ident(:t))::regclass AND i.indisprimary "
            "ORDER BY array_position(i.indkey, a.attnum)"
        ),
        {"s": schema, "t": table},
    )
    return [name for (name,) in rows]


def digest_table(conn: sa.Connection, schema: str, table: str, batch_rows: int = 5000) -> TableDigest:
    """Count and hash one table's rows in primary-key order (whole-row order when it has no key)."""
    columns = primary_key_columns(conn, schema, table)
    order = ", ".join(f"t.{_ident(c)}" for c in columns) if columns else "t::text"
    # Each row is hashed by the server, so only 32 bytes per row cross the wire and memory stays flat
    # even for rows holding megabytes of base64.
    query = sa.text(
        f"SELECT sha256(convert_to(t::text, 'UTF8')) "
        f"FROM {_ident(schema)}.{_ident(table)} AS t ORDER BY {order}"
    )
    digest = hashlib.sha256()
    rows = 0
    result = conn.execution_options(stream_results=True, yield_per=batch_rows).execute(query)
    for partition in result.partitions():
        for (row_digest,) in partition:
            digest.update(row_digest)  # fixed-size per-row digests: row boundaries are unambiguous
            rows += 1
    return TableDigest(table=f"{schema}.{table}", rows=rows, sha256=digest.hexdigest())


def set_stable_output(conn: sa.Connection) -> None:
    """Inside an open transaction: fix the settings that shape the text form of values."""
    for statement in _STABLE_OUTPUT:
        conn.execute(sa.text(statement))


def digest_database(
    conn: sa.Connection, exclude_schemas: Iterable[str] = (), progress: ProgressReporter | None = None
) -> dict[str, TableDigest]:
    """Digest every table; call inside a REPEATABLE READ transaction so all tables share one snapshot.
    `progress` counts tables and their size on disk (what is read) as each one is done."""
    set_stable_output(conn)
    tables = list_tables(conn, exclude_schemas)
    sizes = _table_sizes(conn, tables) if progress is not None else {}
    if progress is not None and progress.total is None:
        progress.total, progress.total_bytes = len(tables), sum(sizes.values())
    digests = {}
    for schema, table in tables:
        digests[f"{schema}.{table}"] = digest_table(conn, schema, table)
        if progress is not None:
            progress.advance(1, sizes.get((schema, table), 0))
    return digests


def _table_sizes(conn: sa.Connection, tables: list[tuple[str, str]]) -> dict[tuple[str, str], int]:
    """pg_table_size (heap and TOAST, what a digest reads) of each table; catalog lookups only."""
    rows = conn.execute(
        sa.text(
            "SELECT s, t, pg_table_size((quote_ident(s) || '.' || quote_ident(t))::regclass) "
            "FROM unnest(CAST(:schemas AS text[]), CAST(:tables AS text[])) AS x(s, t)"
        ),
        {"schemas": [s for s, _ in tables], "tables": [t for _, t in tables]},
    )
    return {(s, t): int(size or 0) for s, t, size in rows}


def compare_digests(expected: dict[str, dict[str, object]], actual: dict[str, TableDigest]) -> list[str]:
    """Human-readable differences between a manifest's tables and a restored database's; empty if equal."""
    problems: list[str] = []
    for name, want in sorted(expected.items()):
        got = actual.get(name)
        if got is None:
            problems.append(f"{name}: missing after restore")
        elif got.rows != want["rows"]:
            problems.append(f"{name}: {got.rows} rows restored, {want['rows']} at backup time")
        elif got.sha256 != want["sha256"]:
            problems.append(f"{name}: content hash differs ({got.sha256[:12]} vs {str(want['sha256'])[:12]})")
    problems.extend(f"{name}: not in the backup manifest" for name in sorted(set(actual) - set(expected)))
    return problems
