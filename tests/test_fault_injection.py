"""The platform against a store failing 30 % of its requests (503 SlowDown, 500, resets mid-request and
mid-response, stalls past the read timeout), through a fault-injecting proxy in front of moto's server:
the migration (also killed with SIGKILL at random points), the object backup, verification and both
restores. Data stays right, every run succeeds (at worst on rerun), and nothing ends in a traceback."""

from __future__ import annotations

import hashlib
import json
import os
import random
import signal
import subprocess
import sys
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path

import sqlalchemy as sa

from core.backups.database import run_database_backup
from core.backups.objects import copy_key, run_object_backup
from core.backups.restore import entries_for_day, restore_database, restore_objects
from core.backups.verify import verify_backups
from core.catalog.db import PROJECT_ROOT, get_engine
from core.migration.checks import verify_references
from core.sources import load_sources_config
from tests.support.backups import add_object, prepare_database, random_bytes, s3_store
from tests.support.faults import fault_proxy, flaky_s3_store
from tests.support.migration import all_values, assert_fully_migrated, create_legacy_tables, reference_key
from tests.support.services import S3_ACCESS_KEY, S3_SECRET_KEY, new_bucket
from tests.test_migration_kill import original_checksums

RATE = float(os.environ.get("FAULT_RATE", "0.3"))  # share of requests the proxy fails
SEED = int(os.environ.get("FAULT_SEED", "0"))  # shifts every proxy's seed, to try other fault sequences
STALL = 1.5  # seconds; the test stores time out reads after 1 s, so a stall is a fault, and short
DAY = date(2026, 11, 21)


def run_worker(url: str, endpoint: str, bucket: str, *kill: str) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "PYTHONPATH": str(PROJECT_ROOT),
        "MIGRATION_S3_ENDPOINT": endpoint,
        "MIGRATION_S3_BUCKET": bucket,
        "AWS_ACCESS_KEY_ID": S3_ACCESS_KEY,
        "AWS_SECRET_ACCESS_KEY": S3_SECRET_KEY,
    }
    return subprocess.run(
        [sys.executable, "-m", "tests.support.migration_worker", url, "/nonexistent", *kill],
        cwd=PROJECT_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
    )


def test_migration_killed_at_random_points_through_a_30_percent_faulty_store_ends_exact(
    database_url: str, s3_endpoint: str
) -> None:
    fixture = create_legacy_tables(database_url, stories=4)
    originals = original_checksums(database_url)
    before = all_values(database_url)
    bucket = new_bucket(s3_endpoint)
    rng = random.Random(1717 + SEED)
    events = ["object_stored", "row_updated", "row_committed", "batch_done"]
    store_counts = []
    kills = 0
    with fault_proxy(s3_endpoint, rate=RATE, seed=11 + SEED, stall_seconds=STALL) as proxy:
        for _ in range(4):
            event, count = rng.choice(events), str(rng.randint(1, 6))
            killed = run_worker(database_url, proxy.endpoint, bucket, event, count)
            assert killed.returncode in (-signal.SIGKILL, 0), killed.stderr[-3000:]
            assert "Traceback" not in killed.stderr
            kills += killed.returncode == -signal.SIGKILL
        final = run_worker(database_url, proxy.endpoint, bucket)
        assert final.returncode == 0 and "Traceback" not in final.stderr, final.stderr[-3000:]
        store_counts.append(json.loads(final.stdout.strip().splitlines()[-1])["store"])

        # The migration's check re-reads every object through the same faulty store: it must pass.
        faulty = flaky_s3_store(proxy.endpoint, bucket)
        for source in load_sources_config().sources:
            report = verify_references(get_engine(database_url), faulty, source, sample=100)
            assert report.ok, (report.missing, report.mismatched, report.reread_failed, report.unreachable)
    assert kills >= 2 and proxy.injected > 10 and faulty.stats.retried > 0
    print(
        f"\nmigration: proxy {dict(proxy.counts)}; last run {store_counts[-1]}; check {faulty.stats.counts()}"
    )

    clean = s3_store(s3_endpoint, bucket, "")
    after = all_values(database_url)
    bad = {(t, pk, path) for t, pk, path, _ in fixture.bad}
    for place, value in before.items():
        if place in bad:
            assert after[place] == value
            continue
        assert hashlib.sha256(clean.get_bytes(reference_key(after[place]))).hexdigest() == originals[place]
    assert_fully_migrated(database_url, clean, fixture)  # one object per distinct content, no duplicates


@dataclass
class CliRun:
    returncode: int
    stdout: str
    stderr: str


def _cli(
    args: list[str],
    database_url: str,
    endpoint: str,
    media: str,
    backup: str,
    tmp_path: Path,
    pytest_fixtures,
):
    """`python -m orchestration.restore ...` in this process (an exception would fail the test with its
    traceback), with the platform's environment pointing both stores at `endpoint`."""
    monkeypatch, capsys = pytest_fixtures
    env = {
        "DATABASE_URL": database_url,
        "MEDIA_PLATFORM_DATA_DIR": str(tmp_path / "data"),
        "MEDIA_SIGNING_SECRET": "test-secret",
        "OBJECT_STORE_BACKEND": "s3",
        "S3_ENDPOINT_URL": endpoint,
        "S3_BUCKET": media,
        "BACKUP_STORE_BACKEND": "s3",
        "BACKUP_S3_BUCKET": backup,
        "BACKUP_S3_PREFIX": "backups",
        "AWS_ACCESS_KEY_ID": S3_ACCESS_KEY,
        "AWS_SECRET_ACCESS_KEY": S3_SECRET_KEY,
    }
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    from orchestration.restore import main

    capsys.readouterr()
    code = main(args)
    captured = capsys.readouterr()
    return CliRun(code, captured.out, captured.err)


def test_backups_verification_and_restores_through_a_30_percent_faulty_store(
    database_url: str, s3_endpoint: str, tmp_path: Path, monkeypatch, capsys
) -> None:
    prepare_database(database_url, rows=100)
    media_bucket, backup_bucket = new_bucket(s3_endpoint), new_bucket(s3_endpoint)
    clean_media = s3_store(s3_endpoint, media_bucket, "")
    clean_backup = s3_store(s3_endpoint, backup_bucket, "backups")
    objects = {}
    for n in range(30):
        data = random_bytes(20_000 + 997 * n)
        _, sha, key = add_object(
            database_url, clean_media, f"owner-{n % 3}", data, datetime(2026, 11, 21, 8, n, tzinfo=UTC)
        )
        objects[key] = sha

    with fault_proxy(s3_endpoint, rate=RATE, seed=23 + SEED, stall_seconds=STALL) as proxy:
        media = flaky_s3_store(proxy.endpoint, media_bucket)
        backup = flaky_s3_store(proxy.endpoint, backup_bucket, "backups")

        object_backup = run_object_backup(database_url, media, backup, DAY, workers=4)
        assert object_backup.status == "verified", object_backup.problems
        assert object_backup.copied == len(objects) and object_backup.copies_read == len(objects)
        dump = run_database_backup(database_url, backup, DAY)
        verification = verify_backups(database_url, backup, DAY)
        assert verification.problems == [] and verification.unreachable == []
        assert verification.object_copies == len(objects)

        restored_db = restore_database(database_url, backup, DAY, "restored_faulty")
        assert restored_db.matches_manifest and restored_db.dump_key == dump.storage_key

        restored = restore_objects(backup, media, entries_for_day(backup, DAY), "restored/")
        assert restored.problems == [] and restored.restored == len(objects)

        # The command line, through the same proxy: exits 0, no traceback, and a rerun fetches nothing.
        cli = _cli(
            ["objects", "--day", DAY.isoformat(), "--target-prefix", "restored/"],
            database_url, proxy.endpoint, media_bucket, backup_bucket, tmp_path, (monkeypatch, capsys),
        )  # fmt: skip
        assert cli.returncode == 0 and "Traceback" not in cli.stderr, cli.stdout + cli.stderr
        assert f"{len(objects)} already in place" in cli.stdout
    for key, sha in objects.items():
        assert hashlib.sha256(clean_media.get_bytes(f"restored/{key}")).hexdigest() == sha
        assert clean_backup.verify(copy_key(sha), sha)
    stats = {"media": media.stats.counts(), "backup": backup.stats.counts()}
    print(f"\nbackups: proxy {dict(proxy.counts)}; stores {stats}")
    assert proxy.injected > 20 and backup.stats.retried > 0 and backup.stats.gave_up == 0


def test_an_object_restore_that_cannot_fetch_some_objects_finishes_lists_them_and_a_rerun_fetches_the_rest(
    database_url: str, s3_endpoint: str, tmp_path: Path, monkeypatch, capsys
) -> None:
    prepare_database(database_url, rows=1)
    media_bucket, backup_bucket = new_bucket(s3_endpoint), new_bucket(s3_endpoint)
    clean_media = s3_store(s3_endpoint, media_bucket, "")
    clean_backup = s3_store(s3_endpoint, backup_bucket, "backups")
    shas = [
        add_object(
            database_url,
            clean_media,
            "dana",
            random_bytes(5000 + n),
            datetime(2026, 11, 21, 9, n, tzinfo=UTC),
        )[1]
        for n in range(6)
    ]
    assert run_object_backup(database_url, clean_media, clean_backup, DAY).status == "verified"
    lost = shas[:2]
    saved = {sha: clean_backup.get_bytes(copy_key(sha)) for sha in lost}
    clean_backup.delete_keys([copy_key(sha) for sha in lost])

    with fault_proxy(s3_endpoint, rate=0.0) as proxy:
        args = [
            "objects",
            "--day",
            DAY.isoformat(),
            "--target-prefix",
            "back/",
            "--report",
            str(tmp_path / "missing.json"),
        ]
        first = _cli(
            args, database_url, proxy.endpoint, media_bucket, backup_bucket, tmp_path, (monkeypatch, capsys)
        )
        assert first.returncode == 2 and "Traceback" not in first.stderr, first.stdout + first.stderr
        assert "restored 4 of 6" in first.stdout
        report = json.loads((tmp_path / "missing.json").read_text())
        assert sorted(m["sha256"] for m in report["missing"]) == sorted(lost)
        assert all("missing" in m["reason"] for m in report["missing"])

        # An unreachable store: every fetch fails, the restore still finishes and lists them all.
        proxy.rate, proxy.mix = 1.0, {"reset_response": 1}
        entries = entries_for_day(clean_backup, DAY)
        down = restore_objects(
            flaky_s3_store(proxy.endpoint, backup_bucket, "backups"), clean_media, entries, "b2/"
        )
        assert down.restored == 0 and len(down.missing) == 6
        assert all("unavailable" in m["reason"] for m in down.missing)
        proxy.rate = 0.0

        for sha, data in saved.items():  # the copies come back (e.g. the next object backup re-copied them)
            clean_backup.put_bytes(copy_key(sha), data, sha256=sha, content_type="application/octet-stream")
        second = _cli(
            args, database_url, proxy.endpoint, media_bucket, backup_bucket, tmp_path, (monkeypatch, capsys)
        )
        assert second.returncode == 0, second.stdout + second.stderr
        assert "restored 2 of 6" in second.stdout and "4 already in place" in second.stdout
    with get_engine(database_url).connect() as conn:
        keys = [k for (k,) in conn.execute(sa.text("SELECT storage_key FROM media_catalog.stored_objects"))]
    for key in keys:
        assert clean_media.get_bytes(f"back/{key}") == clean_media.get_bytes(key)


def test_an_object_backup_run_through_a_faulty_store_succeeds_counts_its_retries_and_warns(
    database_url: str, s3_endpoint: str, tmp_path: Path, monkeypatch
) -> None:
    """The run's metadata says how many requests were retried; the run log warns above the fault rate."""
    import logging

    from dagster import DagsterInstance

    media_bucket, backup_bucket = new_bucket(s3_endpoint), new_bucket(s3_endpoint)
    prepare_database(database_url, rows=1)
    clean_media = s3_store(s3_endpoint, media_bucket, "")
    today = datetime.now(UTC)
    for n in range(12):
        add_object(database_url, clean_media, "erin", random_bytes(3000 + n), today)
    with fault_proxy(s3_endpoint, rate=RATE, seed=3, stall_seconds=0.2) as proxy:
        env = {
            "DATABASE_URL": database_url,
            "MEDIA_PLATFORM_DATA_DIR": str(tmp_path / "data"),
            "OBJECT_STORE_BACKEND": "s3",
            "S3_BUCKET": media_bucket,
            "S3_ENDPOINT_URL": proxy.endpoint,
            "BACKUP_STORE_BACKEND": "s3",
            "BACKUP_S3_BUCKET": backup_bucket,
            "AWS_ACCESS_KEY_ID": S3_ACCESS_KEY,
            "AWS_SECRET_ACCESS_KEY": S3_SECRET_KEY,
        }
        for name, value in env.items():
            monkeypatch.setenv(name, value)
        from orchestration.definitions import build_definitions

        with DagsterInstance.ephemeral() as instance:
            result = (
                build_definitions()
                .resolve_job_def("object_backup_job")
                .execute_in_process(instance=instance, partition_key=today.date().isoformat())
            )
            warnings = [
                entry.user_message
                for entry in instance.all_logs(result.run_id)
                if entry.level == logging.WARNING and "requests met a fault" in entry.user_message
            ]
    assert result.success
    metadata = {
        k: v.value for k, v in result.asset_materializations_for_node("backups__objects")[0].metadata.items()
    }
    assert metadata["status"] == "verified" and metadata["objects_copied"] == 12
    assert metadata["backup_store_requests_retried"] > 0 and metadata["media_store_requests_retried"] > 0
    assert metadata["backup_store_gave_up"] == 0
    assert warnings, "no warning in the run log at a 30 % fault rate"
    print(f"\nobject backup job: proxy {dict(proxy.counts)}; metadata {metadata}")


def test_checks_report_an_unreachable_store_apart_from_a_wrong_object(
    database_url: str, s3_endpoint: str
) -> None:
    prepare_database(database_url, rows=1)
    media_bucket, backup_bucket = new_bucket(s3_endpoint), new_bucket(s3_endpoint)
    clean_media = s3_store(s3_endpoint, media_bucket, "")
    clean_backup = s3_store(s3_endpoint, backup_bucket, "backups")
    for n in range(3):
        add_object(
            database_url, clean_media, "fay", random_bytes(4000 + n), datetime(2026, 11, 21, 9, n, tzinfo=UTC)
        )
    assert run_object_backup(database_url, clean_media, clean_backup, DAY).status == "verified"
    files = load_sources_config().by_name("files")

    with fault_proxy(s3_endpoint, rate=1.0, mix={"reset_response": 1, "slowdown_503": 1}) as proxy:
        down = verify_backups(database_url, flaky_s3_store(proxy.endpoint, backup_bucket, "backups"), DAY)
        refs = verify_references(
            get_engine(database_url), flaky_s3_store(proxy.endpoint, media_bucket), files
        )
    assert down.problems == [] and len(down.unreachable) == 4  # the manifest and three copies
    assert down.copies_to_repair == 0  # nothing is dropped for re-copying on an unreachable store
    assert refs.unreachable and not refs.wrong and not refs.ok

    with get_engine(database_url).connect() as conn:
        statuses = [s for (s,) in conn.execute(sa.text("SELECT status FROM media_catalog.backups"))]
        copies = conn.execute(sa.text("SELECT count(*) FROM media_catalog.backup_object_copies")).scalar_one()
    assert statuses == ["verified"] and copies == 3
    assert verify_backups(database_url, clean_backup, DAY).problems == []


def test_variant_rendering_reads_and_writes_through_a_faulty_store_and_defers_when_it_is_down(
    database_url: str, s3_endpoint: str
) -> None:
    from core.catalog.db import upgrade_catalog
    from core.imaging import load_variant_plan
    from core.variants import process_batch, variant_set_gaps
    from tests.support.variants import jpeg_bytes, photo, seed_original

    upgrade_catalog(database_url)
    engine, plan = get_engine(database_url), load_variant_plan()
    bucket = new_bucket(s3_endpoint)
    clean = s3_store(s3_endpoint, bucket, "")
    ids = [
        seed_original(engine, clean, jpeg_bytes(photo(320, 200, seed=n)), source_pk=str(n)) for n in range(4)
    ]
    with fault_proxy(s3_endpoint, rate=1.0, mix={"reset_response": 1}) as proxy:
        down = process_batch(flaky_s3_store(proxy.endpoint, bucket), engine, ids, plan)
        assert down.images_deferred == 4 and variant_set_gaps(engine, plan) == 4  # deferred, not failed
        proxy.rate, proxy.mix = (
            RATE,
            {"slowdown_503": 3, "internal_500": 2, "reset_request": 2, "reset_response": 3},
        )
        store = flaky_s3_store(proxy.endpoint, bucket)
        stats = process_batch(store, engine, ids, plan)
    assert stats.images_deferred == 0 and stats.images_failed == 0
    assert variant_set_gaps(engine, plan) == 0 and store.stats.retried > 0
