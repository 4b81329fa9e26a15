"""Backups repair themselves: a flipped or deleted object copy is copied again, and a day whose newest
dump is corrupt still restores from its older verified dump."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime
from pathlib import Path

from core.backups.database import day_manifest_key, run_database_backup
from core.backups.objects import copy_key, run_object_backup
from core.backups.restore import restore_database
from core.backups.verify import verify_backups
from tests.support.backups import add_object, local_store, prepare_database, random_bytes

DAY1 = date(2026, 11, 20)
DAY2 = date(2026, 11, 21)


def flip_byte(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01
    path.write_bytes(bytes(data))


def test_a_flipped_and_a_deleted_copy_are_repaired_by_the_next_backup_run(
    database_url: str, tmp_path: Path
) -> None:
    media, backup = local_store(tmp_path / "media"), local_store(tmp_path / "backups")
    prepare_database(database_url, rows=1)
    shas = [
        add_object(
            database_url, media, "alice", random_bytes(2000 + n), datetime(2026, 11, 20, 9, n, tzinfo=UTC)
        )[1]
        for n in range(4)
    ]
    assert run_object_backup(database_url, media, backup, DAY1).status == "verified"
    flip_byte(backup.root / copy_key(shas[0]))
    (backup.root / copy_key(shas[1])).unlink()

    found = verify_backups(database_url, backup, DAY2)
    assert found.copies_to_repair == 2 and len(found.problems) == 2 and found.unreachable == []

    repaired = run_object_backup(database_url, media, backup, DAY2)  # the next day's scheduled run
    assert repaired.status == "verified" and repaired.copied == 2
    assert verify_backups(database_url, backup, DAY2).problems == []
    for sha in shas:
        assert backup.verify(copy_key(sha), sha)


def test_rerunning_the_object_backup_re_reads_copies_and_copies_a_flipped_one_again(
    database_url: str, tmp_path: Path
) -> None:
    """The post-copy check reads bytes, not only HEAD and the recorded checksum."""
    media, backup = local_store(tmp_path / "media"), local_store(tmp_path / "backups")
    prepare_database(database_url, rows=1)
    _, sha, _ = add_object(
        database_url, media, "bob", random_bytes(5000), datetime(2026, 11, 20, 9, tzinfo=UTC)
    )
    run_object_backup(database_url, media, backup, DAY1)
    flip_byte(backup.root / copy_key(sha))

    rerun = run_object_backup(database_url, media, backup, DAY1, read_share=1.0)
    assert rerun.repaired == 1 and rerun.copies_read == 1 and rerun.status == "verified"
    assert backup.verify(copy_key(sha), sha)


def test_a_day_whose_newest_dump_is_corrupt_restores_from_its_older_verified_dump(
    database_url: str, tmp_path: Path
) -> None:
    prepare_database(database_url, rows=50)
    store = local_store(tmp_path / "b")
    older = run_database_backup(database_url, store, DAY1)
    newer = run_database_backup(database_url, store, DAY1)
    day_manifest = json.loads((store.root / day_manifest_key(DAY1)).read_bytes())
    assert [d["dump_key"] for d in day_manifest["dumps"]] == [newer.storage_key, older.storage_key]
    flip_byte(store.root / newer.storage_key)

    restored = restore_database(database_url, store, DAY1, "from_older")
    assert restored.dump_key == older.storage_key and restored.matches_manifest
    assert len(restored.skipped) == 1 and newer.storage_key in restored.skipped[0]

    named = restore_database(database_url, store, None, "named_older", dump_key=older.storage_key)
    assert named.dump_key == older.storage_key and named.matches_manifest


def test_a_corrupt_newest_dump_requests_a_fresh_dump_the_same_day(database_url: str, tmp_path: Path) -> None:
    from dagster import RunRequest, SkipReason, build_schedule_context

    from resources.database import PostgresResource
    from schedules.backups import corrupt_dump_redump_schedule

    prepare_database(database_url, rows=10)
    store = local_store(tmp_path / "b")
    dump = run_database_backup(database_url, store, DAY1)
    tick = datetime(2026, 11, 21, 3, 15, tzinfo=UTC)

    def evaluate():
        context = build_schedule_context(
            scheduled_execution_time=tick, resources={"postgres": PostgresResource(database_url=database_url)}
        )
        return corrupt_dump_redump_schedule(context)

    assert isinstance(evaluate(), SkipReason)
    flip_byte(store.root / dump.storage_key)
    verify_backups(database_url, store, DAY2)
    request = evaluate()
    assert isinstance(request, RunRequest)
    assert (
        request.partition_key == "2026-11-21" and request.run_key == f"database-redump-after-{dump.backup_id}"
    )
    run_database_backup(database_url, store, DAY2)  # the fresh dump
    assert isinstance(evaluate(), SkipReason)
