"""The migration assets through Dagster: partitions from config, checks, refusal, summary lines."""

from __future__ import annotations

from pathlib import Path

import sqlalchemy as sa
from dagster import DagsterInstance, materialize

from assets.migration import (
    NO_BASE64_LEFT,
    REFERENCES_RESOLVE,
    SPACE_RECLAIMED,
    migrated_blobs,
    migration_inventory,
    migration_partitions,
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


def test_partitions_are_the_configured_sources() -> None:
    assert migration_partitions.get_partition_keys() == ["stories", "characters", "files", "story_jobs"]


def test_each_partition_migrates_its_source_and_its_checks_pass(database_url: str, tmp_path: Path) -> None:
    fixture = create_legacy_tables(database_url, stories=2)
    res = resources(database_url, tmp_path / "objects")
    instance = DagsterInstance.ephemeral()
    inventory = materialize([migration_inventory], resources=res, instance=instance)
    meta = inventory.asset_materializations_for_node("migration_inventory")[0].metadata
    assert meta["blobs"].value == len(fixture.good) + len(fixture.bad) - 1  # the unreadable JSON row has none
    assert meta["duplicates"].value >= 1  # the shared picture in both stories (counted per source)

    moved = 0
    for key in migration_partitions.get_partition_keys():
        result = materialize([migrated_blobs], partition_key=key, resources=res, instance=instance)
        assert result.success
        meta = result.asset_materializations_for_node("migrated_blobs")[0].metadata
        moved += meta["blobs_moved"].value
        checks = {c.check_name: c for c in result.get_asset_check_evaluations()}
        assert checks[NO_BASE64_LEFT].passed, checks[NO_BASE64_LEFT].metadata
        assert checks[REFERENCES_RESOLVE].passed, checks[REFERENCES_RESOLVE].metadata
        assert SPACE_RECLAIMED in checks
    assert moved == len(fixture.good)
    assert_fully_migrated(database_url, LocalObjectStore(tmp_path / "objects", signing_secret="s"), fixture)

    again = materialize([migrated_blobs], partition_key="stories", resources=res, instance=instance)
    assert again.asset_materializations_for_node("migrated_blobs")[0].metadata["blobs_moved"].value == 0
    lines = migration_summary_lines(get_engine(database_url))
    assert lines[0].startswith(f"migration: {len(fixture.good)} blobs moved")
    assert f"{len(fixture.bad)} values quarantined" in lines[1]


def test_the_no_base64_check_is_blocking_and_counts_unexplained_base64(
    database_url: str, tmp_path: Path
) -> None:
    spec = next(s for s in migrated_blobs.check_specs if s.name == NO_BASE64_LEFT)
    assert spec.blocking
    create_legacy_tables(database_url, stories=1)
    materialize([migrated_blobs], partition_key="files", resources=resources(database_url, tmp_path / "o"))
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
        [migrated_blobs],
        partition_key="stories",
        resources=resources(database_url, tmp_path / "objects"),
        raise_on_error=False,
    )
    assert not result.success
    failure = result.get_step_failure_events()[0].step_failure_data.error
    text = str(failure)
    assert "table public.stories does not exist" in text
    assert not (tmp_path / "objects").exists() or not any((tmp_path / "objects").rglob("*.jpg"))
