"""The backup assets, checks, jobs, schedules and restore commands, run through the real Definitions on
the real Postgres, with the backup location on the local backend or on S3."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest
import sqlalchemy as sa
from dagster import AssetCheckSeverity, DagsterInstance

from core.catalog.db import PROJECT_ROOT, get_engine
from tests.support.backups import add_object, add_variant, prepare_database, random_bytes
from tests.support.services import S3_ACCESS_KEY, S3_SECRET_KEY, new_bucket


@pytest.fixture(params=["local", "s3"])
def platform(
    request: pytest.FixtureRequest, database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    env = {"DATABASE_URL": database_url, "MEDIA_PLATFORM_DATA_DIR": str(tmp_path / "data")}
    if request.param == "s3":
        endpoint = request.getfixturevalue("s3_endpoint")
        env |= {
            "BACKUP_STORE_BACKEND": "s3",
            "BACKUP_S3_BUCKET": new_bucket(endpoint),
            "BACKUP_S3_ENDPOINT_URL": endpoint,
            "BACKUP_AWS_ACCESS_KEY_ID": S3_ACCESS_KEY,
            "BACKUP_AWS_SECRET_ACCESS_KEY": S3_SECRET_KEY,
        }
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    prepare_database(database_url)
    from orchestration.definitions import build_definitions
    from resources.settings import object_store_resource

    with object_store_resource().process_config_and_initialize_cm() as resource:
        media = resource.store()
    now = datetime.now(UTC)
    object_id, _, key = add_object(database_url, media, "alice", random_bytes(5000), now)
    add_variant(database_url, media, object_id, random_bytes(700), now)
    return {"defs": build_definitions(), "env": env, "media": media, "key": key, "url": database_url}


def run(defs, job_name: str, partition_key: str | None = None, run_config: dict | None = None):
    with DagsterInstance.ephemeral() as instance:
        return defs.resolve_job_def(job_name).execute_in_process(
            instance=instance, partition_key=partition_key, run_config=run_config or {}, raise_on_error=False
        )


def check_result(result, name: str):
    evaluations = [e for e in result.get_asset_check_evaluations() if e.check_name == name]
    assert len(evaluations) == 1
    return evaluations[0]


@pytest.mark.parametrize("platform", ["local"], indirect=True)  # the S3 backup store: the restore test
def test_daily_backups_retention_verification_and_drill_run_as_jobs(platform) -> None:
    defs, url = platform["defs"], platform["url"]
    today = datetime.now(UTC).date().isoformat()
    db = run(defs, "database_backup_job", today)
    assert db.success
    metadata = db.asset_materializations_for_node("backups__database")[0].metadata
    assert metadata["tables"].value >= 15 and metadata["dump_mb"].value > 0
    objects = run(defs, "object_backup_job", today)
    assert objects.success
    metadata = objects.asset_materializations_for_node("backups__objects")[0].metadata
    assert (metadata["objects_listed"].value, metadata["objects_copied"].value) == (2, 2)

    retention = run(
        defs, "backup_retention_job", run_config={"ops": {"backups__kept_set": {"config": {"dry_run": True}}}}
    )
    assert retention.success
    assert (
        retention.asset_materializations_for_node("backups__kept_set")[0].metadata["backups_expired"].value
        == 0
    )

    verification = run(defs, "backup_verification_job")
    evaluation = check_result(verification, "backup_bytes_verified")
    assert evaluation.passed and evaluation.metadata["files_checked"].value == 4  # dump, manifest, 2 copies

    drill = run(defs, "restore_drill_job")
    evaluation = check_result(drill, "restore_drill")
    assert evaluation.passed, evaluation.metadata["problem_list"]
    assert evaluation.metadata["objects_restored"].value == 2

    with get_engine(url).connect() as conn:
        dump_key = conn.execute(
            sa.text("SELECT storage_key FROM media_catalog.backups WHERE kind = 'database'")
        ).scalar_one()
    from resources.settings import backup_store_resource

    with backup_store_resource().process_config_and_initialize_cm() as resource:
        store = resource.store()
    store.put_bytes(dump_key, b"not a dump", sha256=__import__("hashlib").sha256(b"not a dump").hexdigest(),
                    content_type="application/octet-stream")  # fmt: skip
    failed = check_result(run(defs, "backup_verification_job"), "backup_bytes_verified")
    assert not failed.passed and failed.severity == AssetCheckSeverity.ERROR
    assert dump_key in failed.metadata["problem_list"].value
    failed_drill = check_result(run(defs, "restore_drill_job"), "restore_drill")
    assert not failed_drill.passed


@pytest.mark.parametrize("platform", ["s3"], indirect=True)  # local restores: test_backups_objects.py
def test_restore_jobs_and_restore_commands_work_end_to_end(platform, postgres_server, capsys) -> None:
    from orchestration.restore import main as restore_cli

    defs, url, env, media = platform["defs"], platform["url"], platform["env"], platform["media"]
    today = datetime.now(UTC).date().isoformat()
    assert run(defs, "database_backup_job", today).success
    assert run(defs, "object_backup_job", today).success
    name = f"restored_{os.getpid()}_{env.get('BACKUP_STORE_BACKEND', 'local')}"
    cli_name = f"{name}_cli"
    try:
        job = run(
            defs,
            "restore_database_job",
            run_config={"ops": {"restore_database_op": {"config": {"day": today, "into": name}}}},
        )
        assert job.success
        restored = sa.engine.make_url(url).set(database=name).render_as_string(hide_password=False)
        engine = sa.create_engine(restored, poolclass=sa.pool.NullPool)
        with engine.connect() as conn:
            assert conn.execute(sa.text("SELECT count(*) FROM public.notes")).scalar() == 200
        engine.dispose()

        config = {"owner": "alice", "target_prefix": "job/"}
        objects = run(
            defs, "restore_objects_job", run_config={"ops": {"restore_objects_op": {"config": config}}}
        )
        assert objects.success
        assert media.exists(f"job/{platform['key']}")

        # The documented command, as a person would type it (one real process), then the same entry
        # point in-process for the other forms (each new process costs seconds of imports).
        out = subprocess.run(
            [sys.executable, "-m", "orchestration.restore", "database", "--day", today, "--into", cli_name],
            cwd=PROJECT_ROOT, env={**os.environ, **env}, capture_output=True, text=True, timeout=120,
        )  # fmt: skip
        assert out.returncode == 0, out.stdout + out.stderr
        assert "every table matches" in out.stdout
        assert restore_cli(["objects", "--day", today, "--target-prefix", "cli/"]) == 0
        assert "restored 2 of 2 objects" in capsys.readouterr().out
        assert media.verify(f"cli/{platform['key']}")
        assert restore_cli(["objects", "--key", platform["key"], "--target-prefix", "cli-key/"]) == 0
        assert media.verify(f"cli-key/{platform['key']}")
        assert restore_cli(["objects", "--owner", "nobody"]) == 1
        assert "nothing matched" in capsys.readouterr().out
    finally:
        postgres_server.drop_database(
            sa.engine.make_url(url).set(database=name).render_as_string(hide_password=False)
        )
        postgres_server.drop_database(
            sa.engine.make_url(url).set(database=cli_name).render_as_string(hide_password=False)
        )
