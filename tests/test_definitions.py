"""The code location `dagster dev -w workspace.yaml` loads: every asset, check, sensor and schedule."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from dagster import AssetKey, Definitions

from core.catalog.db import PROJECT_ROOT


@pytest.fixture
def platform_env(database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    env = {"DATABASE_URL": database_url, "MEDIA_PLATFORM_DATA_DIR": str(tmp_path / "data")}
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return env


def test_definitions_load_and_list_the_source_assets(platform_env: dict[str, str]) -> None:
    from orchestration.definitions import build_definitions

    defs = build_definitions()
    Definitions.validate_loadable(defs)
    keys = defs.resolve_asset_graph().get_all_asset_keys()
    for table in ("users", "stories", "characters", "files", "story_jobs"):
        assert AssetKey(["legacy", table]) in keys
    assert AssetKey(["object_store", "uploads"]) in keys


def test_workspace_yaml_loads_with_the_dagster_cli(platform_env: dict[str, str], tmp_path: Path) -> None:
    """The same loader `dagster dev` uses, run as a separate process from the project root."""
    env = {**os.environ, **platform_env, "DAGSTER_HOME": str(tmp_path)}
    result = subprocess.run(
        [sys.executable, "-m", "dagster", "definitions", "validate", "-w", "workspace.yaml"],
        cwd=PROJECT_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout + result.stderr
