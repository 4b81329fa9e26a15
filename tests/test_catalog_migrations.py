"""The catalog schema is owned by Alembic: it upgrades from empty, downgrades cleanly and re-upgrades."""

from __future__ import annotations

import sqlalchemy as sa

from core.catalog.db import (
    current_revision,
    downgrade_catalog,
    ensure_catalog_current,
    head_revision,
    sqlalchemy_url,
    upgrade_catalog,
)
from core.catalog.models import CATALOG_SCHEMA, Base


def _catalog_tables(url: str) -> set[str]:
    engine = sa.create_engine(sqlalchemy_url(url))
    try:
        return set(sa.inspect(engine).get_table_names(schema=CATALOG_SCHEMA)) - {"alembic_version"}
    finally:
        engine.dispose()


def test_upgrade_from_empty_creates_every_catalog_table(database_url: str) -> None:
    assert current_revision(database_url) is None
    upgrade_catalog(database_url)
    assert current_revision(database_url) is not None
    assert _catalog_tables(database_url) == {t.name for t in Base.metadata.sorted_tables}


def test_upgrade_is_idempotent_and_downgrade_removes_everything(database_url: str) -> None:
    upgrade_catalog(database_url)
    upgrade_catalog(database_url)
    downgrade_catalog(database_url, "base")
    assert _catalog_tables(database_url) == set()
    upgrade_catalog(database_url)
    assert _catalog_tables(database_url) == {t.name for t in Base.metadata.sorted_tables}


def test_ensure_current_upgrades_an_empty_or_older_catalog_and_leaves_a_current_one(
    database_url: str,
) -> None:
    assert ensure_catalog_current(database_url) is True  # empty: upgraded
    assert current_revision(database_url) == head_revision()
    assert ensure_catalog_current(database_url) is False  # current: one query, no upgrade
    downgrade_catalog(database_url, "-1")
    assert current_revision(database_url) != head_revision()
    assert ensure_catalog_current(database_url) is True  # one revision behind: upgraded again
    assert current_revision(database_url) == head_revision()
    assert _catalog_tables(database_url) == {t.name for t in Base.metadata.sorted_tables}


def test_models_match_the_migrated_schema(database_url: str) -> None:
    """Alembic's autogenerate finds nothing to change: models and migrations agree."""
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    upgrade_catalog(database_url)
    engine = sa.create_engine(sqlalchemy_url(database_url))
    try:
        with engine.connect() as conn:
            context = MigrationContext.configure(
                conn,
                opts={
                    "include_schemas": True,
                    "version_table_schema": CATALOG_SCHEMA,
                    "include_name": lambda name, type_, _p: type_ != "schema" or name == CATALOG_SCHEMA,
                },
            )
            diff = compare_metadata(context, Base.metadata)
    finally:
        engine.dispose()
    assert diff == []
