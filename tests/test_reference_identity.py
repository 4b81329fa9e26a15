"""A reference is its place: source, schema, table, column, row and JSON path.

Two sources on one table (two base64 columns) and a table of the same name in a second schema used to
share (table, pk, path), so their references overwrote each other and the orphaned-objects policy later
deleted objects that rows still name.
"""

from __future__ import annotations

import base64
from datetime import timedelta
from pathlib import Path

import sqlalchemy as sa

from core.catalog.db import get_engine, upgrade_catalog
from core.migration.engine import migrate_source
from core.objectstore.local import LocalObjectStore
from core.retention.config import parse_retention_config
from core.retention.sweep import run_sweep
from core.sources import parse_sources_config
from tests.support.migration import jpeg, png

C = "media_catalog"

DDL = """
CREATE SCHEMA archive;
CREATE TABLE users (id text PRIMARY KEY, last_login_at timestamptz, deleted_at timestamptz);
CREATE TABLE pets (id bigint PRIMARY KEY, user_id text, photo text, avatar text);
CREATE TABLE archive.pets (id bigint PRIMARY KEY, user_id text, photo text);
"""

SOURCES = {
    "owners": {"table": "users", "last_active_column": "last_login_at", "soft_delete_column": "deleted_at"},
    "sources": [
        {
            "name": "pet_photos",
            "table": "pets",
            "owner_column": "user_id",
            "column": "photo",
            "format": "base64",
        },
        {
            "name": "pet_avatars",
            "table": "pets",
            "owner_column": "user_id",
            "column": "avatar",
            "format": "base64",
        },
        {
            "name": "archived_pet_photos",
            "schema": "archive",
            "table": "pets",
            "owner_column": "user_id",
            "column": "photo",
            "format": "base64",
        },
    ],
}


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def test_two_sources_on_one_table_and_a_same_named_table_keep_every_reference(
    database_url: str, tmp_path: Path
) -> None:
    upgrade_catalog(database_url)
    engine = get_engine(database_url)
    with engine.begin() as conn:
        for statement in DDL.strip().split(";"):
            if statement.strip():
                conn.execute(sa.text(statement))
        conn.execute(sa.text("INSERT INTO users (id) VALUES ('ann'), ('ben')"))
        for pk in (1, 2, 3):
            conn.execute(
                sa.text("INSERT INTO pets VALUES (:pk, 'ann', :photo, :avatar)"),
                {"pk": pk, "photo": b64(jpeg(pk)), "avatar": b64(png(pk))},
            )
            conn.execute(
                sa.text("INSERT INTO archive.pets VALUES (:pk, 'ben', :photo)"),
                {"pk": pk, "photo": b64(jpeg(100 + pk))},
            )
    config = parse_sources_config(SOURCES)
    store = LocalObjectStore(tmp_path / "objects", signing_secret="test-signing-secret")
    for source in config.sources:
        migrate_source(engine, store, source)

    with engine.connect() as conn:
        named = [
            *conn.execute(sa.text("SELECT 'pet_photos', id::text, photo FROM pets")).all(),
            *conn.execute(sa.text("SELECT 'pet_avatars', id::text, avatar FROM pets")).all(),
            *conn.execute(sa.text("SELECT 'archived_pet_photos', id::text, photo FROM archive.pets")).all(),
        ]
        references = conn.execute(
            sa.text(
                f"""SELECT r.source_name, r.source_pk, o.storage_key FROM {C}.object_references r
                    JOIN {C}.stored_objects o ON o.id = r.object_id WHERE r.released_at IS NULL"""
            )
        ).all()
    # 8 days later the orphaned-objects policy runs for real: nothing a row names is deleted
    with engine.connect() as conn:
        newest = conn.execute(sa.text(f"SELECT max(created_at) FROM {C}.stored_objects")).scalar_one()
    later = newest + timedelta(days=8)
    report = run_sweep(
        engine, store, config, parse_retention_config({}), run_id="later", now=later, dry_run=False
    )
    assert len(named) == 9
    assert [key for _source, _pk, key in named if not store.exists(key)] == []
    assert report.deleted == 0
    # every placement has its own live reference, to the object its row names
    assert sorted(tuple(r) for r in references) == sorted(tuple(n) for n in named)


def test_the_identity_revision_keeps_every_reference_of_an_existing_catalog(database_url: str) -> None:
    """A catalog made by the previous revision, with references and quarantine rows of configured
    sources (config/sources.yaml), an upload and a source no longer configured: all kept, with schema
    and column filled from the configured source."""
    upgrade_catalog(database_url, "0003_usage_refs")
    engine = get_engine(database_url)
    old = [
        # (source_name, source_table, source_pk, json_path, origin)
        ("stories", "stories", "1", "images[0].data", "migration"),
        ("stories", "stories", "1", "images[1].data", "migration"),
        ("characters", "characters", "1", "", "migration"),
        ("story_jobs", "story_jobs", "7", "cover", "migration"),
        ("uploads", "uploads", "3", "uploads/2026/ann/x.jpg", "upload"),
        ("retired_source", "old_table", "9", "", "migration"),
    ]
    with engine.begin() as conn:
        object_id = conn.execute(
            sa.text(
                f"""INSERT INTO {C}.stored_objects
                      (sha256, size_bytes, mime_type, kind, storage_key, provider)
                    VALUES (:sha, 1, 'image/png', 'image', 'originals/x.png', 'local') RETURNING id"""
            ),
            {"sha": "a" * 64},
        ).scalar_one()
        for name, table, pk, path, origin in old:
            conn.execute(
                sa.text(
                    f"""INSERT INTO {C}.object_references
                          (object_id, owner_id, origin, source_name, source_table, source_pk, json_path)
                        VALUES (:o, 'ann', :origin, :n, :t, :pk, :p)"""
                ),
                {"o": object_id, "origin": origin, "n": name, "t": table, "pk": pk, "p": path},
            )
        conn.execute(
            sa.text(
                f"""INSERT INTO {C}.quarantine (source_name, source_table, source_pk, json_path, reason_code,
                      reason) VALUES ('files', 'files', '4', '', 'executable', 'MZ header')"""
            )
        )
    from core.catalog.db import head_revision

    upgrade_catalog(database_url)
    with engine.connect() as conn:
        assert (
            conn.execute(sa.text(f"SELECT version_num FROM {C}.alembic_version")).scalar() == head_revision()
        )
        references = conn.execute(
            sa.text(
                f"""SELECT source_name, source_schema, source_table, source_column, source_pk, json_path
                    FROM {C}.object_references ORDER BY id"""
            )
        ).all()
        quarantine = conn.execute(
            sa.text(
                "SELECT source_name, source_schema, source_table, source_column, source_pk "
                f"FROM {C}.quarantine"
            )
        ).all()
    assert [tuple(r) for r in references] == [
        ("stories", "public", "stories", "data", "1", "images[0].data"),
        ("stories", "public", "stories", "data", "1", "images[1].data"),
        ("characters", "public", "characters", "photo", "1", ""),
        ("story_jobs", "public", "story_jobs", "result", "7", "cover"),
        ("uploads", "", "uploads", "", "3", "uploads/2026/ann/x.jpg"),  # not an app column
        ("retired_source", "", "old_table", "", "9", ""),  # source no longer configured: kept, unknown
    ]
    assert [tuple(q) for q in quarantine] == [("files", "public", "files", "data", "4")]
    # the new identity tells the places apart: a second column of the same row is a new reference
    with engine.begin() as conn:
        from core.ingest import upsert_reference

        upsert_reference(
            conn,
            object_id=object_id,
            owner_id="ann",
            origin="migration",
            source_name="characters_thumb",
            source_schema="public",
            source_table="characters",
            source_column="thumb",
            source_pk="1",
        )
        assert conn.execute(sa.text(f"SELECT count(*) FROM {C}.object_references")).scalar() == 7


def test_a_rerun_restores_references_an_older_catalog_lost_and_reports_dangling_ones(
    database_url: str, tmp_path: Path
) -> None:
    """A catalog made under the old identity lost references to collisions while rows still name the
    objects: the next migration pass records them again, so the orphaned-objects policy keeps them; a
    row naming an object that is already gone is reported, not papered over."""
    upgrade_catalog(database_url)
    engine = get_engine(database_url)
    with engine.begin() as conn:
        for statement in DDL.strip().split(";"):
            if statement.strip():
                conn.execute(sa.text(statement))
        for pk in (1, 2, 3):
            conn.execute(
                sa.text("INSERT INTO pets VALUES (:pk, 'ann', :photo, :avatar)"),
                {"pk": pk, "photo": b64(jpeg(pk)), "avatar": b64(png(pk))},
            )
    config = parse_sources_config(SOURCES)
    store = LocalObjectStore(tmp_path / "objects", signing_secret="test-signing-secret")
    avatars = config.by_name("pet_avatars")
    for source in config.sources[:2]:
        migrate_source(engine, store, source)
    with engine.begin() as conn:
        # what the old key did: the avatar references were overwritten by the photo ones
        conn.execute(sa.text(f"DELETE FROM {C}.object_references WHERE source_name = 'pet_avatars'"))
        # and one avatar's object was already deleted by the orphaned-objects policy
        gone_key = conn.execute(sa.text("SELECT avatar FROM pets WHERE id = 3")).scalar_one()
        conn.execute(
            sa.text(f"UPDATE {C}.stored_objects SET status = 'deleted' WHERE storage_key = :k"),
            {"k": gone_key},
        )

    stats = migrate_source(engine, store, avatars)

    assert stats.already_migrated == 3 and stats.blobs_moved == 0
    assert stats.references_restored == 2
    assert stats.dangling_references == [f"pk 3 avatar: {gone_key}"]
    with engine.connect() as conn:
        restored = conn.execute(
            sa.text(
                f"""SELECT r.source_pk, r.source_column, r.owner_id, o.storage_key = p.avatar
                    FROM {C}.object_references r JOIN {C}.stored_objects o ON o.id = r.object_id
                    JOIN pets p ON p.id::text = r.source_pk
                    WHERE r.source_name = 'pet_avatars' AND r.released_at IS NULL ORDER BY 1"""
            )
        ).all()
        newest = conn.execute(sa.text(f"SELECT max(created_at) FROM {C}.stored_objects")).scalar_one()
    assert [tuple(r) for r in restored] == [("1", "avatar", "ann", True), ("2", "avatar", "ann", True)]
    report = run_sweep(
        engine,
        store,
        config,
        parse_retention_config({}).only("orphaned_objects"),
        run_id="later",
        now=newest + timedelta(days=8),
        dry_run=False,
    )
    assert report.deleted == 0
    assert migrate_source(engine, store, avatars).references_restored == 0  # nothing left to restore


def test_a_row_without_an_owner_is_quarantined_not_attributed_to_anyone(
    database_url: str, tmp_path: Path
) -> None:
    """A NULL owner (or a parent row the owner join does not find) used to become the owner "None",
    one owner for every such blob. The value stays in the row with a `no_owner` record instead."""
    from core.migration.checks import base64_left

    upgrade_catalog(database_url)
    engine = get_engine(database_url)
    with engine.begin() as conn:
        for statement in DDL.strip().split(";"):
            if statement.strip():
                conn.execute(sa.text(statement))
        conn.execute(
            sa.text("INSERT INTO pets VALUES (1, 'ann', :a, NULL), (2, NULL, :b, NULL)"),
            {"a": b64(jpeg(1)), "b": b64(jpeg(2))},
        )
    source = parse_sources_config(SOURCES).by_name("pet_photos")
    store = LocalObjectStore(tmp_path / "objects", signing_secret="test-signing-secret")

    stats = migrate_source(engine, store, source)

    assert stats.blobs_moved == 1 and stats.quarantine_reasons == {"no_owner": 1}
    with engine.connect() as conn:
        owners = conn.execute(sa.text(f"SELECT owner_id FROM {C}.object_references")).scalars().all()
        record = conn.execute(
            sa.text(f"SELECT source_pk, source_column, reason_code, reason FROM {C}.quarantine")
        ).one()
        kept = conn.execute(sa.text("SELECT photo FROM pets WHERE id = 2")).scalar_one()
        catalogued = conn.execute(sa.text(f"SELECT count(*) FROM {C}.stored_objects")).scalar_one()
    assert owners == ["ann"]
    assert tuple(record[:3]) == ("2", "photo", "no_owner") and "pets.user_id is NULL" in record[3]
    assert kept == b64(jpeg(2))  # untouched
    assert catalogued == 2  # the unowned bytes are catalogued, unreferenced: retention collects them
    left = base64_left(engine, source)
    assert (left.values, left.quarantined_values) == (0, 1)
