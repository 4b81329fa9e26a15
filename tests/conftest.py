"""Shared fixtures: one real PostgreSQL server and one S3-compatible server per test session."""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest


def _test_config_dir() -> str:
    """The project's config/ with tests/config/ copied over it (the calendar's start date precedes every
    day the tests use): a MEDIA_CONFIG_DIR must hold every file, nothing falls back to config/."""
    folder = Path(tempfile.mkdtemp(prefix="media-test-config-"))
    atexit.register(shutil.rmtree, folder, ignore_errors=True)
    shutil.copytree(Path(__file__).resolve().parents[1] / "config", folder, dirs_exist_ok=True)
    shutil.copytree(Path(__file__).parent / "config", folder, dirs_exist_ok=True)
    return str(folder)


# Before any platform module is imported: partitions are built at import time from the calendar.
os.environ["MEDIA_CONFIG_DIR"] = os.environ.get("MEDIA_CONFIG_DIR") or _test_config_dir()

from core.embedded_postgres import start_embedded_postgres  # noqa: E402
from tests.support.services import PostgresServer, new_bucket, s3_server  # noqa: E402

# The tests run on the quick start's local defaults (as `./dev test` sets), also under a bare `pytest`;
# the tests of the fail-fast behaviour unset it in their subprocesses.
os.environ.setdefault("MEDIA_QUICKSTART", "1")


@pytest.fixture(scope="session")
def postgres_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PostgresServer]:
    """TEST_DATABASE_URL names an existing server; otherwise the embedded binaries start one."""
    admin_url = os.environ.get("TEST_DATABASE_URL")
    if not admin_url:
        # Unix socket paths are limited to ~100 bytes, so keep the data folder short. pgserver stops the
        # server and deletes the folder when this process exits.
        admin_url = start_embedded_postgres(Path("/tmp") / f"mp-pg-{os.getpid()}", delete_on_exit=True).url()
    server = PostgresServer(admin_url)
    yield server
    server.dispose()


@pytest.fixture
def database_url(postgres_server: PostgresServer) -> Iterator[str]:
    """A fresh, empty database on the real server for one test."""
    url = postgres_server.create_database()
    yield url
    postgres_server.drop_database(url)


@pytest.fixture(scope="session")
def s3_endpoint() -> Iterator[str]:
    with s3_server() as endpoint:
        yield endpoint


@pytest.fixture
def s3_bucket(s3_endpoint: str) -> str:
    return new_bucket(s3_endpoint)


@pytest.fixture
def platform_defs(database_url: str, monkeypatch: pytest.MonkeyPatch):
    """The platform's Definitions loaded as a code server loads them: DATABASE_URL set first (loading
    them never starts a server)."""
    monkeypatch.setenv("DATABASE_URL", database_url)
    from orchestration.definitions import build_definitions

    return build_definitions()
