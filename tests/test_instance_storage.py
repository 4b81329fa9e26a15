"""The shipped dagster.yaml keeps runs and events in the real Postgres through dagster-postgres."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from dagster import DagsterInstance, job, op
from sqlalchemy.engine import make_url

from core.catalog.db import PROJECT_ROOT


@op
def _ping() -> int:
    return 1


@job
def _ping_job() -> None:
    _ping()


def test_shipped_dagster_yaml_stores_runs_in_postgres(
    database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    shutil.copyfile(PROJECT_ROOT / "dagster.yaml", tmp_path / "dagster.yaml")
    psycopg2_url = make_url(database_url).set(drivername="postgresql").render_as_string(hide_password=False)
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path))
    monkeypatch.setenv("DAGSTER_POSTGRES_URL", psycopg2_url)

    with DagsterInstance.get() as instance:
        assert type(instance.run_storage).__name__ == "PostgresRunStorage"
        assert type(instance.event_log_storage).__name__ == "PostgresEventLogStorage"
        assert type(instance.schedule_storage).__name__ == "PostgresScheduleStorage"
        result = _ping_job.execute_in_process(instance=instance)
        assert result.success

    with DagsterInstance.get() as reopened:  # a second process would see the same run
        run = reopened.get_run_by_id(result.run_id)
        assert run is not None and run.is_success
