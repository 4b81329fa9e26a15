"""Fixtures every retention test module uses: a catalog with the demo-like source tables, a local store."""

from __future__ import annotations

from pathlib import Path

import pytest
import sqlalchemy as sa

from core.objectstore.local import LocalObjectStore
from tests.support.retention import catalog, local_store


@pytest.fixture
def engine(database_url: str) -> sa.Engine:
    return catalog(database_url)


@pytest.fixture
def store(tmp_path: Path) -> LocalObjectStore:
    return local_store(tmp_path)
