"""Fresh uploads end to end: the real daemon, sensors and runs, from an upload's PUT to its variants.

Runs what `./dev ui` (`dagster dev`) runs minus the webserver: a code server (`dagster code-server
start`) and `dagster-daemon run` pointed at it, on the embedded default instance (dagster.yaml on a
`dagster` database of an embedded Postgres, in a temporary home), the catalog in a database of the same
server and the local object store. `upload_sensor` and `media_automation` are started with
`dagster sensor start`. Uploads go through the app's flow
(`request_upload` -> PUT -> `confirm_upload`): first one per second for `--minutes`, then, once those are
done (and `--pause` seconds later), a burst of `--burst` uploads at once. An upload run waits
`uploads.linger_seconds` (30) for new uploads before it ends, so a burst right after the steady uploads
meets running runs; `--pause 45` measures a burst that has to start them (sensor tick, run start-up).

Per upload, from the end of its PUT (client clock; the catalog's `variants.created_at` on the same
machine) to its three thumbnails `ready` and to the full set (WebP and AVIF too, `ready` or `skipped`):
p50/p95/max. Baselines from the same run and the same images, after the daemon is stopped: one process
rendering one image (`render_variants`, as benchmarks/variants.py does; sampled), and the burst's images
rendered through the rendering benchmark's 2-process run (benchmarks/variants.py --scaling: `variants_job`
on the multiprocess executor, 2 processes, storing and recording them in a catalog of its own: the
issue's "full set within 1.3x the time the rendering benchmark needs for the same images on 2
processes"), and rendered alone in a pool of 2 processes (no storage, catalog or Dagster: stricter).
The timeline splits the median upload's wait into sensor (PUT -> its run created), queue + launch
(created -> the run worker started the run), and the run itself, from the instance's run records; an
upload a running run took on (`core.uploads.take_confirmed`) is counted apart, PUT -> thumbnails.

    PYTHONPATH=. python benchmarks/fresh_uploads.py [--minutes 5] [--burst 1000] [--pause 0]
        [--megapixels 0.3-1.0]
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
THUMBS = ("thumb_150", "thumb_300", "thumb_600")


def make_images(count: int, min_mp: float, max_mp: float, seed: int) -> list[bytes]:
    """Distinct photo-like JPEGs (none deduplicated against another), like phone uploads."""
    import numpy as np

    from core.demo.images import encode_image, random_size, synthetic_photo

    rng = np.random.default_rng(seed)
    return [
        encode_image(synthetic_photo(rng, *random_size(rng, min_mp, max_mp)), "JPEG", quality=88)
        for _ in range(count)
    ]


def render_full(data: bytes) -> float:
    from core.imaging import load_variant_plan, render_variants

    plan = load_variant_plan()
    render_variants(data, plan.specs, threads=plan.threads)
    return 0.0


def variants_job_seconds(server, work: Path, home: Path, images: list[bytes]) -> tuple[float, int]:
    """The rendering benchmark's figure on 2 processes (benchmarks/variants.py --scaling) for `images`:
    `variants_job` on its default executor (multiprocess, forkserver) capped at 2 processes, from its
    submission to its end, rendering, storing and recording their full sets, on a catalog database and a
    local store of its own (the uploads' catalog has the sets already). Returns (seconds, variant rows
    ready or skipped)."""
    import multiprocessing

    from benchmarks.variants import seed_originals, timed_run, variants_done
    from core.catalog.db import get_engine, upgrade_catalog
    from orchestration.variants import FORKSERVER_EXECUTION
    from resources.settings import object_store_resource

    database_url = server.ensure_database("media_variants_baseline")
    upgrade_catalog(database_url)
    os.environ["DATABASE_URL"] = database_url  # the run's resources read these, as a deployment's do
    os.environ["MEDIA_PLATFORM_DATA_DIR"] = str(work / "variants-baseline")
    engine = get_engine(database_url)
    seed_originals(engine, object_store_resource().store(), images)
    execution = {"multiprocess": {"max_concurrent": 2, **FORKSERVER_EXECUTION["multiprocess"]}}
    partition = dt.datetime.now(dt.UTC).date().isoformat()
    # A fresh process, as a run worker is (benchmarks/variants.py does the same).
    with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as worker:
        seconds, run_id, success = worker.submit(timed_run, execution, partition, str(home)).result()
    if not success:
        raise SystemExit(f"variants_job baseline run {run_id} failed")
    done = variants_done(engine)
    engine.dispose()
    return seconds, done


def render_times(data: bytes) -> tuple[float, float]:
    """(three thumbnails, full set) seconds for one image in this process."""
    from core.imaging import load_variant_plan, render_variants

    plan = load_variant_plan()
    thumbs = [s for s in plan.specs if s.kind == "thumbnail"]
    started = time.perf_counter()
    render_variants(data, thumbs, threads=plan.threads)
    middle = time.perf_counter()
    render_variants(data, plan.specs, threads=plan.threads)
    return middle - started, time.perf_counter() - middle


class Uploader:
    """The app's side: reserve a key, PUT the bytes, confirm. Returns (upload row id, PUT end time)."""

    def __init__(self, engine, store) -> None:
        self.engine, self.store, self.n = engine, store, 0

    def upload(self, data: bytes) -> tuple[int, dt.datetime]:
        from core.objectstore.base import sha256_hex
        from core.uploads import confirm_upload, request_upload

        self.n += 1
        with self.engine.begin() as conn:
            row_id, key = request_upload(
                conn,
                owner_id=f"user{self.n % 37}",
                filename=f"photo{self.n}.jpg",
                declared_mime="image/jpeg",
                day=dt.datetime.now(dt.UTC).date(),
            )
        self.store.put_bytes(key, data, sha256=sha256_hex(data), content_type="image/jpeg")
        put_at = dt.datetime.now(dt.UTC)
        with self.engine.begin() as conn:
            confirm_upload(conn, key)
        return row_id, put_at


def ready_times(engine, ids: list[int]) -> dict[int, tuple[dt.datetime | None, dt.datetime | None]]:
    """Per upload: when its third thumbnail became ready, and when its full set was done (else None)."""
    import sqlalchemy as sa

    from core.imaging import load_variant_plan

    specs = len(load_variant_plan().specs)
    query = sa.text(
        """
        SELECT u.id,
          CASE WHEN count(*) FILTER (WHERE v.variant_name = ANY(:thumbs) AND v.status = 'ready') = 3
               THEN max(v.created_at) FILTER (WHERE v.variant_name = ANY(:thumbs)) END AS thumbs,
          CASE WHEN count(*) FILTER (WHERE v.status IN ('ready', 'skipped')) = :specs
               THEN max(v.created_at) END AS full_set
        FROM media_catalog.uploads u JOIN media_catalog.variants v ON v.parent_object_id = u.object_id
        WHERE u.id = ANY(:ids) GROUP BY u.id
        """
    )
    with engine.connect() as conn:
        rows = conn.execute(query, {"ids": ids, "thumbs": list(THUMBS), "specs": specs}).all()
    return {r.id: (r.thumbs, r.full_set) for r in rows}


def wait_done(engine, ids: list[int], timeout: float, label: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        times = ready_times(engine, ids)
        thumbs = sum(1 for t, _ in times.values() if t)
        full = sum(1 for _, f in times.values() if f)
        if full == len(ids):
            return
        print(
            f"  {label}: {thumbs}/{len(ids)} thumbnails, {full}/{len(ids)} full sets "
            f"(load {os.getloadavg()[0]:.1f})",
            flush=True,
        )
        time.sleep(10)
    print(f"  {label}: timed out after {timeout:.0f}s")


def pct(values: list[float], p: float) -> float:
    from core.uploads import percentile

    return percentile(values, p)


def summary(label: str, values: list[float], total: int) -> str:
    if not values:
        return f"{label}: none of {total} done"
    return (
        f"{label}: p50 {pct(values, 50):.1f}s p95 {pct(values, 95):.1f}s max {max(values):.1f}s "
        f"({len(values)}/{total} done)"
    )


def runs_by_batch(instance) -> tuple[dict[str, object], list[object]]:
    """Upload runs by their batch key, and the other (automation) runs, from the instance's records."""
    uploads, others = {}, []
    for record in instance.get_run_records():
        tags = record.dagster_run.tags
        if "uploads/batch" in tags:
            uploads[tags["uploads/batch"]] = record
        else:
            others.append(record)
    return uploads, others


def ts(value) -> float | None:
    if value is None:
        return None
    return value.timestamp() if isinstance(value, dt.datetime) else float(value)


def timeline(engine, instance, uploads: dict[int, dt.datetime], label: str) -> None:
    """Where the seconds went for these uploads (medians and p95 of each stage)."""
    import sqlalchemy as sa

    ids = list(uploads)
    with engine.connect() as conn:
        batch_of = dict(
            conn.execute(
                sa.text("SELECT id, batch_key FROM media_catalog.uploads WHERE id = ANY(:ids)"), {"ids": ids}
            ).all()
        )
    times = ready_times(engine, ids)
    upload_runs, auto_runs = runs_by_batch(instance)
    stages: dict[str, list[float]] = {
        k: []
        for k in (
            "sensor (PUT -> run created)",
            "queue+launch (created -> started)",
            "run (started -> thumbnails)",
            "automation (thumbnails -> variants run created)",
            "queue+launch (created -> started) ",
            "rendering (started -> full set)",
        )
    }
    names = list(stages)
    taken_on: list[float] = []  # PUT -> thumbnails of uploads a running run took on
    for upload_id, put_at in uploads.items():
        record = upload_runs.get(batch_of.get(upload_id) or "")
        thumbs, full = times.get(upload_id, (None, None))
        if record is None or thumbs is None:
            continue
        created, started = ts(record.create_timestamp), ts(record.start_time)
        if started is None:
            continue
        if created < put_at.timestamp():  # taken on by a run already running (no tick, no start-up)
            taken_on.append(thumbs.timestamp() - put_at.timestamp())
        else:
            stages[names[0]].append(created - put_at.timestamp())
            stages[names[1]].append(started - created)
            stages[names[2]].append(thumbs.timestamp() - started)
        if full is None or full.timestamp() - thumbs.timestamp() < 1.0:  # none, or rendered inline
            continue
        # the automation run that recorded the full set (created after the thumbnails, ended after it)
        run = next(
            (
                r
                for r in sorted(auto_runs, key=lambda r: ts(r.create_timestamp))
                if ts(r.start_time) and ts(r.start_time) <= full.timestamp() <= (ts(r.end_time) or 1e12)
            ),
            None,
        )
        if run is None:  # rendered inline by the upload run
            continue
        a_created, a_started = ts(run.create_timestamp), ts(run.start_time)
        stages[names[3]].append(a_created - thumbs.timestamp())
        stages[names[4]].append(a_started - a_created)
        stages[names[5]].append(full.timestamp() - a_started)
    print(f"  timeline, {label} (p50 / p95 of each stage, s):")
    for name, values in stages.items():
        if values:
            print(f"    {name:<48} {pct(values, 50):6.1f} / {pct(values, 95):6.1f}  (n={len(values)})")
    if taken_on:
        print(
            f"    {'taken on by a running run (PUT -> thumbnails)':<48} {pct(taken_on, 50):6.1f} / "
            f"{pct(taken_on, 95):6.1f}  (n={len(taken_on)})"
        )
    print(f"    runs: {len(upload_runs)} upload runs, {len(auto_runs)} automation runs")
    first_put = min(uploads.values()).timestamp()
    per_run = Counter(batch_of[i] for i in ids if batch_of.get(i) in upload_runs)  # batches with a run
    for key, count in sorted(per_run.items(), key=lambda kv: ts(upload_runs[kv[0]].create_timestamp) or 0):
        record = upload_runs[key]
        marks = (ts(record.create_timestamp), ts(record.start_time), ts(record.end_time))
        created, started, ended = (f"{m - first_put:6.1f}" if m else "     -" for m in marks)
        print(
            f"    upload run {key}: {count:4d} uploads; created {created}, started {started}, "
            f"ended {ended} s after the first PUT"
        )


def start_code_server(bindir: Path, work: Path, log) -> tuple[subprocess.Popen, Path]:
    """The code location served as `dagster dev` (`./dev ui`) serves it: one long-lived
    `dagster code-server start` process, and a workspace pointing the daemon at its socket. A daemon
    given workspace.yaml itself (`python_module`) would start a code server of its own and replace it
    every 60 s (Dagster's RELOAD_WORKSPACE_INTERVAL), each replacement importing the platform again."""
    socket = work / "code.sock"
    server = subprocess.Popen(
        [
            str(bindir / "dagster"),
            "code-server",
            "start",
            "--socket",
            str(socket),
            "-m",
            "orchestration.definitions",
            "-a",
            "defs",
            "-d",
            str(ROOT),
            "--location-name",
            "media_platform",
            "--log-level",
            "warning",
        ],
        cwd=ROOT,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    workspace = work / "workspace.yaml"
    workspace.write_text(
        f"load_from:\n  - grpc_server:\n      socket: {socket}\n      location_name: media_platform\n"
    )
    deadline = time.monotonic() + 180
    while subprocess.run(
        [str(bindir / "dagster"), "api", "grpc-health-check", "--socket", str(socket)],
        capture_output=True,
    ).returncode:
        if time.monotonic() > deadline or server.poll() is not None:
            raise SystemExit(f"the code server did not start (log {log.name})")
        time.sleep(1)
    return server, workspace


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--minutes", type=float, default=5.0, help="uploads at 1 per second for this long")
    parser.add_argument("--burst", type=int, default=1000)
    parser.add_argument(
        "--pause", type=float, default=0.0, help="seconds between the steady uploads' end and the burst"
    )
    parser.add_argument("--megapixels", default="0.3-1.0", help="uploads' pixel count range, log-uniform")
    parser.add_argument("--timeout", type=float, default=1800, help="give up waiting after this long")
    parser.add_argument("--baseline-sample", type=int, default=20, help="images timed one by one")
    args = parser.parse_args(argv)
    min_mp, max_mp = (float(v) for v in args.megapixels.split("-"))
    steady_count = round(args.minutes * 60)

    work = Path(tempfile.mkdtemp(prefix="bench-fresh-"))
    os.environ["MEDIA_PLATFORM_DATA_DIR"] = str(work / "data")
    os.environ.pop("DAGSTER_HOME", None)
    os.environ.pop("DAGSTER_POSTGRES_URL", None)
    from core.embedded_postgres import start_embedded_postgres

    server = start_embedded_postgres(Path("/tmp") / f"bf-pg-{os.getpid()}", delete_on_exit=True)
    os.environ["DATABASE_URL"] = server.ensure_database("media")
    from orchestration.instance import INSTANCE_DATABASE, prepare_embedded_instance

    server.ensure_database(INSTANCE_DATABASE)
    os.environ["DAGSTER_POSTGRES_URL"] = server.url(INSTANCE_DATABASE, driver="postgresql")
    home = prepare_embedded_instance(work)
    os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))

    from dagster import DagsterInstance

    from core.catalog.db import get_engine, upgrade_catalog
    from resources.settings import object_store_resource

    upgrade_catalog(os.environ["DATABASE_URL"])
    engine = get_engine(os.environ["DATABASE_URL"])
    store = object_store_resource().store()
    print(
        f"machine: {os.cpu_count()} cores, load average {' '.join(f'{v:.1f}' for v in os.getloadavg())} "
        "(shared with other developers: figures are pessimistic)"
    )
    print(f"generating {steady_count + 1} + {args.burst} JPEGs of {min_mp}-{max_mp} MP ...", flush=True)
    warmup = make_images(1, min_mp, max_mp, seed=1)[0]
    steady_images = make_images(steady_count, min_mp, max_mp, seed=2)
    burst_images = make_images(args.burst, min_mp, max_mp, seed=3)

    bindir = Path(sys.executable).parent
    log = open(work / "daemon.log", "w")  # noqa: SIM115 - closed at the end
    code_server, workspace = start_code_server(bindir, work, log)
    daemon = subprocess.Popen(
        [str(bindir / "dagster-daemon"), "run", "-w", str(workspace)],
        cwd=ROOT,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        for name in ("upload_sensor", "media_automation"):
            subprocess.run(
                [str(bindir / "dagster"), "sensor", "start", name, "-w", str(workspace)],
                cwd=ROOT,
                check=True,
                capture_output=True,
            )
        print(f"daemon pid {daemon.pid} (log {work / 'daemon.log'}); sensors started", flush=True)
        uploader = Uploader(engine, store)
        started = time.monotonic()
        warm_id, _ = uploader.upload(warmup)
        wait_done(engine, [warm_id], args.timeout, "warm-up upload (not counted)")
        print(f"warm-up done in {time.monotonic() - started:.0f}s", flush=True)

        steady: dict[int, dt.datetime] = {}
        print(f"steady: {steady_count} uploads at 1 per second", flush=True)
        begin = time.monotonic()
        for i, data in enumerate(steady_images):
            row_id, put_at = uploader.upload(data)
            steady[row_id] = put_at
            time.sleep(max(0.0, begin + i + 1 - time.monotonic()))
        wait_done(engine, list(steady), args.timeout, "steady")

        if args.pause:
            print(f"pause: {args.pause:.0f}s before the burst", flush=True)
            time.sleep(args.pause)
        burst: dict[int, dt.datetime] = {}
        burst_started = dt.datetime.now(dt.UTC)
        for data in burst_images:
            row_id, put_at = uploader.upload(data)
            burst[row_id] = put_at
        put_seconds = (dt.datetime.now(dt.UTC) - burst_started).total_seconds()
        print(f"burst: {args.burst} uploads PUT in {put_seconds:.1f}s", flush=True)
        wait_done(engine, list(burst), args.timeout, "burst")
        load_during = os.getloadavg()
    finally:
        for process in (daemon, code_server):  # the code server's group holds the run workers
            os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
        log.close()

    print(f"load average at the end of the runs: {' '.join(f'{v:.1f}' for v in load_during)}")
    with DagsterInstance.from_config(str(home)) as instance:
        for label, uploads in (("1 per second", steady), (f"burst of {args.burst}", burst)):
            times = ready_times(engine, list(uploads))
            thumbs = [
                times[i][0].timestamp() - t.timestamp() for i, t in uploads.items() if times.get(i, (0,))[0]
            ]
            full = [
                times[i][1].timestamp() - t.timestamp()
                for i, t in uploads.items()
                if times.get(i, (0, None))[1]
            ]
            print(f"{label}:")
            print("  " + summary("upload -> three thumbnails", thumbs, len(uploads)))
            print("  " + summary("upload -> full set", full, len(uploads)))
            if label.startswith("burst") and uploads:
                first = min(uploads.values()).timestamp()
                last_full = max(
                    (times[i][1].timestamp() for i in uploads if times.get(i, (0, None))[1]),
                    default=float("nan"),
                )
                burst_wall = last_full - first
                print(f"  first PUT -> last full set: {burst_wall:.1f}s")
            timeline(engine, instance, uploads, label)

    sample = steady_images[: args.baseline_sample] or burst_images[: args.baseline_sample]
    singles = [render_times(d) for d in sample]
    print(
        f"baseline, one process, {len(sample)} of the same images (load {os.getloadavg()[0]:.1f}): "
        f"three thumbnails p50 {pct([s[0] for s in singles], 50):.2f}s, "
        f"full set p50 {pct([s[1] for s in singles], 50):.2f}s per image"
    )
    if burst_images:
        job, variants_done = variants_job_seconds(server, work, home, burst_images)
        print(
            f"baseline, the rendering benchmark on 2 processes (benchmarks/variants.py --scaling: "
            f"variants_job, multiprocess executor, 2 processes) for the burst's {len(burst_images)} images: "
            f"{job:.1f}s ({variants_done} variants ready or skipped, load {os.getloadavg()[0]:.1f}); "
            f"burst full set / baseline = {burst_wall / job:.2f}x (target <= 1.3x)"
        )
        t0 = time.perf_counter()
        with ProcessPoolExecutor(2) as pool:
            list(pool.map(render_full, burst_images, chunksize=4))
        two = time.perf_counter() - t0
        print(
            f"baseline, rendering alone (render_variants of the full set in a pool of 2 processes: no "
            f"storage, catalog or Dagster) for the same images: {two:.1f}s (load {os.getloadavg()[0]:.1f}); "
            f"burst full set / rendering alone = {burst_wall / two:.2f}x"
        )
    print("targets: 1/s p95 thumbnails < 20 s, full set < 120 s; burst every thumbnail < 120 s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
