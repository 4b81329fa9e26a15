"""Backup retention: GFS periods, the seeds' presets, the newest-verified rule, dry run vs real run."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa

from core.backups.database import run_database_backup
from core.backups.retention import BackupRecord, apply_retention, plan_retention
from core.backups.settings import RetentionPolicy, load_settings
from core.catalog.db import get_engine
from core.config import ConfigError
from tests.support.backups import local_store, prepare_database

NOW = datetime(2026, 11, 21, 6, tzinfo=UTC)


def daily_backups(days: int, status: str = "verified", kind: str = "database") -> list[BackupRecord]:
    return [
        BackupRecord(
            id=i, kind=kind, backup_date=NOW.date() - timedelta(days=i), status=status,
            started_at=NOW - timedelta(days=i),
        )
        for i in range(days)
    ]  # fmt: skip


def kept_dates(decisions) -> list[date]:
    return sorted((d.backup.backup_date for d in decisions if d.keep), reverse=True)


def test_gfs_keeps_seven_daily_four_weekly_and_twelve_monthly() -> None:
    decisions = plan_retention(daily_backups(400), RetentionPolicy(7, 4, 12), NOW)
    kept = kept_dates(decisions)
    today = NOW.date()  # a Saturday
    daily = {today - timedelta(days=i) for i in range(7)}
    assert daily <= set(kept)
    # weekly: the newest (Sunday) of each of the last 4 ISO weeks; this week and 11-15 are already daily
    assert {date(2026, 11, 8), date(2026, 11, 1)} <= set(kept)
    monthly = {date(2026, 10, 31), date(2026, 9, 30), date(2025, 12, 31)}
    assert monthly <= set(kept)
    assert date(2025, 11, 30) not in kept  # the 13th month back
    assert len(kept) == len(set(kept))
    assert len(kept) == 7 + 2 + 11  # weeks/months already represented by a daily are not counted twice


def test_the_seven_day_preset_drops_older_backups_and_the_year_preset_keeps_365() -> None:
    week = load_settings("seven_days").retention
    assert kept_dates(plan_retention(daily_backups(30), week, NOW)) == [
        NOW.date() - timedelta(days=i) for i in range(7)
    ]
    year = load_settings("one_year").retention
    assert len(kept_dates(plan_retention(daily_backups(400), year, NOW))) == 365


def test_the_newest_verified_backup_is_kept_even_when_every_period_has_passed() -> None:
    """Backups have been failing for a month: the last good one is older than the 7-day window."""
    old_good = BackupRecord(1, "database", date(2026, 10, 1), "verified", datetime(2026, 10, 1, tzinfo=UTC))
    older_good = BackupRecord(0, "database", date(2026, 9, 30), "verified", datetime(2026, 9, 30, tzinfo=UTC))
    failing = [
        BackupRecord(10 + i, "database", NOW.date() - timedelta(days=i), s, NOW - timedelta(days=i))
        for i, s in enumerate(["failed", "corrupt", "running", "failed", "failed"])
    ]
    decisions = {
        d.backup.id: d
        for d in plan_retention([old_good, older_good, *failing], RetentionPolicy(7, 0, 0), NOW)
    }
    assert decisions[1].keep and "newest verified" in decisions[1].reason
    assert not decisions[0].keep
    assert decisions[10].keep and decisions[11].keep  # within the failed-backup grace period
    assert not decisions[13].keep and not decisions[14].keep


def test_kinds_are_judged_separately() -> None:
    backups = [
        *daily_backups(10),
        *[
            BackupRecord(100 + b.id, "objects", b.backup_date, "verified", b.started_at)
            for b in daily_backups(1)
        ],
    ]
    decisions = plan_retention(backups, RetentionPolicy(3, 0, 0), NOW)
    assert sum(d.keep for d in decisions if d.backup.kind == "objects") == 1
    assert sum(d.keep for d in decisions if d.backup.kind == "database") == 3


def test_a_policy_that_keeps_nothing_is_refused() -> None:
    with pytest.raises(ConfigError):
        RetentionPolicy(0, 0, 0)


def test_dry_run_shows_what_would_go_and_the_real_run_deletes_only_that(
    database_url: str, tmp_path: Path
) -> None:
    prepare_database(database_url, rows=5)
    store = local_store(tmp_path / "b")
    today = datetime.now(UTC).date()
    results = [run_database_backup(database_url, store, today - timedelta(days=n)) for n in (9, 8, 0)]
    dry = apply_retention(database_url, store, RetentionPolicy(7, 0, 0), dry_run=True)
    assert sorted(d.backup.id for d in dry.expired) == sorted(r.backup_id for r in results[:2])
    assert all(store.exists(r.storage_key) for r in results)  # a dry run deletes nothing

    done = apply_retention(database_url, store, RetentionPolicy(7, 0, 0), dry_run=False)
    assert done.failures == []
    assert [store.exists(r.storage_key) for r in results] == [False, False, True]
    assert not store.exists(f"database/{results[0].day}/manifest.json")
    assert store.exists(f"database/{today}/manifest.json")
    with get_engine(database_url).connect() as conn:
        statuses = conn.execute(sa.text("SELECT status FROM media_catalog.backups ORDER BY id")).scalars()
        assert list(statuses) == ["expired", "expired", "verified"]
    again = apply_retention(database_url, store, RetentionPolicy(7, 0, 0), dry_run=False)
    assert again.expired == []  # rerunning is a no-op


def test_backup_settings_reject_values_that_would_silently_do_the_wrong_thing() -> None:
    from core.backups.settings import parse_settings
    from core.config import load_config

    raw = load_config("backups")
    assert parse_settings(raw).retention == RetentionPolicy(7, 4, 12, 2)
    for section, key, value in (
        ("verification", "sample_share", 0),
        ("verification", "sample_share", 1.5),
        ("database", "compression_level", 10),
        ("retention", "policy", "forever"),
    ):
        broken = {**raw, section: {**raw[section], key: value}}
        with pytest.raises(ConfigError):
            parse_settings(broken)
