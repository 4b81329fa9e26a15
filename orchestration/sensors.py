"""Sensors. `upload_sensor` notices new uploads without anyone clicking anything; `media_automation`
evaluates the assets' automation conditions (assets/automation.py), so the graph drives the work.

Turn it on in the UI (Automation -> upload_sensor -> Start) or with
`dagster sensor start upload_sensor -w workspace.yaml`; it ships STOPPED so a fresh `./dev ui` does not
start processing a production bucket by surprise. Each tick lists only the recent day prefixes of the
uploads area (never the whole bucket), registers new/changed objects as `uploads` rows, and requests one
run of `process_uploads_job` per batch of uploads, partitioned by upload day (see core/uploads.py).

Every tick logs what it saw (keys listed, new, changed, batches requested); a tick that requests nothing
says so as its skip reason, so "0 runs requested" in the UI reads as "listed 120 keys, all known".
A run that fails is retried by Dagster (`dagster/max_retries`; `run_retries` is enabled in dagster.yaml).
"""

import datetime as dt

from dagster import (
    AssetSelection,
    AutomationConditionSensorDefinition,
    DagsterInstance,
    DagsterRunStatus,
    DefaultSensorStatus,
    RunRequest,
    RunsFilter,
    SensorEvaluationContext,
    SensorResult,
    sensor,
)
from dagster._core.storage.tags import AUTO_RETRY_RUN_ID_TAG, WILL_RETRY_TAG
from sqlalchemy import Engine

from assets.uploads import BATCH_TAG, PROCESSED_UPLOADS_KEY
from core.imaging import load_variant_plan
from core.uploads import (
    Discovery,
    UploadBatch,
    UploadCursor,
    discover_uploads,
    queue_batches,
    rekey_batch,
)
from orchestration.variants import process_uploads_job
from resources.database import PostgresResource
from resources.object_store import ObjectStoreResource

UPLOADS_OP = PROCESSED_UPLOADS_KEY.to_python_identifier()


def batch_run_config(upload_ids: list[int]) -> dict:
    """The run config a batch travels in; the demo and the benchmark use the same shape."""
    return {"ops": {UPLOADS_OP: {"config": {"upload_ids": upload_ids}}}}


#: Dagster retries a failed upload run this many times (a crash mid-batch leaves rows `queued`).
UPLOAD_RUN_MAX_RETRIES = 3


def run_request(batch: UploadBatch) -> RunRequest:
    return RunRequest(
        run_key=batch.run_key,
        partition_key=batch.day.isoformat(),
        run_config=batch_run_config(batch.upload_ids),
        tags={
            BATCH_TAG: batch.run_key,
            "uploads/count": str(len(batch.upload_ids)),
            "dagster/max_retries": str(UPLOAD_RUN_MAX_RETRIES),
            "dagster/retry_strategy": "FROM_FAILURE",
        },
    )


def batch_run_state(instance: DagsterInstance, run_key: str) -> str:
    """`none` (never launched: request it again), `active` (queued, running, or failed with a Dagster
    retry still to come: wait) or `ended` (every run finished, no retry coming: needs a new run key)."""
    # The batch tag, not dagster/run_key: Dagster's automatic retries copy user tags onto the retry run.
    runs = instance.get_runs(filters=RunsFilter(tags={BATCH_TAG: run_key}))
    if not runs:
        return "none"
    for run in runs:
        if not run.is_finished:
            return "active"
        retry = run.tags.get(WILL_RETRY_TAG)
        retry_due = retry == "true" or (retry is None and instance.run_retries_enabled)
        if run.status == DagsterRunStatus.FAILURE and AUTO_RETRY_RUN_ID_TAG not in run.tags and retry_due:
            return "active"  # the retry daemon has not launched (or not yet judged) the retry
    return "ended"


def requests_for(
    context: SensorEvaluationContext, engine: Engine, batches: list[UploadBatch], now: dt.datetime
) -> list[RunRequest]:
    """Run requests for new batches, and for stale ones what their runs' state calls for."""
    requests: list[RunRequest] = []
    for batch in batches:
        if batch.reissue:
            state = batch_run_state(context.instance, batch.run_key)
            if state == "active":
                continue
            if state == "ended":
                rekeyed = rekey_batch(engine, batch, now)
                if rekeyed is None:
                    continue
                context.log.warning(
                    f"batch {batch.run_key}: its runs ended without processing it; requested again as "
                    f"{rekeyed.run_key}"
                )
                batch = rekeyed
        requests.append(run_request(batch))
    return requests


def tick_summary(found: Discovery, requests: list[RunRequest]) -> str:
    """What one tick saw, for its log line and (when it requests nothing) its skip reason."""
    uploads = sum(int(r.tags["uploads/count"]) for r in requests)
    return (
        f"listed {found.keys_listed} keys in {len(found.days_listed)} day prefixes: "
        f"{len(found.registered)} registered new, {len(found.changed)} changed; "
        f"{len(requests)} batches requested ({uploads} uploads)"
    )


#: Seconds between the upload sensor's ticks: part of every fresh upload's wait for its thumbnails (a
#: tick lists only the recent day prefixes, so it is cheap to run often).
UPLOAD_SENSOR_INTERVAL = 5
#: Seconds between automation evaluations (Dagster's default). Upload runs render their own full sets, so
#: no upload waits on it; each evaluation takes daemon CPU from the runs beside it.
AUTOMATION_INTERVAL = 30


#: A run in these states has not begun its uploads yet.
_NOT_YET_RUNNING = [DagsterRunStatus.QUEUED, DagsterRunStatus.NOT_STARTED, DagsterRunStatus.STARTING]


def free_upload_runs(instance: DagsterInstance, since: dt.datetime, parallel_runs: int) -> tuple[int, str]:
    """How many new upload runs this tick may request (0: none, and why). While an upload run has not
    started, new uploads stay `confirmed` and travel together in the next tick's batch: one run start-up
    (a process importing Dagster and the platform, seconds of CPU) for the backlog instead of one per
    tick. Running upload runs take the backlog on themselves (`core.uploads.take_confirmed`), so a tick
    requests only the runs that can start now; a run requested beyond them would only queue behind them
    with uploads they could have done. Runs created before `since` (stuck) no longer hold anything."""
    records = instance.get_run_records(
        filters=RunsFilter(
            job_name=process_uploads_job.name,
            statuses=[*_NOT_YET_RUNNING, DagsterRunStatus.STARTED],
            created_after=since,
        ),
    )
    if any(r.dagster_run.status in _NOT_YET_RUNNING for r in records):
        return 0, "an upload run has not started yet: new uploads wait"
    if len(records) >= parallel_runs:
        return 0, f"the upload runs already running ({len(records)}) take on new uploads"
    return parallel_runs - len(records), ""


def concurrent_runs(instance: DagsterInstance) -> int:
    """Upload runs the instance lets run at once: the run queue's `max_concurrent_runs`, or its
    `tag_concurrency_limits` entry for the batch tag when lower (dagster.yaml); 1 when unbounded or
    unknown. A burst of uploads is split into that many runs, so all of them start together."""
    queue = instance.get_concurrency_config().run_queue_config
    if queue is None:
        return 1
    limits = [queue.max_concurrent_runs] if queue.max_concurrent_runs > 0 else []
    limits += [
        int(entry["limit"])
        for entry in queue.tag_concurrency_limits or []
        if entry.get("key") == BATCH_TAG and entry.get("value") is None
    ]
    return max(1, min(limits)) if limits else 1


@sensor(
    job=process_uploads_job,
    minimum_interval_seconds=UPLOAD_SENSOR_INTERVAL,
    default_status=DefaultSensorStatus.STOPPED,
    description="Registers new uploads (date-prefixed listing with a cursor) and requests batch runs.",
)
def upload_sensor(
    context: SensorEvaluationContext, postgres: PostgresResource, object_store: ObjectStoreResource
) -> SensorResult:
    postgres.ensure_catalog()
    engine = postgres.engine()
    limits = load_variant_plan().uploads
    now = dt.datetime.now(dt.UTC)
    found = discover_uploads(
        engine, object_store.store(), UploadCursor.from_json(context.cursor), now.date(), limits
    )
    since = now - dt.timedelta(minutes=limits.requeue_after_minutes)
    free, held = free_upload_runs(context.instance, since, concurrent_runs(context.instance))
    batches = queue_batches(engine, limits, now=now, parallel_runs=free, max_batches=free) if free else []
    requests = requests_for(context, engine, batches, now)
    summary = tick_summary(found, requests) + (f"; {held}" if held else "")
    context.log.info(summary)
    if not requests:
        return SensorResult(skip_reason=summary, cursor=found.cursor.to_json())
    return SensorResult(run_requests=requests, cursor=found.cursor.to_json())


#: Ships STOPPED, like the schedule and the upload sensor: turn it on in the UI (Automation ->
#: media_automation -> Start) or with `dagster sensor start media_automation -w workspace.yaml`.
media_automation = AutomationConditionSensorDefinition(
    "media_automation",
    target=AssetSelection.all(),
    default_status=DefaultSensorStatus.STOPPED,
    minimum_interval_seconds=AUTOMATION_INTERVAL,
    description="Runs what the graph says is due: variants after migrations (and hourly for what upload "
    "runs missed), the day's backups once their upstreams are done, usage and cost reports after backups "
    "and retention.",
)
