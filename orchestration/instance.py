"""The Dagster instance for the embedded default: the project's dagster.yaml, pointed at a `dagster`
database on the embedded Postgres, so the quick start and `dagster dev` share runs and sensor state."""

from __future__ import annotations

import os
import shlex
import shutil
from pathlib import Path

from core.catalog.db import PROJECT_ROOT
from core.embedded_postgres import start_embedded_postgres

INSTANCE_DATABASE = "dagster"


def prepare_embedded_instance(data_dir: Path | None = None) -> Path:
    """Set DAGSTER_HOME and DAGSTER_POSTGRES_URL for the embedded default; return DAGSTER_HOME.

    Respects a DAGSTER_HOME the user already exported (production or their own setup). Starts the
    embedded server only in the quick start (MEDIA_QUICKSTART=1) and only when DAGSTER_POSTGRES_URL is
    unset; anywhere else that is an error naming the variables.
    """
    from resources import settings

    if os.environ.get("DAGSTER_HOME"):
        return Path(os.environ["DAGSTER_HOME"])
    if not os.environ.get("DAGSTER_POSTGRES_URL") and not settings.is_quickstart():
        raise settings.MissingSettingsError(
            ["DAGSTER_HOME (folder holding dagster.yaml) or DAGSTER_POSTGRES_URL (the instance database)"]
        )
    folder = data_dir if data_dir is not None else settings.data_dir()
    home = folder / "dagster_home"
    home.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(PROJECT_ROOT / "dagster.yaml", home / "dagster.yaml")
    if not os.environ.get("DAGSTER_POSTGRES_URL"):
        server = start_embedded_postgres(folder / "postgres")
        server.ensure_database(INSTANCE_DATABASE)
        os.environ["DAGSTER_POSTGRES_URL"] = server.url(INSTANCE_DATABASE, driver="postgresql")
    os.environ["DAGSTER_HOME"] = str(home)
    return home


if __name__ == "__main__":  # used by ./dev ui to print the variables for `dagster dev`
    from resources.settings import resolved_database_url

    # The code server and run workers `dagster dev` starts import the definitions, which never start a
    # server: they get the embedded database's URL from DATABASE_URL, exported here.
    database_url = resolved_database_url()
    path = prepare_embedded_instance()
    print(f"export DAGSTER_HOME={shlex.quote(str(path))}")
    print(f"export DAGSTER_POSTGRES_URL={shlex.quote(os.environ['DAGSTER_POSTGRES_URL'])}")
    print(f"export DATABASE_URL={shlex.quote(database_url)}")
