"""Reading a source table in bounded batches: keyset pagination sized by bytes, never the whole table.

Rows can hold tens of MB of base64, so a batch is cut by the stored size of the blob column (read
cheaply with `octet_length`/`pg_column_size`, which do not detoast) as well as by a row count. Each batch
is read in its own short transaction, so no connection or snapshot is held while blobs are processed.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from core.blobcodec import expand_json_path
from core.sources import BlobSource, SourceConfigError, plain_identifier

#: How many (pk, size) pairs one probe reads to plan the next batches.
PROBE_ROWS = 256

TEXT_TYPES = frozenset({"text", "character varying", "character"})


@dataclass(frozen=True)
class SourceRow:
    pk: Any
    owner: Any
    xmin: str  # row version: a concurrent app write changes it, which guards the rewrite
    value: str | None  # the column as text (jsonb rendered as text)
    declared_mime: str | None = None  # the app's own type label, when the source has one
    streamed: bool = False  # too big to fetch whole: `value` is None and the row is read in slices


def _q(name: str) -> str:
    return f'"{name}"'


def column_types(conn: sa.Connection, source: BlobSource) -> dict[str, str]:
    return _types_of(conn, source.qualified_table)


def _types_of(conn: sa.Connection, qualified_table: str) -> dict[str, str]:
    rows = conn.execute(
        sa.text(
            "SELECT a.attname, format_type(a.atttypid, a.atttypmod) FROM pg_attribute a "
            "WHERE a.attrelid = to_regclass(:rel) AND a.attnum > 0 AND NOT a.attisdropped"
        ),
        {"rel": qualified_table},
    )
    return {name: kind for name, kind in rows}


def validate_source(conn: sa.Connection, source: BlobSource, declared_mime_column: str | None = None) -> str:
    """Refuse, before anything runs, a source whose identifiers, table, columns or types are wrong.

    Returns the primary key's SQL type (used to cast the persisted keyset position back).
    """
    join = source.owner_join
    for what, value in (
        ("schema", source.schema),
        ("table", source.table),
        ("primary_key", source.primary_key),
        ("owner_column", source.owner_column),
        ("column", source.column),
        ("owner_join.via", join.via if join else None),
    ):
        if value is not None:
            plain_identifier(value, f"source {source.name!r}: {what}")
    where = f"source {source.name!r}"
    exists = conn.execute(sa.text("SELECT to_regclass(:rel)"), {"rel": source.qualified_table}).scalar()
    if exists is None:
        raise SourceConfigError(f"{where}: table {source.schema}.{source.table} does not exist")
    types = column_types(conn, source)
    if declared_mime_column:
        plain_identifier(declared_mime_column, f"source {source.name!r}: declared type column")
    wanted_columns = (
        source.primary_key,
        source.owner_column,
        join.via if join else None,
        source.column,
        declared_mime_column,
    )
    missing = [c for c in wanted_columns if c and c not in types]
    if missing:
        raise SourceConfigError(
            f"{where}: column(s) {', '.join(f'{source.schema}.{source.table}.{c}' for c in missing)} "
            "do not exist"
        )
    column_type = types[source.column].split("(")[0]
    wanted = {"jsonb"} if source.format == "jsonb" else TEXT_TYPES
    if column_type not in wanted:
        raise SourceConfigError(
            f"{where}: column {source.table}.{source.column} is {types[source.column]}, but format "
            f"{source.format!r} needs {' or '.join(sorted(wanted))}"
        )
    if join is not None:
        _validate_owner_join(conn, source)
    return types[source.primary_key]


def _validate_owner_join(conn: sa.Connection, source: BlobSource) -> None:
    """The parent table and its key and owner columns exist (named in the error if not)."""
    join = source.owner_join
    assert join is not None
    schema = join.db_schema or source.schema
    where = f"source {source.name!r}: owner_join"
    parent = f'"{schema}"."{join.table}"'
    if conn.execute(sa.text("SELECT to_regclass(:rel)"), {"rel": parent}).scalar() is None:
        raise SourceConfigError(f"{where}: table {schema}.{join.table} does not exist")
    types = _types_of(conn, parent)
    missing = [c for c in (join.key, join.column) if c not in types]
    if missing:
        raise SourceConfigError(
            f"{where}: column(s) {', '.join(f'{schema}.{join.table}.{c}' for c in missing)} do not exist"
        )


def _size_expr(source: BlobSource) -> str:
    column = _q(source.column)
    return f"pg_column_size({column})" if source.format == "jsonb" else f"octet_length({column})"


def _value_expr(source: BlobSource) -> str:
    column = _q(source.column)
    return f"{column}::text" if source.format == "jsonb" else column


def _row_columns(source: BlobSource, declared_mime_column: str | None, stream_above: int | None) -> str:
    """The SELECT list that `_to_row` reads."""
    declared = f"{_q(declared_mime_column)}::text" if declared_mime_column else "NULL::text"
    if stream_above is None:
        value, streamed = _value_expr(source), "false"
    else:
        size = f"coalesce({_size_expr(source)}, 0)"
        value = f"CASE WHEN {size} <= {int(stream_above)} THEN {_value_expr(source)} END"
        streamed = f"{size} > {int(stream_above)}"
    return f"{_q(source.primary_key)}, {source.owner_sql('s')}, s.xmin::text, {value}, {declared}, {streamed}"


def _to_row(r: Any) -> SourceRow:
    return SourceRow(r[0], r[1], r[2], r[3], r[4], bool(r[5]))


def fetch_rows(
    engine: sa.Engine,
    source: BlobSource,
    pk_type: str,
    pks: list[str],
    *,
    declared_mime_column: str | None = None,
    stream_above: int | None = None,
) -> list[SourceRow]:
    """These rows as they are now (to process again), in pk order."""
    columns = _row_columns(source, declared_mime_column, stream_above)
    pk = _q(source.primary_key)
    sql = sa.text(
        f"SELECT {columns} FROM {source.qualified_table} s "
        f"WHERE {pk} = ANY(CAST(:pks AS {pk_type}[])) ORDER BY {pk}"
    )
    with engine.connect() as conn:
        return [_to_row(r) for r in conn.execute(sql, {"pks": pks})]


def iter_batches(
    engine: sa.Engine,
    source: BlobSource,
    pk_type: str,
    *,
    after: str | None = None,
    max_rows: int = 32,
    max_bytes: int = 32 * 1024 * 1024,
    declared_mime_column: str | None = None,
    stream_above: int | None = None,
) -> Iterator[list[SourceRow]]:
    """Yield consecutive batches of rows with pk > `after`, in pk order, each within the limits
    (a single row bigger than `max_bytes` is a batch of its own). Rows whose column is bigger than
    `stream_above` come without their value (`streamed`), to be read in slices (core.migration.stream)."""
    table, pk = source.qualified_table, _q(source.primary_key)
    keyset = f"{pk} > CAST(:last AS {pk_type})"
    probe_sql = (
        # The alias matters: ORDER BY a bare output name sorts by the output column, i.e. by the pk as
        # *text* ('10' < '9'), which planned batches over the wrong rows and sizes.
        f"SELECT {pk}::text AS pk_text, coalesce({_size_expr(source)}, 0) FROM {table} s "
        f"{{where}} ORDER BY {pk} LIMIT {PROBE_ROWS}"
    )
    columns = _row_columns(source, declared_mime_column, stream_above)
    fetch_sql = sa.text(
        f"SELECT {columns} FROM {table} s WHERE {keyset} AND {pk} <= CAST(:upto AS {pk_type}) ORDER BY {pk}"
    )
    first_sql = sa.text(
        f"SELECT {columns} FROM {table} s WHERE {pk} <= CAST(:upto AS {pk_type}) ORDER BY {pk}"
    )
    last = after
    while True:
        with engine.connect() as conn:
            where = f"WHERE {keyset}" if last is not None else ""
            probe = conn.execute(sa.text(probe_sql.format(where=where)), {"last": last}).all()
        if not probe:
            return
        position = 0
        while position < len(probe):
            total, end = 0, position
            while end < len(probe) and end - position < max_rows:
                size = int(probe[end][1])
                if stream_above is not None and size > stream_above:
                    size = 0  # fetched without its value
                if end > position and total + size > max_bytes:
                    break
                total += size
                end += 1
            upto = probe[end - 1][0]
            with engine.connect() as conn:
                if last is None:
                    rows = conn.execute(first_sql, {"upto": upto}).all()
                else:
                    rows = conn.execute(fetch_sql, {"last": last, "upto": upto}).all()
            last = upto
            position = end
            batch = [_to_row(r) for r in rows]
            rows = []  # hold one copy of a batch, never two (rows can be tens of MB each)
            if batch:
                yield batch
            batch = []


@dataclass(frozen=True)
class Candidate:
    """One place in a row that may hold a blob: its concrete JSON path ("" for the whole column)."""

    path: str
    value: Any


class UnreadableRow(ValueError):
    """The column cannot be read as the configured format (e.g. json_text that is not JSON)."""


def parse_row(source: BlobSource, value: str | None) -> tuple[Any, list[Candidate]]:
    """(parsed document or None, the blob places in it). Missing paths match nothing."""
    if value is None:
        return None, []
    if source.format in ("base64", "data_uri"):
        return None, [Candidate("", value)]
    try:
        doc = json.loads(value)
    except ValueError as exc:
        raise UnreadableRow(f"column is not valid JSON: {exc}") from exc
    candidates = [
        Candidate(path, found)
        for pattern in source.json_paths
        for path, found in expand_json_path(doc, pattern)
    ]
    return doc, candidates


def dump_document(doc: Any) -> str:
    """Compact JSON for the rewritten row (json_text and jsonb alike)."""
    return json.dumps(doc, separators=(",", ":"), ensure_ascii=False)
