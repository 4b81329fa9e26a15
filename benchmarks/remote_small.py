"""Many small objects over a slow link: the seed-style script vs the floor vs the platform, one proxy.

    PYTHONPATH=. .venv/bin/python benchmarks/remote_small.py                 # 20,000 blobs, 50 ms
    PYTHONPATH=. .venv/bin/python benchmarks/remote_small.py --rows 2000     # quick, during development
    ... --latency-ms 80 --workers 32 --seed-sample 400 --reuse --workdir DIR

A store 20-80 ms away (R2, B2, S3 in another region) is simulated by moto's S3 server behind a TCP proxy
(tests/support/faults.py's FaultProxy with no faults and `latency`, in its own process) that holds every
request `--latency-ms` before forwarding it. The source is one generated table of `--rows` small images
(10-50 KB noise PNGs, one per row, as avatars or thumbnails: a few hundred distinct images, each row's
copy made unique by one row-specific pixel), base64 in a text column, owner in `user_id`.

Contenders, each on a fresh copy of the table (CREATE DATABASE ... TEMPLATE), each into its own bucket
behind the same proxy:

1. seed     - seed 000's migrate-to-object-storage.js shape: per row, in sequence, one PutObject, one
              autocommitted INSERT into story_images and one UPDATE of the row. At 50 ms a request a
              sequential run of 20,000 rows takes ~17 min, so it runs on the first `--seed-sample` rows
              and its time is extrapolated to all rows (said so in the output).
2. floor    - s5cmd-style: read the column, decode, hash, and PutObject with `--workers` concurrent
              requests; no type check, no catalog, no rewrite. One request per blob.
3. platform - core.migration.engine.migrate_source with config/migration.yaml, except `workers` (storage
              threads) = `--workers` and `batch_rows` = `--batch-rows`, as config/migration.yaml
              advises for a remote store.

Prints blobs/s of each, the ratios against the targets (platform >= 10x seed-style, >= 0.7 of the floor),
the platform's requests per blob by kind from the store's own counters (`StoreStats.by_action`, first
pass and a second, idle pass), and the sampled end-to-end re-read (`verify_references`: HEAD of every
reference and a full re-read and re-hash of 25 objects) with its own time.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import hashlib
import io
import os
import random
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path
from typing import Any

import sqlalchemy as sa

PROJECT_ROOT = Path(__file__).resolve().parents[1]
TABLE = "avatars"
DISTINCT = 300


# -- the proxy, in its own process (its threads must not share a GIL with the contenders) ---------------


def serve_proxy(upstream: str, latency: float) -> None:
    from tests.support.faults import FaultProxy

    proxy = FaultProxy(upstream, rate=0.0, latency=latency).start()
    print(proxy.endpoint, flush=True)
    with contextlib.suppress(KeyboardInterrupt):
        sys.stdin.read()  # until the driver closes our stdin
    proxy.stop()


@contextlib.contextmanager
def latency_proxy(upstream: str, latency: float):  # type: ignore[no-untyped-def]
    proc = subprocess.Popen(
        [sys.executable, __file__, "--proxy", upstream, str(latency)],
        cwd=PROJECT_ROOT,
        env={**os.environ, "PYTHONPATH": str(PROJECT_ROOT)},
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        yield proc.stdout.readline().strip()
    finally:
        assert proc.stdin is not None
        proc.stdin.close()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def client(endpoint: str, pool: int) -> Any:
    import boto3
    from botocore.config import Config

    from tests.support.services import S3_ACCESS_KEY, S3_REGION, S3_SECRET_KEY

    return boto3.client(
        "s3",
        endpoint_url=endpoint,
        region_name=S3_REGION,
        aws_access_key_id=S3_ACCESS_KEY,
        aws_secret_access_key=S3_SECRET_KEY,
        config=Config(max_pool_connections=pool, retries={"max_attempts": 1}),
    )


# -- the generated source -------------------------------------------------------------------------------


def generate(url: str, rows: int) -> int:
    """`rows` distinct 10-50 KB PNGs, base64, one per row; returns their decoded bytes."""
    import numpy as np
    import psycopg
    from PIL import Image

    from core.catalog.db import sqlalchemy_url

    rng = np.random.default_rng(15)
    bases = []
    for _ in range(DISTINCT):
        side = int(rng.integers(60, 129))  # 3 x side^2 bytes of noise: 10.8-49 KB as PNG
        bases.append(rng.integers(0, 256, size=(side, side, 3), dtype=np.uint8))
    dsn = sqlalchemy_url(url).replace("postgresql+psycopg://", "postgresql://")
    total = 0
    with psycopg.connect(dsn) as db:
        db.execute(f"CREATE TABLE {TABLE} (id integer PRIMARY KEY, user_id integer, photo text)")
        with db.cursor().copy(f"COPY {TABLE} (id, user_id, photo) FROM STDIN") as copy:
            for row_id in range(1, rows + 1):
                pixels = bases[row_id % DISTINCT].copy()
                pixels[0, 0] = (row_id & 255, (row_id >> 8) & 255, (row_id >> 16) & 255)
                out = io.BytesIO()
                Image.fromarray(pixels).save(out, format="PNG", compress_level=1)
                data = out.getvalue()
                total += len(data)
                copy.write_row((row_id, row_id % 997, base64.b64encode(data).decode("ascii")))
    return total


def source() -> Any:
    from core.sources import BlobSource

    return BlobSource.model_validate(
        {"name": TABLE, "table": TABLE, "owner_column": "user_id", "column": "photo", "format": "base64"}
    )


# -- the contenders -------------------------------------------------------------------------------------


def run_seed(url: str, endpoint: str, bucket: str, sample: int) -> tuple[int, float]:
    """Seed 000's loop on the first `sample` rows: PUT, INSERT, UPDATE per row, in sequence."""
    import psycopg

    from core.catalog.db import sqlalchemy_url

    s3 = client(endpoint, 4)
    dsn = sqlalchemy_url(url).replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(dsn, autocommit=True) as db:
        db.execute(
            "CREATE TABLE IF NOT EXISTS story_images (id SERIAL PRIMARY KEY, story_id INTEGER NOT NULL, "
            "image_number INTEGER NOT NULL, image_url VARCHAR(500) NOT NULL, created_at TIMESTAMP "
            "DEFAULT NOW())"
        )
        started = time.perf_counter()
        rows = db.execute(f"SELECT * FROM {TABLE} ORDER BY id LIMIT %s", [sample]).fetchall()
        for row_id, _user, photo in rows:
            data = base64.b64decode(photo)
            key = f"{TABLE}/{row_id}/image-0.jpg"
            s3.put_object(Bucket=bucket, Key=key, Body=data, ContentType="image/jpeg")
            image_url = f"https://media.magicalstory.com/{key}"
            db.execute(
                "INSERT INTO story_images (story_id, image_number, image_url) VALUES (%s, %s, %s)",
                [row_id, 0, image_url],
            )
            db.execute(f"UPDATE {TABLE} SET photo = %s WHERE id = %s", [image_url, row_id])
        return len(rows), time.perf_counter() - started


def run_floor(url: str, endpoint: str, bucket: str, workers: int) -> tuple[int, float]:
    """Read, decode, hash, PUT with `workers` requests in flight: the least a migration does."""
    from core.catalog.db import get_engine
    from core.keys import original_key

    s3 = client(endpoint, workers + 4)
    engine = get_engine(url)
    started = time.perf_counter()

    def put(text: str) -> None:
        data = base64.b64decode(text)
        sha256 = hashlib.sha256(data).hexdigest()
        s3.put_object(Bucket=bucket, Key=original_key(sha256, "png"), Body=data, ContentType="image/png")

    blobs = 0
    with engine.connect() as conn, ThreadPoolExecutor(workers) as pool:
        result = conn.execution_options(stream_results=True, max_row_buffer=500).execute(
            sa.text(f"SELECT photo FROM {TABLE}")
        )
        pending = []
        for (text,) in result:
            pending.append(pool.submit(put, text))
            blobs += 1
            if len(pending) >= 4 * workers:  # bounded: like s5cmd's worker queue
                pending.pop(0).result()
        for future in pending:
            future.result()
    return blobs, time.perf_counter() - started


def run_platform(url: str, endpoint: str, bucket: str, workers: int, batch_rows: int) -> dict[str, Any]:
    from core.catalog.db import get_engine, upgrade_catalog
    from core.migration.checks import verify_references
    from core.migration.engine import migrate_source
    from core.migration.settings import load_migration_config
    from core.objectstore.retry import StoreStats
    from core.objectstore.s3 import S3ObjectStore

    upgrade_catalog(url)  # one-time schema setup, not part of the measured migration
    engine = get_engine(url)
    settings = replace(load_migration_config().engine, workers=workers, batch_rows=batch_rows)
    store = S3ObjectStore(client(endpoint, workers + 8), bucket)
    started = time.perf_counter()
    stats = migrate_source(engine, store, source(), settings=settings)
    elapsed = time.perf_counter() - started
    first = dict(store.stats.by_action)
    store.stats = store.retry.stats = StoreStats()
    again = migrate_source(engine, store, source(), settings=settings)
    second = dict(store.stats.by_action)
    store.stats = store.retry.stats = StoreStats()
    started = time.perf_counter()
    check = verify_references(engine, store, source(), sample=25, workers=workers)
    check_seconds = time.perf_counter() - started
    return {
        "blobs": stats.blobs_moved,
        "bytes": stats.bytes_moved,
        "elapsed": elapsed,
        "quarantined": stats.quarantined,
        "first": first,
        "second": second,
        "second_moved": again.blobs_moved,
        "check": check,
        "check_requests": dict(store.stats.by_action),
        "check_seconds": check_seconds,
    }


# -- the driver -----------------------------------------------------------------------------------------


def admin(server_url: str) -> sa.Engine:
    return sa.create_engine(server_url, isolation_level="AUTOCOMMIT", poolclass=sa.pool.NullPool)


def recreate(server_url: str, name: str, template: str | None = None) -> None:
    with admin(server_url).connect() as conn:
        conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        conn.execute(sa.text(f'CREATE DATABASE "{name}"' + (f' TEMPLATE "{template}"' if template else "")))


def load() -> str:
    return "load average " + " ".join(f"{x:.1f}" for x in os.getloadavg())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rows", type=int, default=20_000)
    parser.add_argument("--latency-ms", type=float, default=50.0)
    parser.add_argument("--workers", type=int, default=32, help="concurrent requests (floor, platform)")
    parser.add_argument("--batch-rows", type=int, default=256)
    parser.add_argument("--seed-sample", type=int, default=400, help="rows the seed-style loop runs")
    parser.add_argument("--methods", default="seed,floor,platform")
    parser.add_argument("--workdir", default="/tmp/media-remote-small-bench")
    parser.add_argument("--reuse", action="store_true", help="keep the server and generated table")
    parser.add_argument("--proxy", nargs=2, metavar=("UPSTREAM", "LATENCY"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.proxy:
        serve_proxy(args.proxy[0], float(args.proxy[1]))
        return 0

    from core.embedded_postgres import start_embedded_postgres
    from tests.support.services import s3_client, s3_server

    workdir = Path(args.workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    print(f"==> {os.cpu_count()} cores, shared; {load()}", flush=True)
    server = start_embedded_postgres(workdir / "pg", delete_on_exit=not args.reuse)
    template = f"small_template_{args.rows}"
    marker = f"remote_small rows={args.rows} bytes="
    with admin(server.url()).connect() as conn:
        comment = conn.execute(
            sa.text("SELECT shobj_description(oid, 'pg_database') FROM pg_database WHERE datname = :n"),
            {"n": template},
        ).scalar()
    if args.reuse and comment and comment.startswith(marker):
        total = int(comment[len(marker) :])
        print(f"==> reusing {template}: {args.rows:,} rows, {total / 1e6:,.1f} MB of images", flush=True)
    else:
        recreate(server.url(), template)
        started = time.perf_counter()
        total = generate(server.url(template), args.rows)
        with admin(server.url()).connect() as conn:
            conn.execute(sa.text(f"COMMENT ON DATABASE \"{template}\" IS '{marker}{total}'"))
        print(
            f"==> generated {args.rows:,} images ({total / 1e6:,.1f} MB, {total / args.rows / 1e3:.1f} KB "
            f"each) in {time.perf_counter() - started:.0f} s",
            flush=True,
        )
    latency = args.latency_ms / 1000
    results: dict[str, float] = {}
    with s3_server() as upstream, latency_proxy(upstream, latency) as endpoint:
        print(f"==> moto at {upstream}, behind a {args.latency_ms:g} ms proxy at {endpoint}", flush=True)
        for method in [m for m in args.methods.split(",") if m]:
            name = f"small_{method}"
            recreate(server.url(), name, template)
            bucket = f"small-{method}-{os.getpid()}"
            s3_client(upstream).create_bucket(Bucket=bucket)
            print(f"--> {method} ({load()})", flush=True)
            if method == "seed":
                n, seconds = run_seed(server.url(name), endpoint, bucket, args.seed_sample)
                rate = n / seconds
                print(
                    f"    seed-style: {n:,} rows in {seconds:.1f} s = {rate:.1f} blobs/s "
                    f"({seconds / n * 1000:.1f} ms/row); extrapolated to {args.rows:,} rows: "
                    f"{args.rows / rate:,.0f} s (SAMPLE of {n:,}, not a full run)",
                    flush=True,
                )
            elif method == "floor":
                n, seconds = run_floor(server.url(name), endpoint, bucket, args.workers)
                rate = n / seconds
                print(f"    floor: {n:,} blobs in {seconds:.1f} s = {rate:.1f} blobs/s", flush=True)
            else:
                out = run_platform(server.url(name), endpoint, bucket, args.workers, args.batch_rows)
                rate = out["blobs"] / out["elapsed"]
                first = out["first"]
                per_blob = sum(first.values()) / max(1, out["blobs"])
                print(
                    f"    platform: {out['blobs']:,} blobs ({out['quarantined']} quarantined) in "
                    f"{out['elapsed']:.1f} s = {rate:.1f} blobs/s\n"
                    f"    requests on the first pass: {first} = {per_blob:.2f} per blob (target <= 1.2)\n"
                    f"    second pass: {out['second_moved']} blobs moved, requests {out['second'] or 0}\n"
                    f"    reference check (HEAD of every reference, 25 objects re-read and re-hashed): "
                    f"{out['check_seconds']:.1f} s, ok={out['check'].ok}, requests {out['check_requests']}",
                    flush=True,
                )
            results[method] = rate
            with admin(server.url()).connect() as conn:
                conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    print(f"\nResults: {args.rows:,} small images, {args.latency_ms:g} ms per request ({load()})")
    for method, rate in results.items():
        print(f"  {method:<9} {rate:8.1f} blobs/s  -> {args.rows / rate:8.0f} s for {args.rows:,}")
    if "platform" in results and "seed" in results:
        print(f"  platform / seed-style: {results['platform'] / results['seed']:.1f}x   (target >= 10x)")
    if "platform" in results and "floor" in results:
        print(f"  platform / floor:      {results['platform'] / results['floor']:.2f}    (target >= 0.7)")
    return 0


if __name__ == "__main__":
    random.seed(15)
    sys.exit(main())
