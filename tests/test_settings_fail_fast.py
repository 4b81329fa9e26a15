"""Outside the quick start (MEDIA_QUICKSTART=1) nothing falls back to a local default: a process that lacks
a setting or a configuration file fails when the definitions load, naming every one, and starts nothing."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from core.catalog.db import PROJECT_ROOT
from core.config import PROJECT_CONFIG_DIR
from resources import settings

#: Every variable the platform reads; stripped so each case states its whole environment.
PLATFORM_VARIABLES = (
    "MEDIA_QUICKSTART",
    "DATABASE_URL",
    "OBJECT_STORE_BACKEND",
    "S3_BUCKET",
    "S3_PREFIX",
    "S3_ENDPOINT_URL",
    "S3_REGION",
    "BACKUP_STORE_BACKEND",
    "BACKUP_S3_BUCKET",
    "BACKUP_S3_PREFIX",
    "MEDIA_PLATFORM_DATA_DIR",
    "MEDIA_SIGNING_SECRET",
    "MEDIA_PUBLIC_BASE_URL",
    "MEDIA_CONFIG_DIR",
    "DAGSTER_HOME",
)

LOAD = "import orchestration.definitions as d; print('loaded', len(list(d.defs.jobs or [])), 'jobs')"


def _import_definitions(tmp_path: Path, **env: str) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if k not in PLATFORM_VARIABLES}
    return subprocess.run(
        [sys.executable, "-c", LOAD],
        cwd=PROJECT_ROOT,
        env={**base, "MEDIA_PLATFORM_DATA_DIR": str(tmp_path / "data"), **env},
        capture_output=True,
        text=True,
        timeout=300,
    )


def _postgres_processes_under(folder: Path) -> list[str]:
    found = []
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            text = cmdline.read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if "postgres" in text and str(folder) in text:
            found.append(text)
    return found


def _config_dir_without(tmp_path: Path, name: str) -> Path:
    """A production configuration folder: the project's files but `name`, the calendar's start stated."""
    folder = tmp_path / "config"
    folder.mkdir()
    for path in PROJECT_CONFIG_DIR.glob("*.yaml"):
        if path.stem != name:
            (folder / path.name).write_text(path.read_text())
    (folder / "calendar.yaml").write_text("start_date: 2026-01-01\n")
    return folder


def test_definitions_fail_naming_every_missing_setting_and_start_no_postgres(tmp_path: Path) -> None:
    config = _config_dir_without(tmp_path, "quotas")
    result = _import_definitions(tmp_path, OBJECT_STORE_BACKEND="local", MEDIA_CONFIG_DIR=str(config))
    assert result.returncode != 0
    message = result.stderr
    assert "MissingSettingsError" in message
    for name in ("DATABASE_URL", "MEDIA_SIGNING_SECRET", "MEDIA_PUBLIC_BASE_URL", "BACKUP_STORE_BACKEND"):
        assert name in message, name
    assert f"configuration file quotas.yaml in MEDIA_CONFIG_DIR={config}" in message
    assert "S3_BUCKET" not in message  # only what this configuration needs
    assert not (tmp_path / "data" / "postgres").exists()
    assert not _postgres_processes_under(tmp_path)


def test_quick_start_import_without_database_url_starts_no_server_either(tmp_path: Path) -> None:
    result = _import_definitions(tmp_path, MEDIA_QUICKSTART="1")
    assert result.returncode != 0
    assert "DATABASE_URL" in result.stderr and "./dev demo and ./dev ui start the embedded" in result.stderr
    assert "OBJECT_STORE_BACKEND" not in result.stderr  # the quick start's local default
    assert not (tmp_path / "data" / "postgres").exists()
    assert not _postgres_processes_under(tmp_path)


def test_definitions_load_when_everything_is_set(tmp_path: Path, database_url: str) -> None:
    config = _config_dir_without(tmp_path, "none-missing")
    result = _import_definitions(
        tmp_path,
        DATABASE_URL=database_url,
        OBJECT_STORE_BACKEND="s3",
        S3_BUCKET="media",
        BACKUP_STORE_BACKEND="local",
        MEDIA_CONFIG_DIR=str(config),
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.startswith("loaded")


@pytest.fixture
def production(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> pytest.MonkeyPatch:
    """No quick start and no platform variable set, in this process."""
    for name in PLATFORM_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("DATABASE_URL", "postgresql://app@db.invalid/app")
    monkeypatch.setenv("MEDIA_CONFIG_DIR", str(_config_dir_without(tmp_path, "none-missing")))
    return monkeypatch


def test_s3_stores_need_their_buckets(production: pytest.MonkeyPatch) -> None:
    production.setenv("OBJECT_STORE_BACKEND", "s3")
    production.setenv("BACKUP_STORE_BACKEND", "s3")
    assert settings.missing_settings() == [
        "S3_BUCKET (the media bucket; OBJECT_STORE_BACKEND=s3)",
        "BACKUP_S3_BUCKET (the backup bucket, or S3_BUCKET; BACKUP_STORE_BACKEND=s3)",
    ]
    production.setenv("S3_BUCKET", "media")  # the backup location shares it unless told otherwise
    assert settings.missing_settings() == []
    production.setenv("OBJECT_STORE_BACKEND", "gcs")
    with pytest.raises(settings.MissingSettingsError, match=r"OBJECT_STORE_BACKEND must be one of"):
        settings.build_resources()


def test_a_local_store_outside_the_quick_start_needs_its_folder_secret_and_url(
    production: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    production.setenv("OBJECT_STORE_BACKEND", "local")
    production.setenv("BACKUP_STORE_BACKEND", "local")
    missing = settings.missing_settings()
    assert [line.split()[0] for line in missing] == [
        "MEDIA_SIGNING_SECRET",
        "MEDIA_PUBLIC_BASE_URL",
        "MEDIA_PLATFORM_DATA_DIR",
    ]
    with pytest.raises(settings.MissingSettingsError, match="MEDIA_SIGNING_SECRET"):
        settings.build_resources()
    production.setenv("MEDIA_PLATFORM_DATA_DIR", str(tmp_path))
    production.setenv("MEDIA_SIGNING_SECRET", "s3cret")
    production.setenv("MEDIA_PUBLIC_BASE_URL", "https://media.example.com")
    resources = settings.build_resources()
    assert not (tmp_path / "signing.key").exists()  # no key generated outside the quick start
    assert resources["object_store"].local_root == str(tmp_path / "objects")


def test_the_quick_start_switch_selects_local_defaults(
    production: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    production.setenv("MEDIA_PLATFORM_DATA_DIR", str(tmp_path))
    assert "OBJECT_STORE_BACKEND" in " ".join(settings.missing_settings())
    production.setenv("MEDIA_QUICKSTART", "1")
    assert settings.missing_settings() == []
    resources = settings.build_resources()
    assert resources["object_store"].backend == "local" and resources["backup_store"].backend == "local"
    assert (tmp_path / "signing.key").exists()


def test_entry_points_outside_the_quick_start_start_no_embedded_server(
    production: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from orchestration.instance import prepare_embedded_instance

    production.delenv("DATABASE_URL")
    production.delenv("DAGSTER_POSTGRES_URL", raising=False)
    with pytest.raises(settings.MissingSettingsError, match="DATABASE_URL"):
        settings.resolved_database_url()
    with pytest.raises(settings.MissingSettingsError, match="DAGSTER_POSTGRES_URL"):
        prepare_embedded_instance(tmp_path / "data")
    assert not (tmp_path / "data").exists()


def test_a_configuration_file_with_a_wrong_value_fails_when_the_definitions_load(
    production: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    production.setenv("OBJECT_STORE_BACKEND", "s3")
    production.setenv("S3_BUCKET", "media")
    folder = Path(os.environ["MEDIA_CONFIG_DIR"])
    (folder / "migration.yaml").write_text("batch_mb: lots\n")
    (folder / "quotas.yaml").write_text("tiers: {free: 1 MB}\nalerts: {quota_warn_fractoin: 0.5}\n")
    with pytest.raises(settings.MissingSettingsError) as caught:
        settings.check_settings()
    problems = caught.value.problems
    assert problems[0].startswith("BACKUP_STORE_BACKEND")
    assert f"configuration file {folder / 'migration.yaml'}: batch_mb:" in problems[1]
    assert f"configuration file {folder / 'quotas.yaml'}: alerts.quota_warn_fractoin:" in problems[2]
    assert len(problems) == 3
    assert set(settings.CONFIG_LOADERS) <= {p.stem for p in PROJECT_CONFIG_DIR.glob("*.yaml")}


def test_outside_the_quick_start_the_calendar_must_state_its_start_date(
    production: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    production.setenv("OBJECT_STORE_BACKEND", "s3")
    production.setenv("BACKUP_STORE_BACKEND", "s3")
    production.setenv("S3_BUCKET", "media")
    calendar = Path(os.environ["MEDIA_CONFIG_DIR"]) / "calendar.yaml"
    assert settings.missing_settings() == []
    calendar.write_text("start_date:\n")  # the project's default: the day this data folder was first used
    assert settings.missing_settings() == [
        f"start_date in {calendar} (the first partition day; every host must agree)"
    ]
    production.setenv("MEDIA_QUICKSTART", "1")
    assert settings.missing_settings() == []


def test_the_missing_settings_error_survives_pickling_with_its_message() -> None:
    """Celery sends a step's exception back by pickling it (rebuilt from its args): the names of the
    missing variables must arrive readable, not as a list of single characters."""
    import pickle

    error = settings.MissingSettingsError(["DATABASE_URL", "S3_BUCKET"])
    copy = pickle.loads(pickle.dumps(error))
    assert copy.problems == ["DATABASE_URL", "S3_BUCKET"]
    assert "  - DATABASE_URL\n  - S3_BUCKET" in str(copy)
