"""The automation chain of the real Definitions, evaluated with Dagster's automation test utility: the
graph, not the clock, orders the work, and nothing fires when nothing upstream changed."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable

from dagster import (
    AssetKey,
    AssetMaterialization,
    DagsterInstance,
    Definitions,
    EvaluateAutomationConditionsResult,
    evaluate_automation_conditions,
)

DAY = "2026-11-20"
MORNING = dt.datetime(2026, 11, 20, 10, 0, tzinfo=dt.UTC)
NIGHT = dt.datetime(2026, 11, 20, 23, 31, tzinfo=dt.UTC)  # after the calendar's daily_cron (23:30 UTC)
MONTH = "2026-11-01"


def requested(result: EvaluateAutomationConditionsResult) -> dict[str, set[str | None]]:
    """What one evaluation requested: asset key or check (`asset:check`) -> partitions."""
    out: dict[str, set[str | None]] = {}
    for r in result.results:
        if r.true_subset.size:
            key = r.key
            name = (
                key.to_user_string()
                if isinstance(key, AssetKey)
                else f"{key.asset_key.to_user_string()}:{key.name}"
            )
            subset = r.true_subset
            out[name] = set(subset.expensively_compute_partition_keys()) if subset.is_partitioned else {None}
    return out


def materialized(instance: DagsterInstance, key: str, partition: str | None = None) -> None:
    instance.report_runless_asset_event(AssetMaterialization(AssetKey(key.split("/")), partition=partition))


def evaluator(
    defs: Definitions, instance: DagsterInstance
) -> Callable[[dt.datetime], dict[str, set[str | None]]]:
    """Evaluate the automation at a given time, carrying the cursor from one evaluation to the next."""
    cursor = None

    def evaluate(at: dt.datetime) -> dict[str, set[str | None]]:
        nonlocal cursor
        result = evaluate_automation_conditions(
            defs=defs, instance=instance, evaluation_time=at, cursor=cursor
        )
        cursor = result.cursor
        return requested(result)

    return evaluate


def test_the_chain_fires_in_lineage_order_and_only_when_upstreams_changed(platform_defs: Definitions) -> None:
    defs = platform_defs

    with DagsterInstance.ephemeral() as instance:
        evaluate = evaluator(defs, instance)

        assert evaluate(MORNING) == {}  # a fresh install: nothing happened, nothing runs

        # A migration finished: variants follow, with no click; once they ran, nothing else is due.
        materialized(instance, "migration/stories")
        assert evaluate(MORNING + dt.timedelta(minutes=1)) == {"media/image_variants": {DAY}}
        materialized(instance, "media/image_variants", DAY)
        assert evaluate(MORNING + dt.timedelta(minutes=2)) == {}

        # An upload batch of the day: its run rendered its own sets; variants catch up on the hour.
        materialized(instance, "media/processed_uploads", DAY)
        assert evaluate(MORNING + dt.timedelta(minutes=3)) == {}
        assert evaluate(MORNING + dt.timedelta(minutes=61)) == {"media/image_variants": {DAY}}
        materialized(instance, "media/image_variants", DAY)
        assert evaluate(MORNING + dt.timedelta(minutes=62)) == {}  # backups wait for the daily tick

        # After the daily tick, an upstream about to run holds the backups back ...
        materialized(instance, "migration/files")
        assert evaluate(NIGHT) == {"media/image_variants": {DAY}}
        # ... and once it is done (nothing in progress or requested), both backups of the day run.
        materialized(instance, "media/image_variants", DAY)
        assert evaluate(NIGHT + dt.timedelta(minutes=1)) == {
            "backups/database": {DAY},
            "backups/objects": {DAY},
        }
        # (Each requested run is simulated by reporting its materialization before the next tick.)
        materialized(instance, "backups/database", DAY)
        materialized(instance, "backups/objects", DAY)
        assert evaluate(NIGHT + dt.timedelta(minutes=3)) == {  # and no second backup: once a day
            "backups/kept_set": {None},
            "usage/usage_snapshot": {DAY},
        }
        materialized(instance, "backups/kept_set")
        materialized(instance, "usage/usage_snapshot", DAY)
        assert evaluate(NIGHT + dt.timedelta(minutes=4)) == {
            "backups/kept_set:backup_bytes_verified": {None},
            "backups/kept_set:restore_drill": {None},
            "usage/daily_costs": {DAY},
            "usage/monthly_costs": {MONTH},
        }
        materialized(instance, "usage/daily_costs", DAY)
        materialized(instance, "usage/monthly_costs", MONTH)
        assert evaluate(NIGHT + dt.timedelta(minutes=5)) == {}  # nothing upstream changed: nothing fires


def test_the_retention_sweep_keeps_its_cron_and_usage_follows_it(platform_defs: Definitions) -> None:
    defs = platform_defs

    graph = defs.resolve_asset_graph()
    assert graph.get(AssetKey(["retention", "sweep"])).automation_condition is None
    assert defs.get_schedule_def("retention_daily_schedule").cron_schedule == "30 2 * * *"
    with DagsterInstance.ephemeral() as instance:
        first = evaluate_automation_conditions(defs=defs, instance=instance, evaluation_time=MORNING)
        materialized(instance, "retention/sweep", DAY)
        after = evaluate_automation_conditions(
            defs=defs,
            instance=instance,
            evaluation_time=MORNING + dt.timedelta(minutes=1),
            cursor=first.cursor,
        )
        assert requested(after) == {"usage/usage_snapshot": {DAY}}


def test_the_automation_sensor_is_defined_and_ships_stopped(platform_defs: Definitions) -> None:
    from dagster import DefaultSensorStatus

    defs = platform_defs

    sensor = defs.get_sensor_def("media_automation")
    assert sensor.default_status == DefaultSensorStatus.STOPPED
    assert sensor.asset_selection is not None


def _upload_run_in_progress(defs: Definitions, instance: DagsterInstance) -> None:
    """A process_uploads_job run for DAY, created (its materialization planned) and not finished."""
    from orchestration.sensors import batch_run_config

    instance.create_run_for_job(
        job_def=defs.resolve_job_def("process_uploads_job"),
        run_config=batch_run_config([1]),
        tags={"dagster/partition": DAY},
    )


def test_variants_catch_up_on_upload_batches_hourly_and_never_beside_an_upload_run(
    platform_defs: Definitions,
) -> None:
    """Upload runs render their own full sets: a variants run requested beside them would render the
    same originals on the same cores. It catches up on the hour, once no upload run is in progress; after
    a migration it runs at once."""
    defs = platform_defs
    with DagsterInstance.ephemeral() as instance:
        evaluate = evaluator(defs, instance)

        assert evaluate(MORNING + dt.timedelta(minutes=5)) == {}
        materialized(instance, "media/processed_uploads", DAY)  # a batch done, the next one running
        assert evaluate(MORNING + dt.timedelta(minutes=6)) == {}  # not before the hour
        _upload_run_in_progress(defs, instance)
        assert evaluate(MORNING + dt.timedelta(minutes=61)) == {}  # the hour, but an upload run is on
        materialized(instance, "migration/stories")  # a migration finished meanwhile
        assert evaluate(MORNING + dt.timedelta(minutes=62)) == {"media/image_variants": {DAY}}
