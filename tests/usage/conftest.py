"""The fixture the usage test modules share: a migrated catalog plus small legacy source tables."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import sqlalchemy as sa

from core.catalog.db import get_engine, upgrade_catalog
from tests.support.usage import create_source_tables


@pytest.fixture
def engine(database_url: str) -> Iterator[sa.Engine]:
    upgrade_catalog(database_url)
    engine = get_engine(database_url)
    with engine.begin() as conn:
        create_source_tables(conn)
    yield engine
    engine.dispose()
