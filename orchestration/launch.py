"""Launch runs of the workspace's code location through the Dagster instance, as the UI and
`dagster job launch` do: each run carries the code location's origin and the job snapshot the webserver
serves, so it shows on the Timeline, the Jobs pages and the job's Runs tab, and re-executes from the UI
as the same version. Used by `./dev demo`."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from dagster import DagsterInstance, DagsterRun, DagsterRunStatus
from dagster._core.definitions.selector import JobSubsetSelector
from dagster._core.storage.tags import PARTITION_NAME_TAG
from dagster._core.workspace.context import WorkspaceProcessContext, WorkspaceRequestContext
from dagster._core.workspace.load_target import WorkspaceFileTarget

from core.catalog.db import PROJECT_ROOT

WORKSPACE_FILE = PROJECT_ROOT / "workspace.yaml"
LOCATION_NAME = "media_platform"
FINISHED = {DagsterRunStatus.SUCCESS, DagsterRunStatus.FAILURE, DagsterRunStatus.CANCELED}


@contextmanager
def workspace_context(instance: DagsterInstance) -> Iterator[WorkspaceRequestContext]:
    """The code location of workspace.yaml, loaded (in its own code server process) as `dagster dev` does."""
    with WorkspaceProcessContext(instance, WorkspaceFileTarget(paths=[str(WORKSPACE_FILE)])) as process:
        workspace = process.create_request_context()
        errors = workspace.get_code_location_error(LOCATION_NAME)
        if errors:
            raise RuntimeError(f"code location {LOCATION_NAME} failed to load: {errors.message}")
        yield workspace


def create_run(
    instance: DagsterInstance,
    workspace: WorkspaceRequestContext,
    job_name: str,
    run_config: dict[str, Any] | None = None,
    partition_key: str | None = None,
) -> DagsterRun:
    """A run of `job_name` as the code location defines it (origin, job and plan snapshots)."""
    location = workspace.get_code_location(LOCATION_NAME)
    repository = next(iter(location.get_repositories().values()))
    remote_job = location.get_job(
        JobSubsetSelector(
            location_name=LOCATION_NAME,
            repository_name=repository.name,
            job_name=job_name,
            op_selection=None,
        )
    )
    run_config = run_config or {}  # a job's own `config` (variants_job's forkserver) stays its default
    tags = {**remote_job.tags, **({PARTITION_NAME_TAG: partition_key} if partition_key else {})}
    plan = location.get_execution_plan(
        remote_job, run_config, step_keys_to_execute=None, known_state=None, instance=instance
    )
    snapshot = plan.execution_plan_snapshot
    return instance.create_run(
        job_name=job_name,
        run_id=None,
        run_config=run_config,
        resolved_op_selection=None,
        step_keys_to_execute=snapshot.step_keys_to_execute,
        op_selection=None,
        status=None,
        root_run_id=None,
        parent_run_id=None,
        tags=tags,
        job_snapshot=remote_job.job_snapshot,
        execution_plan_snapshot=snapshot,
        parent_job_snapshot=remote_job.parent_job_snapshot,
        remote_job_origin=remote_job.get_remote_origin(),
        job_code_origin=remote_job.get_python_origin(),
        asset_selection=None,
        asset_check_selection=None,
        asset_graph=repository.asset_graph,
    )


def launch_and_wait(
    instance: DagsterInstance,
    workspace: WorkspaceRequestContext,
    run: DagsterRun,
    on_progress: Callable[[int, int], None] = lambda done, total: None,
    poll_seconds: float = 0.5,
) -> DagsterRun:
    """Launch through the instance's run launcher (a run worker process, as for a UI launch) and wait.

    The run coordinator's queue is skipped (no daemon needs to run for the demo); concurrency pools still
    apply to its steps."""
    instance.launch_run(run.run_id, workspace)
    total = len(run.step_keys_to_execute or [])
    while True:
        current = instance.get_run_by_id(run.run_id)
        assert current is not None
        stats = instance.get_run_stats(run.run_id)
        on_progress(stats.steps_succeeded + stats.steps_failed, total)
        if current.status in FINISHED:
            return current
        time.sleep(poll_seconds)
