"""Long work logs its progress in the run: the migration through Dagster's run log, object backups and
variant batches through the reporter they are handed (done/total, MB, rate)."""

from __future__ import annotations

import re
import time
from datetime import UTC, date, datetime
from pathlib import Path

import pytest
import sqlalchemy as sa
from dagster import DagsterInstance, materialize

from core.backups.database import run_database_backup
from core.backups.objects import run_object_backup
from core.catalog.db import get_engine
from core.progress import AnnouncedSteps, ProgressReporter, ProgressSnapshot
from tests.support.backups import add_object, add_variant, local_store, prepare_database, random_bytes
from tests.support.migration import create_legacy_tables
from tests.test_migration_assets import migration_of, resources

LINE = re.compile(r"^migration of stories: (\d+)/(\d+) rows \((\d+) %\), ([\d,.]+)/([\d,.]+) MB")


def test_a_migration_run_logs_done_and_total_rows_and_mb_in_the_run_log(
    database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MEDIA_PROGRESS_SECONDS", "0")  # a line after every batch, however fast
    monkeypatch.setenv("MEDIA_CONFIG_DIR", str(_config_with(tmp_path, batch_rows=1)))
    create_legacy_tables(database_url, stories=3)
    with get_engine(database_url).connect() as conn:
        rows = conn.execute(sa.text("SELECT count(*) FROM stories")).scalar_one()
    instance = DagsterInstance.ephemeral()
    result = materialize(
        [migration_of("stories")],
        resources=resources(database_url, tmp_path),
        instance=instance,
    )
    assert result.success
    messages = [record.user_message for record in instance.all_logs(result.run_id)]
    progress = [LINE.match(message) for message in messages if message.startswith("migration of stories:")]
    assert all(progress), messages
    done = [int(match.group(1)) for match in progress if match]
    assert {int(match.group(2)) for match in progress if match} == {rows}
    assert done == sorted(done) and done[-1] == rows and len(done) >= rows  # one per batch, then the end
    last = progress[-1]
    assert last is not None and last.group(3) == "100" and last.group(4) == last.group(5)


def _config_with(tmp_path: Path, **settings: int) -> Path:
    """A config dir like the project's, with migration.yaml's settings overridden."""
    from core.catalog.db import PROJECT_ROOT

    target = tmp_path / "config"
    target.mkdir()
    for path in (PROJECT_ROOT / "config").glob("*.yaml"):
        text = path.read_text()
        if path.name == "migration.yaml":
            for name, value in settings.items():
                text = re.sub(rf"(?m)^{name}: .*$", f"{name}: {value}", text)
        (target / path.name).write_text(text)
    return target


def test_an_object_backup_reports_objects_and_bytes_done_against_the_days_totals(
    database_url: str, tmp_path: Path
) -> None:
    day = date(2026, 11, 20)
    media, backup = local_store(tmp_path / "media"), local_store(tmp_path / "backups")
    prepare_database(database_url, rows=1)
    created = datetime(2026, 11, 20, 12, tzinfo=UTC)
    sizes = [3000, 4000, 5000]
    ids = [add_object(database_url, media, "alice", random_bytes(n), created)[0] for n in sizes]
    add_variant(database_url, media, ids[0], random_bytes(700), created)
    lines: list[ProgressSnapshot] = []
    reporter = ProgressReporter("object backup", lines.append, unit="objects", every_seconds=0)
    result = run_object_backup(database_url, media, backup, day, batch_size=2, progress=reporter)
    assert result.copied == 4
    assert {(snap.total, snap.total_bytes) for snap in lines} == {(4, sum(sizes) + 700)}
    assert [snap.done for snap in lines] == [1, 2, 3, 4, 4]  # per object, then the final figures
    assert lines[-1].done_bytes == sum(sizes) + 700
    assert "4/4 objects (100 %)" in lines[-1].line()


def test_a_variant_batch_reports_each_original_it_rendered(database_url: str, tmp_path: Path) -> None:
    from core.catalog.db import upgrade_catalog
    from core.imaging import load_variant_plan
    from core.objectstore.local import LocalObjectStore
    from core.variants import process_batch
    from tests.support.variants import jpeg_bytes, photo, seed_original

    upgrade_catalog(database_url)
    engine, store = get_engine(database_url), LocalObjectStore(tmp_path / "objects", signing_secret="s")
    images = [jpeg_bytes(photo(200, 150, seed=i)) for i in range(3)]
    ids = [seed_original(engine, store, data, source_pk=str(i)) for i, data in enumerate(images)]
    lines: list[ProgressSnapshot] = []
    reporter = ProgressReporter("variant batch", lines.append, unit="originals", total=3, every_seconds=0)
    process_batch(store, engine, ids, load_variant_plan(), progress=reporter)
    assert [snap.done for snap in lines] == [1, 2, 3, 3]
    assert lines[-1].done_bytes == sum(len(data) for data in images)
    assert lines[-1].line().startswith("variant batch: 3/3 originals (100 %)")


def test_ticking_emits_while_one_long_step_gives_no_news_and_stops_after() -> None:
    lines: list[ProgressSnapshot] = []
    reporter = ProgressReporter("upload", lines.append, unit="files", total=1, every_seconds=0.05)
    with reporter.ticking():
        time.sleep(0.6)  # one step that never advances
    during = len(lines)
    time.sleep(0.2)
    assert during >= 2 and len(lines) == during
    assert all(snap.done == 0 and snap.total == 1 for snap in lines)


def test_announced_steps_count_each_step_done_when_the_next_starts() -> None:
    logged: list[str] = []
    lines: list[ProgressSnapshot] = []
    reporter = ProgressReporter("retention", lines.append, unit="policies", total=3, every_seconds=0)
    steps = AnnouncedSteps(reporter, logged.append)
    names = ("orphaned_objects", "soft_deleted_rows", "inactive_users")
    announcements = [f"retention: {name}" for name in names]
    for message in announcements:
        steps(message)
    steps.finish()
    assert logged == announcements
    assert [(snap.label, snap.done) for snap in lines] == [
        ("retention: soft_deleted_rows", 1),
        ("retention: inactive_users", 2),
        ("retention: inactive_users", 3),
    ]


def test_a_database_backup_reports_each_table_digested_against_all_tables(
    database_url: str, tmp_path: Path
) -> None:
    prepare_database(database_url, rows=20)
    lines: list[ProgressSnapshot] = []
    reporter = ProgressReporter("database backup", lines.append, unit="tables", every_seconds=0)
    store = local_store(tmp_path / "backups")
    result = run_database_backup(database_url, store, date(2026, 11, 20), progress=reporter)
    tables = len(result.tables)
    assert [snap.done for snap in lines] == list(range(1, tables + 1))
    assert {snap.total for snap in lines} == {tables}
    assert lines[-1].done_bytes == lines[-1].total_bytes > 0


def test_a_retention_sweep_logs_policies_done_of_the_enabled_ones(
    database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from assets.retention import retention_sweep
    from core.retention.policies import POLICY_ORDER, load_retention_config
    from resources.database import PostgresResource
    from resources.object_store import ObjectStoreResource
    from tests.support.retention import catalog

    monkeypatch.setenv("MEDIA_PROGRESS_SECONDS", "0")
    catalog(database_url)
    config = load_retention_config()
    enabled = sum(config.is_enabled(name) for name in POLICY_ORDER)
    instance = DagsterInstance.ephemeral()
    result = materialize(
        [retention_sweep],
        partition_key=datetime.now(UTC).date().isoformat(),
        resources={
            "postgres": PostgresResource(database_url=database_url),
            "object_store": ObjectStoreResource(local_root=str(tmp_path / "objects"), signing_secret="s"),
        },
        instance=instance,
    )
    assert result.success
    messages = [record.user_message for record in instance.all_logs(result.run_id)]
    counts = [m.split(": ")[-1].split(" policies")[0] for m in messages if " policies (" in m]
    assert counts == [f"{done}/{enabled}" for done in range(1, enabled + 1)]


def test_the_interval_is_ten_seconds_unless_media_progress_seconds_says_otherwise(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from core.progress import progress_every_seconds

    monkeypatch.delenv("MEDIA_PROGRESS_SECONDS", raising=False)
    assert progress_every_seconds() == 10
    monkeypatch.setenv("MEDIA_PROGRESS_SECONDS", "2.5")
    assert progress_every_seconds() == 2.5
    for wrong in ("soon", "-1"):
        monkeypatch.setenv("MEDIA_PROGRESS_SECONDS", wrong)
        with pytest.raises(ValueError, match="MEDIA_PROGRESS_SECONDS"):
            progress_every_seconds()
