"""The Kubernetes deployment, as far as it can be proven without a cluster (see the README's scaling section).

The production dagster.yaml (deploy/k8s/) loads with its K8sRunLauncher; with MEDIA_EXECUTOR=k8s every
job of the code location runs on `k8s_job_executor`, which initialises against that instance and builds
the Job manifest for a step; the Helm values are consistent with both. Only the API calls are missing.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from orchestration.executors import PROJECT_ROOT
from tests.support.services import PostgresServer

DEPLOY = PROJECT_ROOT / "deploy" / "k8s"
KUBECONFIG = """apiVersion: v1
kind: Config
clusters: [{name: none, cluster: {server: "https://127.0.0.1:9"}}]
users: [{name: none, user: {token: not-a-token}}]
contexts: [{name: none, context: {cluster: none, user: none}}]
current-context: none
"""


@pytest.fixture
def k8s_home(tmp_path: Path, postgres_server: PostgresServer) -> dict[str, str]:
    """DAGSTER_HOME with deploy/k8s/dagster.yaml; only what needs a cluster or the chart's Postgres changes:
    the kubeconfig instead of in-cluster config, and the test server for instance storage."""
    home = tmp_path / "dagster_home"
    home.mkdir()
    config = yaml.safe_load((DEPLOY / "dagster.yaml").read_text())
    (tmp_path / "kubeconfig").write_text(KUBECONFIG)
    config["run_launcher"]["config"].update(
        load_incluster_config=False, kubeconfig_file=str(tmp_path / "kubeconfig")
    )
    instance_url = postgres_server.create_database("k8s")
    config["storage"] = {
        "postgres": {"postgres_url": instance_url.replace("postgresql+psycopg", "postgresql")}
    }
    (home / "dagster.yaml").write_text(yaml.safe_dump(config))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DAGSTER_", "MEDIA_"))}
    env.update(
        DAGSTER_HOME=str(home),
        MEDIA_EXECUTOR="k8s",
        DATABASE_URL="postgresql://app@db.invalid:5432/app",  # never connected to: nothing runs
        OBJECT_STORE_BACKEND="s3",
        S3_BUCKET="media",
        BACKUP_STORE_BACKEND="s3",
        BACKUP_S3_BUCKET="media-backups",
        MEDIA_SIGNING_SECRET="k8s-test",
        MEDIA_STEP_OUTPUT_BUCKET="media-dagster",
        DAGSTER_COMPUTE_LOG_BUCKET="media-dagster",
        MEDIA_PLATFORM_DATA_DIR=str(tmp_path / "data"),
        # a production host states every configuration file (calendar start_date included): the tests' copy
        MEDIA_CONFIG_DIR=os.environ["MEDIA_CONFIG_DIR"],
    )
    yield env
    postgres_server.drop_database(instance_url)


def probe(env: dict[str, str]) -> dict:
    done = subprocess.run(
        [sys.executable, "-m", "tests.support.k8s_probe"],
        env=env,
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert done.returncode == 0, done.stderr[-4000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_k8s_run_launcher_and_job_executor_load_against_the_code_location(k8s_home: dict[str, str]) -> None:
    found = probe(k8s_home)
    assert found["launcher"]["instance_config_map"] == "dagster-instance"
    assert found["launcher"]["env_secrets"] == ["media-platform-env"]
    assert found["launcher"]["env_config_maps"] == ["media-platform-settings"]
    assert found["executors"] and set(found["executors"].values()) == {"k8s"}, found["executors"]
    assert found["executor"] == "StepDelegatingExecutor" and found["step_handler"] == "K8sStepHandler"
    assert any("plan_variant_batches" in step for step in found["steps"])

    manifest = found["manifest"]
    assert manifest["kind"] == "Job" and found["namespace"] == "media"
    pod = manifest["spec"]["template"]["spec"]
    container = pod["containers"][0]
    assert container["image"] == "registry.example.com/media-platform:test"
    assert container["args"][:3] == ["dagster", "api", "execute_step"]
    assert {"secretRef": {"name": "media-platform-env"}} in container["envFrom"], json.dumps(container)
    assert {"configMapRef": {"name": "media-platform-settings"}} in container["envFrom"]
    assert {"name": "media-config", "configMap": {"name": "media-platform-config"}} in pod["volumes"]
    mounts = {m["name"]: m["mountPath"] for m in container["volumeMounts"]}
    assert mounts["media-config"] == "/etc/media-platform/config"


def test_k8s_without_its_settings_fails_when_the_definitions_load(k8s_home: dict[str, str]) -> None:
    del k8s_home["MEDIA_STEP_OUTPUT_BUCKET"]
    done = subprocess.run(
        [sys.executable, "-c", "import orchestration.definitions"],
        env=k8s_home,
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode != 0
    assert "MEDIA_STEP_OUTPUT_BUCKET" in done.stderr


def test_helm_values_match_the_instance_and_the_image() -> None:
    """No Helm binary or chart is installable here (see README), so check what the chart consumes."""
    values = yaml.safe_load((DEPLOY / "values.yaml").read_text())
    instance = yaml.safe_load((DEPLOY / "dagster.yaml").read_text())
    launcher = instance["run_launcher"]["config"]
    user = values["dagster-user-deployments"]["deployments"][0]
    assert user["dagsterApiGrpcArgs"] == ["--module-name", "orchestration.definitions", "--attribute", "defs"]
    assert user["includeConfigInLaunchedRuns"]["enabled"] is True
    assert values["runLauncher"]["type"] == "K8sRunLauncher"
    chart_launcher = values["runLauncher"]["config"]["k8sRunLauncher"]
    assert [s["name"] for s in chart_launcher["envSecrets"]] == launcher["env_secrets"]
    assert [c["name"] for c in chart_launcher["envConfigMaps"]] == launcher["env_config_maps"]
    assert chart_launcher["volumes"] == launcher["volumes"] == user["volumes"]
    assert values["postgresql"]["enabled"] is False
    assert values["global"]["postgresqlSecretName"] == launcher["postgres_password_secret"]
    assert values["computeLogManager"]["type"] == instance["compute_logs"]["class"]
    pools, runs = instance["concurrency"]["pools"], instance["concurrency"]["runs"]
    assert values["concurrency"]["pools"]["defaultLimit"] == pools["default_limit"]
    assert values["concurrency"]["runs"]["maxConcurrentRuns"] == runs["max_concurrent_runs"]
    root = yaml.safe_load((PROJECT_ROOT / "dagster.yaml").read_text())
    # Runs dequeued together launch in parallel everywhere (the one machine also dequeues every second).
    coordinator = values["dagsterDaemon"]["runCoordinator"]["config"]["queuedRunCoordinator"]
    threads = {k: v for k, v in root["run_coordinator"]["config"].items() if k.startswith("dequeue_")}
    assert threads.pop("dequeue_interval_seconds") == 1
    assert instance["run_coordinator"]["config"] == threads
    assert (coordinator["dequeueUseThreads"], coordinator["dequeueNumWorkers"]) == (
        threads["dequeue_use_threads"],
        threads["dequeue_num_workers"],
    )
    # The same limits as on one machine, except the one-machine cap on upload runs (2, its cores): here
    # each upload run is a pod of its own, so they run up to the run limit.
    assert instance["concurrency"]["pools"] == root["concurrency"]["pools"]
    one_machine = dict(root["concurrency"]["runs"])
    assert one_machine.pop("tag_concurrency_limits") == [{"key": "uploads/batch", "limit": 2}]
    assert instance["concurrency"]["runs"] == one_machine
    dockerfile = (PROJECT_ROOT / "Dockerfile").read_text()
    assert '".[k8s]"' in dockerfile and "orchestration.definitions" in dockerfile
    assert "features.check('avif')" in dockerfile and "pg_restore" in dockerfile
