"""Retention sweep at scale: 1M catalog rows, 100k eligible orphans, against seed 000's per-row loop.

    PYTHONPATH=. python benchmarks/retention.py [--store local|s3|both] [--objects 1000000]
        [--eligible 100000] [--sample 2000]

Builds the catalog with `generate_series` in SQL (1M `stored_objects`, one reference each: live for most,
released 10 days ago for the eligible orphans, plus 1,000 orphans of an owner under legal hold), writes
a 1-byte object for every object a sweep may touch into the object store, then in the same run:

- baseline: seed 000's `cleanupOrphanedImages` shape: one query for the candidates, then per row one
  storage delete and one catalog statement in its own transaction. It runs on `--sample` candidates and
  is extrapolated to all of them (query time + per-row time x candidates). Because the references keep a
  foreign key to the row, the per-row statement marks the row deleted instead of `DELETE`-ing it. The
  baseline checks no legal hold and re-checks nothing at delete time; the platform does both.
- platform: `run_sweep` (every policy enabled) on the remaining eligible objects.

Both run against each store asked for (default both; the catalog is rebuilt for each):
- `local`: the filesystem store in a temporary folder (the embedded default);
- `s3`: moto's S3 server in its own process, reached over HTTP through boto3, as the seed's loop reaches
  R2. The baseline deletes with one `DeleteObject` per row, exactly as the seed's `DeleteObjectCommand`;
  the platform with `DeleteObjects` (1,000 keys a request). The objects are created through moto's
  backend before it serves (`benchmarks/s3_seeded_server.py`), because 100k PUTs over HTTP would take
  longer than the benchmark; every delete measured goes over HTTP.

Uses DATABASE_URL if set, else a `retention_bench` database on the embedded server.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import resource
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path

import sqlalchemy as sa

from core.catalog.db import get_engine, upgrade_catalog
from core.catalog.models import CATALOG_SCHEMA as C
from core.objectstore.base import ObjectStore
from core.objectstore.local import LocalObjectStore
from core.objectstore.s3 import S3ObjectStore
from core.retention.config import ORPHANED_OBJECTS, parse_retention_config
from core.retention.sweep import run_sweep
from core.sources import load_sources_config

HELD = 1000
BUCKET = "retention-bench"


def database_url() -> str:
    if os.environ.get("DATABASE_URL"):
        return os.environ["DATABASE_URL"]
    from core.embedded_postgres import start_embedded_postgres
    from resources.settings import data_dir

    return start_embedded_postgres(data_dir() / "postgres").ensure_database("retention_bench")


def build_catalog(engine: sa.Engine, objects: int, eligible: int) -> None:
    """Object i is an eligible orphan for the first `eligible` i with i % step == 0, a held orphan for the
    first HELD with i % step == 1, and live otherwise."""
    step = objects // eligible
    with engine.begin() as conn:
        conn.execute(
            sa.text(
                f"TRUNCATE {C}.retention_audit, {C}.legal_holds, {C}.object_references, {C}.uploads, "
                f"{C}.variants, {C}.retention_pending_deletes, {C}.stored_objects RESTART IDENTITY"
            )
        )
        conn.execute(
            sa.text(
                f"""INSERT INTO {C}.stored_objects
                      (sha256, size_bytes, mime_type, kind, storage_key, provider, status, created_at)
                    SELECT sha, 1, 'image/jpeg', 'image',
                           'originals/' || substr(sha, 1, 2) || '/' || substr(sha, 3, 2) || '/'
                               || sha || '.jpg',
                           'local', 'verified', now() - interval '30 days'
                    FROM (SELECT md5(i::text) || md5('x' || i::text) AS sha
                          FROM generate_series(1, :n) i ORDER BY i) s"""
            ),
            {"n": objects},
        )
        conn.execute(
            sa.text(
                f"""INSERT INTO {C}.object_references
                      (object_id, owner_id, origin, source_name, source_table, source_pk, released_at,
                          created_at)
                    SELECT i, CASE WHEN i % :step = 1 AND i <= :held_upto THEN 'held-owner'
                                   ELSE 'user-' || (i % 5000) END,
                           'migration', 'stories', 'stories', i::text,
                           CASE WHEN (i % :step = 0 AND i <= :eligible_upto) OR (i % :step = 1 AND i <=
                               :held_upto)
                                THEN now() - interval '10 days' END,
                           now() - interval '30 days'
                    FROM generate_series(1, :n) i"""
            ),
            {"n": objects, "step": step, "held_upto": HELD * step, "eligible_upto": eligible * step},
        )
        conn.execute(
            sa.text(f"INSERT INTO {C}.legal_holds (owner_id, reason) VALUES ('held-owner', 'bench')")
        )
        conn.execute(sa.text(f"ANALYZE {C}.stored_objects; ANALYZE {C}.object_references"))


def sweepable_keys(engine: sa.Engine) -> Iterator[str]:
    """Keys of every object without a live reference (the ones a sweep may touch), streamed."""
    with engine.connect() as conn:
        result = conn.execution_options(stream_results=True, yield_per=10_000).execute(
            sa.text(
                f"""SELECT o.storage_key FROM {C}.stored_objects o WHERE NOT EXISTS (
                      SELECT 1 FROM {C}.object_references r WHERE r.object_id = o.id AND r.released_at IS
                          NULL)"""
            )
        )
        for (key,) in result:
            yield key


@contextlib.contextmanager
def local_store(
    engine: sa.Engine, tmp: Path
) -> Iterator[tuple[LocalObjectStore, Callable[[str], None], int]]:
    """A filesystem store holding a 1-byte file per sweepable object; the per-row delete is delete_keys."""
    store = LocalObjectStore(tmp, signing_secret="bench")
    made: set[Path] = set()
    n = 0
    for key in sweepable_keys(engine):
        path = tmp / key
        if path.parent not in made:
            path.parent.mkdir(parents=True, exist_ok=True)
            made.add(path.parent)
        path.write_bytes(b"x")
        n += 1
    yield store, lambda key: store.delete_keys([key]), n


@contextlib.contextmanager
def s3_store(engine: sa.Engine, tmp: Path) -> Iterator[tuple[S3ObjectStore, Callable[[str], None], int]]:
    """moto's S3 server (own process, over HTTP) holding a 1-byte object per sweepable object; the per-row
    delete is one DeleteObject request, like the seed's DeleteObjectCommand."""
    import boto3

    keys_file = tmp / "keys.txt"
    with keys_file.open("w", encoding="utf-8") as out:
        n = sum(out.write(f"{key}\n") > 0 for key in sweepable_keys(engine))
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    server = subprocess.Popen(
        [
            sys.executable,
            str(Path(__file__).with_name("s3_seeded_server.py")),
            "--port",
            str(port),
            "--bucket",
            BUCKET,
            "--keys-file",
            str(keys_file),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert server.stdout is not None
        if server.stdout.readline().strip() != "ready":
            raise RuntimeError("the S3 server did not start")
        client = boto3.client(
            "s3",
            endpoint_url=f"http://127.0.0.1:{port}",
            region_name="us-east-1",
            aws_access_key_id="bench",
            aws_secret_access_key="bench",
        )
        store = S3ObjectStore(client, BUCKET)
        yield store, lambda key: client.delete_object(Bucket=BUCKET, Key=key), n
    finally:
        server.terminate()
        server.wait(timeout=30)


def remaining_objects(store: ObjectStore) -> int:
    return sum(1 for _ in store.list_objects())


def baseline(
    engine: sa.Engine, delete_one: Callable[[str], None], sample: int
) -> tuple[float, float, float, int]:
    """Seed 000's loop: select the orphans, then per row delete the object and update the row."""
    started = time.perf_counter()
    with engine.connect() as conn:
        orphans = conn.execute(
            sa.text(
                f"""SELECT o.id, o.storage_key FROM {C}.stored_objects o
                    LEFT JOIN {C}.object_references r ON r.object_id = o.id AND r.released_at IS NULL
                    WHERE r.id IS NULL AND o.status = 'verified'
                      AND o.created_at < now() - interval '7 days'"""
            )
        ).all()
    query_time = time.perf_counter() - started
    # Only unheld ones, so the sample does not destroy the held objects the platform must keep.
    with engine.connect() as conn:
        held = {
            i
            for (i,) in conn.execute(
                sa.text(f"SELECT r.object_id FROM {C}.object_references r WHERE r.owner_id = 'held-owner'")
            )
        }
    todo = [row for row in orphans if row.id not in held][:sample]
    storage = 0.0
    started = time.perf_counter()
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        for object_id, key in todo:
            t = time.perf_counter()
            delete_one(key)
            storage += time.perf_counter() - t
            conn.execute(
                sa.text(
                    f"UPDATE {C}.stored_objects SET status = 'deleted', deleted_at = now() WHERE id = :id"
                ),
                {"id": object_id},
            )
    per_row = (time.perf_counter() - started) / len(todo)
    return query_time, per_row, storage / len(todo), len(orphans)


def catalog_floor(engine: sa.Engine, run_id: str) -> tuple[float, int]:
    """The least catalog work any sweep of these objects must do, timed and rolled back: mark the rows the
    sweep deleted `deleted` in one UPDATE (`id = ANY(array)`) and write their audit rows in one INSERT from
    arrays, in one transaction, with no checks (no holds, no reference re-check, no delete queue). Run after
    the sweep, on the rows it deleted (read first, untimed), so it cannot disturb it; (seconds, rows)."""
    with engine.connect() as conn:
        rows = conn.execute(
            sa.text(
                f"""SELECT CAST(target_id AS bigint), storage_key, owner_id, size_bytes
                    FROM {C}.retention_audit WHERE run_id = :r AND target_type = 'object'"""
            ),
            {"r": run_id},
        ).all()
        ids, keys, owners, sizes = (list(column) for column in zip(*rows, strict=True)) if rows else ([],) * 4
        started = time.perf_counter()
        marked = conn.execute(
            sa.text(
                f"UPDATE {C}.stored_objects SET status = 'deleted', deleted_at = now() "
                "WHERE id = ANY(CAST(:ids AS bigint[]))"
            ),
            {"ids": ids},
        ).rowcount
        conn.execute(
            sa.text(
                f"""INSERT INTO {C}.retention_audit
                      (run_id, policy, action, target_type, target_id, storage_key, owner_id, size_bytes,
                       reason, dry_run)
                    SELECT 'floor', 'orphaned_objects', 'deleted', 'object', id::text, key, owner, size,
                           'floor', false
                    FROM unnest(CAST(:ids AS bigint[]), CAST(:keys AS text[]), CAST(:owners AS text[]),
                                CAST(:sizes AS bigint[])) AS v(id, key, owner, size)"""
            ),
            {"ids": ids, "keys": keys, "owners": owners, "sizes": sizes},
        )
        seconds = time.perf_counter() - started
        conn.rollback()
    return seconds, marked


def bench_store(kind: str, engine: sa.Engine, args: argparse.Namespace) -> tuple[float, float, bool]:
    """Build the catalog, fill the store, run both contenders; returns (baseline s, platform s, ok)."""
    # The baseline consumes `sample` orphans, so build that many more for the platform's 100k.
    eligible_built = args.eligible + args.sample
    print(f"\n== store: {kind} ==")
    print(f"building catalog: {args.objects:,} objects, {eligible_built:,} eligible orphans, {HELD:,} held")
    started = time.perf_counter()
    build_catalog(engine, args.objects, eligible_built)
    built = time.perf_counter() - started
    with tempfile.TemporaryDirectory(prefix="retention-bench-") as tmp:
        started = time.perf_counter()
        with (local_store if kind == "local" else s3_store)(engine, Path(tmp)) as (store, delete_one, n):
            print(
                f"  catalog in {built:.1f}s, {n:,} objects in the store in "
                f"{time.perf_counter() - started:.1f}s"
            )

            query_time, per_row, storage_per_row, candidates = baseline(engine, delete_one, args.sample)
            baseline_total = query_time + per_row * args.eligible
            baseline_catalog = query_time + (per_row - storage_per_row) * args.eligible
            print(
                f"baseline (seed 000 per-row loop): candidate query {query_time:.2f}s for {candidates:,} "
                f"rows; {per_row * 1000:.2f} ms/row ({storage_per_row * 1000:.2f} ms of it the storage "
                f"delete) over a {args.sample:,}-row sample -> {baseline_total:.1f}s extrapolated for "
                f"{args.eligible:,} rows ({baseline_catalog:.1f}s of catalog work)"
            )

            started = time.perf_counter()
            report = run_sweep(
                engine,
                store,
                load_sources_config(),
                parse_retention_config({"storage_delete_workers": args.delete_workers}),
                run_id=f"bench-{kind}",
                now=datetime.now(UTC),
                dry_run=False,
            )
            platform = time.perf_counter() - started
            orphans = report.policies[ORPHANED_OBJECTS]
            with engine.connect() as conn:
                held_left = conn.execute(
                    sa.text(
                        f"""SELECT count(*) FROM {C}.stored_objects o JOIN {C}.object_references r
                            ON r.object_id = o.id WHERE r.owner_id = 'held-owner' AND o.status = 'verified'"""
                    )
                ).scalar_one()
                audited = conn.execute(
                    sa.text(f"SELECT count(*) FROM {C}.retention_audit WHERE run_id = :r"),
                    {"r": f"bench-{kind}"},
                ).scalar_one()
            left = remaining_objects(store)
    print(
        f"platform sweep: {platform:.1f}s; orphaned_objects candidates {orphans.candidates:,}, "
        f"deleted {orphans.deleted:,}, skipped {dict(orphans.skipped)}; audit rows {audited:,}; "
        f"held objects kept {held_left:,}/{HELD:,}; objects left in the store {left:,}"
    )
    catalog = platform - report.waiting_seconds
    print(
        f"  storage delete_keys {report.storage_seconds:.1f}s in a background thread; the sweep's own "
        f"catalog work {catalog:.1f}s (vs {baseline_catalog:.1f}s per-row: "
        f"{baseline_catalog / catalog:.1f}x), then {report.waiting_seconds:.1f}s waiting for storage"
    )
    print_profile()
    floor, floor_rows = catalog_floor(engine, f"bench-{kind}")
    budget = baseline_total / 20
    print(
        f"  catalog floor (one UPDATE marking the {floor_rows:,} deleted rows + one INSERT of their audit "
        f"rows, one transaction, no checks, rolled back): {floor:.1f}s; 20x the per-row loop leaves "
        f"{budget:.1f}s for the whole sweep: "
        + ("below this floor, so out of reach here" if floor > budget else "above this floor")
    )
    print(
        f"speed-up on {kind}: {baseline_total / platform:.1f}x (target >= 20x); under 60 s: {platform < 60}; "
        f"platform / catalog floor {floor / platform:.2f}"
    )
    ok = orphans.deleted == args.eligible and held_left == HELD and left == HELD and platform < 60
    return baseline_total, platform, ok


STATEMENT_TIMES: dict[str, list[float]] = {}


def profile_statements() -> None:
    """Time every statement the sweep runs through SweepContext.exec (grouped by their first words)."""
    import re

    from core.retention.context import SweepContext

    plain = SweepContext.exec

    explained: set[str] = set()

    def timed(self: SweepContext, sql: str, **params: object) -> sa.CursorResult:
        head = re.sub(r"\s+", " ", sql).strip()[:60]
        if sql.lstrip().startswith("WITH") and head not in explained:
            # The first run of each statement is also explained, in a savepoint rolled back after.
            explained.add(head)
            with contextlib.suppress(Exception):
                nested = self.conn.begin_nested()
                plan = plain(self, "EXPLAIN (ANALYZE, BUFFERS) " + sql, **params).scalars().all()
                nested.rollback()
                print(f"  EXPLAIN (ANALYZE, BUFFERS) {head} ...\n    " + "\n    ".join(plan))
        started = time.perf_counter()
        try:
            return plain(self, sql, **params)
        finally:
            label = re.sub(r"\s+", " ", sql).strip()[:110]
            STATEMENT_TIMES.setdefault(label, []).append(time.perf_counter() - started)

    SweepContext.exec = timed  # type: ignore[method-assign]


def print_profile() -> None:
    if not STATEMENT_TIMES:
        return
    print("  slowest statements of the sweep (total s, calls, first words):")
    ranked = sorted(STATEMENT_TIMES.items(), key=lambda item: -sum(item[1]))
    for label, times in ranked[:12]:
        print(f"    {sum(times):7.2f}s {len(times):5d}x  {label}")
    STATEMENT_TIMES.clear()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--store", choices=("local", "s3", "both"), default="both")
    parser.add_argument("--objects", type=int, default=1_000_000)
    parser.add_argument("--eligible", type=int, default=100_000)
    parser.add_argument("--sample", type=int, default=2_000, help="baseline rows actually processed")
    parser.add_argument(
        "--delete-workers",
        type=int,
        default=1,
        help="retention.yaml storage_delete_workers (batches of 1,000 keys deleted in parallel)",
    )
    parser.add_argument(
        "--profile", action="store_true", help="print the sweep's slowest statements (time, calls)"
    )
    args = parser.parse_args(argv)
    if args.profile:
        profile_statements()
    print(f"machine: {os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f}")

    url = database_url()
    upgrade_catalog(url)
    engine = get_engine(url)
    kinds = ("local", "s3") if args.store == "both" else (args.store,)
    results = {kind: bench_store(kind, engine, args) for kind in kinds}
    print("\nsummary (seed-style per-row loop vs platform sweep, 1 eligible object = 1 row):")
    for kind, (base, ours, ok) in results.items():
        print(
            f"  {kind:<6} baseline {base:8.1f}s  platform {ours:5.1f}s  {base / ours:5.1f}x  "
            f"checks {'ok' if ok else 'FAILED'}"
        )
    print(f"peak RSS of this process: {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB")
    return 0 if all(ok for _, _, ok in results.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
