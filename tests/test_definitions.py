"""The code location `dagster dev -w workspace.yaml` loads: every asset, check, sensor and schedule."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from dagster import AssetKey, Definitions

from core.catalog.db import PROJECT_ROOT
from core.config import PROJECT_CONFIG_DIR


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
        assert AssetKey(["legacy", "public", table]) in keys
    assert AssetKey(["object_store", "uploads"]) in keys



# The asset graph's zoomed-out nodes show an asset's last key segment and cut it past 18 characters
# ("migrati…_inventory"); every name must stay readable there.
GRAPH_NAME_LIMIT = 18


def test_every_asset_name_fits_the_graph_node_uncut(platform_env: dict[str, str]) -> None:
    from orchestration.definitions import build_definitions

    keys = build_definitions().resolve_asset_graph().get_all_asset_keys()
    too_long = sorted(key.to_user_string() for key in keys if len(key.path[-1]) > GRAPH_NAME_LIMIT)
    assert too_long == []

OTHER_SOURCES = """
schema: app
owners: {table: accounts, primary_key: id, last_active_column: seen_at}
sources:
  - {name: photos, table: photos, primary_key: id, owner_column: account_id, column: body, format: base64}
  - {name: album_covers, table: albums, primary_key: id, owner_column: account_id, column: cover,
     format: jsonb, json_path: "cover.data", schema: media}
  - {name: tagged, table: tags, primary_key: id, column: icon, format: base64,
     owner_join: {via: album_id, table: albums, column: account_id, schema: media}}
"""

LIST_GRAPH = """
from dagster import AssetKey
from orchestration.definitions import defs
graph = defs.resolve_asset_graph()
for key in sorted(graph.get_all_asset_keys(), key=lambda k: k.to_user_string()):
    parents = sorted(p.to_user_string() for p in graph.get(key).parent_keys)
    print(key.to_user_string(), "<-", ",".join(parents))
uploads = graph.get(AssetKey(["media", "processed_uploads"]))
print("start", uploads.partitions_def.start.date())
"""


def test_the_graph_shows_the_configured_tables_of_another_config_dir(
    platform_env: dict[str, str], tmp_path: Path
) -> None:
    config = tmp_path / "config"
    shutil.copytree(PROJECT_CONFIG_DIR, config)  # a MEDIA_CONFIG_DIR holds every file
    (config / "sources.yaml").write_text(OTHER_SOURCES)
    (config / "calendar.yaml").write_text("start_date: 2025-06-01\n")
    env = {**os.environ, **platform_env, "MEDIA_CONFIG_DIR": str(config)}
    result = subprocess.run(
        [sys.executable, "-c", LIST_GRAPH],
        cwd=PROJECT_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    graph = dict(line.split(" <- ") for line in result.stdout.splitlines() if " <- " in line)
    legacy = sorted(key for key in graph if key.startswith("legacy/"))
    assert legacy == ["legacy/app/accounts", "legacy/app/photos", "legacy/app/tags", "legacy/media/albums"]
    assert graph["migration/photos"] == "legacy/app/photos"
    assert graph["migration/album_covers"] == "legacy/media/albums"
    assert graph["migration/inventory/album_covers"] == "legacy/media/albums"
    assert graph["migration/tagged"] == "legacy/app/tags,legacy/media/albums"  # its table and the owner's
    assert "legacy/app/accounts" in graph["retention/sweep"].split(",")
    assert "start 2025-06-01" in result.stdout  # the configured calendar


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
