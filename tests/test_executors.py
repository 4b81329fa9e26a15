"""The executor is the deployment's choice (MEDIA_EXECUTOR); a distributed one missing its settings fails
when the definitions load, naming what is missing, instead of running steps that cannot meet."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from orchestration.executors import PROJECT_ROOT

PLATFORM = {
    "DATABASE_URL": "postgresql://app@db.invalid:5432/app",  # never connected to: nothing runs
    "OBJECT_STORE_BACKEND": "s3",
    "S3_BUCKET": "media",
    "BACKUP_STORE_BACKEND": "s3",
    "MEDIA_SIGNING_SECRET": "s",
    "CELERY_BROKER_URL": "redis://127.0.0.1:9/0",
    "CELERY_RESULT_BACKEND": "redis://127.0.0.1:9/1",
    "MEDIA_STEP_OUTPUT_BUCKET": "media-dagster",
}
SHOW = (
    "from orchestration.definitions import defs; "
    "print(sorted({j.executor_def.name for j in defs.resolve_all_job_defs()}), "
    "sorted(defs.resolve_job_def('variants_job').resource_defs))"
)


def load(tmp_path, **changes: str | None) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MEDIA_", "CELERY_", "DAGSTER_"))}
    # the tests' configuration folder: outside the quick start the calendar must state its start date
    env.update(PLATFORM, MEDIA_PLATFORM_DATA_DIR=str(tmp_path))
    env["MEDIA_CONFIG_DIR"] = os.environ["MEDIA_CONFIG_DIR"]
    for name, value in changes.items():
        if value is None:
            env.pop(name, None)
        else:
            env[name] = value
    return subprocess.run(
        [sys.executable, "-c", SHOW], env=env, cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=120
    )


def test_celery_executor_and_s3_step_outputs_are_chosen_by_the_environment(tmp_path) -> None:
    done = load(tmp_path, MEDIA_EXECUTOR="celery")
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.startswith("['celery']") and "'io_manager'" in done.stdout


@pytest.mark.parametrize(
    "missing", ["CELERY_BROKER_URL", "CELERY_RESULT_BACKEND", "MEDIA_STEP_OUTPUT_BUCKET"]
)
def test_celery_without_a_setting_fails_naming_it(tmp_path, missing: str) -> None:
    done = load(tmp_path, MEDIA_EXECUTOR="celery", **{missing: None})
    assert done.returncode != 0 and missing in done.stderr


def test_an_unknown_executor_is_refused_by_name(tmp_path) -> None:
    done = load(tmp_path, MEDIA_EXECUTOR="celery_k8s")
    assert done.returncode != 0 and "MEDIA_EXECUTOR" in done.stderr
