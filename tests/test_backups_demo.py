"""The restore drill on the demo legacy database: a dump of the app's base64-laden tables and the
catalog restores into a scratch database whose every table matches the manifest."""

from __future__ import annotations

from datetime import date
from pathlib import Path

from core.backups.database import read_manifest, run_database_backup
from core.backups.drill import run_restore_drill
from core.catalog.db import upgrade_catalog
from core.demo.legacy_db import generate_legacy_database
from tests.support.backups import local_store

DAY = date(2026, 11, 21)


def test_restore_drill_passes_on_the_demo_database(database_url: str, tmp_path: Path) -> None:
    upgrade_catalog(database_url)
    generate_legacy_database(database_url, scale=0.05)
    store = local_store(tmp_path / "backups")
    backup = run_database_backup(database_url, store, DAY)
    tables = read_manifest(store, DAY)["tables"]
    for table in ("users", "stories", "characters", "files", "story_jobs"):
        assert tables[f"public.{table}"]["rows"] > 0
    drill = run_restore_drill(database_url, store)
    assert drill.passed, drill.problems
    assert drill.tables == len(tables) and drill.rows == backup.rows
