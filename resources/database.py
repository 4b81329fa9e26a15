"""The Postgres the platform reads sources from and keeps its catalog in."""

from __future__ import annotations

import sqlalchemy as sa
from dagster import ConfigurableResource, InitResourceContext
from pydantic import Field, PrivateAttr

from core.catalog.db import ensure_catalog_current, get_engine, sqlalchemy_url


class PostgresResource(ConfigurableResource):
    """A `DATABASE_URL`-style URL; supply it with `EnvVar("DATABASE_URL")` so it never shows in the UI.

    On first use in a process the catalog schema is brought to the latest Alembic revision (one
    query when it is there already).
    """

    database_url: str = Field(description="postgresql://user:password@host:5432/dbname (a secret)")
    apply_migrations: bool = Field(default=True, description="Upgrade the catalog schema on start-up")

    _ready: bool = PrivateAttr(default=False)

    def setup_for_execution(self, context: InitResourceContext) -> None:
        self.ensure_catalog()

    def ensure_catalog(self) -> None:
        if self.apply_migrations and not self._ready:
            ensure_catalog_current(self.database_url)
            self._ready = True

    def engine(self) -> sa.Engine:
        return get_engine(self.database_url)

    @property
    def sqlalchemy_url(self) -> str:
        return sqlalchemy_url(self.database_url)
