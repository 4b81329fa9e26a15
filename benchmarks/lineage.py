"""Per-object lineage at scale: how long `python -m orchestration.lineage` takes on a large catalog.

    PYTHONPATH=. python benchmarks/lineage.py [--objects 200000] [--days 30]

Builds a synthetic catalog with `generate_series` in SQL: N objects spread over `--days` days, one
reference each (1,000 owners), five variants each, one backup copy each, one object-backup manifest per
day listing that day's objects, and an audit row for every tenth object. Then times `lineage_of` (best of
three) for one object by storage key, SHA-256 and place, and for one owner (the newest OWNER_OBJECT_LIMIT
objects). Baseline in the same run: reading the same object's rows straight from its tables by primary
and foreign key, with no view, as the floor any lineage lookup pays.

Uses DATABASE_URL if set (its catalog is dropped and rebuilt: never point it at a real one), else a
throwaway embedded server in a temporary folder.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import sqlalchemy as sa

from core.catalog.db import downgrade_catalog, get_engine, upgrade_catalog
from core.embedded_postgres import start_embedded_postgres
from core.lineage import OWNER_OBJECT_LIMIT, lineage_of

C = "media_catalog"


def build(engine: sa.Engine, objects: int, days: int) -> None:
    with engine.begin() as c:
        c.execute(
            sa.text(
                f"""INSERT INTO {C}.stored_objects
                        (sha256, size_bytes, mime_type, kind, storage_key, provider, created_at, run_id)
                    SELECT lpad(to_hex(i), 64, '0'), 1000, 'image/jpeg', 'image',
                           'originals/' || lpad(to_hex(i), 64, '0') || '.jpg', 'local',
                           now() - (i % :days) * interval '1 day', 'bench'
                    FROM generate_series(1, :n) i"""
            ),
            {"n": objects, "days": days},
        )
        c.execute(
            sa.text(
                f"""INSERT INTO {C}.object_references
                        (object_id, owner_id, origin, source_name, source_table, source_pk, json_path)
                    SELECT id, (id % 1000)::text, 'migration', 'stories', 'stories', id::text,
                           'images[0].data'
                    FROM {C}.stored_objects"""
            )
        )
        c.execute(
            sa.text(
                f"""INSERT INTO {C}.variants
                        (parent_object_id, variant_name, spec_hash, status, storage_key, sha256)
                    SELECT o.id, v, 'h', 'ready', 'variants/' || o.id || '/' || v,
                           md5(o.id || v) || md5(v || o.id)
                    FROM {C}.stored_objects o,
                         unnest(ARRAY['thumb_150', 'thumb_300', 'thumb_600', 'webp', 'avif']) v"""
            )
        )
        c.execute(
            sa.text(
                f"""INSERT INTO {C}.backups (kind, backup_date, status, manifest_key, manifest)
                    SELECT 'objects', d::date, 'verified', 'object-manifests/' || d::date || '/manifest.json',
                           jsonb_build_object('objects', (
                               SELECT coalesce(jsonb_agg(jsonb_build_object(
                                   'sha256', o.sha256::text, 'source_key', o.storage_key)), '[]')
                               FROM {C}.stored_objects o
                               WHERE (o.created_at AT TIME ZONE 'UTC')::date = d::date))
                    FROM generate_series(current_date - :days, current_date, interval '1 day') d"""
            ),
            {"days": days},
        )
        c.execute(
            sa.text(
                f"""INSERT INTO {C}.backup_object_copies (sha256, backup_key, size_bytes)
                    SELECT sha256, 'objects/' || sha256, 1000 FROM {C}.stored_objects"""
            )
        )
        c.execute(
            sa.text(
                f"""INSERT INTO {C}.retention_audit
                        (run_id, policy, action, target_type, target_id, storage_key, owner_id, dry_run)
                    SELECT 'bench', 'orphaned_objects', 'would_delete', 'object', id::text, storage_key,
                           (id % 1000)::text, true
                    FROM {C}.stored_objects WHERE id % 10 = 0"""
            )
        )
    with engine.connect() as c:
        c.execution_options(isolation_level="AUTOCOMMIT").execute(sa.text("ANALYZE"))


def best(fn, repeat: int = 3) -> float:
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        fn()
        times.append(time.perf_counter() - started)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--objects", type=int, default=200_000)
    parser.add_argument("--days", type=int, default=30)
    args = parser.parse_args()
    url = os.environ.get("DATABASE_URL")
    if not url:  # a throwaway embedded server, stopped and deleted when this process exits
        folder = Path(tempfile.mkdtemp(prefix="lineage-bench-"))
        url = start_embedded_postgres(folder, delete_on_exit=True).ensure_database("lineage_bench")
    downgrade_catalog(url, "base")
    upgrade_catalog(url)
    engine = get_engine(url)
    started = time.perf_counter()
    build(engine, args.objects, args.days)
    built = time.perf_counter() - started
    print(f"catalog: {args.objects:,} objects over {args.days} days built in {built:.1f} s")
    one = args.objects // 2
    with engine.connect() as c:
        floor = best(
            lambda: [
                c.execute(sa.text(sql), {"i": one}).all()
                for sql in (
                    f"SELECT * FROM {C}.stored_objects WHERE id = :i",
                    f"SELECT * FROM {C}.object_references WHERE object_id = :i",
                    f"SELECT * FROM {C}.variants WHERE parent_object_id = :i",
                )
            ]
        )
        print(f"floor (object, references, variants by key, no backups or audit): {floor * 1000:.1f} ms")
        for label, argument in (
            ("storage key", f"originals/{one:064x}.jpg"),
            ("sha256", f"{one:064x}"),
            ("place", f"stories:{one}"),
            (f"owner ({OWNER_OBJECT_LIMIT} newest objects)", "owner:42"),
        ):
            seconds = best(lambda argument=argument: lineage_of(c, argument, ui_base_url=None))
            report = lineage_of(c, argument, ui_base_url=None)
            events = sum(len(o.events) for o in report.objects)
            print(f"{label}: {seconds * 1000:.0f} ms ({len(report.objects)} objects, {events} events)")


if __name__ == "__main__":
    main()
