"""A schema unlike the demo's: UUID keys, base64 in JSONB, the owner on a parent table (photos.album_id ->
albums.owner_email) and an owners table without a last-activity column.

The owner found through the join is what the migration, retention (GDPR delete), the usage snapshot and
the GDPR export use; a join naming a missing table or column is refused before anything runs; and
without a last-activity column the inactive-users policy is off and says so, never guessing.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import uuid
import zipfile
from pathlib import Path

import pytest
import sqlalchemy as sa

from core.catalog.db import get_engine, upgrade_catalog
from core.migration.engine import migrate_source
from core.objectstore.local import LocalObjectStore
from core.retention.config import INACTIVE_USERS, parse_retention_config
from core.retention.gdpr import delete_owner_everywhere, export_owner
from core.retention.sweep import run_sweep
from core.sources import SourceConfigError, SourcesConfig, check_against_database, parse_sources_config
from core.usage.quotas import load_quota_config
from core.usage.snapshot import take_usage_snapshot
from tests.support.migration import jpeg, png

C = "media_catalog"
NOW = dt.datetime(2027, 6, 1, tzinfo=dt.UTC)

DDL = """
CREATE SCHEMA app;
CREATE TABLE app.accounts (email text PRIMARY KEY, created_at timestamptz NOT NULL DEFAULT '2020-01-01');
CREATE TABLE app.albums (id uuid PRIMARY KEY, owner_email text NOT NULL REFERENCES app.accounts (email));
CREATE TABLE app.photos (id uuid PRIMARY KEY, album_id uuid NOT NULL REFERENCES app.albums (id), meta jsonb,
                         deleted_at timestamptz)
"""

RAW = {
    "schema": "app",
    "owners": {"table": "accounts", "primary_key": "email"},  # no last_active_column
    "sources": [
        {
            "name": "album_photos",
            "table": "photos",
            "owner_join": {"via": "album_id", "table": "albums", "key": "id", "column": "owner_email"},
            "column": "meta",
            "format": "jsonb",
            "json_paths": ["image", "thumbs[*]"],
            "soft_delete_column": "deleted_at",
        }
    ],
}

OWNERS = {"alice@example.com": 3, "bob@example.com": 2}  # photos per owner


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


@pytest.fixture
def world(database_url: str, tmp_path: Path) -> tuple[sa.Engine, LocalObjectStore, SourcesConfig]:
    upgrade_catalog(database_url)
    engine = get_engine(database_url)
    with engine.begin() as conn:
        for statement in DDL.strip().split(";"):
            conn.execute(sa.text(statement))
        seed = 0
        for email, photos in OWNERS.items():
            album = uuid.uuid4()
            conn.execute(sa.text("INSERT INTO app.accounts (email) VALUES (:e)"), {"e": email})
            conn.execute(sa.text("INSERT INTO app.albums VALUES (:id, :e)"), {"id": album, "e": email})
            for _ in range(photos):
                seed += 1
                meta = {"title": f"p{seed}", "image": b64(jpeg(seed)), "thumbs": [b64(png(seed))]}
                conn.execute(
                    sa.text(
                        "INSERT INTO app.photos (id, album_id, meta) VALUES (:id, :a, CAST(:m AS jsonb))"
                    ),
                    {"id": uuid.uuid4(), "a": album, "m": json.dumps(meta)},
                )
    store = LocalObjectStore(tmp_path / "objects", signing_secret="test-signing-secret")
    return engine, store, parse_sources_config(RAW)


def _migrate(world: tuple[sa.Engine, LocalObjectStore, SourcesConfig]) -> None:
    engine, store, config = world
    for source in config.sources:
        stats = migrate_source(engine, store, source)
        assert stats.quarantined == 0


def test_the_migration_attributes_each_blob_to_the_owner_of_its_parent_row(world) -> None:
    engine, _store, config = world
    with engine.connect() as conn:
        check_against_database(conn, config)
    _migrate(world)
    with engine.connect() as conn:
        per_owner = dict(
            conn.execute(
                sa.text(
                    f"""SELECT owner_id, count(*) FROM {C}.object_references
                        WHERE source_name = 'album_photos' AND source_schema = 'app'
                          AND source_column = 'meta' AND released_at IS NULL GROUP BY 1"""
                )
            ).all()
        )
    assert per_owner == {email: 2 * photos for email, photos in OWNERS.items()}  # image + one thumb


def test_the_usage_snapshot_counts_database_bytes_per_owner_through_the_join(world) -> None:
    engine, _store, config = world
    with engine.begin() as conn:
        expected = dict(
            conn.execute(
                sa.text(
                    "SELECT a.owner_email, sum(octet_length(p.meta::text)) FROM app.photos p "
                    "JOIN app.albums a ON a.id = p.album_id GROUP BY 1"
                )
            ).all()
        )
        take_usage_snapshot(conn, NOW.date(), config, load_quota_config())
        rows = dict(
            conn.execute(
                sa.text(
                    f"""SELECT owner_id, bytes FROM {C}.usage_snapshots
                        WHERE location = 'database' AND kind = 'album_photos'"""
                )
            ).all()
        )
    assert set(rows) == set(OWNERS) and rows == {k: int(v) for k, v in expected.items()}


def test_gdpr_export_and_delete_find_the_owner_rows_through_the_join(world) -> None:
    engine, store, config = world
    _migrate(world)
    retention = parse_retention_config({})
    exported = export_owner(
        engine, store, config, retention, owner_id="alice@example.com", run_id="export-1", now=NOW
    )
    assert exported.rows["album_photos"] == OWNERS["alice@example.com"]
    with store.open_stream(exported.storage_key) as raw, zipfile.ZipFile(raw) as archive:
        lines = archive.read("rows/album_photos.jsonl").decode().splitlines()
    assert len(lines) == OWNERS["alice@example.com"]

    delete_owner_everywhere(
        engine, store, config, retention, owner_id="alice@example.com", run_id="erase-1", now=NOW
    )
    with engine.connect() as conn:
        left = dict(
            conn.execute(
                sa.text(
                    "SELECT a.owner_email, count(*) FROM app.photos p JOIN app.albums a ON a.id = p.album_id "
                    "GROUP BY 1"
                )
            ).all()
        )
        bob_objects = conn.execute(
            sa.text(
                f"""SELECT o.storage_key FROM {C}.stored_objects o JOIN {C}.object_references r
                    ON r.object_id = o.id WHERE r.owner_id = 'bob@example.com' AND o.status = 'verified'"""
            )
        ).scalars()
        bob_keys = list(bob_objects)
    assert left == {"bob@example.com": OWNERS["bob@example.com"]}
    assert len(bob_keys) == 2 * OWNERS["bob@example.com"] and all(store.exists(k) for k in bob_keys)


def test_without_a_last_activity_column_inactive_users_is_off_and_the_dry_run_says_so(world) -> None:
    engine, store, config = world
    _migrate(world)
    report = run_sweep(engine, store, config, parse_retention_config({}), run_id="dry", now=NOW, dry_run=True)
    result = report.policies[INACTIVE_USERS]
    # accounts were created in 2020: judged by creation date, every one would be warned or deleted
    assert result.candidates == 0 and result.warned_owners == [] and result.counts["owners_deleted"] == 0
    assert "inactive_users skipped: no last-activity column" in result.note
    assert "inactive_users skipped: no last-activity column" in report.markdown()
    with engine.connect() as conn:
        audit = conn.execute(
            sa.text(f"SELECT action, target_type, reason FROM {C}.retention_audit WHERE policy = :p"),
            {"p": INACTIVE_USERS},
        ).all()
    assert [(a, t) for a, t, _reason in audit] == [("skipped", "policy")]
    assert "no last-activity column" in audit[0][2]


@pytest.mark.parametrize(
    ("owner_join", "named"),
    [
        ({"via": "album_id", "table": "folders", "column": "owner_email"}, "app.folders does not exist"),
        ({"via": "album_id", "table": "albums", "column": "owner"}, "app.albums.owner"),
        ({"via": "folder_id", "table": "albums", "column": "owner_email"}, "app.photos.folder_id"),
    ],
)
def test_an_owner_join_naming_a_missing_table_or_column_is_refused_before_anything_runs(
    world, owner_join: dict, named: str
) -> None:
    engine, store, _config = world
    raw = {**RAW, "sources": [{**RAW["sources"][0], "owner_join": owner_join}]}
    config = parse_sources_config(raw)
    with engine.connect() as conn, pytest.raises(SourceConfigError, match=named):
        check_against_database(conn, config)
    with pytest.raises(SourceConfigError, match=named):
        migrate_source(engine, store, config.sources[0])
    retention = parse_retention_config({})
    with pytest.raises(SourceConfigError, match=named):
        run_sweep(engine, store, config, retention, run_id="r", now=NOW, dry_run=False)
    with pytest.raises(SourceConfigError, match=named):
        delete_owner_everywhere(
            engine, store, config, retention, owner_id="alice@example.com", run_id="g", now=NOW
        )
    with pytest.raises(SourceConfigError, match=named):
        export_owner(engine, store, config, retention, owner_id="alice@example.com", run_id="e", now=NOW)
    with engine.connect() as conn:
        assert conn.execute(sa.text(f"SELECT count(*) FROM {C}.object_references")).scalar() == 0
        assert conn.execute(sa.text("SELECT count(*) FROM app.photos WHERE meta ? 'image'")).scalar() == 5
        assert conn.execute(sa.text(f"SELECT count(*) FROM {C}.retention_audit")).scalar() == 0


def test_a_source_needs_exactly_one_way_to_its_owner() -> None:
    source = {k: v for k, v in RAW["sources"][0].items() if k != "owner_join"}
    with pytest.raises(SourceConfigError, match="exactly one of owner_column or owner_join"):
        parse_sources_config({**RAW, "sources": [source]})
    with pytest.raises(SourceConfigError, match="exactly one of owner_column or owner_join"):
        parse_sources_config({**RAW, "sources": [{**RAW["sources"][0], "owner_column": "album_id"}]})
