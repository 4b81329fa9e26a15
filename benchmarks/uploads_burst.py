"""Burst of uploads on the embedded default: N objects land in the uploads area at once; sensor ticks
(the real `upload_sensor`, evaluated back to back) register and batch them; each requested run executes
`process_uploads_job` in process with the sensor's run config. Reports the upload-to-variants latency
(object last_modified -> uploads row processed, after its thumbnails are recorded; the full-size WebP
/AVIF follow later in the same run), p50/p95/max.

The daemon's tick interval (5 s) is not included: add up to one interval in production. Runs
execute one after another here (one process); a run coordinator with concurrent runs would cut the tail.

    PYTHONPATH=. python benchmarks/uploads_burst.py [--uploads 1000] [--size 320x240]
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--uploads", type=int, default=1000)
    parser.add_argument("--size", default="320x240")
    parser.add_argument("--bad-every", type=int, default=50, help="one invalid upload every N")
    args = parser.parse_args(argv)
    width, height = (int(v) for v in args.size.split("x"))

    work = Path(tempfile.mkdtemp(prefix="bench-burst-"))
    os.environ["MEDIA_PLATFORM_DATA_DIR"] = str(work / "data")
    from core.embedded_postgres import start_embedded_postgres

    pg = start_embedded_postgres(Path("/tmp") / f"bb-pg-{os.getpid()}", delete_on_exit=True)
    os.environ["DATABASE_URL"] = pg.ensure_database("bench_burst")

    import sqlalchemy as sa
    from dagster import DagsterInstance, build_sensor_context

    from core.catalog.db import get_engine, upgrade_catalog
    from core.demo.images import encode_image, synthetic_photo
    from core.keys import upload_key
    from core.objectstore.base import sha256_hex
    from core.uploads import percentile
    from orchestration.definitions import build_definitions
    from orchestration.sensors import upload_sensor
    from resources.settings import build_resources

    database_url = os.environ["DATABASE_URL"]
    upgrade_catalog(database_url)
    engine = get_engine(database_url)
    resources = build_resources()
    store = resources["object_store"].store()
    defs = build_definitions()
    job = defs.resolve_job_def("process_uploads_job")

    rng = np.random.default_rng(5)
    today = dt.datetime.now(dt.UTC).date()
    print(f"machine: {os.cpu_count()} cores, load {os.getloadavg()[0]:.1f} (shared with other developers)")
    started = time.perf_counter()
    for i in range(args.uploads):
        bad = args.bad_every and i % args.bad_every == args.bad_every - 1
        # every upload distinct, so none is deduplicated against another
        data = (
            b"not an image %d" % i if bad else encode_image(synthetic_photo(rng, width, height), "JPEG", 85)
        )
        key = upload_key(today, f"user{i % 37}", f"burst{i:05d}", "photo.jpg")
        store.put_bytes(key, data, sha256=sha256_hex(data), content_type="image/jpeg")
    print(f"burst: {args.uploads} uploads of {args.size} written in {time.perf_counter() - started:.1f}s")

    cursor, runs, ticks = None, 0, 0
    with DagsterInstance.ephemeral() as instance:
        while True:
            with build_sensor_context(cursor=cursor, resources=resources, instance=instance) as context:
                result = upload_sensor(context)
            ticks += 1
            cursor = result.cursor
            if not result.run_requests:
                break
            for request in result.run_requests:
                run = job.execute_in_process(
                    run_config={
                        **request.run_config,
                        "loggers": {"console": {"config": {"log_level": "WARNING"}}},
                    },
                    partition_key=request.partition_key,
                    instance=instance,
                    tags=request.tags,
                )
                assert run.success
                runs += 1
    elapsed = time.perf_counter() - started
    with engine.connect() as conn:
        rows = conn.execute(
            sa.text(
                "SELECT status, extract(epoch FROM processed_at - object_modified_at) AS latency "
                "FROM media_catalog.uploads"
            )
        ).all()
        variants = conn.execute(sa.text("SELECT count(*) FROM media_catalog.variants")).scalar_one()
    statuses: dict[str, int] = {}
    for row in rows:
        statuses[row.status] = statuses.get(row.status, 0) + 1
    latencies = [float(r.latency) for r in rows if r.status == "processed"]
    print(
        f"processed in {elapsed:.1f}s: {ticks} sensor ticks, {runs} runs, "
        f"statuses {statuses}, {variants} variants"
    )
    print(
        f"upload-to-variants latency: p50 {percentile(latencies, 50):.1f}s, "
        f"p95 {percentile(latencies, 95):.1f}s, "
        f"max {max(latencies):.1f}s; throughput {len(rows) / elapsed:.1f} uploads/s"
    )
    return 0 if statuses.get("processed", 0) + statuses.get("rejected", 0) == args.uploads else 1


if __name__ == "__main__":
    sys.exit(main())
