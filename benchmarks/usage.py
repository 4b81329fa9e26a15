"""Benchmark: the daily usage snapshot and cost report over a 1M-object catalog, against a naive baseline.

Builds the catalog with generate_series (1M stored objects, ~1.1M references of which 10 % point at
shared content, WebP variants for 30 %, backup copies for half, deleted and orphaned objects, 10k owners
with tiers, and a source table still holding base64), then times:

- platform: `take_usage_snapshot` (set-based SQL, writes its rows) + the daily cost report (compute,
  write tables, render and store the HTML/PNG/CSV report);
- baseline: the same outputs computed the naive way, every catalog row fetched into pandas and joined and
  grouped there (per-owner rows for originals, variants, backups and the database, quotas, and every
  summary figure incl. orphans, savings, peak hour and the largest files), then the same cost report.
  Its rows are checked equal to the platform's, so the two do the same work; it does not write its rows
  (which only flatters the baseline).

Prints both times, their ratio, peak RSS after each (the platform runs first, so its figure is its own)
and the verdict against the target (< 10 s for snapshot + cost report over 1M objects).

    PYTHONPATH=. python benchmarks/usage.py [--objects 1000000] [--owners 10000] [--database-url URL]
                                            [--reuse-catalog]
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import resource
import tempfile
import time
from pathlib import Path
from typing import Any

import pandas as pd
import sqlalchemy as sa

from core.catalog.db import get_engine, upgrade_catalog
from core.catalog.models import CATALOG_SCHEMA as C
from core.objectstore.local import LocalObjectStore
from core.sources import load_sources_config
from core.usage.costs import UsageFigures, compute_cost_report
from core.usage.pricing import load_price_table
from core.usage.quotas import QuotaConfig, load_quota_config
from core.usage.report import publish_report, write_cost_tables
from core.usage.snapshot import (
    FULL_SIZE_VARIANTS,
    PLATFORM_OWNER,
    UNOWNED,
    day_window,
    load_summaries,
    take_usage_snapshot,
)

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


def _cost_report(summary: dict[str, Any], store_root: Path, conn: sa.Connection) -> None:
    """The same daily cost report the platform produces, from a summary dict."""
    prices = load_price_table()
    report = compute_cost_report(UsageFigures.from_summaries(pd.DataFrame([summary])), prices, "day", DAY)
    write_cost_tables(conn, report)
    publish_report(LocalObjectStore(store_root, signing_secret="bench"), report, prices)


def naive_baseline(
    engine: sa.Engine, store_root: Path, quotas: QuotaConfig
) -> tuple[float, float, pd.DataFrame, dict[str, Any]]:
    """Pull every catalog row into pandas and compute the snapshot's rows and figures there.

    Returns (snapshot seconds, cost report seconds, per-owner rows, summary) so the caller can check the
    outputs equal the platform's.
    """
    start, end = day_window(DAY)
    end_ts, start_ts = pd.Timestamp(end), pd.Timestamp(start)
    started = time.perf_counter()
    with engine.connect() as conn:
        objects = pd.read_sql_query(
            sa.text(f"""SELECT id, sha256, size_bytes, kind, status, storage_key, mime_type, created_at,
                               deleted_at FROM {C}.stored_objects"""),
            conn,
        )
        refs = pd.read_sql_query(
            sa.text(f"SELECT object_id, owner_id, created_at, released_at FROM {C}.object_references"), conn
        )
        variants = pd.read_sql_query(
            sa.text(f"""SELECT parent_object_id, variant_name, status, size_bytes, created_at, deleted_at
                        FROM {C}.variants"""),
            conn,
        )
        copies = pd.read_sql_query(
            sa.text(f"SELECT sha256, size_bytes, copied_at FROM {C}.backup_object_copies"), conn
        )
        dumps = pd.read_sql_query(
            sa.text(f"""SELECT size_bytes FROM {C}.backups WHERE kind = 'database'
                        AND status IN ('complete', 'verified') AND started_at < :end
                        AND (expired_at IS NULL OR expired_at >= :end)"""),
            conn,
            params={"end": end},
        )
        sources = []
        relation_bytes: dict[str, int] = {}
        for source in load_sources_config().sources:
            if conn.execute(sa.text("SELECT to_regclass(:t)"), {"t": source.qualified_table}).scalar():
                frame = pd.read_sql_query(
                    sa.text(
                        f'SELECT "{source.owner_column}"::text AS owner_id, "{source.column}"::text AS data'
                        f" FROM {source.qualified_table}"
                    ),
                    conn,
                )
                sources.append((source.name, frame))
                relation_bytes[source.qualified_table] = conn.execute(
                    sa.text("SELECT pg_total_relation_size(to_regclass(:t))"), {"t": source.qualified_table}
                ).scalar_one()
        users = pd.read_sql_query(sa.text("SELECT id::text AS owner_id, tier FROM public.users"), conn)

    deleted_at = objects["deleted_at"]
    present = (objects["created_at"] < end_ts) & (
        ((objects["status"] != "deleted") & deleted_at.isna()) | (deleted_at >= end_ts)
    )
    live_objects = objects[present]
    live_refs = refs[
        (refs["created_at"] < end_ts) & (refs["released_at"].isna() | (refs["released_at"] >= end_ts))
    ]
    pairs = live_refs.groupby(["owner_id", "object_id"]).size().rename("refs").reset_index()
    pairs = pairs.merge(
        live_objects[["id", "kind", "size_bytes", "sha256"]], left_on="object_id", right_on="id"
    )
    kept_copies = copies[copies["copied_at"] < end_ts]
    pairs = pairs.merge(
        kept_copies[["sha256", "size_bytes"]].rename(columns={"size_bytes": "backup_bytes"}),
        on="sha256",
        how="left",
    )
    live_variants = variants[
        variants["size_bytes"].notna()
        & (variants["created_at"] < end_ts)
        & (
            ((variants["status"] == "ready") & variants["deleted_at"].isna())
            | (variants["deleted_at"] >= end_ts)
        )
    ]
    frames = [
        pairs.groupby(["owner_id", "kind"])
        .agg(bytes=("size_bytes", "sum"), object_count=("id", "size"))
        .reset_index()
        .assign(location="originals"),
        pairs.dropna(subset=["backup_bytes"])
        .groupby(["owner_id", "kind"])
        .agg(bytes=("backup_bytes", "sum"), object_count=("id", "size"))
        .reset_index()
        .assign(location="backups"),
        pairs[["owner_id", "object_id"]]
        .merge(live_variants, left_on="object_id", right_on="parent_object_id")
        .groupby(["owner_id", "variant_name"])
        .agg(bytes=("size_bytes", "sum"), object_count=("object_id", "size"))
        .reset_index()
        .rename(columns={"variant_name": "kind"})
        .assign(location="variants"),
    ]
    for name, frame in sources:
        frame = frame[frame["data"].notna()]
        frame = frame.assign(
            owner_id=frame["owner_id"].fillna(UNOWNED), nbytes=frame["data"].map(lambda d: len(d.encode()))
        )
        frames.append(
            frame.groupby("owner_id")
            .agg(bytes=("nbytes", "sum"), object_count=("nbytes", "size"))
            .reset_index()
            .assign(kind=name, location="database")
        )
    if len(dumps):
        frames.append(
            pd.DataFrame(
                [
                    {
                        "owner_id": PLATFORM_OWNER,
                        "kind": "database_dump",
                        "location": "backups",
                        "bytes": dumps["size_bytes"].sum(),
                        "object_count": len(dumps),
                    }
                ]
            )
        )
    rows = pd.concat(frames, ignore_index=True)
    rows["bytes"] = rows["bytes"].astype("int64")

    # quotas: used bytes per owner against the tier's quota
    owners = rows[
        rows["location"].isin(["originals", "variants", "database"])
        & ~rows["owner_id"].isin([PLATFORM_OWNER, UNOWNED])
    ]
    used = owners.groupby("owner_id")["bytes"].sum().reset_index().merge(users, on="owner_id", how="left")
    tier = used["tier"].where(used["tier"].isin(list(quotas.tiers)), quotas.default_tier)
    quota = tier.map(quotas.tiers)
    int((used["bytes"] / quota > quotas.quota_warn_fraction).sum())

    referenced = live_objects["id"].isin(pairs["object_id"])
    full_size = (
        live_variants[live_variants["variant_name"].isin(FULL_SIZE_VARIANTS)]
        .groupby("parent_object_id")["size_bytes"]
        .min()
        .rename("full")
        .reset_index()
        .merge(live_objects[["id", "size_bytes"]], left_on="parent_object_id", right_on="id")
    )
    ingest = pd.concat(
        [
            live_objects.loc[live_objects["created_at"] >= start_ts, ["created_at", "size_bytes"]],
            live_variants.loc[live_variants["created_at"] >= start_ts, ["created_at", "size_bytes"]],
        ]
    )
    largest = live_objects.sort_values(["size_bytes", "id"], ascending=[False, True]).head(
        quotas.largest_files
    )
    first_owner = live_refs[live_refs["object_id"].isin(largest["id"])].groupby("object_id")["owner_id"].min()
    summary: dict[str, Any] = {
        "database_bytes": int(rows.loc[rows["location"] == "database", "bytes"].sum()),
        "database_relation_bytes": sum(relation_bytes.values()),
        "original_bytes": int(live_objects["size_bytes"].sum()),
        "original_count": len(live_objects),
        "live_original_bytes": int(live_objects.loc[referenced, "size_bytes"].sum()),
        "orphan_bytes": int(live_objects.loc[~referenced, "size_bytes"].sum()),
        "orphan_count": int((~referenced).sum()),
        "referenced_bytes": int((pairs["size_bytes"] * pairs["refs"]).sum()),
        "variant_bytes": int(live_variants["size_bytes"].sum()),
        "variant_count": len(live_variants),
        "variant_delivery_saved_bytes": int(
            (full_size["size_bytes"] - full_size["full"]).clip(lower=0).sum()
        ),
        "backup_bytes": int(kept_copies["size_bytes"].sum() + dumps["size_bytes"].sum()),
        "backup_count": len(kept_copies) + len(dumps),
        "retention_deleted_bytes": int(
            objects.loc[deleted_at < end_ts, "size_bytes"].sum()
            + variants.loc[
                (variants["deleted_at"] < end_ts) & variants["size_bytes"].notna(), "size_bytes"
            ].sum()
        ),
        "owner_count": int(rows.loc[~rows["owner_id"].isin([PLATFORM_OWNER, UNOWNED]), "owner_id"].nunique()),
        "peak_hour_bytes": int(
            ingest.groupby(ingest["created_at"].dt.floor("h"))["size_bytes"].sum().max() if len(ingest) else 0
        ),
        "largest_files": [
            {
                "id": int(f.id),
                "storage_key": f.storage_key,
                "kind": f.kind,
                "mime_type": f.mime_type,
                "size_bytes": int(f.size_bytes),
                "owner_id": first_owner.get(f.id),
            }
            for f in largest.itertuples()
        ],
    }
    snapshot_s = time.perf_counter() - started
    started = time.perf_counter()
    with engine.connect() as conn, conn.begin():
        _cost_report(summary, store_root, conn)
        conn.rollback()  # the platform's cost rows stay; the baseline's are only computed
    return snapshot_s, time.perf_counter() - started, rows, summary


def _same_outputs(engine: sa.Engine, rows: pd.DataFrame, summary: dict[str, Any]) -> bool:
    """Whether the baseline computed exactly the platform's per-owner rows and summary figures."""
    key = ["owner_id", "kind", "location"]
    with engine.connect() as conn:
        platform_rows = pd.read_sql_query(
            sa.text(
                f"SELECT owner_id, kind, location, bytes, object_count FROM {C}.usage_snapshots"
                " WHERE snapshot_date = :d"
            ),
            conn,
            params={"d": DAY},
        )
        platform_summary = load_summaries(conn, DAY, DAY).iloc[0].to_dict()
    mine = (
        rows[[*key, "bytes", "object_count"]]
        .sort_values(key)
        .reset_index(drop=True)
        .astype({"bytes": "int64", "object_count": "int64"})
    )
    theirs = (
        platform_rows.sort_values(key)
        .reset_index(drop=True)
        .astype({"bytes": "int64", "object_count": "int64"})
    )
    same = mine.equals(theirs)
    for name, value in summary.items():
        expected = platform_summary[name]
        if name == "largest_files":
            expected = [dict(f) for f in expected]
            value = [{**f, "owner_id": f["owner_id"]} for f in value]
        if value != expected:
            print(f"  baseline differs on {name}: {value!r} != {expected!r}")
            same = False
    return same


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--objects", type=int, default=1_000_000)
    parser.add_argument("--owners", type=int, default=10_000)
    parser.add_argument("--database-url", default=os.environ.get("BENCH_DATABASE_URL"))
    parser.add_argument(
        "--reuse-catalog", action="store_true", help="time against the catalog already in --database-url"
    )
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
    if args.reuse_catalog:
        with engine.connect() as conn:
            args.objects = conn.execute(sa.text(f"SELECT count(*) FROM {C}.stored_objects")).scalar_one()
        print(f"reusing the catalog: {args.objects:,} objects")
    else:
        build_catalog(engine, args.objects, args.owners)
    if not args.reuse_catalog:
        print(
            f"built catalog: {args.objects:,} objects, {args.owners:,} owners"
            f" in {time.perf_counter() - started:.1f}s"
        )

    with tempfile.TemporaryDirectory() as tmp:
        snapshot_s, report_s = platform_run(engine, Path(tmp))
    platform_rss = peak_rss_mb()
    with tempfile.TemporaryDirectory() as tmp:
        base_snapshot_s, base_report_s, rows, summary = naive_baseline(engine, Path(tmp), load_quota_config())
    baseline_rss = peak_rss_mb()
    same = _same_outputs(engine, rows, summary)
    total = snapshot_s + report_s
    base_total = base_snapshot_s + base_report_s
    print(f"{'':36}{'snapshot':>10}{'cost report':>13}{'total':>9}")
    print(
        f"{'platform (SQL aggregates)':36}{snapshot_s:9.2f}s{report_s:12.2f}s{total:8.2f}s"
        f"   peak RSS {platform_rss:,.0f} MB"
    )
    print(
        f"{'baseline (all rows into pandas)':36}{base_snapshot_s:9.2f}s{base_report_s:12.2f}s"
        f"{base_total:8.2f}s"
        f"   peak RSS {baseline_rss:,.0f} MB"
    )
    print(f"baseline computed the same rows and figures as the platform: {'yes' if same else 'NO'}")
    print(
        f"platform is {base_total / total:.1f}x the baseline's speed"
        f" (snapshot alone {base_snapshot_s / snapshot_s:.1f}x)"
    )
    print(
        f"target: snapshot + cost report over {args.objects:,} objects < 10 s -> {total:.2f}s"
        f" {'MET' if total < 10 else 'MISSED'}{'' if args.objects >= 1_000_000 else ' (reduced scale)'}"
    )
    load = os.getloadavg()
    print(f"load average during the run: {load[0]:.1f} / {load[1]:.1f} on {os.cpu_count()} CPUs")


if __name__ == "__main__":
    main()
