"""Runs the demo launches are runs of the workspace's code location (orchestration/launch.py): they carry
its origin and job snapshot, so the UI lists them under the job and re-executes them as the same version.
And the README's command line for migrating one source works as written."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from dagster import DagsterInstance, DagsterRunStatus

from core.catalog.db import PROJECT_ROOT, get_engine
from core.migration.checks import base64_left
from tests.support.migration import create_legacy_tables, sources


def test_demo_runs_carry_the_code_location_origin(
    database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from orchestration.launch import LOCATION_NAME, create_run, launch_and_wait, workspace_context

    monkeypatch.setenv("DATABASE_URL", database_url)
    monkeypatch.setenv("MEDIA_PLATFORM_DATA_DIR", str(tmp_path / "data"))
    create_legacy_tables(database_url, stories=1)
    (tmp_path / "home").mkdir()
    # A persistent instance (the run worker is another process); sqlite, so nothing outlives the test.
    with (
        DagsterInstance.local_temp(str(tmp_path / "home")) as instance,
        workspace_context(instance) as workspace,
    ):
        run = create_run(
            instance, workspace, "migration_inventory_job", {"execution": {"config": {"in_process": {}}}}
        )
        finished = launch_and_wait(instance, workspace, run)
        assert finished.status == DagsterRunStatus.SUCCESS
        origin = finished.remote_job_origin
        assert origin is not None
        assert origin.location_name == LOCATION_NAME
        assert origin.job_name == "migration_inventory_job"
        location = workspace.get_code_location(LOCATION_NAME)
        repository = next(iter(location.get_repositories().values()))
        served = repository.get_full_job("migration_inventory_job")
        assert finished.job_snapshot_id == served.identifying_job_snapshot_id  # same version as the UI's
        assert [r.run_id for r in instance.get_runs()] == [finished.run_id]


README_COMMAND = "dagster asset materialize -m orchestration.definitions -a defs --select migration/stories"


def test_the_readme_command_migrates_one_source(database_url: str, tmp_path: Path) -> None:
    assert README_COMMAND in (PROJECT_ROOT / "README.md").read_text()
    create_legacy_tables(database_url, stories=1)
    (tmp_path / "home").mkdir()
    env = {
        **os.environ,
        "DATABASE_URL": database_url,
        "MEDIA_PLATFORM_DATA_DIR": str(tmp_path / "data"),
        "DAGSTER_HOME": str(tmp_path / "home"),
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
    }
    result = subprocess.run(
        README_COMMAND.split(), cwd=PROJECT_ROOT, env=env, capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    engine = get_engine(database_url)
    stories = next(s for s in sources() if s.name == "stories")
    files = next(s for s in sources() if s.name == "files")
    assert base64_left(engine, stories).values == 0  # that source is migrated ...
    assert base64_left(engine, files).values > 0  # ... and only that one
