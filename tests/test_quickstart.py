"""The main job end to end, as `./dev demo` runs it, on a small demo database; twice is safe."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from core.catalog.db import PROJECT_ROOT


def _run_main(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "orchestration.main", "--scale", "0.1", "--demo-data"],
        cwd=PROJECT_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )


@pytest.mark.slow
def test_main_job_runs_twice_without_errors(database_url: str, tmp_path: Path) -> None:
    env = {
        **os.environ,
        "DATABASE_URL": database_url,
        "MEDIA_PLATFORM_DATA_DIR": str(tmp_path / "data"),
        "DAGSTER_HOME": str(tmp_path / "dagster_home"),
    }
    (tmp_path / "dagster_home").mkdir()
    first = _run_main(env)
    assert first.returncode == 0, first.stdout[-4000:] + first.stderr[-4000:]
    assert "Summary" in first.stdout
    second = _run_main(env)
    assert second.returncode == 0, second.stdout[-4000:] + second.stderr[-4000:]
    assert "demo legacy database already present" in second.stdout
