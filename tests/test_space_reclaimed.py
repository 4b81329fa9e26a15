"""`space_reclaimed` after a migration: a grown table is expected (old row versions stay in the files until
VACUUM FULL), so the check passes with the reclaimable size and the advice, warns only past the configured
threshold, and says which source (partition) it is about."""

from __future__ import annotations

from pathlib import Path

from dagster import AssetCheckSeverity, DagsterInstance, materialize

from assets.migration import SPACE_RECLAIMED
from core.migration.checks import MB, SpaceReport
from core.migration.settings import load_migration_config
from tests.support.migration import create_legacy_tables
from tests.test_migration_assets import migration_of, resources

GROWN = SpaceReport("public.stories", 146 * MB, 149 * MB, 3 * MB, source="stories")


def test_a_table_grown_by_the_rewrite_is_reported_not_warned_below_the_threshold() -> None:
    assert GROWN.reclaimable == 146 * MB
    assert not GROWN.warns(1024 * MB)
    summary = GROWN.summary(1024 * MB)
    assert summary.startswith("stories (public.stories): table 146.0 MB before, 149.0 MB after")
    assert "expected after a rewrite" in summary
    assert "146.0 MB reclaimable, within the warning threshold of 1,024 MB" in summary
    assert "VACUUM (FULL, ANALYZE) public.stories" in GROWN.advice()


def test_reclaimable_space_past_the_threshold_warns() -> None:
    assert GROWN.warns(100 * MB)
    assert "above the warning threshold of 100 MB" in GROWN.summary(100 * MB)


def test_the_metadata_names_the_source_and_rounds_mb_to_three_decimals() -> None:
    report = SpaceReport("public.files", 10_000_000, 12_345_678, 1_234_567, source="files")
    metadata = report.metadata(1024 * MB)
    assert (metadata["source"], metadata["table"]) == ("files", "public.files")
    assert metadata["reclaimable_mb"] == round((12_345_678 - 1_234_567) / MB, 3)
    assert metadata["warn_above_mb"] == 1024


def test_the_default_threshold_does_not_warn_on_an_ordinary_migration() -> None:
    """The demo's 146 MB table grew to 149 MB: that must read as passed, not as a failure."""
    assert load_migration_config().reclaim_warn_bytes >= 1024 * MB


def test_the_check_passes_after_a_migration_and_names_its_partition(
    database_url: str, tmp_path: Path
) -> None:
    create_legacy_tables(database_url, stories=2)
    result = materialize(
        [migration_of("characters")],
        resources=resources(database_url, tmp_path),
        instance=DagsterInstance.ephemeral(),
    )
    check = next(c for c in result.get_asset_check_evaluations() if c.check_name == SPACE_RECLAIMED)
    assert check.passed and check.severity == AssetCheckSeverity.WARN
    assert check.metadata["source"].value == "characters"
    assert check.description is not None and check.description.startswith("characters (public.characters): ")
    assert "advice" in check.metadata
