"""Backup throughput against plain baselines measured in the same run.

Database: `run_database_backup` (pg_dump -Fc in an exported snapshot + per-table hashes in that snapshot
+ upload to the backup store + re-read verification) vs a plain `pg_dump -Fc` of the same database to a
local file with the same binary and compression level. Objects: `run_object_backup` (catalog query,
checksum-verified content-addressed copies, manifest, head checks) vs a plain file copy of the same
objects. Throughput is source megabytes per second.

    PYTHONPATH=. python benchmarks/backups.py [--db-mb 100] [--objects 400] [--object-kb 256]

Uses DATABASE_URL's server when set, else the embedded one; creates and drops its own database.
"""

from __future__ import annotations

import argparse
import base64
import os
import shutil
import subprocess
import tempfile
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

import sqlalchemy as sa

from core.backups.database import dump_command, run_database_backup
from core.backups.objects import run_object_backup
from core.backups.pgtools import find_tool, libpq_target, server_major_version
from core.catalog.db import get_engine, sqlalchemy_url, upgrade_catalog
from core.objectstore.local import LocalObjectStore
from tests.support.backups import add_object


def server_url() -> str:
    if os.environ.get("DATABASE_URL"):
        return os.environ["DATABASE_URL"]
    from core.embedded_postgres import start_embedded_postgres

    return start_embedded_postgres(Path(tempfile.gettempdir()) / "bench-backups-pg").url()


def create_database(url: str) -> str:
    name = f"bench_backups_{uuid.uuid4().hex[:8]}"
    engine = sa.create_engine(sqlalchemy_url(url), isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    engine.dispose()
    return sa.engine.make_url(sqlalchemy_url(url)).set(database=name).render_as_string(hide_password=False)


def drop_database(admin_url: str, url: str) -> None:
    get_engine(url).dispose()
    engine = sa.create_engine(sqlalchemy_url(admin_url), isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{sa.engine.make_url(url).database}" WITH (FORCE)'))
    engine.dispose()


def fill(url: str, megabytes: int) -> int:
    """Legacy-style rows: base64 payloads (like the app's images) plus small columns, ~64 KB per row.
    Each payload is a random half repeated, so the dump compresses about as much as base64 images do."""
    upgrade_catalog(url)
    engine = get_engine(url)
    payload_bytes = 48_000  # -> 64 KB of base64 text
    rows = max(1, megabytes * 1_000_000 // (payload_bytes * 4 // 3))
    with engine.begin() as conn:
        conn.execute(sa.text("CREATE TABLE files (id bigint PRIMARY KEY, owner text, name text, data text)"))
    batch = 100
    for start in range(0, rows, batch):
        values = [
            {"id": i, "owner": f"user-{i % 97}", "name": f"file-{i}.png",
             "data": base64.b64encode(os.urandom(payload_bytes // 2) * 2).decode()}
            for i in range(start, min(rows, start + batch))
        ]  # fmt: skip
        with engine.begin() as conn:
            conn.execute(sa.text("INSERT INTO files VALUES (:id, :owner, :name, :data)"), values)
    return rows


def bench_database(url: str, work: Path) -> None:
    size = int(
        get_engine(url).connect().execute(sa.text("SELECT pg_database_size(current_database())")).scalar()
    )
    tool = find_tool("pg_dump", server_major_version(get_engine(url)))
    target = libpq_target(url)
    plain_file = work / "plain.dump"
    started = time.perf_counter()
    subprocess.run(dump_command(tool, target.conninfo, plain_file, 6, None), env=target.env, check=True)
    plain = time.perf_counter() - started
    store = LocalObjectStore(work / "backup-store", signing_secret="bench")
    started = time.perf_counter()
    result = run_database_backup(url, store, datetime.now(UTC).date(), compression=6, work_dir=work)
    ours = time.perf_counter() - started
    mb = size / 1_000_000
    print(f"database: {mb:,.1f} MB database, dump {result.size_bytes / 1e6:,.1f} MB ({tool.version})")
    print(f"  plain pg_dump -Fc -Z6 to a local file : {plain:6.2f} s  {mb / plain:7.1f} MB/s")
    print(f"  database backup (snapshot+hash+upload+verify): {ours:6.2f} s  {mb / ours:7.1f} MB/s"
          f"  ({ours / plain:.2f}x the plain dump's time)")  # fmt: skip


def bench_objects(url: str, work: Path, count: int, kb: int) -> None:
    media = LocalObjectStore(work / "media", signing_secret="bench")
    now = datetime.now(UTC)
    for i in range(count):
        add_object(url, media, f"user-{i % 50}", os.urandom(kb * 1024), now, source_pk=f"bench-{i}")
    total = count * kb * 1024
    plain_dir = work / "plain-copy"
    plain_dir.mkdir()
    started = time.perf_counter()
    for path in (media.root / "originals").rglob("*.bin"):
        shutil.copyfile(path, plain_dir / path.name)
    plain = time.perf_counter() - started
    durable_dir = work / "plain-copy-fsync"
    durable_dir.mkdir()
    started = time.perf_counter()
    for path in (media.root / "originals").rglob("*.bin"):
        with path.open("rb") as source, (durable_dir / path.name).open("wb") as target:
            shutil.copyfileobj(source, target)
            target.flush()
            os.fsync(target.fileno())
    durable = time.perf_counter() - started
    backup = LocalObjectStore(work / "object-backups", signing_secret="bench")
    started = time.perf_counter()
    result = run_object_backup(url, media, backup, now.date(), workers=8)
    ours = time.perf_counter() - started
    assert result.copied == count and result.status == "verified", result
    mb = total / 1_000_000
    print(f"objects: {count} objects x {kb} KB = {mb:,.1f} MB (local backend to local backend)")
    print(f"  plain file copy                  : {plain:6.2f} s  {mb / plain:7.1f} MB/s")
    print(f"  plain file copy + fsync per file : {durable:6.2f} s  {mb / durable:7.1f} MB/s")
    print(f"  object backup (verified, 8 workers): {ours:6.2f} s  {mb / ours:7.1f} MB/s"
          f"  ({ours / plain:.2f}x the plain copy's time)")  # fmt: skip
    started = time.perf_counter()
    again = run_object_backup(url, media, backup, now.date(), workers=8)
    print(f"  rerun of the same day (nothing new to copy): {time.perf_counter() - started:6.2f} s, "
          f"{again.copied} copied, {again.already_copied} already in the backup")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--db-mb", type=int, default=100, help="approximate database payload to generate")
    parser.add_argument("--objects", type=int, default=400)
    parser.add_argument("--object-kb", type=int, default=256)
    args = parser.parse_args()
    admin = server_url()
    url = create_database(admin)
    try:
        print(f"generating ~{args.db_mb} MB of legacy-style rows ...", flush=True)
        fill(url, args.db_mb)
        with tempfile.TemporaryDirectory(prefix="bench-backups-") as tmp:
            bench_database(url, Path(tmp))
            bench_objects(url, Path(tmp), args.objects, args.object_kb)
    finally:
        drop_database(admin, url)


if __name__ == "__main__":
    main()
