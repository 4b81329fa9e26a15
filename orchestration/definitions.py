"""The Definitions `workspace.yaml` loads: every asset, check, job, sensor and schedule, wired to the
resources built from the environment (resources/settings.py)."""

from __future__ import annotations

from dagster import Definitions

from assets.migration import migration_assets, migration_jobs
from assets.sources import source_specs
from resources.settings import build_resources


def build_definitions() -> Definitions:
    return Definitions(
        assets=[*source_specs, *migration_assets],
        jobs=[*migration_jobs],
        resources=build_resources(),
    )


defs = build_definitions()
