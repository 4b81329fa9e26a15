"""Migration benchmark: the seed's script vs the floor vs the platform, on the same generated data.

    PYTHONPATH=. python benchmarks/migration.py --scale 20          # >= 2 GB of legacy tables
    PYTHONPATH=. python benchmarks/migration.py --scale 0.5         # quick, during development
    ... --reuse --workdir DIR      # keep the server and generated databases in DIR for the next run
    ... --store s3                 # the three contenders against an S3-compatible server over HTTP (moto)

Generates the demo legacy database once into a template database on an embedded PostgreSQL under
--workdir, then measures, each in its own subprocess on a fresh copy (CREATE DATABASE ... TEMPLATE) and
an empty local object store:

1. seed   - a faithful Python port of seed 000's migrate-to-object-storage.js, applied to all four blob
            tables: SELECT * of the table, per-image upload to `<table>/<id>/image-<i>.jpg`, per-image
            INSERT into a story_images-like table (autocommit, as node-postgres does), per-row UPDATE.
2. floor  - one pass that only reads the blob column (server-side cursor), decodes, hashes and writes
            each blob to the same object store, nothing else (no type check, no catalog, no rewrite).
3. platform - core.migration.engine.migrate_source with config/migration.yaml, every source.

Prints decoded MB/s of each, the ratios, and each subprocess's peak RSS (ru_maxrss); `--flat-scale`
also runs the platform on a smaller database to show its peak RSS does not grow with the data.
Peak RSS is each child's VmHWM (ru_maxrss is inherited across fork+exec on Linux).
"""

from __future__ import annotations

import argparse
import base64
import binascii
import contextlib
import hashlib
import json
import os
import re
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import sqlalchemy as sa

PROJECT_ROOT = Path(__file__).resolve().parents[1]
BLOB_TABLES = ("stories", "characters", "files", "story_jobs")
METHODS = ("seed", "floor", "platform")


# -- the three contenders (run in a child process) ----------------------------------------------------


def _store(root: Path):  # type: ignore[no-untyped-def]
    """The local store under `root`, or with --store s3 the bucket named like `root` on the S3 server."""
    endpoint = os.environ.get("BENCH_S3_ENDPOINT")
    if endpoint:
        from core.objectstore.s3 import S3ObjectStore
        from tests.support.services import s3_client

        return S3ObjectStore(s3_client(endpoint), bucket=root.name)
    from core.objectstore.local import LocalObjectStore

    return LocalObjectStore(root, signing_secret="bench")


def _node_buffer_from_base64(text: str) -> bytes:
    """Node's Buffer.from(s, 'base64'): lenient, skips characters outside either alphabet, no padding."""
    try:
        return base64.b64decode(text)  # non-strict: drops non-alphabet characters, like Node
    except (binascii.Error, ValueError):
        cleaned = re.sub(r"[^A-Za-z0-9+/]", "", text.replace("-", "+").replace("_", "/"))
        cleaned = cleaned[: len(cleaned) - (1 if len(cleaned) % 4 == 1 else 0)]
        return base64.b64decode(cleaned + "=" * (-len(cleaned) % 4))


def run_seed(url: str, root: Path) -> int:
    """Port of migrate-to-object-storage.js (see the seed), generalised to the four blob tables."""
    import psycopg
    from psycopg.rows import dict_row

    from core.catalog.db import sqlalchemy_url

    store = _store(root)
    dsn = sqlalchemy_url(url).replace("postgresql+psycopg://", "postgresql://")
    decoded = 0
    with psycopg.connect(dsn, autocommit=True, row_factory=dict_row) as db:
        db.execute(
            "CREATE TABLE IF NOT EXISTS story_images (id SERIAL PRIMARY KEY, source_table TEXT, "
            "story_id INTEGER NOT NULL, image_number INTEGER NOT NULL, image_url VARCHAR(500) NOT NULL, "
            "caption TEXT, created_at TIMESTAMP DEFAULT NOW())"
        )

        def upload(table: str, row_id: int, i: int, data: str, caption: Any) -> str:
            nonlocal decoded
            image_buffer = _node_buffer_from_base64(data)  # Buffer.from(images[i].data, 'base64')
            image_key = f"{table}/{row_id}/image-{i}.jpg"
            if image_buffer:
                store.put_bytes(
                    image_key,
                    image_buffer,
                    sha256=hashlib.sha256(image_buffer).hexdigest(),  # our store insists on a checksum
                    content_type="image/jpeg",
                )
            decoded += len(image_buffer)
            image_url = f"https://media.magicalstory.com/{image_key}"
            db.execute(
                "INSERT INTO story_images (source_table, story_id, image_number, image_url, caption) "
                "VALUES (%s, %s, %s, %s, %s)",
                [table, row_id, i, image_url, caption],
            )
            return image_url

        # 1. Fetch all stories from database
        for story in db.execute("SELECT * FROM stories").fetchall():
            story_data = json.loads(story["data"]) if story["data"] else {}
            images = story_data.get("images") or []
            for i in range(len(images)):
                image_url = upload(
                    "stories", story["id"], i, images[i].get("data") or "", images[i].get("caption")
                )
                images[i] = {"url": image_url, "caption": images[i].get("caption")}
            db.execute("UPDATE stories SET data = %s WHERE id = %s", [json.dumps(story_data), story["id"]])
        for character in db.execute("SELECT * FROM characters").fetchall():
            photo = character["photo"] or ""
            image_url = upload("characters", character["id"], 0, photo.split(",", 1)[-1], None)
            db.execute("UPDATE characters SET photo = %s WHERE id = %s", [image_url, character["id"]])
        for file in db.execute("SELECT * FROM files").fetchall():
            image_url = upload("files", file["id"], 0, file["data"] or "", None)
            db.execute("UPDATE files SET data = %s WHERE id = %s", [image_url, file["id"]])
        for job in db.execute("SELECT * FROM story_jobs").fetchall():
            result = job["result"]
            if not result:
                continue
            for i, page in enumerate(result.get("pages") or []):
                image = page.get("image") or {}
                if image.get("data") is not None:
                    image["data"] = upload("story_jobs", job["id"], i, image["data"], page.get("text"))
            if result.get("cover") is not None:
                result["cover"] = upload("story_jobs", job["id"], 999, result["cover"], None)
            db.execute("UPDATE story_jobs SET result = %s WHERE id = %s", [json.dumps(result), job["id"]])
    return decoded


def run_floor(url: str, root: Path) -> int:
    """Read the blob column with a server-side cursor, decode, hash, write: the least any migration does."""
    from core.blobcodec import CorruptBase64, decode_blob_text
    from core.catalog.db import get_engine
    from core.keys import original_key
    from core.migration.scan import parse_row
    from core.sources import load_sources_config

    store = _store(root)
    decoded = 0
    engine = get_engine(url)
    for source in load_sources_config().sources:
        column = f'"{source.column}"::text' if source.format == "jsonb" else f'"{source.column}"'
        with engine.connect() as conn:
            rows = conn.execution_options(stream_results=True, max_row_buffer=4).execute(
                sa.text(f"SELECT {column} FROM {source.qualified_table}")
            )
            for (value,) in rows:
                try:
                    _doc, candidates = parse_row(source, value)
                except ValueError:
                    continue
                for candidate in candidates:
                    if not isinstance(candidate.value, str):
                        continue
                    try:
                        data = decode_blob_text(candidate.value).data
                    except CorruptBase64:
                        continue
                    if not data:
                        continue
                    sha256 = hashlib.sha256(data).hexdigest()
                    store.put_bytes(
                        original_key(sha256, "bin"),
                        data,
                        sha256=sha256,
                        content_type="application/octet-stream",
                    )
                    decoded += len(data)
    return decoded


def run_platform(url: str, root: Path) -> int:
    from core.catalog.db import get_engine, upgrade_catalog
    from core.migration.engine import migrate_source
    from core.migration.settings import load_migration_config
    from core.sources import load_sources_config

    upgrade_catalog(url)  # one-time catalog schema setup, not part of the measured migration
    global _STARTED
    _STARTED = time.perf_counter()
    store = _store(root)
    settings = load_migration_config().engine
    decoded = 0
    for source in load_sources_config().sources:
        stats = migrate_source(get_engine(url), store, source, settings=settings)
        decoded += stats.bytes_moved
    return decoded


_STARTED = 0.0


def child(method: str, url: str, root: str) -> None:
    global _STARTED
    _STARTED = time.perf_counter()
    decoded = {"seed": run_seed, "floor": run_floor, "platform": run_platform}[method](url, Path(root))
    elapsed = time.perf_counter() - _STARTED
    print(json.dumps({"method": method, "decoded": decoded, "elapsed": elapsed, "rss_mb": peak_rss_mb()}))


def peak_rss_mb() -> float:
    """This process's peak RSS. VmHWM, not ru_maxrss: Linux carries ru_maxrss across fork+exec, so a
    child of the (large, data-generating) driver would report the driver's peak instead of its own."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


# -- the driver --------------------------------------------------------------------------------------


def admin_engine(server_url: str) -> sa.Engine:
    return sa.create_engine(server_url, isolation_level="AUTOCOMMIT", poolclass=sa.pool.NullPool)


def recreate(server_url: str, name: str, template: str | None = None) -> None:
    with admin_engine(server_url).connect() as conn:
        conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        suffix = f' TEMPLATE "{template}"' if template else ""
        conn.execute(sa.text(f'CREATE DATABASE "{name}"{suffix}'))


def measure(  # type: ignore[no-untyped-def]
    method: str, server, template: str, workdir: Path, s3_endpoint: str | None = None
) -> dict[str, Any]:
    name = f"bench_{method}"
    recreate(server.url(), name, template)
    objects = workdir / f"objects-{method}"
    shutil.rmtree(objects, ignore_errors=True)
    env = {**os.environ, "PYTHONPATH": str(PROJECT_ROOT)}
    if s3_endpoint:
        from tests.support.services import s3_client

        objects = workdir / f"bench-{method}-{os.getpid()}-{time.monotonic_ns() % 10**9}"
        s3_client(s3_endpoint).create_bucket(Bucket=objects.name)
        env["BENCH_S3_ENDPOINT"] = s3_endpoint
    print(f"--> {method} on a fresh copy of {template} ...", flush=True)
    out = subprocess.run(
        [sys.executable, __file__, "--child", method, server.url(name), str(objects)],
        cwd=PROJECT_ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    if out.returncode != 0:
        raise SystemExit(f"{method} failed:\n{out.stderr[-4000:]}")
    result = json.loads(out.stdout.strip().splitlines()[-1])
    result["mb_s"] = result["decoded"] / 1e6 / result["elapsed"]
    print(
        f"    {method:<9} {result['decoded'] / 1e6:>9,.1f} MB decoded in {result['elapsed']:>7.1f} s "
        f"= {result['mb_s']:>7.1f} MB/s, peak RSS {result['rss_mb']:>7.1f} MB",
        flush=True,
    )
    with admin_engine(server.url()).connect() as conn:
        conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    shutil.rmtree(objects, ignore_errors=True)
    if s3_endpoint:
        _empty_bucket(s3_endpoint, objects.name)  # the S3 server holds objects in memory
    return result


def _empty_bucket(endpoint: str, bucket: str) -> None:
    from tests.support.services import s3_client

    client = s3_client(endpoint)
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket):
        keys = [{"Key": item["Key"]} for item in page.get("Contents", [])]
        if keys:
            client.delete_objects(Bucket=bucket, Delete={"Objects": keys})
    client.delete_bucket(Bucket=bucket)


def generate(server, name: str, scale: float, reuse: bool = False) -> int:  # type: ignore[no-untyped-def]
    """Fill `name` at `scale`; with `reuse`, keep a complete earlier generation (marked by a comment)."""
    from core.demo.legacy_db import generate_legacy_database

    marker = f"bench scale={scale!r} bytes="
    if reuse:
        with admin_engine(server.url()).connect() as conn:
            comment = conn.execute(
                sa.text("SELECT shobj_description(oid, 'pg_database') FROM pg_database WHERE datname = :n"),
                {"n": name},
            ).scalar()
        if comment and comment.startswith(marker):
            total = int(comment[len(marker) :])
            print(f"==> reusing {name}: scale {scale}, {total / 1e6:,.0f} MB of legacy tables", flush=True)
            return total
    recreate(server.url(), name)
    started = time.perf_counter()
    summary = generate_legacy_database(server.url(name), scale=scale)
    print(
        f"==> generated {name}: scale {scale}, {summary.total_bytes / 1e6:,.0f} MB of legacy tables, "
        f"{summary.total_blobs} blobs, in {time.perf_counter() - started:.0f} s",
        flush=True,
    )
    with admin_engine(server.url()).connect() as conn:
        conn.execute(sa.text(f"COMMENT ON DATABASE \"{name}\" IS '{marker}{summary.total_bytes}'"))
    return summary.total_bytes


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--scale", type=float, default=20.0, help="demo database scale (20 = over 2 GB)")
    parser.add_argument(
        "--flat-scale", type=float, default=None, help="also run the platform at this smaller scale (RSS)"
    )
    parser.add_argument("--workdir", default="/tmp/media-migration-bench")
    parser.add_argument("--methods", default=",".join(METHODS))
    parser.add_argument(
        "--store",
        choices=("local", "s3"),
        default="local",
        help="object store: local files, or an S3-compatible server over HTTP (moto, in a subprocess)",
    )
    parser.add_argument(
        "--reuse",
        action="store_true",
        help="keep the server and generated databases in --workdir and reuse them on the next run",
    )
    parser.add_argument("--child", nargs=3, metavar=("METHOD", "URL", "OBJECTS"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        child(*args.child)
        return 0

    workdir = Path(args.workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    with contextlib.ExitStack() as stack:
        s3_endpoint = None
        if args.store == "s3":
            from tests.support.services import s3_server

            s3_endpoint = stack.enter_context(s3_server())
            print(f"==> S3-compatible server (moto) at {s3_endpoint}", flush=True)
        return drive(args, workdir, s3_endpoint)


def drive(args: argparse.Namespace, workdir: Path, s3_endpoint: str | None) -> int:
    from core.embedded_postgres import start_embedded_postgres

    server = start_embedded_postgres(workdir / "pg", delete_on_exit=not args.reuse)
    print(f"==> embedded PostgreSQL under {workdir}; machine: {os.cpu_count()} cores, shared", flush=True)
    template = f"bench_template_{args.scale:g}".replace(".", "_")
    total = generate(server, template, args.scale, args.reuse)
    methods = [m for m in args.methods.split(",") if m]
    results = {m: measure(m, server, template, workdir, s3_endpoint) for m in methods}
    flat = None
    if args.flat_scale:
        small = f"bench_template_{args.flat_scale:g}".replace(".", "_")
        small_total = generate(server, small, args.flat_scale, args.reuse)
        flat = (small_total, measure("platform", server, small, workdir, s3_endpoint))

    print()
    where = "S3 over HTTP (moto)" if s3_endpoint else "local object store"
    print(
        f"Results on {total / 1e6:,.0f} MB of legacy tables, {where} (decoded MB/s, peak RSS of each process)"
    )
    for method, result in results.items():
        print(f"  {method:<9} {result['mb_s']:>8.1f} MB/s   peak RSS {result['rss_mb']:>7.1f} MB")
    if "platform" in results and "seed" in results:
        ratio = results["platform"]["mb_s"] / results["seed"]["mb_s"]
        print(f"  platform / seed-style script: {ratio:.1f}x   (target >= 10x)")
    if "platform" in results and "floor" in results:
        ratio = results["platform"]["mb_s"] / results["floor"]["mb_s"]
        print(f"  platform / floor:             {ratio:.2f}    (target >= 0.6)")
    if flat and "platform" in results:
        small_total, small = flat
        print(
            f"  platform peak RSS: {small['rss_mb']:.0f} MB on {small_total / 1e6:,.0f} MB, "
            f"{results['platform']['rss_mb']:.0f} MB on {total / 1e6:,.0f} MB (target < 400 MB, flat)"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
