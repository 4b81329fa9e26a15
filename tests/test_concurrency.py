"""Concurrency Dagster enforces (dagster.yaml pools): while a launch of a source's migration holds the
`media_references` slot, a second launch of the same source waits for it, then runs."""

from __future__ import annotations

import shutil
import threading
import time
from pathlib import Path

import pytest
from dagster import AssetKey, DagsterInstance, DagsterRunStatus, RunsFilter, materialize
from sqlalchemy.engine import make_url

from assets.migration import migrated_assets
from assets.partitions import REFERENCES_POOL
from core.catalog.db import PROJECT_ROOT
from resources.database import PostgresResource
from resources.object_store import ObjectStoreResource
from tests.support.migration import create_legacy_tables
from tests.support.services import PostgresServer

STORIES = AssetKey(["migration", "stories"])


def test_a_second_launch_of_the_same_source_waits_for_the_pool(
    postgres_server: PostgresServer, database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    instance_url = postgres_server.create_database()
    try:
        shutil.copyfile(PROJECT_ROOT / "dagster.yaml", tmp_path / "dagster.yaml")  # the shipped pools
        monkeypatch.setenv("DAGSTER_HOME", str(tmp_path))
        monkeypatch.setenv(
            "DAGSTER_POSTGRES_URL",
            make_url(instance_url).set(drivername="postgresql").render_as_string(hide_password=False),
        )
        create_legacy_tables(database_url, stories=1)
        resources = {
            "postgres": PostgresResource(database_url=database_url),
            "object_store": ObjectStoreResource(
                backend="local", local_root=str(tmp_path / "objects"), signing_secret="s"
            ),
        }
        stories = next(a for a in migrated_assets if a.key == STORIES)
        with DagsterInstance.get() as instance:
            # The first launch's step is running: it holds the pool's only slot, as Dagster claims it.
            instance.event_log_storage.initialize_concurrency_limit_to_default(REFERENCES_POOL)
            assert instance.event_log_storage.get_concurrency_info(REFERENCES_POOL).slot_count == 1
            claim = instance.event_log_storage.claim_concurrency_slot(
                REFERENCES_POOL, "first-launch", "migration__stories"
            )
            assert claim.is_claimed

            outcome: dict[str, object] = {}
            second = threading.Thread(
                target=lambda: outcome.update(
                    result=materialize([stories], resources=resources, instance=instance)
                )
            )
            second.start()
            time.sleep(6)
            started = instance.get_runs(filters=RunsFilter(statuses=[DagsterRunStatus.STARTED]))
            assert len(started) == 1 and second.is_alive()  # launched, and waiting for the slot
            assert instance.get_latest_materialization_event(STORIES) is None

            instance.event_log_storage.free_concurrency_slots_for_run("first-launch")  # first one ends
            second.join(timeout=180)
            assert not second.is_alive()
            assert outcome["result"].success  # type: ignore[attr-defined]
            assert instance.get_latest_materialization_event(STORIES) is not None
    finally:
        postgres_server.drop_database(instance_url)
