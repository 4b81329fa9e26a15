"""Database backups against the real PostgreSQL server: version-matched pg_dump, same-snapshot manifest,
interrupted dumps never verified, restore by day into a named database, corruption caught."""

from __future__ import annotations

import signal
import subprocess
from datetime import date
from pathlib import Path

import pytest
import sqlalchemy as sa

from core.backups.database import BackupFailed, dump_command, read_manifest, run_database_backup
from core.backups.drill import run_restore_drill
from core.backups.pgtools import PgToolError, find_tool, libpq_target, tool_version
from core.backups.restore import RestoreError, drop_database, restore_database
from core.backups.verify import verify_backups
from core.catalog.db import get_engine
from core.objectstore.local import LocalObjectStore
from tests.support.backups import local_store, prepare_database, s3_store

DAY = date(2026, 11, 21)


def backup_rows(url: str) -> list[tuple[str, str | None]]:
    with get_engine(url).connect() as conn:
        return [
            (r.status, r.error)
            for r in conn.execute(sa.text("SELECT status, error FROM media_catalog.backups ORDER BY id"))
        ]


@pytest.fixture(params=["local", "s3"])
def backup_store(request: pytest.FixtureRequest, tmp_path: Path):
    if request.param == "local":
        return local_store(tmp_path / "backups")
    endpoint = request.getfixturevalue("s3_endpoint")
    return s3_store(endpoint, request.getfixturevalue("s3_bucket"), "backups")


def test_backup_is_verified_and_restores_into_a_named_database_matching_the_manifest(
    database_url: str, backup_store, postgres_server
) -> None:
    prepare_database(database_url)
    result = run_database_backup(database_url, backup_store, DAY)

    assert backup_rows(database_url)[-1][0] == "verified"
    manifest = read_manifest(backup_store, DAY)
    assert manifest["dump_key"] == result.storage_key and manifest["sha256"] == result.sha256
    assert manifest["tables"]["public.notes"]["rows"] == 200
    assert manifest["tables"]["public.tags"]["rows"] == 3
    assert "media_catalog.stored_objects" in manifest["tables"]  # the catalog is in the dump too
    assert backup_store.head(result.storage_key).size == result.size_bytes

    # Changes after the backup are not in it: the restore must match the manifest, not today's data.
    with get_engine(database_url).begin() as conn:
        conn.execute(sa.text("DELETE FROM public.notes WHERE id > 100"))
    name = f"restored_{result.backup_id}_{backup_store.provider}"
    try:
        restored = restore_database(database_url, backup_store, DAY, name)
        assert restored.problems == []
        assert restored.tables == len(manifest["tables"])
        with sa.create_engine(restored_url(database_url, name), poolclass=sa.pool.NullPool).connect() as conn:
            assert conn.execute(sa.text("SELECT count(*) FROM public.notes")).scalar() == 200
        with pytest.raises(RestoreError, match="already exists"):
            restore_database(database_url, backup_store, DAY, name)
    finally:
        drop_database(database_url, name)


def restored_url(url: str, name: str) -> str:
    return sa.engine.make_url(url).set(database=name).render_as_string(hide_password=False)


def test_manifest_hashes_come_from_the_dump_snapshot_not_from_later_writes(
    database_url: str, tmp_path
) -> None:
    """Rows written while pg_dump runs are neither in the dump nor in the manifest."""
    prepare_database(database_url)
    store = local_store(tmp_path / "b")

    def write_during_dump(proc: subprocess.Popen[bytes]) -> None:
        with get_engine(database_url).begin() as conn:
            conn.execute(sa.text("INSERT INTO public.notes VALUES (100000, 'late', now())"))

    run_database_backup(database_url, store, DAY, on_dump_started=write_during_dump)
    assert read_manifest(store, DAY)["tables"]["public.notes"]["rows"] == 200
    try:
        restored = restore_database(database_url, store, DAY, "snapshot_check")
        assert restored.problems == []
    finally:
        drop_database(database_url, "snapshot_check")


def test_a_killed_pg_dump_never_gets_a_verified_record(database_url: str, tmp_path: Path) -> None:
    prepare_database(database_url, rows=2000)
    store = local_store(tmp_path / "b")

    def kill(proc: subprocess.Popen[bytes]) -> None:
        proc.send_signal(signal.SIGKILL)

    with pytest.raises(BackupFailed, match="killed by signal 9"):
        run_database_backup(database_url, store, DAY, on_dump_started=kill)
    assert [status for status, _ in backup_rows(database_url)] == ["failed"]
    assert list(store.list_objects("database/")) == []


def test_a_pg_dump_that_exits_nonzero_mid_way_is_recorded_as_failed(
    database_url: str, tmp_path: Path
) -> None:
    """A 'pg_dump' that reports the right version but dies after writing half a file."""
    prepare_database(database_url)
    real = find_tool("pg_dump", 16)
    bad_bin = tmp_path / "bin"
    bad_bin.mkdir()
    script = bad_bin / "pg_dump"
    script.write_text(
        "#!/bin/sh\n"
        f'case "$1" in --version) exec {real.path} --version;; esac\n'
        'for a in "$@"; do case "$a" in --file=*) printf PGDMP-partial > "${a#--file=}";; esac; done\n'
        "echo 'pg_dump: error: connection lost' >&2; exit 1\n"
    )
    script.chmod(0o755)
    (bad_bin / "pg_restore").symlink_to(find_tool("pg_restore", 16).path)
    with pytest.raises(BackupFailed, match="exit 1"):
        run_database_backup(database_url, local_store(tmp_path / "b"), DAY, pg_bin_dir=str(bad_bin))
    status, error = backup_rows(database_url)[-1]
    assert status == "failed" and "connection lost" in (error or "")


def test_a_configured_pg_dump_of_another_major_version_fails_loudly(
    database_url: str, tmp_path: Path
) -> None:
    prepare_database(database_url, rows=1)
    system = Path("/usr/bin/pg_dump")
    if not system.exists() or tool_version(system).major == 16:
        pytest.skip("needs a system pg_dump of another major version than the server")
    with pytest.raises(BackupFailed, match=r"is PostgreSQL \d+ but the server is 16"):
        run_database_backup(database_url, local_store(tmp_path / "b"), DAY, pg_bin_dir="/usr/bin")
    assert backup_rows(database_url)[-1][0] == "failed"
    with pytest.raises(PgToolError):
        find_tool("pg_dump", 16, "/usr/bin")


def test_password_goes_to_the_environment_never_the_command_line() -> None:
    target = libpq_target("postgresql+psycopg://app:s3cr%40t@db.internal:5433/media?sslmode=require")
    assert target.env["PGPASSWORD"] == "s3cr@t"
    assert "s3cr" not in target.conninfo
    assert "host='db.internal'" in target.conninfo and "sslmode='require'" in target.conninfo
    tool = find_tool("pg_dump", 16)
    command = dump_command(tool, target.conninfo, Path("/tmp/x.dump"), 6, "00000003-1")
    assert not any("s3cr" in part for part in command)
    socket = libpq_target("postgresql+psycopg://postgres:@/db?host=/tmp/a b/sock")
    assert "host='/tmp/a b/sock'" in socket.conninfo and "PGPASSWORD" not in socket.env


def test_verification_catches_a_corrupted_and_a_missing_dump(database_url: str, tmp_path: Path) -> None:
    prepare_database(database_url)
    store = local_store(tmp_path / "b")
    first = run_database_backup(database_url, store, date(2026, 11, 20))
    second = run_database_backup(database_url, store, DAY)
    assert verify_backups(database_url, store, DAY).problems == []

    path = store.root / second.storage_key
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF  # one flipped byte in the middle of the archive
    path.write_bytes(bytes(data))
    (store.root / first.storage_key).unlink()

    result = verify_backups(database_url, store, DAY)
    assert len(result.problems) == 4
    assert any("do not hash" in p and second.storage_key in p for p in result.problems)
    assert any("missing" in p and first.storage_key in p for p in result.problems)
    assert result.days_without_verified_dump == ["2026-11-20", DAY.isoformat()]
    assert [status for status, _ in backup_rows(database_url)] == ["corrupt", "corrupt"]
    # Later runs no longer re-read the corrupt dumps but keep saying the days have no good dump.
    again = verify_backups(database_url, store, DAY)
    assert again.days_without_verified_dump == ["2026-11-20", DAY.isoformat()]
    assert again.problems and all("none verified" in p for p in again.problems)
    with pytest.raises(RestoreError, match="corrupt"):
        restore_database(database_url, store, DAY, "never_created")


def test_restore_drill_passes_then_fails_when_the_dump_is_corrupted(
    database_url: str, tmp_path: Path
) -> None:
    prepare_database(database_url)
    store = local_store(tmp_path / "b")
    backup = run_database_backup(database_url, store, DAY)
    drill = run_restore_drill(database_url, store)
    assert drill.passed, drill.problems
    assert drill.database_backup_date == DAY.isoformat() and drill.rows >= 203
    with get_engine(database_url).connect() as conn:  # the scratch database is gone
        left = conn.execute(sa.text("SELECT count(*) FROM pg_database WHERE datname LIKE 'restore_drill_%'"))
        assert left.scalar() == 0

    (store.root / backup.storage_key).write_bytes(b"PGDMP not really")
    drill = run_restore_drill(database_url, store)
    assert not drill.passed and "corrupt" in drill.problems[0]


class BitRotOnArrival(LocalObjectStore):
    """A real local store whose disk flips a byte of every dump right after it is written."""

    def put_file(self, key: str, path: Path, *, sha256: str, content_type: str):
        info = super().put_file(key, path, sha256=sha256, content_type=content_type)
        target = self.root / key
        data = bytearray(target.read_bytes())
        data[-1] ^= 0x01
        target.write_bytes(bytes(data))
        return info


def test_a_dump_that_does_not_read_back_correctly_after_upload_is_never_verified(
    database_url: str, tmp_path: Path
) -> None:
    prepare_database(database_url)
    store = BitRotOnArrival(tmp_path / "b", signing_secret="test-secret")
    with pytest.raises(BackupFailed, match="did not reproduce"):
        run_database_backup(database_url, store, DAY)
    status, error = backup_rows(database_url)[-1]
    assert status == "failed" and "did not reproduce" in (error or "")
    assert not store.exists(f"database/{DAY}/manifest.json")
