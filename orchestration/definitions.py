"""The Definitions `workspace.yaml` loads: every asset, check, job, sensor and schedule, wired to the
resources built from the environment (resources/settings.py)."""

from __future__ import annotations

from dagster import Definitions

from assets.backups import backup_assets, backup_checks
from assets.sources import source_specs
from assets.usage import usage_assets
from orchestration.backups import backup_jobs
from orchestration.usage import usage_jobs
from resources.settings import build_resources
from schedules.backups import backup_schedules
from schedules.usage import usage_schedules


def build_definitions() -> Definitions:
    return Definitions(
        assets=[*source_specs, *backup_assets, *usage_assets],
        asset_checks=[*backup_checks],
        jobs=[*backup_jobs, *usage_jobs],
        schedules=[*backup_schedules, *usage_schedules],
        resources=build_resources(),
    )


defs = build_definitions()
