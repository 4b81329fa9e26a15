"""Where a run's steps execute is the deployment's choice (MEDIA_EXECUTOR), not the jobs' code.

- `multiprocess` (default): one process per step on the run worker's machine; the variants job forks them
  from a preloaded forkserver (orchestration/variants.py).
- `celery`: steps are Celery tasks on `dagster-celery` workers; broker and result backend from
  CELERY_BROKER_URL / CELERY_RESULT_BACKEND, Celery settings from deploy/celery/celery.yaml (the same file
  the workers are started with, so both sides agree).
- `k8s`: one Kubernetes Job per step (dagster-k8s's `k8s_job_executor`); image, namespace and secrets come
  from the run launcher the Helm chart configures.

Steps of one run may then execute on different machines, so their outputs go to S3 (dagster-aws's
S3PickleIOManager, bucket MEDIA_STEP_OUTPUT_BUCKET) instead of the run worker's disk; the same jobs and
assets run under all three.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import yaml
from dagster import EnvVar, ExecutorDefinition, multi_or_in_process_executor

from core.config import ConfigError

EXECUTORS = ("multiprocess", "celery", "k8s")
PROJECT_ROOT = Path(__file__).resolve().parents[1]
#: Celery settings shared by the run (which submits tasks) and the workers (`dagster-celery worker start
#: -y deploy/celery/celery.yaml`): late acknowledgement, so a task whose worker process dies is put back
#: on the queue and re-run instead of being lost.
CELERY_CONFIG_FILE = PROJECT_ROOT / "deploy" / "celery" / "celery.yaml"


def executor_name() -> str:
    name = os.environ.get("MEDIA_EXECUTOR", "multiprocess").strip() or "multiprocess"
    if name not in EXECUTORS:
        raise ConfigError(f"MEDIA_EXECUTOR must be one of {', '.join(EXECUTORS)}, not {name!r}")
    return name


def distributed() -> bool:
    """True when the steps of one run may execute on different machines."""
    return executor_name() != "multiprocess"


def _required(name: str) -> str:
    value = os.environ.get(name, "").strip()
    if not value:
        raise ConfigError(f"{name} must be set when MEDIA_EXECUTOR={executor_name()}")
    return value


def celery_executor_config() -> dict[str, Any]:
    """The `execution.config` block of deploy/celery/celery.yaml, broker and backend checked present."""
    for name in ("CELERY_BROKER_URL", "CELERY_RESULT_BACKEND"):
        _required(name)
    loaded = yaml.safe_load(CELERY_CONFIG_FILE.read_text()) or {}
    return dict(loaded["execution"]["config"])


def platform_executor() -> ExecutorDefinition:
    """The executor every job runs on in this deployment."""
    name = executor_name()
    if name == "celery":
        from dagster_celery import celery_executor

        return celery_executor.configured(celery_executor_config(), name="celery")
    if name == "k8s":
        from dagster_k8s import k8s_job_executor

        return k8s_job_executor
    return multi_or_in_process_executor


def step_output_resources() -> dict[str, Any]:
    """Under a distributed executor, `io_manager` keeps step outputs in S3 so any worker can read them.

    Endpoint, region and credentials are the media store's (S3_ENDPOINT_URL, S3_REGION, AWS_*); the
    bucket is MEDIA_STEP_OUTPUT_BUCKET (required), the prefix MEDIA_STEP_OUTPUT_PREFIX.
    """
    if not distributed():
        return {}
    from dagster_aws.s3 import S3PickleIOManager, S3Resource

    bucket = _required("MEDIA_STEP_OUTPUT_BUCKET")
    secrets = {
        field: EnvVar(name)
        for field, name in (
            ("aws_access_key_id", "AWS_ACCESS_KEY_ID"),
            ("aws_secret_access_key", "AWS_SECRET_ACCESS_KEY"),
        )
        if os.environ.get(name)
    }
    s3 = S3Resource(
        endpoint_url=os.environ.get("S3_ENDPOINT_URL") or None,
        region_name=os.environ.get("S3_REGION") or "us-east-1",
        max_attempts=5,
        **secrets,
    )
    prefix = os.environ.get("MEDIA_STEP_OUTPUT_PREFIX") or "dagster/step-outputs"
    return {"io_manager": S3PickleIOManager(s3_resource=s3, s3_bucket=bucket, s3_prefix=prefix)}
