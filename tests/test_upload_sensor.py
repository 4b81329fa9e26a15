"""The upload sensor's cursor: no key missed, none processed twice, keys modified later not lost."""

from __future__ import annotations

import datetime as dt
import json
from contextlib import nullcontext
from pathlib import Path

import pytest
import sqlalchemy as sa
from dagster import DagsterInstance, SensorResult, build_sensor_context

from core.catalog.db import get_engine, upgrade_catalog
from core.catalog.models import Upload
from core.imaging import UploadLimits, load_variant_plan
from core.keys import upload_key
from core.objectstore.base import ObjectStore, ObjectStoreError, sha256_hex
from core.objectstore.local import LocalObjectStore
from core.uploads import (
    UploadCursor,
    confirm_upload,
    discover_uploads,
    process_uploads,
    queue_batches,
    request_upload,
)
from orchestration.sensors import UPLOADS_OP, upload_sensor
from resources.database import PostgresResource
from resources.object_store import ObjectStoreResource
from tests.support.clock import today, yesterday
from tests.support.variants import jpeg_bytes, photo

PLAN = load_variant_plan()


@pytest.fixture
def env(database_url: str, tmp_path: Path):
    upgrade_catalog(database_url)
    store = LocalObjectStore(tmp_path / "objects", signing_secret="test-secret")
    resources = {
        "postgres": PostgresResource(database_url=database_url),
        "object_store": ObjectStoreResource(local_root=str(store.root), signing_secret="test-secret"),
    }
    return get_engine(database_url), store, resources


def put(store: ObjectStore, owner: str, upload_id: str, day: dt.date | None = None, seed: int = 0) -> str:
    key = upload_key(day or today(), owner, upload_id, "photo.jpg")
    data = jpeg_bytes(photo(64, 48, seed=seed))
    store.put_bytes(key, data, sha256=sha256_hex(data), content_type="image/jpeg")
    return key


def tick(resources, cursor: str | None, instance: DagsterInstance | None = None) -> SensorResult:
    with (
        DagsterInstance.ephemeral() if instance is None else nullcontext(instance) as dagster_instance,
        build_sensor_context(cursor=cursor, resources=resources, instance=dagster_instance) as context,
    ):
        result = upload_sensor(context)
    assert isinstance(result, SensorResult)
    return result


def requested_keys(engine, result: SensorResult) -> list[str]:
    ids = [i for r in result.run_requests for i in r.run_config["ops"][UPLOADS_OP]["config"]["upload_ids"]]
    with engine.connect() as conn:
        return sorted(conn.execute(sa.select(Upload.upload_key).where(Upload.id.in_(ids))).scalars())


def run_requested(engine, store, result: SensorResult) -> None:
    """What the requested runs do: the same core call the processed_uploads asset makes."""
    for request in result.run_requests:
        ids = request.run_config["ops"][UPLOADS_OP]["config"]["upload_ids"]
        process_uploads(engine, store, PLAN, upload_ids=ids, day=dt.date.fromisoformat(request.partition_key))


def test_new_keys_are_requested_once_even_when_they_sort_before_seen_keys(env) -> None:
    engine, store, resources = env
    first = sorted(put(store, owner, "u1") for owner in ("mallory", "zoe"))
    result1 = tick(resources, None)
    assert requested_keys(engine, result1) == first
    assert {r.partition_key for r in result1.run_requests} == {today().isoformat()}
    assert all(r.run_key for r in result1.run_requests)

    later = sorted([put(store, "alice", "u2"), put(store, "nina", "u3")])  # sort before/among seen keys
    result2 = tick(resources, result1.cursor)
    assert requested_keys(engine, result2) == later

    result3 = tick(resources, result2.cursor)
    assert result3.run_requests == []  # nothing new: nothing requested twice
    run_requested(engine, store, result1)
    run_requested(engine, store, result2)
    assert tick(resources, result3.cursor).run_requests == []
    with engine.connect() as conn:
        statuses = list(conn.execute(sa.select(Upload.status)).scalars())
    assert statuses == ["processed"] * 4


def test_keys_modified_later_are_requested_again_today_and_yesterday(env) -> None:
    engine, store, resources = env
    today_key = put(store, "bob", "a1")
    yesterday_key = put(store, "bob", "b1", day=yesterday())
    result = tick(resources, None)
    assert requested_keys(engine, result) == sorted([today_key, yesterday_key])
    run_requested(engine, store, result)
    cursor = tick(resources, result.cursor).cursor

    for key, seed in ((today_key, 7), (yesterday_key, 8)):
        data = jpeg_bytes(photo(80, 60, seed=seed))
        store.put_bytes(key, data, sha256=sha256_hex(data), content_type="image/jpeg")
    again = tick(resources, cursor)
    assert requested_keys(engine, again) == sorted([today_key, yesterday_key])
    run_requested(engine, store, again)
    with engine.connect() as conn:
        rows = {r.upload_key: r for r in conn.execute(sa.select(Upload))}
    assert rows[today_key].status == "processed" and rows[today_key].size_bytes == store.head(today_key).size
    assert tick(resources, again.cursor).run_requests == []


def test_sensor_lists_only_day_prefixes_since_its_cursor(env) -> None:
    engine, store, _resources = env
    old_key = put(store, "carol", "old", day=today() - dt.timedelta(days=10))
    found = discover_uploads(
        engine, store, UploadCursor(through=yesterday()), today(), UploadLimits(recheck_days=1)
    )
    assert found.days_listed == [yesterday(), today()]
    assert old_key not in found.registered
    assert found.cursor == UploadCursor(through=today())


def test_listing_budget_resumes_with_start_after_and_registers_every_key_once(env) -> None:
    engine, store, _resources = env
    keys = sorted(put(store, f"owner{i}", f"k{i}", seed=i) for i in range(7))
    limits = UploadLimits(max_keys_per_tick=3, recheck_days=0)
    cursor, registered, ticks = UploadCursor(through=today()), [], 0
    while True:
        found = discover_uploads(engine, store, cursor, today(), limits)
        registered += found.registered
        cursor, ticks = found.cursor, ticks + 1
        if cursor.resume_day is None:
            break
        assert cursor.resume_after in keys  # resumes after the last key handled
    assert sorted(registered) == keys and ticks == 3
    batches = queue_batches(engine, limits)
    assert sorted(i for b in batches for i in b.upload_ids) == sorted(_ids(engine))
    assert queue_batches(engine, limits) == []


def _ids(engine) -> list[int]:
    with engine.connect() as conn:
        return list(conn.execute(sa.select(Upload.id)).scalars())


def test_pending_uploads_wait_for_confirmation_then_are_requested(env) -> None:
    engine, store, resources = env
    with engine.begin() as conn:
        _row_id, key = request_upload(
            conn, owner_id="dave", filename="x.jpg", declared_mime="image/jpeg", day=today()
        )
    data = jpeg_bytes(photo(50, 50))
    store.put_bytes(key, data, sha256=sha256_hex(data), content_type="image/jpeg")
    result = tick(resources, None)
    assert result.run_requests == []  # uploaded but never confirmed: left pending for retention
    with engine.begin() as conn:
        confirm_upload(conn, key)
    assert requested_keys(engine, tick(resources, result.cursor)) == [key]


def test_a_queued_batch_whose_run_never_started_is_requested_again_with_the_same_run_key(env) -> None:
    engine, store, _resources = env
    put(store, "erin", "q1")
    limits = UploadLimits(requeue_after_minutes=30)
    discover_uploads(engine, store, UploadCursor(), today(), limits)
    now = dt.datetime.now(dt.UTC)
    first = queue_batches(engine, limits, now=now)
    assert queue_batches(engine, limits, now=now + dt.timedelta(minutes=5)) == []
    again = queue_batches(engine, limits, now=now + dt.timedelta(minutes=31))
    assert [b.run_key for b in again] == [b.run_key for b in first]


def test_cursor_round_trips_as_json() -> None:
    cursor = UploadCursor(today(), yesterday(), "uploads/x")
    assert UploadCursor.from_json(cursor.to_json()) == cursor
    assert json.loads(cursor.to_json())["through"] == today().isoformat()
    assert UploadCursor.from_json(None) == UploadCursor()


def test_discovery_and_processing_work_on_an_s3_compatible_store(
    database_url: str, s3_endpoint: str, s3_bucket: str
) -> None:
    """Same discovery over S3 (moto's server over HTTP): registers, batches, processes, spots overwrites."""
    from core.objectstore.s3 import S3ObjectStore
    from tests.support.services import s3_client

    upgrade_catalog(database_url)
    engine = get_engine(database_url)
    store = S3ObjectStore(s3_client(s3_endpoint), s3_bucket, prefix="media")
    keys = sorted(put(store, owner, "s3") for owner in ("zed", "amy"))
    found = discover_uploads(engine, store, UploadCursor(), today(), PLAN.uploads)
    assert sorted(found.registered) == keys
    batches = queue_batches(engine, PLAN.uploads)
    for batch in batches:
        process_uploads(engine, store, PLAN, upload_ids=batch.upload_ids)
    assert discover_uploads(engine, store, found.cursor, today(), PLAN.uploads).registered == []
    data = jpeg_bytes(photo(90, 70, seed=9))  # a different size, so the overwrite shows even at 1 s precision
    store.put_bytes(keys[0], data, sha256=sha256_hex(data), content_type="image/jpeg")
    assert discover_uploads(engine, store, found.cursor, today(), PLAN.uploads).changed == [keys[0]]


def test_definitions_list_the_sensor_jobs_and_checks(
    database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """What `dagster dev` shows: the upload sensor (STOPPED until turned on), both jobs, the checks."""
    from dagster import DefaultSensorStatus

    monkeypatch.setenv("DATABASE_URL", database_url)  # before loading the definitions, which need it
    monkeypatch.setenv("MEDIA_PLATFORM_DATA_DIR", str(tmp_path / "data"))
    from orchestration.definitions import build_definitions

    defs = build_definitions()
    sensor = defs.get_sensor_def("upload_sensor")
    assert sensor.default_status == DefaultSensorStatus.STOPPED
    assert sensor.job_name == "process_uploads_job"
    assert defs.resolve_job_def("variants_job") and defs.resolve_job_def("process_uploads_job")
    check_names = {key.name for key in defs.resolve_asset_graph().asset_check_keys}
    assert {
        "pending_uploads_below_100",
        "every_original_has_full_variant_set",
        "failed_variant_rate_below_5_percent",
    } <= check_names


class UnreachableStore(LocalObjectStore):
    """The real local store, unreachable while `down`: every read fails the way a dead endpoint does, so
    every upload of a batch is deferred back to `confirmed`."""

    down = True

    def head(self, key: str):  # type: ignore[no-untyped-def]
        if self.down:
            raise ObjectStoreError("connection refused")
        return super().head(key)


def test_a_fully_deferred_batch_gets_a_new_run_key_and_is_processed_on_the_next_attempt(env) -> None:
    engine, store, resources = env
    keys = sorted(put(store, owner, "d1", seed=i) for i, owner in enumerate(("kim", "lee")))
    flaky = UnreachableStore(store.root, signing_secret="test-secret")
    seen_run_keys: set[str] = set()

    first = tick(resources, None)
    assert requested_keys(engine, first) == keys
    seen_run_keys |= {r.run_key for r in first.run_requests}
    for request in first.run_requests:
        ids = request.run_config["ops"][UPLOADS_OP]["config"]["upload_ids"]
        stats = process_uploads(engine, flaky, PLAN, upload_ids=ids)
        assert stats.deferred == stats.uploads == len(ids)  # the whole batch deferred

    second = tick(resources, first.cursor)
    assert requested_keys(engine, second) == keys
    # Dagster never runs a run key twice: a repeated key would leave the batch queued for good.
    assert not {r.run_key for r in second.run_requests} & seen_run_keys
    flaky.down = False
    for request in second.run_requests:
        ids = request.run_config["ops"][UPLOADS_OP]["config"]["upload_ids"]
        assert process_uploads(engine, flaky, PLAN, upload_ids=ids).accepted == len(ids)
    with engine.connect() as conn:
        assert set(conn.execute(sa.select(Upload.status)).scalars()) == {"processed"}
    assert tick(resources, second.cursor).run_requests == []


def test_upload_runs_carry_dagster_run_retries_and_the_instance_enables_them(env) -> None:
    import yaml

    from orchestration.instance import PROJECT_ROOT

    _engine, store, resources = env
    put(store, "max", "r1")
    [request] = tick(resources, None).run_requests
    assert int(request.tags["dagster/max_retries"]) >= 1
    shipped = yaml.safe_load((PROJECT_ROOT / "dagster.yaml").read_text())
    assert shipped["run_retries"]["enabled"] is True


def test_a_tick_that_requests_nothing_says_what_it_listed_and_registered(env) -> None:
    engine, store, resources = env
    put(store, "ned", "s1")
    put(store, "ola", "s2")
    first = tick(resources, None)
    assert len(requested_keys(engine, first)) == 2
    run_requested(engine, store, first)
    quiet = tick(resources, first.cursor)
    assert quiet.run_requests == []
    assert quiet.skip_reason is not None
    said = quiet.skip_reason.skip_message or ""
    assert "listed 2 keys" in said and "0 registered new, 0 changed" in said
    assert "0 batches requested" in said


def test_a_stale_batch_waits_for_its_run_and_gets_a_new_key_once_its_runs_ended(env) -> None:
    """Re-requesting a key whose run failed for good is a no-op in Dagster: the batch needs a new key."""
    from dagster import DagsterInstance, DagsterRunStatus
    from dagster._core.storage.tags import WILL_RETRY_TAG
    from dagster._core.test_utils import create_run_for_test

    from orchestration.sensors import BATCH_TAG

    engine, store, resources = env
    put(store, "una", "f1")
    with DagsterInstance.ephemeral() as instance:

        def stale_tick(cursor: str | None) -> SensorResult:
            with engine.begin() as conn:  # as if the batch was requested an hour ago
                conn.execute(sa.update(Upload).values(queued_at=sa.func.now() - dt.timedelta(hours=1)))
            with build_sensor_context(cursor=cursor, resources=resources, instance=instance) as context:
                result = upload_sensor(context)
            assert isinstance(result, SensorResult)
            return result

        [first] = tick(resources, None).run_requests
        # No run of it exists (the request was lost): the same key again.
        assert [r.run_key for r in stale_tick(None).run_requests] == [first.run_key]
        run = create_run_for_test(instance, tags={BATCH_TAG: first.run_key}, status=DagsterRunStatus.STARTED)
        assert stale_tick(None).run_requests == []  # in flight: wait
        instance.report_run_failed(run)
        instance.add_run_tags(run.run_id, {WILL_RETRY_TAG: "true"})
        assert stale_tick(None).run_requests == []  # failed, but Dagster retries it: wait
        instance.add_run_tags(run.run_id, {WILL_RETRY_TAG: "false"})
        [again] = stale_tick(None).run_requests  # failed for good: a new key for the same uploads
        assert again.run_key != first.run_key and again.run_key.startswith(first.run_key.split("/")[0])
        assert again.run_config == first.run_config
        run_requested(engine, store, SensorResult(run_requests=[again]))
        with engine.connect() as conn:
            assert set(conn.execute(sa.select(Upload.status)).scalars()) == {"processed"}


def test_a_fresh_upload_waits_seconds_not_a_half_minute_for_its_run() -> None:
    """Latency levers (benchmarks/fresh_uploads.py): the upload sensor ticks every few seconds, a
    sensor's upload run waits for the next uploads (a trickle needs no tick and no run start-up), runs
    dequeued together launch at once, and an upload run executes its one step in the run worker's
    process instead of starting another one. Full sets never wait on the automation sensor."""
    import yaml
    from dagster import in_process_executor

    from orchestration.definitions import defs

    assert defs.get_sensor_def("upload_sensor").minimum_interval_seconds <= 5
    assert PLAN.uploads.linger_seconds >= 10
    instance = yaml.safe_load((Path(__file__).parent.parent / "dagster.yaml").read_text())
    assert instance["run_coordinator"]["config"]["dequeue_use_threads"] is True
    assert defs.resolve_job_def("process_uploads_job").executor_def is in_process_executor  # one machine


def test_new_uploads_wait_for_a_queued_upload_run_and_then_travel_in_one_batch(
    env, database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """While an upload run has not started, a tick requests nothing more: the backlog goes in the next
    batch, so a busy host pays one run start-up for it instead of one per tick."""
    from dagster import DagsterRunStatus

    from orchestration.definitions import build_definitions

    monkeypatch.setenv("DATABASE_URL", database_url)
    monkeypatch.setenv("MEDIA_PLATFORM_DATA_DIR", str(tmp_path / "data"))
    engine, store, resources = env
    with DagsterInstance.ephemeral() as instance:
        job = build_definitions().resolve_job_def("process_uploads_job")
        starting = instance.create_run_for_job(job, status=DagsterRunStatus.STARTING)
        keys = [put(store, "fay", f"w{i}", seed=i) for i in range(3)]
        held = tick(resources, None, instance)
        assert held.run_requests == []
        instance.report_run_canceled(starting)  # it will not begin: the next tick batches the backlog
        released = tick(resources, held.cursor, instance)
        assert len(released.run_requests) == 1 and requested_keys(engine, released) == sorted(keys)


def test_a_burst_is_split_over_the_runs_that_can_run_at_once_and_a_trickle_stays_one_run() -> None:
    from core.uploads import batch_sizes

    limits = UploadLimits(batch_size=500, min_batch=25)
    assert batch_sizes(1000, limits, parallel_runs=4) == [250, 250, 250, 250]
    assert batch_sizes(5, limits, parallel_runs=4) == [5]  # one run start-up for a trickle
    assert batch_sizes(60, limits, parallel_runs=4) == [30, 30]  # no run under min_batch
    assert batch_sizes(3001, limits, parallel_runs=4) == [429, 429, 429, 429, 429, 428, 428]
    assert batch_sizes(0, limits, parallel_runs=4) == []
    assert batch_sizes(1000, limits, parallel_runs=1) == [500, 500]


def test_the_sensor_splits_by_the_instance_run_queue_limit() -> None:
    from dagster import instance_for_test

    from orchestration.sensors import BATCH_TAG, concurrent_runs

    queued = {
        "run_coordinator": {
            "module": "dagster._core.run_coordinator",
            "class": "QueuedRunCoordinator",
            "config": {"max_concurrent_runs": 3},
        }
    }
    with instance_for_test(overrides=queued) as instance:
        assert concurrent_runs(instance) == 3
    queued["run_coordinator"]["config"]["tag_concurrency_limits"] = [{"key": BATCH_TAG, "limit": 2}]
    with instance_for_test(overrides=queued) as instance:  # upload runs limited below the run limit
        assert concurrent_runs(instance) == 2
    with instance_for_test() as instance:  # no queue limit known: one run per batch_size
        assert concurrent_runs(instance) >= 1


def run_batch(engine, store, plan, batch, run_id: str | None = None, linger_seconds: float = 0.0):
    """What the sensor's run of `batch` does: the processed_uploads asset's core call with its batch key."""
    return process_uploads(
        engine,
        store,
        plan,
        upload_ids=batch.upload_ids,
        day=batch.day,
        batch_key=batch.run_key,
        run_id=run_id,
        linger_seconds=linger_seconds,
    )


def test_queued_batches_split_a_backlog_and_keep_every_upload_once(env) -> None:
    engine, store, _resources = env
    keys = [put(store, f"owner{i % 3}", f"b{i}", seed=i) for i in range(12)]
    limits = UploadLimits(min_batch=3, recheck_days=0)
    discover_uploads(engine, store, UploadCursor(through=today()), today(), limits)
    batches = queue_batches(engine, limits, parallel_runs=4)
    assert [len(b.upload_ids) for b in batches] == [3, 3, 3, 3]
    assert sorted(i for b in batches for i in b.upload_ids) == sorted(_ids(engine))
    assert len({b.run_key for b in batches}) == 4 and len(keys) == 12


def test_a_running_batch_takes_on_uploads_confirmed_after_it_was_queued_up_to_batch_size(env) -> None:
    """A burst still arriving goes to the run already started (no tick, no new run start-up); the rows it
    takes on name its batch, so a retry of that run finds them, and no run grows past `batch_size`."""
    from dataclasses import replace

    from core.uploads import take_confirmed

    engine, store, _resources = env
    limits = UploadLimits(min_batch=2, batch_size=5, recheck_days=0)
    plan = replace(PLAN, uploads=limits)
    for i in range(2):
        put(store, "gus", f"a{i}", seed=i)
    discover_uploads(engine, store, UploadCursor(through=today()), today(), limits)
    [batch] = queue_batches(engine, limits)
    for i in range(5):  # confirmed while the batch's run starts
        put(store, "gus", f"b{i}", seed=10 + i)
    discover_uploads(engine, store, UploadCursor(through=today()), today(), limits)
    assert take_confirmed(engine, day=yesterday(), batch_key=batch.run_key, limit=5) == []  # its day only

    stats = run_batch(engine, store, plan, batch)

    assert (stats.uploads, stats.taken_on, stats.accepted) == (5, 3, 5)
    with engine.connect() as conn:
        rows = conn.execute(sa.select(Upload.status, Upload.batch_key)).all()
    assert sorted(r.status for r in rows) == ["confirmed"] * 2 + ["processed"] * 5
    assert {r.batch_key for r in rows if r.status == "processed"} == {batch.run_key}


def _variants_of(engine, upload_keys: list[str]) -> dict[str, dict[str, str | None]]:
    """{upload key: {variant name: the run that rendered it (or skipped it)}} for the uploads' originals."""
    from core.catalog.models import Variant

    with engine.connect() as conn:
        rows = conn.execute(
            sa.select(Upload.upload_key, Variant.variant_name, Variant.run_id)
            .join(Variant, Variant.parent_object_id == Upload.object_id)
            .where(Upload.upload_key.in_(upload_keys), Variant.status.in_(("ready", "skipped")))
        ).all()
    found: dict[str, dict[str, str | None]] = {key: {} for key in upload_keys}
    for row in rows:
        found[row.upload_key][row.variant_name] = row.run_id
    return found


def test_a_lingering_run_takes_on_an_upload_confirmed_while_it_waits_then_ends(env) -> None:
    """A trickle meets a running run (no tick, no run start-up): the upload confirmed while the run
    waits is taken on in a second round, with its thumbnails and full set, and the run ends once no
    upload has come for `linger_seconds`."""
    import threading
    import time
    from dataclasses import replace

    engine, store, _resources = env
    limits = UploadLimits(recheck_days=0, linger_seconds=3)
    plan = replace(PLAN, uploads=limits)
    first = put(store, "ivy", "d0", seed=1)
    discover_uploads(engine, store, UploadCursor(through=today()), today(), limits)
    [batch] = queue_batches(engine, limits)
    outcome: dict[str, object] = {}

    def run() -> None:
        outcome["stats"] = run_batch(engine, store, plan, batch, "lingering", limits.linger_seconds)

    worker = threading.Thread(target=run)
    worker.start()
    deadline = time.monotonic() + 60
    while set(_variants_of(engine, [first])[first]) != {s.name for s in PLAN.specs}:
        assert time.monotonic() < deadline and worker.is_alive()
        time.sleep(0.1)
    late = put(store, "ivy", "d1", seed=2)  # the run has finished its first upload and waits
    discover_uploads(engine, store, UploadCursor(through=today()), today(), limits)
    arrived = time.monotonic()
    worker.join(60)

    stats = outcome["stats"]
    assert (stats.uploads, stats.taken_on, stats.rounds, stats.accepted) == (2, 1, 2, 2)
    # both waits (before the late upload, then the last linger_seconds) are kept out of the busy time
    assert stats.lingered_seconds >= limits.linger_seconds
    assert stats.busy_seconds == stats.seconds - stats.lingered_seconds
    assert _variants_of(engine, [late])[late] == {s.name: "lingering" for s in PLAN.specs}
    with engine.connect() as conn:
        assert set(conn.execute(sa.select(Upload.batch_key)).scalars()) == {batch.run_key}
    assert time.monotonic() - arrived >= limits.linger_seconds  # waited again after the second round


def test_upload_runs_render_the_full_sets_other_runs_have_not_reached_except_one_being_rendered(
    env,
) -> None:
    """A run with its own work done renders the full sets another run's uploads still lack (newest
    first, recorded under its own run), and leaves an original whose render lock another process holds
    to that process: no image is rendered twice."""
    from dataclasses import replace

    from core.variants import RENDER_LOCK_NAMESPACE

    engine, store, _resources = env
    limits = UploadLimits(recheck_days=0)
    thumbnails_only = replace(PLAN, specs=tuple(s for s in PLAN.specs if s.kind == "thumbnail"))
    keys = [put(store, "jo", f"e{i}", seed=20 + i) for i in range(3)]
    discover_uploads(engine, store, UploadCursor(through=today()), today(), limits)
    [slow] = queue_batches(engine, limits)
    # the other run so far: thumbnails recorded, full sets not reached
    run_batch(engine, store, thumbnails_only, slow, "slow")
    mine = put(store, "jo", "f0", seed=30)
    discover_uploads(engine, store, UploadCursor(through=today()), today(), limits)
    [batch] = queue_batches(engine, limits)
    with engine.connect() as conn:
        busy = conn.execute(sa.select(Upload.object_id).where(Upload.upload_key == keys[0])).scalar_one()
    with engine.connect() as other, other.begin():  # another process rendering keys[0]'s original
        assert other.scalar(sa.select(sa.func.pg_try_advisory_xact_lock(RENDER_LOCK_NAMESPACE, busy)))
        stats = run_batch(engine, store, PLAN, batch, "quick")

    assert (stats.uploads, stats.full_sets_shared) == (1, 2)
    assert stats.variants.images_busy == 1
    variants = _variants_of(engine, [*keys, mine])
    assert variants[mine] == {s.name: "quick" for s in PLAN.specs}
    for key in keys[1:]:
        assert variants[key] == {s.name: "slow" for s in thumbnails_only.specs} | {
            s.name: "quick" for s in PLAN.specs if s.kind == "full"
        }
    assert set(variants[keys[0]]) == {s.name for s in thumbnails_only.specs}  # left to its renderer


def test_uploads_another_transaction_is_taking_are_skipped_never_taken_twice(env) -> None:
    from core.uploads import take_confirmed

    engine, store, _resources = env
    for i in range(6):
        put(store, "hal", f"c{i}", seed=i)
    discover_uploads(engine, store, UploadCursor(through=today()), today(), UploadLimits(recheck_days=0))
    ids = sorted(_ids(engine))
    with engine.connect() as other:  # e.g. the sensor queueing a batch at the same moment
        with other.begin():
            locked = other.execute(
                sa.select(Upload.id).where(Upload.id.in_(ids[:3])).with_for_update()
            ).scalars()
            assert sorted(locked) == ids[:3]
            assert take_confirmed(engine, day=today(), batch_key="run-b", limit=10) == ids[3:]
        assert take_confirmed(engine, day=today(), batch_key="run-c", limit=10) == ids[:3]
    assert take_confirmed(engine, day=today(), batch_key="run-d", limit=10) == []


def test_new_uploads_wait_while_as_many_upload_runs_run_as_the_instance_allows(
    env, database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Those runs take the backlog on themselves; a run requested now would only queue behind them."""
    from dagster import DagsterRunStatus

    from orchestration.definitions import build_definitions

    monkeypatch.setenv("DATABASE_URL", database_url)
    monkeypatch.setenv("MEDIA_PLATFORM_DATA_DIR", str(tmp_path / "data"))
    engine, store, resources = env
    with DagsterInstance.ephemeral() as instance:  # no run queue limit: one run at a time
        job = build_definitions().resolve_job_def("process_uploads_job")
        running = instance.create_run_for_job(job, status=DagsterRunStatus.STARTED)
        keys = [put(store, "ida", f"r{i}", seed=i) for i in range(3)]
        held = tick(resources, None, instance)
        assert held.run_requests == []
        assert held.skip_reason is not None and "take on new uploads" in held.skip_reason.skip_message
        instance.report_run_canceled(running)
        released = tick(resources, held.cursor, instance)
        assert len(released.run_requests) == 1 and requested_keys(engine, released) == sorted(keys)


def test_a_tick_requests_only_the_upload_runs_that_can_start_now(database_url: str, monkeypatch) -> None:
    """The rest of a backlog stays `confirmed` for the running runs to take on, instead of runs queued
    behind them."""
    monkeypatch.setenv("DATABASE_URL", database_url)  # before the definitions load
    from dagster import DagsterRunStatus, instance_for_test

    from orchestration.definitions import build_definitions
    from orchestration.sensors import free_upload_runs

    job = build_definitions().resolve_job_def("process_uploads_job")
    since = dt.datetime.now(dt.UTC) - dt.timedelta(minutes=30)
    with instance_for_test() as instance:
        assert free_upload_runs(instance, since, parallel_runs=2) == (2, "")
        first = instance.create_run_for_job(job, status=DagsterRunStatus.STARTED)
        assert free_upload_runs(instance, since, parallel_runs=2) == (1, "")
        instance.create_run_for_job(job, status=DagsterRunStatus.STARTED)
        free, why = free_upload_runs(instance, since, parallel_runs=2)
        assert free == 0 and "take on new uploads" in why
        instance.report_run_canceled(first)
        instance.create_run_for_job(job, status=DagsterRunStatus.STARTING)
        free, why = free_upload_runs(instance, since, parallel_runs=2)
        assert free == 0 and "not started" in why
        assert free_upload_runs(instance, dt.datetime.now(dt.UTC) + dt.timedelta(minutes=1), 2) == (2, "")
