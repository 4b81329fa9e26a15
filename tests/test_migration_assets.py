"""The migration assets through Dagster: one per configured source, checks, refusal, summary lines."""

from __future__ import annotations

from pathlib import Path

import sqlalchemy as sa
from dagster import AssetKey, AssetsDefinition, DagsterInstance, materialize

from assets.migration import (
    NO_BASE64_LEFT,
    REFERENCES_RESOLVE,
    SPACE_RECLAIMED,
    inventory_assets,
    migrated_assets,
)
from core.catalog.db import get_engine
from core.migration.checks import base64_left
from core.migration.report import migration_summary_lines
from core.objectstore.local import LocalObjectStore
from resources.database import PostgresResource
from resources.object_store import ObjectStoreResource
from tests.support.migration import assert_fully_migrated, create_legacy_tables, sources


def resources(url: str, root: Path) -> dict[str, object]:
    return {
        "postgres": PostgresResource(database_url=url),
        "object_store": ObjectStoreResource(backend="local", local_root=str(root), signing_secret="s"),
    }


def migration_of(source: str) -> AssetsDefinition:
    return next(a for a in migrated_assets if a.key == AssetKey(["migration", source]))


def test_one_migration_and_one_inventory_per_configured_source_each_after_its_own_table() -> None:
    assert [a.key.path for a in migrated_assets] == [
        ["migration", name] for name in ("stories", "characters", "files", "story_jobs")
    ]
    for assets in (migrated_assets, inventory_assets):
        for definition in assets:
            source = definition.key.path[-1]
            deps = [key.path for key in definition.asset_deps[definition.key]]
            assert deps == [["legacy", "public", source]]  # the demo's tables are named like the sources


def test_each_partition_migrates_its_source_and_its_checks_pass(database_url: str, tmp_path: Path) -> None:
    fixture = create_legacy_tables(database_url, stories=2)
    res = resources(database_url, tmp_path / "objects")
    instance = DagsterInstance.ephemeral()
    inventory = materialize(inventory_assets, resources=res, instance=instance)
    metas = [e.materialization.metadata for e in inventory.get_asset_materialization_events()]
    assert sum(m["blobs"].value for m in metas) == len(fixture.good) + len(fixture.bad) - 1  # one unreadable
    assert sum(m["duplicates"].value for m in metas) >= 1  # the shared picture in both stories

    moved = 0
    for definition in migrated_assets:
        result = materialize([definition], resources=res, instance=instance)
        assert result.success
        meta = result.get_asset_materialization_events()[0].materialization.metadata
        moved += meta["blobs_moved"].value
        checks = {c.check_name: c for c in result.get_asset_check_evaluations()}
        assert checks[NO_BASE64_LEFT].passed, checks[NO_BASE64_LEFT].metadata
        assert checks[REFERENCES_RESOLVE].passed, checks[REFERENCES_RESOLVE].metadata
        assert SPACE_RECLAIMED in checks
    assert moved == len(fixture.good)
    assert_fully_migrated(database_url, LocalObjectStore(tmp_path / "objects", signing_secret="s"), fixture)

    again = materialize([migration_of("stories")], resources=res, instance=instance)
    assert again.get_asset_materialization_events()[0].materialization.metadata["blobs_moved"].value == 0
    lines = migration_summary_lines(get_engine(database_url))
    assert lines[0].startswith(f"migration: {len(fixture.good)} blobs moved")
    assert f"{len(fixture.bad)} values quarantined" in lines[1]


def test_the_no_base64_check_is_blocking_and_counts_unexplained_base64(
    database_url: str, tmp_path: Path
) -> None:
    spec = next(s for s in migration_of("files").check_specs if s.name == NO_BASE64_LEFT)
    assert spec.blocking
    create_legacy_tables(database_url, stories=1)
    materialize([migration_of("files")], resources=resources(database_url, tmp_path / "o"))
    files = next(s for s in sources() if s.name == "files")
    engine = get_engine(database_url)
    report = base64_left(engine, files)
    assert (report.values, report.quarantined_values) == (0, 2)  # executable + PDF-as-JPEG, explained
    with engine.begin() as conn:
        conn.execute(
            sa.text(
                "INSERT INTO files (id, user_id, filename, mime_type, data) VALUES (50, 1, 'n', 'x', 'AAAA')"
            )
        )
        conn.execute(sa.text("DELETE FROM media_catalog.quarantine WHERE source_table = 'files'"))
    report = base64_left(engine, files)
    assert report.values == 3
    assert report.examples == ["pk 4 data", "pk 5 data", "pk 50 data"]


def test_a_source_missing_from_the_database_is_refused_with_a_clear_message(
    database_url: str, tmp_path: Path
) -> None:
    result = materialize(
        [migration_of("stories")],
        resources=resources(database_url, tmp_path / "objects"),
        raise_on_error=False,
    )
    assert not result.success
    failure = result.get_step_failure_events()[0].step_failure_data.error
    text = str(failure)
    assert "table public.stories does not exist" in text
    assert not (tmp_path / "objects").exists() or not any((tmp_path / "objects").rglob("*.jpg"))
