"""The Dagster instance for the embedded default: the project's dagster.yaml, pointed at a `dagster`
database on the embedded Postgres, so the quick start and `dagster dev` share runs and sensor state."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from core.catalog.db import PROJECT_ROOT
from core.embedded_postgres import start_embedded_postgres

INSTANCE_DATABASE = "dagster"


def prepare_embedded_instance(data_dir: Path) -> Path:
    """Set DAGSTER_HOME and DAGSTER_POSTGRES_URL for the embedded default; return DAGSTER_HOME.

    Respects a DAGSTER_HOME the user already exported (production or their own setup).
    """
    if os.environ.get("DAGSTER_HOME"):
        return Path(os.environ["DAGSTER_HOME"])
    home = data_dir / "dagster_home"
    home.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(PROJECT_ROOT / "dagster.yaml", home / "dagster.yaml")
    if not os.environ.get("DAGSTER_POSTGRES_URL"):
        server = start_embedded_postgres(data_dir / "postgres")
        server.ensure_database(INSTANCE_DATABASE)
        os.environ["DAGSTER_POSTGRES_URL"] = server.url(INSTANCE_DATABASE, driver="postgresql")
    os.environ["DAGSTER_HOME"] = str(home)
    return home


if __name__ == "__main__":  # used by ./dev ui to print the variables for `dagster dev`
    from resources.settings import data_dir

    path = prepare_embedded_instance(data_dir())
    print(f"export DAGSTER_HOME={path}")
    print(f"export DAGSTER_POSTGRES_URL='{os.environ['DAGSTER_POSTGRES_URL']}'")
