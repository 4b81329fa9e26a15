"""Load the Kubernetes deployment as far as it goes without a cluster; print what it built as JSON.

Run in its own process (`python -m tests.support.k8s_probe`) with MEDIA_EXECUTOR=k8s and DAGSTER_HOME
holding deploy/k8s/dagster.yaml, because the executor is chosen when the definitions are imported:
- the instance's run launcher (K8sRunLauncher, from the production dagster.yaml);
- the executor of every job in the code location;
- variants_job's run config and execution plan under `k8s_job_executor`, and the executor itself,
  initialised against that instance;
- the Kubernetes Job manifest the executor would submit for the plan's first step (everything short of
  the API call that needs a cluster).
"""

from __future__ import annotations

import json
import sys

from dagster import DagsterInstance
from dagster._core.definitions.reconstruct import ReconstructableRepository
from dagster._core.execution.api import create_execution_plan
from dagster._core.executor.init import InitExecutorContext
from dagster._core.system_config.objects import ResolvedRunConfig
from dagster._grpc.types import ExecuteStepArgs
from dagster_k8s import K8sRunLauncher
from dagster_k8s.container_context import K8sContainerContext
from dagster_k8s.job import construct_dagster_k8s_job, get_k8s_job_name
from kubernetes.client import ApiClient

from orchestration.executors import PROJECT_ROOT

IMAGE = "registry.example.com/media-platform:test"


def main() -> int:
    instance = DagsterInstance.get()
    launcher = instance.run_launcher
    assert isinstance(launcher, K8sRunLauncher), type(launcher)
    from orchestration.definitions import defs

    executors = {job.name: job.executor_def.name for job in defs.resolve_all_job_defs()}

    recon_job = ReconstructableRepository.for_module(
        "orchestration.definitions", "defs", working_directory=str(PROJECT_ROOT)
    ).get_reconstructable_job("variants_job")
    job_def = recon_job.get_definition()
    run_config = {
        "execution": {"config": {"job_namespace": "media", "max_concurrent": 4, "job_image": IMAGE}}
    }
    plan = create_execution_plan(recon_job, run_config)
    resolved = ResolvedRunConfig.build(job_def, run_config)
    executor = job_def.executor_def.executor_creation_fn(
        InitExecutorContext(
            job=recon_job,
            executor_def=job_def.executor_def,
            executor_config=resolved.execution.execution_engine_config,
            instance=instance,
        )
    )
    handler = executor._step_handler

    run = instance.create_run_for_job(job_def, run_config=run_config, execution_plan=plan)
    step_key = plan.get_steps_to_execute_in_topo_order()[0].key
    # as K8sStepHandler._get_container_context: the run launcher's settings, then the executor's config
    context = K8sContainerContext.create_for_run(run, launcher, include_run_tags=False).merge(
        handler._executor_container_context
    )
    job_config = context.get_k8s_job_config(IMAGE, launcher)
    args = ExecuteStepArgs(
        job_origin=recon_job.get_python_origin(),
        run_id=run.run_id,
        step_keys_to_execute=[step_key],
        instance_ref=instance.get_ref(),
    ).get_command_args(skip_serialized_namedtuple=True)
    name = get_k8s_job_name(run.run_id, step_key)
    manifest = construct_dagster_k8s_job(
        job_config=job_config,
        args=args,
        job_name=name,
        pod_name=name,
        component="step_worker",
        user_defined_k8s_config=context.run_k8s_config,  # as K8sStepHandler.launch_step passes it
    )
    print(
        json.dumps(
            {
                "launcher": {
                    "instance_config_map": launcher.instance_config_map,
                    "job_namespace": launcher.job_namespace,
                    "env_secrets": launcher.env_secrets,
                    "env_config_maps": launcher.env_config_maps,
                    "volumes": launcher.volumes,
                },
                "executors": executors,
                "steps": [step.key for step in plan.get_steps_to_execute_in_topo_order()],
                "executor": type(executor).__name__,
                "step_handler": type(handler).__name__,
                "namespace": context.namespace,
                "manifest": ApiClient().sanitize_for_serialization(manifest),
            }
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
