"""GDPR export and erasure jobs, the sweep asset with its per-policy metadata, and the daily schedule."""

from __future__ import annotations

import io
import json
import zipfile
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import parse_qs, urlparse

import pytest
import sqlalchemy as sa
from dagster import DagsterInvalidConfigError, materialize

from core.objectstore.local import LocalObjectStore
from resources.database import PostgresResource
from resources.object_store import ObjectStoreResource
from tests.support.retention import (
    C,
    add_object,
    add_ref,
    audit,
    catalog,
    days_ago,
    execute,
    hold,
    rows,
    scalar,
    status,
)

SECRET = "test-signing-secret"


@pytest.fixture
def resources(database_url: str, tmp_path: Path) -> dict[str, object]:
    return {
        "postgres": PostgresResource(database_url=database_url),
        "object_store": ObjectStoreResource(local_root=str(tmp_path / "objects"), signing_secret=SECRET),
    }


def _alice(engine: sa.Engine, store: LocalObjectStore) -> dict[str, tuple[int, str]]:
    execute(
        engine,
        "INSERT INTO users (id, email, last_login_at) VALUES ('alice', 'a@x', now()), ('bob', 'b@x', now())",
    )
    execute(
        engine,
        "INSERT INTO stories (id, user_id, data) VALUES (1, 'alice', '{\"title\": \"dragons\"}'), "
        "(2, 'bob', '{}')",
    )
    execute(engine, "INSERT INTO files (id, user_id, data, filename) VALUES (3, 'alice', 'k', 'cv.pdf')")
    objs = {
        "own": add_object(engine, store, "alice's own picture"),
        "shared": add_object(engine, store, "picture alice and bob both use"),
        "file": add_object(engine, store, "alice's cv"),
        "bobs": add_object(engine, store, "bob's picture"),
    }
    add_ref(engine, objs["own"][0], "alice", "stories", 1, json_path="images[0].data")
    add_ref(engine, objs["shared"][0], "alice", "stories", 1, json_path="images[1].data")
    add_ref(engine, objs["shared"][0], "bob", "stories", 2, json_path="images[0].data")
    add_ref(engine, objs["file"][0], "alice", "files", 3)
    add_ref(engine, objs["bobs"][0], "bob", "stories", 2, json_path="images[1].data")
    return objs


def test_gdpr_export_job_writes_a_zip_of_rows_and_objects_with_a_signed_url(
    engine: sa.Engine, store: LocalObjectStore, resources: dict[str, object]
) -> None:
    from orchestration.gdpr import gdpr_export_job

    objs = _alice(engine, store)
    result = gdpr_export_job.execute_in_process(
        run_config={"ops": {"gdpr_export_owner": {"config": {"owner_id": "alice"}}}}, resources=resources
    )

    assert result.success
    key = result.output_for_node("gdpr_export_owner")
    archive = zipfile.ZipFile(io.BytesIO(store.get_bytes(key)))
    names = set(archive.namelist())
    assert {"manifest.json", "owner.jsonl", "rows/stories.jsonl", "rows/files.jsonl"} <= names
    assert json.loads(archive.read("owner.jsonl"))["email"] == "a@x"
    assert [json.loads(line)["id"] for line in archive.read("rows/stories.jsonl").splitlines()] == [1]
    contents = {archive.read(n) for n in names if n.startswith("objects/")}
    assert contents == {b"alice's own picture", b"picture alice and bob both use", b"alice's cv"}
    assert objs["bobs"][1].rsplit("/", 1)[-1] not in " ".join(names)
    # The archive is catalogued as an expiring document of alice's, and reachable by a signed URL.
    assert (
        scalar(
            engine,
            f"SELECT count(*) FROM {C}.object_references WHERE owner_id = 'alice' AND expires_at > now()",
        )
        == 1
    )
    outputs = [e for e in result.all_events if e.event_type_value == "STEP_OUTPUT"]
    url = outputs[0].event_specific_data.metadata["signed_url"].value
    query = parse_qs(urlparse(url).query)
    assert key in url and query  # signed: carries an expiry and a signature


def test_gdpr_jobs_refuse_to_run_without_an_owner(resources: dict[str, object], engine: sa.Engine) -> None:
    from orchestration.gdpr import gdpr_delete_job, gdpr_export_job

    for job in (gdpr_export_job, gdpr_delete_job):
        with pytest.raises(DagsterInvalidConfigError):
            job.execute_in_process(resources=resources)


def test_gdpr_delete_job_erases_the_owner_and_keeps_what_others_still_use(
    engine: sa.Engine, store: LocalObjectStore, resources: dict[str, object]
) -> None:
    from orchestration.gdpr import gdpr_delete_job

    objs = _alice(engine, store)
    config = {"ops": {"gdpr_delete_owner": {"config": {"owner_id": "alice"}}}}

    result = gdpr_delete_job.execute_in_process(run_config=config, resources=resources)

    assert result.success and result.output_for_node("gdpr_delete_owner") == 2
    assert [r.id for r in rows(engine, "SELECT id FROM users")] == ["bob"]
    assert scalar(engine, "SELECT count(*) FROM stories WHERE user_id = 'alice'") == 0
    assert scalar(engine, "SELECT count(*) FROM files") == 0
    assert scalar(engine, f"SELECT count(*) FROM {C}.object_references WHERE owner_id = 'alice'") == 0
    assert status(engine, objs["own"][0]) == "deleted" and not store.exists(objs["own"][1])
    assert status(engine, objs["file"][0]) == "deleted" and not store.exists(objs["file"][1])
    for kept in ("shared", "bobs"):
        assert status(engine, objs[kept][0]) == "verified" and store.exists(objs[kept][1])
    entries = audit(engine, result.run_id)
    assert {(a.action, a.target_type) for a in entries} >= {
        ("deleted", "owner"),
        ("deleted", "row"),
        ("deleted", "object"),
    }
    assert all(a.policy == "gdpr_delete" for a in entries)

    again = gdpr_delete_job.execute_in_process(run_config=config, resources=resources)
    assert again.success and again.output_for_node("gdpr_delete_owner") == 0


def test_gdpr_delete_of_a_held_owner_fails_and_deletes_nothing(
    engine: sa.Engine, store: LocalObjectStore, resources: dict[str, object]
) -> None:
    from orchestration.gdpr import gdpr_delete_job

    objs = _alice(engine, store)
    hold(engine, owner="alice")
    result = gdpr_delete_job.execute_in_process(
        run_config={"ops": {"gdpr_delete_owner": {"config": {"owner_id": "alice"}}}},
        resources=resources,
        raise_on_error=False,
    )
    assert not result.success
    assert scalar(engine, "SELECT count(*) FROM users") == 2 and store.exists(objs["own"][1])


def test_sweep_asset_reports_each_policy_and_dry_run_deletes_nothing(
    engine: sa.Engine, store: LocalObjectStore, resources: dict[str, object]
) -> None:
    from assets.retention import no_referenced_object_deleted, retention_sweep

    orphan, key = add_object(engine, store, "orphan for the asset")
    add_ref(engine, orphan, "alice", "stories", 9, released=days_ago(8))
    today = datetime.now(UTC).date().isoformat()

    dry = materialize(
        [retention_sweep, no_referenced_object_deleted],
        partition_key=today,
        resources=resources,
        run_config={"ops": {"retention__sweep": {"config": {"dry_run": True}}}},
    )
    assert dry.success and store.exists(key) and status(engine, orphan) == "verified"
    md = dry.asset_materializations_for_node("retention__sweep")[0].metadata
    assert md["orphaned_objects/candidates"].value == 1 and md["orphaned_objects/deleted"].value == 1
    assert md["dry_run"].value is True and "would delete" in md["policies"].value

    real = materialize([retention_sweep], partition_key=today, resources=resources)
    md = real.asset_materializations_for_node("retention__sweep")[0].metadata
    assert md["orphaned_objects/deleted"].value == 1 and md["bytes_reclaimed"].value == len(
        b"orphan for the asset"
    )
    assert not store.exists(key)


def test_daily_schedule_and_jobs_are_in_the_definitions(
    database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DATABASE_URL", database_url)
    monkeypatch.setenv("MEDIA_PLATFORM_DATA_DIR", str(tmp_path / "data"))
    from orchestration.definitions import build_definitions

    defs = build_definitions()
    schedule = defs.get_schedule_def("retention_daily_schedule")
    assert schedule.cron_schedule == "30 2 * * *"
    assert schedule.job_name == "retention_sweep_job"
    for name in ("retention_sweep_job", "gdpr_export_job", "gdpr_delete_job"):
        assert defs.resolve_job_def(name).name == name


def test_demo_step_runs_todays_sweep_as_a_dry_run_and_summarises_it(
    database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from dagster import DagsterInstance

    monkeypatch.setenv("DATABASE_URL", database_url)
    monkeypatch.setenv("MEDIA_PLATFORM_DATA_DIR", str(tmp_path / "data"))
    from orchestration import main
    from orchestration.definitions import build_definitions

    engine = catalog(database_url)
    store = LocalObjectStore(tmp_path / "data" / "objects", signing_secret="unused-for-deletes")
    orphan, key = add_object(engine, store, "the demo's orphan")
    monkeypatch.setattr(main, "STEPS", [s for s in main.STEPS if s.job_name == "retention_sweep_job"])

    # The demo launches runs of the code location (a run worker process), so the instance must persist.
    (tmp_path / "dagster_home").mkdir()
    with DagsterInstance.local_temp(str(tmp_path / "dagster_home")) as instance:
        assert main.run_steps(build_definitions(), instance)

    assert status(engine, orphan) == "verified" and store.exists(key)
    summary = "\n".join(main.retention_summary(database_url))
    assert "orphaned_objects" in summary and key in summary and "nothing deleted" in summary
