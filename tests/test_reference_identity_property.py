"""Property: whatever the configuration (several sources on one table, several columns, several JSON paths,
same-named tables in several schemas), migrate, then run every retention policy for real far in the
future: every placement a row still holds has its own live reference, and no object a row still names is
deleted."""

from __future__ import annotations

import base64
import json
import shutil
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from core.blobcodec import expand_json_path
from core.catalog.db import get_engine, upgrade_catalog
from core.migration.engine import migrate_source
from core.objectstore.local import LocalObjectStore
from core.retention.config import parse_retention_config
from core.retention.sweep import referenced_but_deleted, run_sweep
from core.sources import BlobSource, SourcesConfig, parse_sources_config
from tests.support.migration import jpeg

C = "media_catalog"
SCHEMAS = ("public", "s2", "s3")
OWNERS = ("ann", "ben", "cid")
#: (format, JSON paths) a column can have; a JSON column's document is {"a": .., "b": [.., ..], "n": 1}
COLUMN_KINDS = (("base64", ()), ("jsonb", ("a",)), ("jsonb", ("b[*]",)), ("jsonb", ("a", "b[*]")))
IMAGES = [base64.b64encode(jpeg(seed, size=8)).decode() for seed in range(6)]  # few: content repeats

row = st.fixed_dictionaries(
    {
        "owner": st.sampled_from(OWNERS),
        "soft_deleted": st.booleans(),
        # one image per slot (column x value); None: the column is NULL
        "images": st.lists(st.one_of(st.none(), st.integers(0, len(IMAGES) - 1)), min_size=9, max_size=9),
    }
)
worlds = st.fixed_dictionaries(
    {
        "schemas": st.lists(st.sampled_from(SCHEMAS), min_size=1, max_size=3, unique=True),
        "columns": st.lists(st.sampled_from(COLUMN_KINDS), min_size=1, max_size=3),
        "rows": st.dictionaries(st.sampled_from(SCHEMAS), st.lists(row, min_size=1, max_size=3)),
        "active": st.sets(st.sampled_from(OWNERS), max_size=2),
    }
)


def _config(world: dict[str, Any]) -> SourcesConfig:
    sources = [
        {
            "name": f"{schema}_c{i}",
            "schema": schema,
            "table": "items",  # the same name in every schema
            "owner_column": "user_id",
            "column": f"c{i}",
            "format": fmt,
            **({"json_paths": list(paths)} if paths else {}),
            "soft_delete_column": "deleted_at",
        }
        for schema in world["schemas"]
        for i, (fmt, paths) in enumerate(world["columns"])
    ]
    return parse_sources_config(
        {
            "owners": {
                "table": "users",
                "last_active_column": "last_login_at",
                "soft_delete_column": "deleted_at",
            },
            "sources": sources,
        }
    )


def _build(engine: sa.Engine, world: dict[str, Any], now: datetime) -> None:
    with engine.begin() as conn:
        for schema in SCHEMAS[1:]:
            conn.execute(sa.text(f"DROP SCHEMA IF EXISTS {schema} CASCADE"))
        conn.execute(sa.text("DROP TABLE IF EXISTS public.items, public.users"))
        conn.execute(
            sa.text(
                f"TRUNCATE {C}.retention_audit, {C}.legal_holds, {C}.object_references, {C}.quarantine, "
                f"{C}.uploads, {C}.variants, {C}.retention_pending_deletes, {C}.migration_progress, "
                f"{C}.stored_objects"
            )
        )
        conn.execute(
            sa.text(
                "CREATE TABLE users (id text PRIMARY KEY, last_login_at timestamptz, deleted_at timestamptz)"
            )
        )
        for owner in OWNERS:
            # active owners log in far in the future; the others were last seen now
            seen = now + timedelta(days=3650) if owner in world["active"] else now
            conn.execute(sa.text("INSERT INTO users VALUES (:id, :seen, NULL)"), {"id": owner, "seen": seen})
        columns = world["columns"]
        for schema in world["schemas"]:
            if schema != "public":
                conn.execute(sa.text(f"CREATE SCHEMA {schema}"))
            types = ", ".join(
                f"c{i} {'jsonb' if fmt == 'jsonb' else 'text'}" for i, (fmt, _p) in enumerate(columns)
            )
            conn.execute(
                sa.text(
                    f"CREATE TABLE {schema}.items (id bigint PRIMARY KEY, user_id text, {types}, "
                    "deleted_at timestamptz)"
                )
            )
            for pk, spec in enumerate(world["rows"].get(schema, []), start=1):
                values: dict[str, Any] = {"pk": pk, "owner": spec["owner"]}
                values["deleted"] = now - timedelta(days=1) if spec["soft_deleted"] else None
                for i, (fmt, _paths) in enumerate(columns):
                    a, b0, b1 = spec["images"][3 * i : 3 * i + 3]
                    if a is None:
                        values[f"c{i}"] = None
                    elif fmt == "base64":
                        values[f"c{i}"] = IMAGES[a]
                    else:
                        doc = {"a": IMAGES[a], "b": [IMAGES[x] for x in (b0, b1) if x is not None], "n": 1}
                        values[f"c{i}"] = json.dumps(doc)
                casts = ", ".join(
                    f"CAST(:c{i} AS jsonb)" if fmt == "jsonb" else f":c{i}"
                    for i, (fmt, _p) in enumerate(columns)
                )
                conn.execute(
                    sa.text(f"INSERT INTO {schema}.items VALUES (:pk, :owner, {casts}, :deleted)"), values
                )


def _placements(conn: sa.Connection, source: BlobSource) -> dict[tuple[str, str], str]:
    """(pk, JSON path) -> the value the row holds there now."""
    expr = f'"{source.column}"::text'
    out: dict[tuple[str, str], str] = {}
    for pk, value in conn.execute(sa.text(f"SELECT id::text, {expr} FROM {source.qualified_table}")):
        if value is None:
            continue
        if source.format == "base64":
            out[(pk, "")] = value
            continue
        doc = json.loads(value)
        for pattern in source.json_paths:
            for path, found in expand_json_path(doc, pattern):
                out[(pk, path)] = found
    return out


def _check_every_placement(engine: sa.Engine, store: LocalObjectStore, config: SourcesConfig) -> int:
    """Every value a row holds is a storage key of a verified, stored object, with a live reference of
    exactly its place; returns how many placements there are."""
    total = 0
    with engine.connect() as conn:
        assert referenced_but_deleted(conn) == 0
        for source in config.sources:
            placements = _placements(conn, source)
            references = {
                (pk, path): (key, status)
                for pk, path, key, status in conn.execute(
                    sa.text(
                        f"""SELECT r.source_pk, r.json_path, o.storage_key, o.status
                            FROM {C}.object_references r JOIN {C}.stored_objects o ON o.id = r.object_id
                            WHERE r.released_at IS NULL AND r.source_name = :name
                              AND r.source_schema = :schema AND r.source_table = :table
                              AND r.source_column = :column"""
                    ),
                    {
                        "name": source.name,
                        "schema": source.schema,
                        "table": source.table,
                        "column": source.column,
                    },
                )
            }
            for place, value in placements.items():
                assert place in references, (source.name, place)
                key, status = references[place]
                assert value == key and status == "verified", (source.name, place, value, key, status)
                assert store.exists(key), (source.name, place, key)
            total += len(placements)
    return total


def _placements_written(images: list[int | None], fmt: str, paths: tuple[str, ...]) -> int:
    a, b0, b1 = images
    if a is None:
        return 0  # the column is NULL
    if fmt == "base64":
        return 1
    return ("a" in paths) + ("b[*]" in paths) * sum(x is not None for x in (b0, b1))


@settings(
    max_examples=6,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(world=worlds)
def test_every_placement_keeps_its_reference_and_its_object_through_every_policy(
    database_url: str, tmp_path: Path, world: dict[str, Any]
) -> None:
    upgrade_catalog(database_url)
    engine = get_engine(database_url)
    now = datetime.now(UTC)
    _build(engine, world, now)
    shutil.rmtree(tmp_path / "objects", ignore_errors=True)
    store = LocalObjectStore(tmp_path / "objects", signing_secret="test-signing-secret")
    config = _config(world)
    for source in config.sources:
        assert migrate_source(engine, store, source).quarantined == 0
    placed = _check_every_placement(engine, store, config)
    expected = sum(
        _placements_written(spec["images"][3 * i : 3 * i + 3], fmt, paths)
        for schema in world["schemas"]
        for spec in world["rows"].get(schema, [])
        for i, (fmt, paths) in enumerate(world["columns"])
    )
    assert placed == expected
    with engine.connect() as conn:
        # one live reference per placement: nothing collapsed into another place
        assert (
            conn.execute(
                sa.text(f"SELECT count(*) FROM {C}.object_references WHERE released_at IS NULL")
            ).scalar_one()
            == placed
        )

    # Every policy, for real: a year and more later (inactive owners warned), then once more after the
    # warning period (warned owners deleted with their rows); soft-deleted rows go in the first run.
    retention = parse_retention_config({})
    for days, run in ((400, "year-later"), (440, "after-warning")):
        run_sweep(engine, store, config, retention, run_id=run, now=now + timedelta(days=days), dry_run=False)
        _check_every_placement(engine, store, config)
    with engine.connect() as conn:
        left = conn.execute(sa.text("SELECT id FROM users ORDER BY id")).scalars().all()
    assert set(left) == set(world["active"])  # the sweeps did run: inactive owners are gone
