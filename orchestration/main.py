"""`./dev demo`: the main job on the embedded default (or on whatever the environment configures).

Creates the demo legacy database if it is missing, then launches the asset graph's jobs in lineage order
as runs of the workspace's code location (orchestration/launch.py: the same origin and snapshots a launch
from the UI has, so the runs show on the Timeline, the Jobs pages and each job's Runs tab), with a progress
bar, and prints a short summary. Safe to run again: content addressing and idempotent assets mean a second
run stores nothing twice.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TextIO

import sqlalchemy as sa
from dagster import DagsterInstance, Definitions

from core.catalog.db import get_engine
from orchestration.instance import prepare_embedded_instance
from resources.settings import data_dir, resolved_database_url, uses_embedded_postgres


@dataclass
class DemoStep:
    """One capability's part of the main job: a job and the partitions to run it for."""

    title: str
    job_name: str
    partition_keys: Callable[[Definitions], list[str]] = field(default=lambda _defs: [""])
    run_config: dict = field(default_factory=dict)
    #: Small demo runs execute their steps in the run worker (no process per step); a job with its own
    #: executor (variants_job's forkserver, process_uploads_job's in-process one) keeps it.
    in_process: bool = True

    def launch_config(self) -> dict:
        return {**self.run_config, **({"execution": IN_PROCESS} if self.in_process else {})}


IN_PROCESS = {"config": {"in_process": {}}}


def today_key() -> str:
    return datetime.now(UTC).date().isoformat()


def demo_uploads_then_today(_defs: Definitions) -> list[str]:
    """Variants capability: drop demo uploads (valid photos + a bad one) into the uploads area and
    register/queue them as the upload sensor does; the step then runs process_uploads_job for today,
    which processes the day's queued uploads (the sensor's runs carry the same batch as upload_ids)."""
    from core.catalog.db import upgrade_catalog
    from core.demo.uploads import drop_demo_uploads
    from resources.settings import object_store_resource

    database_url = resolved_database_url()
    upgrade_catalog(database_url)
    drop_demo_uploads(get_engine(database_url), object_store_resource().store(), datetime.now(UTC).date())
    return [today_key()]


def this_month_key() -> str:
    return datetime.now(UTC).date().replace(day=1).isoformat()


#: The main job, in lineage order; each step is idempotent, so the whole list is safe to run again.
#: Usage comes last so its snapshot counts what the other steps stored, copied and would delete.
STEPS: list[DemoStep] = [
    DemoStep("Migration inventory: what the legacy tables hold", "migration_inventory_job"),
    DemoStep("Migrate base64 blobs to object storage (every configured source)", "migration_job"),
    DemoStep(
        "Uploads: validate demo uploads, store originals + variants",
        "process_uploads_job",
        demo_uploads_then_today,
        in_process=False,  # the job's own executor: in process on one machine already
    ),
    DemoStep(
        "Variants for every migrated and uploaded image",
        "variants_job",
        lambda _defs: [today_key()],
        in_process=False,
    ),
    DemoStep(
        "Retention sweep for today, DRY RUN (audits what would be deleted, deletes nothing)",
        "retention_sweep_job",
        partition_keys=lambda _defs: [today_key()],
        run_config={"ops": {"retention__sweep": {"config": {"dry_run": True}}}},
    ),
    DemoStep(
        "Back up the database (pg_dump, verified)", "database_backup_job", lambda _defs: [today_key()]
    ),
    DemoStep("Back up new objects (content-addressed)", "object_backup_job", lambda _defs: [today_key()]),
    DemoStep("Apply backup retention", "backup_retention_job"),
    DemoStep("Verify backup bytes", "backup_verification_job"),
    DemoStep("Restore drill (scratch database + object sample)", "restore_drill_job"),
    DemoStep("Usage snapshot and daily cost report", "usage_daily_job", lambda _defs: [today_key()]),
    DemoStep("Monthly cost report", "usage_monthly_job", lambda _defs: [this_month_key()]),
]


def variants_summary(database_url: str) -> str:
    from core.imaging import load_variant_plan
    from core.variants import variant_set_gaps

    engine = get_engine(database_url)
    with engine.connect() as conn:
        counts = dict(
            conn.execute(sa.text("SELECT status, count(*) FROM media_catalog.variants GROUP BY status")).all()
        )
        uploads = dict(
            conn.execute(sa.text("SELECT status, count(*) FROM media_catalog.uploads GROUP BY status")).all()
        )
    gaps = variant_set_gaps(engine, load_variant_plan())
    return (
        f"  variants: {counts.get('ready', 0)} ready, {counts.get('skipped', 0)} skipped (not smaller), "
        f"{counts.get('failed', 0)} failed; {gaps} image originals still lacking their set; uploads: "
        f"{uploads.get('processed', 0)} processed, {uploads.get('rejected', 0)} rejected (quarantined), "
        f"{uploads.get('pending', 0)} pending"
    )


def usage_summary_lines(database_url: str) -> list[str]:
    """The usage headline: cost per month as base64 in Postgres vs now, from today's stored report."""
    from core.usage.report import read_headline

    day = datetime.now(UTC).date()
    with get_engine(database_url).connect() as conn:
        h = read_headline(conn, "day", day)
    if h is None:
        return ["  usage: no cost report for today"]
    saving = (
        (1 - h["now_monthly_usd"] / h["base64_in_postgres_monthly_usd"]) * 100
        if h["base64_in_postgres_monthly_usd"]
        else 0.0
    )
    return [
        f"  usage: {h['owners']:.0f} owners, {h['owners_above_80pct']:.0f} above 80 % of quota,"
        f" {h['orphans']:.0f} orphaned objects",
        f"  cost per month: ${h['base64_in_postgres_monthly_usd']:,.4f} as base64 in Postgres"
        f" ({h['before_gb']:.3f} GB) vs ${h['now_monthly_usd']:,.4f} now ({h['now_gb']:.3f} GB);"
        f" saving {saving:.0f} %; report under reports/cost/day/{day.isoformat()}/",
    ]


def retention_summary(database_url: str) -> list[str]:
    """What the latest dry-run sweep would delete, per policy, with a few examples."""
    from core.catalog.models import CATALOG_SCHEMA as C

    with get_engine(database_url).connect() as conn:
        run_id = conn.execute(
            sa.text(f"SELECT run_id FROM {C}.retention_audit WHERE dry_run ORDER BY id DESC LIMIT 1")
        ).scalar()
        if run_id is None:
            return ["  retention (dry run): nothing would be deleted today"]
        lines = [f"  retention (dry run {run_id[:8]}), nothing deleted; it would:"]
        for policy, action, target_type, n, size in conn.execute(
            sa.text(
                f"""SELECT policy, action, target_type, count(*), coalesce(sum(size_bytes), 0)
                    FROM {C}.retention_audit WHERE run_id = :r GROUP BY 1, 2, 3 ORDER BY 1, 2, 3"""
            ),
            {"r": run_id},
        ):
            lines.append(
                f"    {policy:<18} {action.replace('would_', ''):<8} {n:>6} {target_type}(s) {mb(size)}"
            )
        for policy, target, owner, reason in conn.execute(
            sa.text(
                f"""SELECT policy, coalesce(storage_key, target_type || ' ' || target_id), owner_id, reason
                    FROM {C}.retention_audit WHERE run_id = :r AND action = 'would_delete'
                    ORDER BY id LIMIT 5"""
            ),
            {"r": run_id},
        ):
            lines.append(f"      e.g. {target} (owner {owner}; {policy}: {reason})")
    return lines


def latest_check_outcome(instance: DagsterInstance, check_name: str) -> str:
    """'passed', 'FAILED' or 'not run' for the newest evaluation of a backups check."""
    from dagster import AssetCheckKey

    from assets.backups import BACKUP_SET_KEY

    history = instance.event_log_storage.get_asset_check_execution_history(
        AssetCheckKey(BACKUP_SET_KEY, check_name), limit=1
    )
    evaluation = history[0].event.asset_check_evaluation if history and history[0].event else None
    return "not run" if evaluation is None else ("passed" if evaluation.passed else "FAILED")


def backups_summary(database_url: str, instance: DagsterInstance) -> str:
    from assets.backups import BACKUP_BYTES_VERIFIED, RESTORE_DRILL
    from core.backups.report import overview

    view = overview(database_url)
    return (
        f"  backups: database {view.newest_database_day or 'none'} ({mb(view.newest_database_bytes)} dump), "
        f"{view.copies} object copies ({mb(view.copy_bytes)}); byte check "
        f"{latest_check_outcome(instance, BACKUP_BYTES_VERIFIED)}, restore drill "
        f"{latest_check_outcome(instance, RESTORE_DRILL)}; restore: python -m orchestration.restore --help"
    )


def legacy_tables_exist(database_url: str) -> bool:
    with get_engine(database_url).connect() as conn:
        return bool(conn.execute(sa.text("SELECT to_regclass('public.users') IS NOT NULL")).scalar())


def database_size(database_url: str) -> int:
    with get_engine(database_url).connect() as conn:
        return int(conn.execute(sa.text("SELECT pg_database_size(current_database())")).scalar() or 0)


def mb(n: float) -> str:
    return f"{n / 1_000_000:,.1f} MB"


def create_demo_database(database_url: str, scale: float, reset: bool) -> None:
    from core.demo.legacy_db import generate_legacy_database

    if legacy_tables_exist(database_url) and not reset:
        print("==> demo legacy database already present (use --reset to regenerate it)")
        return
    print(f"==> generating the demo legacy database (scale {scale})")
    last: dict[str, float] = {}

    def progress(table: str, done: int, total: int) -> None:
        now = time.monotonic()
        if done == total or now - last.get(table, 0) > 1.0:
            last[table] = now
            print(f"    {table:<11} {done:>5}/{total} rows", flush=True)

    summary = generate_legacy_database(database_url, scale=scale, progress=progress)
    print(
        f"    legacy tables: {mb(summary.total_bytes)}, {summary.total_blobs} blobs,"
        f" in {summary.elapsed_seconds:.0f}s"
    )


@contextmanager
def quiet_children(log_path: Path) -> Iterator[TextIO]:
    """Point this process's stdout/stderr file descriptors (inherited by the code server and the run
    workers it starts) at a log file, and hand back a stream to the real terminal for the progress bar."""
    sys.stdout.flush()
    sys.stderr.flush()
    saved_out, saved_err = os.dup(1), os.dup(2)
    terminal = os.fdopen(os.dup(saved_out), "w", buffering=1)
    with open(log_path, "ab") as log:
        os.dup2(log.fileno(), 1)
        os.dup2(log.fileno(), 2)
        try:
            yield terminal
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os.dup2(saved_out, 1)
            os.dup2(saved_err, 2)
            os.close(saved_out)
            os.close(saved_err)
            terminal.close()


def run_steps(defs: Definitions, instance: DagsterInstance) -> bool:
    """Each step as a run of the code location, launched through the instance, with a progress bar."""
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from orchestration.launch import create_run, launch_and_wait, workspace_context

    planned = [(step, key) for step in STEPS for key in step.partition_keys(defs)]
    ok = True
    columns = [TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn()]
    log_path = data_dir() / "demo-runs.log"
    with (
        quiet_children(log_path) as terminal,
        workspace_context(instance) as workspace,
        Progress(*columns, console=Console(file=terminal, highlight=False, soft_wrap=True)) as progress,
    ):
        progress.console.print(f"    (run logs: {log_path}; each run is in the UI too)")
        overall = progress.add_task("demo runs", total=len(planned))
        for step, partition_key in planned:
            label = f"{step.title}" + (f" [{partition_key}]" if partition_key else "")
            progress.console.print(f"==> {label}")
            started = time.monotonic()
            run = create_run(instance, workspace, step.job_name, step.launch_config(), partition_key or None)
            steps = progress.add_task(f"  {step.job_name} steps", total=len(run.step_keys_to_execute or []))
            finished = launch_and_wait(
                instance, workspace, run, lambda done, total, t=steps: progress.update(t, completed=done)
            )
            progress.remove_task(steps)
            success = finished.status.value == "SUCCESS"
            status = "ok" if success else f"FAILED ({finished.status.value})"
            progress.console.print(
                f"    {status} in {time.monotonic() - started:.1f}s (run {finished.run_id[:8]})"
            )
            progress.advance(overall)
            ok = ok and success
    return ok


def reclaim_lines(database_url: str, reclaim: bool) -> list[str]:
    """Rewriting rows leaves the old versions in the table files until VACUUM FULL: on the embedded demo
    database the demo runs it; elsewhere it prints the statement (a DBA runs it in a maintenance window)."""
    from core.sources import load_sources_config

    tables = sorted({s.qualified_table for s in load_sources_config().sources})
    statement = "; ".join(f"VACUUM (FULL, ANALYZE) {t}" for t in tables) + ";"
    if not reclaim:
        return [
            "  reclaim the space the migration freed (locks each table while it runs): "
            f"{statement} (or pg_repack --table=... online)"
        ]
    before = database_size(database_url)
    engine = get_engine(database_url).execution_options(isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        for table in tables:
            conn.execute(sa.text(f"VACUUM (FULL, ANALYZE) {table}"))
    freed = max(0, before - database_size(database_url))
    return [f"  reclaimed on the embedded demo database (VACUUM FULL of the source tables): {mb(freed)}"]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--scale", type=float, default=1.0, help="demo database size (1.0 = quick start)")
    parser.add_argument("--reset", action="store_true", help="regenerate the demo legacy database")
    parser.add_argument(
        "--demo-data",
        action="store_true",
        help="create the demo tables even though DATABASE_URL is set (never against production: the "
        "generator drops and recreates the app tables)",
    )
    args = parser.parse_args(argv)

    started = time.monotonic()
    embedded = uses_embedded_postgres()
    if embedded:
        print(f"==> embedded default: PostgreSQL and object store under {data_dir()}")
    # Quick start: starts the embedded server and exports DATABASE_URL before the definitions load (they
    # never start a server); elsewhere DATABASE_URL must be set.
    database_url = resolved_database_url()
    prepare_embedded_instance()

    from orchestration.definitions import defs

    if embedded or args.demo_data:
        create_demo_database(database_url, args.scale, args.reset)
    size_before = database_size(database_url)

    with DagsterInstance.get() as instance:
        ok = run_steps(defs, instance)
        backups_line = backups_summary(database_url, instance)

    reclaim = reclaim_lines(database_url, reclaim=embedded)  # DATABASE_URL is exported by now
    print()
    print("Summary")
    print(f"  legacy database size: {mb(size_before)} before this run, {mb(database_size(database_url))} now")
    from core.migration.report import migration_summary_lines

    for line in migration_summary_lines(get_engine(database_url)):
        print(f"  {line}")
    for line in reclaim:
        print(line)
    print(variants_summary(database_url))
    print(backups_line)
    for line in usage_summary_lines(database_url):
        print(line)
    for line in retention_summary(database_url):
        print(line)
    print(
        f"  finished in {time.monotonic() - started:.0f}s; open the UI with ./dev ui (turn on the "
        "media_automation and upload_sensor sensors there to let the graph drive the work)"
    )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
