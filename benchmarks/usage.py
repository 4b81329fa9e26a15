"""Benchmark: the daily usage snapshot and cost report over a 1M-object catalog, against a naive baseline.

Builds the catalog with generate_series (1M stored objects, ~1.1M references of which 10 % point at
shared content, WebP variants for 30 %, backup copies for half, deleted and orphaned objects, 10k owners
with tiers, and a source table still holding base64), then times:

- platform: `take_usage_snapshot` (set-based SQL) + the daily cost report (compute, write tables,
  render and store the HTML/PNG/CSV report);
- baseline: the naive way, pulling objects and references into pandas and grouping there (per-owner
  per-kind bytes and orphan count only, i.e. less work than the platform does).

Prints both times, their ratio and peak RSS after each (the platform runs first, so its figure is its own).

    PYTHONPATH=. python benchmarks/usage.py [--objects 1000000] [--owners 10000] [--database-url URL]
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import resource
import tempfile
import time
from pathlib import Path

import pandas as pd
import sqlalchemy as sa

from core.catalog.db import get_engine, upgrade_catalog
from core.catalog.models import CATALOG_SCHEMA as C
from core.objectstore.local import LocalObjectStore
from core.sources import load_sources_config
from core.usage.costs import UsageFigures, compute_cost_report
from core.usage.pricing import load_price_table
from core.usage.quotas import load_quota_config
from core.usage.report import publish_report, write_cost_tables
from core.usage.snapshot import load_summaries, take_usage_snapshot

DAY = dt.date(2026, 3, 10)


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def build_catalog(engine: sa.Engine, objects: int, owners: int) -> None:
    """Fill the catalog and a base64 source table with generate_series (seconds, not minutes)."""
    with engine.begin() as conn:
        for table in ("files", "users"):
            conn.execute(sa.text(f"DROP TABLE IF EXISTS public.{table}"))
        for table in (
            "usage_snapshots",
            "usage_summaries",
            "owner_quotas",
            "backup_object_copies",
            "variants",
            "object_references",
            "stored_objects",
        ):
            conn.execute(sa.text(f"TRUNCATE {C}.{table} CASCADE"))
        conn.execute(sa.text("CREATE TABLE public.users (id BIGINT PRIMARY KEY, tier TEXT)"))
        conn.execute(
            sa.text("""INSERT INTO public.users
                SELECT i, CASE WHEN i % 10 = 0 THEN 'paid' ELSE 'free' END FROM generate_series(1, :n) i"""),
            {"n": owners},
        )
        conn.execute(sa.text("CREATE TABLE public.files (id BIGINT PRIMARY KEY, user_id BIGINT, data TEXT)"))
        conn.execute(
            sa.text("""INSERT INTO public.files
                SELECT i, 1 + i % :owners, repeat(md5(i::text), 64) FROM generate_series(1, :n) i"""),
            {"owners": owners, "n": max(objects // 100, 1)},
        )
        conn.execute(
            sa.text(f"""INSERT INTO {C}.stored_objects
                (sha256, size_bytes, mime_type, kind, storage_key, provider, status, created_at, deleted_at)
                SELECT md5(i::text) || md5((-i)::text), 20000 + (i::bigint * 7919) % 2000000,
                       'image/jpeg', CASE WHEN i % 20 = 0 THEN 'document' ELSE 'image' END,
                       'originals/' || i, 'local',
                       CASE WHEN i % 50 = 0 THEN 'deleted' ELSE 'verified' END,
                       timestamptz '2026-02-08' + (i % 2880) * interval '15 minutes',
                       CASE WHEN i % 50 = 0 THEN timestamptz '2026-03-01' END
                FROM generate_series(1, :n) i"""),
            {"n": objects},
        )
        # one reference per object (orphans: every 97th has none) + 10 % extra references to shared content
        conn.execute(
            sa.text(f"""INSERT INTO {C}.object_references
                (object_id, owner_id, origin, source_name, source_table, source_pk, json_path, created_at)
                SELECT id, (1 + id % :owners)::text, 'migration', 'stories', 'stories', id::text, '',
                       created_at
                FROM {C}.stored_objects WHERE id % 97 <> 0
                UNION ALL
                SELECT id, (1 + (id * 31) % :owners)::text, 'migration', 'stories', 'stories',
                       id::text, 'copy', created_at
                FROM {C}.stored_objects WHERE id % 10 = 0"""),
            {"owners": owners},
        )
        conn.execute(
            sa.text(f"""INSERT INTO {C}.variants
                (parent_object_id, variant_name, spec_hash, status, storage_key, size_bytes, mime_type,
                 created_at)
                SELECT id, 'webp', 's', 'ready', 'variants/' || id || '/webp', size_bytes / 3, 'image/webp',
                       created_at
                FROM {C}.stored_objects WHERE id % 10 < 3 AND status = 'verified'""")
        )
        conn.execute(
            sa.text(f"""INSERT INTO {C}.backup_object_copies (sha256, backup_key, size_bytes, copied_at)
                SELECT sha256, 'objects/' || sha256, size_bytes, created_at
                FROM {C}.stored_objects WHERE id % 2 = 0""")
        )
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(sa.text("VACUUM ANALYZE"))


def platform_run(engine: sa.Engine, store_root: Path) -> tuple[float, float]:
    started = time.perf_counter()
    with engine.begin() as conn:
        take_usage_snapshot(conn, DAY, load_sources_config(), load_quota_config())
    snapshot_s = time.perf_counter() - started
    started = time.perf_counter()
    prices = load_price_table()
    with engine.begin() as conn:
        report = compute_cost_report(
            UsageFigures.from_summaries(load_summaries(conn, DAY, DAY)), prices, "day", DAY
        )
        write_cost_tables(conn, report)
    publish_report(LocalObjectStore(store_root, signing_secret="bench"), report, prices)
    return snapshot_s, time.perf_counter() - started


def naive_baseline(engine: sa.Engine) -> float:
    """Pull the rows into pandas and group there (what a notebook would do)."""
    started = time.perf_counter()
    with engine.connect() as conn:
        objects = pd.read_sql_query(
            sa.text(f"SELECT id, kind, size_bytes FROM {C}.stored_objects WHERE status = 'verified'"), conn
        )
        refs = pd.read_sql_query(
            sa.text(f"SELECT object_id, owner_id FROM {C}.object_references WHERE released_at IS NULL"), conn
        )
    pairs = refs.drop_duplicates()
    joined = pairs.merge(objects, left_on="object_id", right_on="id")
    joined.groupby(["owner_id", "kind"]).agg(bytes=("size_bytes", "sum"), n=("id", "count"))
    int((~objects["id"].isin(refs["object_id"])).sum())
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--objects", type=int, default=1_000_000)
    parser.add_argument("--owners", type=int, default=10_000)
    parser.add_argument("--database-url", default=os.environ.get("BENCH_DATABASE_URL"))
    args = parser.parse_args()

    url = args.database_url
    if not url:
        from core.embedded_postgres import start_embedded_postgres

        url = start_embedded_postgres(
            Path("/tmp") / f"mp-bench-usage-{os.getpid()}", delete_on_exit=True
        ).ensure_database("bench_usage")
    upgrade_catalog(url)
    engine = get_engine(url)
    started = time.perf_counter()
    build_catalog(engine, args.objects, args.owners)
    print(
        f"built catalog: {args.objects:,} objects, {args.owners:,} owners"
        f" in {time.perf_counter() - started:.1f}s"
    )

    with tempfile.TemporaryDirectory() as tmp:
        snapshot_s, report_s = platform_run(engine, Path(tmp))
    platform_rss = peak_rss_mb()
    baseline_s = naive_baseline(engine)
    baseline_rss = peak_rss_mb()
    total = snapshot_s + report_s
    print(f"usage snapshot (SQL):               {snapshot_s:6.2f}s")
    print(f"daily cost report (+HTML/PNG/CSV):  {report_s:6.2f}s")
    print(
        f"platform total:                     {total:6.2f}s   peak RSS {platform_rss:,.0f} MB"
        f"   ({'under' if total < 10 else 'OVER'} the 10 s target)"
    )
    print(
        f"baseline (rows into pandas):        {baseline_s:6.2f}s   peak RSS {baseline_rss:,.0f} MB"
        f"   (owner/kind bytes + orphans only)"
    )
    print(f"platform is {baseline_s / total:.1f}x the baseline's speed")
    load = os.getloadavg()
    print(f"load average during the run: {load[0]:.1f} / {load[1]:.1f} on {os.cpu_count()} CPUs")


if __name__ == "__main__":
    main()
