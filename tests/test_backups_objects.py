"""Object backups on both backends: content-addressed copies made once, a manifest per day, catch-up of
never-copied objects, restores by owner/key/day, and deleted objects restorable until backups expire."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa

from core.backups.objects import copy_key, read_day_manifest, run_object_backup
from core.backups.restore import entries_for_day, entries_for_key, entries_for_owner, restore_objects
from core.backups.retention import apply_retention
from core.backups.settings import RetentionPolicy
from core.backups.verify import in_sample, sample_groups, verify_backups
from core.catalog.db import get_engine
from tests.support.backups import (
    add_object,
    add_variant,
    local_store,
    prepare_database,
    random_bytes,
    s3_store,
)

DAY1 = date(2026, 11, 20)
DAY2 = date(2026, 11, 21)


def at(day: date, hour: int = 12) -> datetime:
    return datetime(day.year, day.month, day.day, hour, tzinfo=UTC)


@pytest.fixture(params=["local", "s3"])
def stores(request: pytest.FixtureRequest, tmp_path: Path):
    """(media store, backup store): local+local, or S3 media with a backup prefix in another S3 bucket."""
    if request.param == "local":
        return local_store(tmp_path / "media"), local_store(tmp_path / "backups")
    endpoint = request.getfixturevalue("s3_endpoint")
    from tests.support.services import new_bucket

    return s3_store(endpoint, new_bucket(endpoint), ""), s3_store(endpoint, new_bucket(endpoint), "backups")


def copy_count(url: str) -> int:
    with get_engine(url).connect() as conn:
        return int(
            conn.execute(sa.text("SELECT count(*) FROM media_catalog.backup_object_copies")).scalar_one()
        )


def test_each_content_is_copied_once_and_every_object_of_the_day_is_in_the_manifest(
    database_url: str, stores
) -> None:
    media, backup = stores
    prepare_database(database_url, rows=1)
    a_id, a_sha, _ = add_object(database_url, media, "alice", random_bytes(3000), at(DAY1))
    add_variant(database_url, media, a_id, random_bytes(500), at(DAY1))
    first = run_object_backup(database_url, media, backup, DAY1)
    assert (first.status, first.listed, first.copied) == ("verified", 2, 2)
    assert backup.head(copy_key(a_sha)).sha256 == a_sha

    _b_id, b_sha, _ = add_object(database_url, media, "bob", random_bytes(2000), at(DAY2))
    second = run_object_backup(database_url, media, backup, DAY2)
    assert (second.listed, second.copied) == (1, 1)  # day 1's objects are not copied again
    manifest = read_day_manifest(backup, DAY2)
    assert [(o["sha256"], o["owners"]) for o in manifest["objects"]] == [(b_sha, ["bob"])]

    rerun = run_object_backup(database_url, media, backup, DAY2)
    assert (rerun.status, rerun.listed, rerun.copied, rerun.already_copied) == ("verified", 1, 0, 1)
    assert copy_count(database_url) == 3
    with get_engine(database_url).connect() as conn:
        statuses = conn.execute(
            sa.text("SELECT status FROM media_catalog.backups WHERE backup_date = :d ORDER BY id"),
            {"d": DAY2},
        ).scalars()
        assert list(statuses) == ["expired", "verified"]  # the rerun replaced the day's record


def test_objects_never_copied_are_caught_up_and_a_missing_source_is_recorded(
    database_url: str, tmp_path
) -> None:
    media, backup = local_store(tmp_path / "m"), local_store(tmp_path / "b")
    prepare_database(database_url, rows=1)
    _, old_sha, _ = add_object(database_url, media, "alice", random_bytes(100), at(DAY1 - timedelta(days=30)))
    _, _, lost_key = add_object(database_url, media, "alice", random_bytes(100), at(DAY1))
    media.delete_keys([lost_key])
    result = run_object_backup(database_url, media, backup, DAY1)
    assert result.status == "complete" and result.copied == 1
    assert result.problems == [f"{lost_key}: source object is missing"]
    assert backup.exists(copy_key(old_sha))


def test_restore_objects_by_owner_key_and_day_into_a_target_prefix(database_url: str, stores) -> None:
    media, backup = stores
    prepare_database(database_url, rows=1)
    a_id, a_sha, a_key = add_object(database_url, media, "alice", random_bytes(4000), at(DAY1))
    variant_key = add_variant(database_url, media, a_id, random_bytes(300), at(DAY1))
    _, _b_sha, b_key = add_object(database_url, media, "bob", random_bytes(1000), at(DAY2))
    run_object_backup(database_url, media, backup, DAY1)
    run_object_backup(database_url, media, backup, DAY2)

    by_owner = restore_objects(backup, media, entries_for_owner(database_url, "alice"), "restored/alice/")
    assert sorted(by_owner.restored_keys) == sorted(
        [f"restored/alice/{a_key}", f"restored/alice/{variant_key}"]
    )
    assert media.verify(f"restored/alice/{a_key}", a_sha)

    by_key = restore_objects(backup, media, entries_for_key(database_url, b_key), "restored/key/")
    assert by_key.restored_keys == [f"restored/key/{b_key}"] and by_key.problems == []

    by_day = restore_objects(backup, media, entries_for_day(backup, DAY2), "restored/day/")
    assert by_day.restored_keys == [f"restored/day/{b_key}"]
    assert media.get_bytes(f"restored/day/{b_key}") == media.get_bytes(b_key)


def test_deleted_objects_stay_restorable_until_their_backups_expire(
    database_url: str, tmp_path: Path
) -> None:
    media, backup = local_store(tmp_path / "m"), local_store(tmp_path / "b")
    prepare_database(database_url, rows=1)
    today = datetime.now(UTC).date()
    old_day = today - timedelta(days=10)
    _, gone_sha, gone_key = add_object(database_url, media, "carol", random_bytes(800), at(old_day))
    _, live_sha, _ = add_object(database_url, media, "carol", random_bytes(800), at(old_day, 13))
    run_object_backup(database_url, media, backup, old_day)
    run_object_backup(database_url, media, backup, today)
    # Retention deletes the first object from the media store.
    media.delete_keys([gone_key])
    with get_engine(database_url).begin() as conn:
        conn.execute(
            sa.text("UPDATE media_catalog.stored_objects SET status = 'deleted' WHERE sha256 = :s"),
            {"s": gone_sha},
        )

    restored = restore_objects(backup, media, entries_for_owner(database_url, "carol"), "restored/")
    assert f"restored/{gone_key}" in restored.restored_keys and restored.problems == []

    seven_days = RetentionPolicy(daily=7, weekly=0, monthly=0)
    dry = apply_retention(database_url, backup, seven_days, dry_run=True)
    assert [d.backup.backup_date for d in dry.expired] == [old_day]
    assert dry.copies_deleted == 1 and backup.exists(copy_key(gone_sha))

    done = apply_retention(database_url, backup, seven_days, dry_run=False)
    assert done.copies_deleted == 1
    assert not backup.exists(copy_key(gone_sha))  # its last backup expired, so its copy went
    assert backup.exists(copy_key(live_sha))  # a live object's copy stays whatever the policy
    with get_engine(database_url).connect() as conn:
        actions = conn.execute(
            sa.text("SELECT action, count(*) FROM media_catalog.retention_audit GROUP BY 1 ORDER BY 1")
        ).all()
    assert [tuple(a) for a in actions] == [("deleted", 2), ("would_delete", 2)]


def test_sampled_verification_covers_every_copy_within_one_cycle_and_reports_corruption(
    database_url: str, tmp_path: Path
) -> None:
    media, backup = local_store(tmp_path / "m"), local_store(tmp_path / "b")
    prepare_database(database_url, rows=1)
    shas = [add_object(database_url, media, "dan", random_bytes(200), at(DAY1))[1] for _ in range(12)]
    run_object_backup(database_url, media, backup, DAY1)

    groups = sample_groups(0.25)
    assert groups == 4
    seen = 0
    for offset in range(groups):
        result = verify_backups(database_url, backup, DAY1 + timedelta(days=offset), sample_share=0.25)
        assert result.problems == []
        seen += result.object_copies
    assert seen == len(shas)  # every copy re-read exactly once over the cycle

    victim = shas[0]
    (backup.root / copy_key(victim)).write_bytes(b"bit rot")
    day = next(
        DAY1 + timedelta(days=o) for o in range(groups) if in_sample(victim, DAY1 + timedelta(days=o), groups)
    )
    result = verify_backups(database_url, backup, day, sample_share=0.25)
    assert len(result.problems) == 1 and copy_key(victim) in result.problems[0]
