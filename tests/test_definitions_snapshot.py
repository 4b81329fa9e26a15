"""A snapshot of the Definitions (asset keys with their dependencies, partitions, checks, pools, automation
conditions, jobs, schedules and sensors): an unintended change to the graph fails here.

After an intended change: `UPDATE_SNAPSHOTS=1 ./dev test tests/test_definitions_snapshot.py` and review
the diff of tests/snapshots/definitions.json."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from dagster import (
    AutomationConditionSensorDefinition,
    DailyPartitionsDefinition,
    Definitions,
    MonthlyPartitionsDefinition,
    PartitionsDefinition,
    StaticPartitionsDefinition,
)

SNAPSHOT = Path(__file__).parent / "snapshots" / "definitions.json"


def describe_partitions(partitions: PartitionsDefinition | None) -> str | None:
    if partitions is None:
        return None
    if isinstance(partitions, DailyPartitionsDefinition | MonthlyPartitionsDefinition):
        kind = "daily" if isinstance(partitions, DailyPartitionsDefinition) else "monthly"
        start = partitions.start.date().isoformat()
        return f"{kind} from {start} ({partitions.timezone}), end_offset {partitions.end_offset}"
    if isinstance(partitions, StaticPartitionsDefinition):
        return f"static {partitions.get_partition_keys()}"
    return type(partitions).__name__


def definitions_snapshot(defs: Definitions) -> dict[str, Any]:
    graph = defs.resolve_asset_graph()
    assets: dict[str, Any] = {}
    for key in sorted(graph.get_all_asset_keys(), key=lambda k: k.to_user_string()):
        node = graph.get(key)
        condition = node.automation_condition
        assets[key.to_user_string()] = {
            "deps": sorted(p.to_user_string() for p in node.parent_keys),
            "group": node.group_name,
            "materializable": node.is_materializable,
            "partitions": describe_partitions(node.partitions_def),
            "checks": sorted(c.name for c in node.check_keys),
            "pools": sorted(node.pools or []),
            "automation": condition.get_label() if condition else None,
        }
    checks = {}
    for check_key in sorted(graph.asset_check_keys, key=lambda c: (c.asset_key.to_user_string(), c.name)):
        condition = graph.get(check_key).automation_condition
        if condition:
            checks[f"{check_key.asset_key.to_user_string()}:{check_key.name}"] = condition.get_label()
    repository = defs.get_repository_def()
    jobs = {
        job.name: {
            "description": job.description,
            "partitions": describe_partitions(job.partitions_def),
            "assets": sorted(k.to_user_string() for k in job.asset_layer.selected_asset_keys),
            "pools": sorted({op.pool for op in job.graph.iterate_op_defs() if op.pool}),
        }
        for job in sorted(repository.get_all_jobs(), key=lambda j: j.name)
        if not job.name.startswith("__")
    }
    schedules = {
        s.name: {"cron": s.cron_schedule, "job": s.job_name, "description": s.description}
        for s in sorted(repository.schedule_defs, key=lambda s: s.name)
    }
    sensors = {
        s.name: {
            "kind": "automation" if isinstance(s, AutomationConditionSensorDefinition) else "sensor",
            "default_status": s.default_status.value,
            "description": s.description,
        }
        for s in sorted(repository.sensor_defs, key=lambda s: s.name)
    }
    return {
        "assets": assets,
        "check_automation": checks,
        "jobs": jobs,
        "schedules": schedules,
        "sensors": sensors,
    }


def test_definitions_match_the_snapshot(platform_defs: Definitions) -> None:
    defs = platform_defs

    current = json.loads(json.dumps(definitions_snapshot(defs)))
    if os.environ.get("UPDATE_SNAPSHOTS"):
        SNAPSHOT.parent.mkdir(exist_ok=True)
        SNAPSHOT.write_text(json.dumps(current, indent=2, sort_keys=True) + "\n")
    assert current == json.loads(SNAPSHOT.read_text()), "the Definitions changed; see the module docstring"


def test_every_job_schedule_and_sensor_says_what_it_does(platform_defs: Definitions) -> None:
    defs = platform_defs

    snapshot = definitions_snapshot(defs)
    for kind in ("jobs", "schedules", "sensors"):
        for name, entry in snapshot[kind].items():
            assert entry["description"], f"{kind[:-1]} {name} has no description"
    assert all(name.endswith("_schedule") for name in snapshot["schedules"])
