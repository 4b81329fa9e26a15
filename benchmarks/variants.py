"""Variant generation benchmark: the platform vs naive Pillow vs libvips (pyvips), same corpus, one run.

Part 1 (rendering, in memory, one thread each): on the same originals
- platform: `core.imaging.render_variants` (one decode, draft() for JPEG thumbnails, chained 600->300->150);
- naive Pillow: open, then `.thumbnail()` per size from the full image, full-size WebP/AVIF;
- libvips: `thumbnail_buffer` per size (shrink-on-load), `webpsave`/`heifsave` from one decode;
at equal encoder settings from config/variants.yaml (WebP Q/effort, AVIF Q/speed -> effort = 9 - speed,
both through libaom, metadata stripped). Prints originals/s and ratios for the full set and for the
three thumbnails alone.

Part 2 (`--scaling`): the variants job on the multiprocess executor (2 processes; step processes spawned,
and forked from a preloaded forkserver, the job's default) vs the in-process executor (one process) on an
embedded Postgres + local store, with the Dagster instance on dagster-postgres as in production. Same
originals, variants cleared between runs; executors alternate within each round and the speed-up is the
median of the rounds' ratios. Each run's step timeline (from its event log) shows where the wall time
went: a multiprocess run pays a fixed ~5 s (forkserver boot, then a process per step hand-off), so the
ratio grows with the run's size.

    PYTHONPATH=. python benchmarks/variants.py [--images 24]
        [--scaling --scaling-images 160 --scaling-rounds 1 --skip-spawn]
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

os.environ.setdefault("VIPS_CONCURRENCY", "1")  # one thread per process, like the platform's steps

import io
from functools import cache
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from core.imaging import VariantPlan, VariantSpec

# Heavy imports (numpy, Pillow, pyvips) stay inside the functions that use them: the multiprocess
# executor's step processes re-import this script as `__mp_main__`, which a production run worker
# (`python -m dagster api execute_run`) never makes them do, so a heavy module top would bill its
# imports to every step of the scaling runs.


@cache
def variant_plan() -> VariantPlan:
    from core.imaging import load_variant_plan

    return load_variant_plan()


def corpus(count: int, seed: int = 11) -> list[bytes]:
    """Photo-like JPEGs of 1-3 MP (a quarter of them EXIF-rotated), like phone uploads."""
    import numpy as np

    from core.demo.images import encode_image, exif_rotated_jpeg, random_size, synthetic_photo

    rng = np.random.default_rng(seed)
    images = []
    for i in range(count):
        width, height = random_size(rng, 1.0, 3.0)
        if i % 4 == 3:
            images.append(exif_rotated_jpeg(rng, width, height, 6))
        else:
            images.append(encode_image(synthetic_photo(rng, width, height), "JPEG", quality=88))
    return images


def naive_pillow(data: bytes, specs: list[VariantSpec]) -> int:
    from PIL import Image, ImageOps

    from core.imaging import encode

    threads = variant_plan().threads
    produced = 0
    with Image.open(io.BytesIO(data)) as opened:
        image = ImageOps.exif_transpose(opened).convert("RGB")
    image.info = {}
    for spec in specs:
        if spec.kind == "thumbnail":
            thumb = image.copy()
            thumb.thumbnail((spec.box, spec.box), Image.Resampling.LANCZOS)
            produced += len(encode(thumb, spec, icc_profile=None, threads=threads))
        else:
            produced += len(encode(image, spec, icc_profile=None, threads=threads))
    return produced


def vips_set(data: bytes, specs: list[VariantSpec]) -> int:
    import pyvips

    def save(image, spec: VariantSpec) -> bytes:
        if spec.format == "webp":
            return image.webpsave_buffer(Q=spec.quality, effort=min(spec.effort, 6), keep="none")
        if spec.format == "avif":
            return image.heifsave_buffer(
                Q=spec.quality, effort=max(0, 9 - spec.effort), compression="av1", keep="none"
            )
        return image.jpegsave_buffer(Q=spec.quality, keep="none")

    produced = 0
    fulls = [s for s in specs if s.kind == "full"]
    if fulls:
        full = pyvips.Image.new_from_buffer(data, "").autorot().copy_memory()
        for spec in fulls:
            produced += len(save(full, spec))
    for spec in specs:
        if spec.kind == "thumbnail":
            thumb = pyvips.Image.thumbnail_buffer(data, spec.box, height=spec.box, size="down")
            produced += len(save(thumb, spec))
    return produced


def platform(data: bytes, specs: list[VariantSpec]) -> int:
    from core.imaging import render_variants

    plan = variant_plan()
    result = render_variants(data, specs, threads=plan.threads)
    return sum(len(v.data or b"") for v in result.variants)


def measure(
    contenders: dict[str, Callable[[bytes, list[VariantSpec]], int]],
    images: list[bytes],
    specs: list[VariantSpec],
    rounds: int,
) -> dict[str, float]:
    """Originals/s per contender, best of `rounds`. Contenders alternate image by image within each
    round, so a neighbour's load burst on this shared machine hits all of them alike."""
    times = {name: [0.0] * rounds for name in contenders}
    for r in range(rounds):
        for data in images:
            for name, fn in contenders.items():
                started = time.perf_counter()
                fn(data, specs)
                times[name][r] += time.perf_counter() - started
    rates = {}
    for name, spent in times.items():
        best = min(spent)
        rates[name] = len(images) / best
        print(
            f"  {name:<14} {rates[name]:7.2f} originals/s  "
            f"(best {best:.2f}s, median {statistics.median(spent):.2f}s)"
        )
    return rates


def rendering(count: int, rounds: int) -> None:
    images = corpus(count)
    total_mb = sum(len(d) for d in images) / 1e6
    print(f"corpus: {count} JPEG originals, {total_mb:.1f} MB, 1-3 MP, every 4th EXIF-rotated; 1 thread each")
    full = list(variant_plan().specs)
    thumbs = [s for s in variant_plan().specs if s.kind == "thumbnail"]
    contenders = {"platform": platform, "naive Pillow": naive_pillow, "libvips": vips_set}
    for label, specs in (("full set (3 thumbnails + WebP + AVIF)", full), ("three thumbnails alone", thumbs)):
        print(label)
        rates = measure(contenders, images, specs, rounds)
        ours, naive, vips = rates["platform"], rates["naive Pillow"], rates["libvips"]
        print(f"  ratios: platform/libvips {ours / vips:.2f}x, platform/naive {ours / naive:.2f}x")


# -- part 2: executor scaling ---------------------------------------------------------------------------


def variants_job():
    """Reconstructable entry point for the multiprocess executor's child processes."""
    from orchestration.definitions import build_definitions

    return build_definitions().resolve_job_def("variants_job")


def seed_originals(engine, store, images: list[bytes]) -> None:
    """Catalog `images` as verified originals lacking variants, as the migration leaves them."""
    from core.ingest import store_verified, upsert_object
    from core.media_types import inspect_media
    from core.objectstore.base import sha256_hex

    for data in images:
        info = inspect_media(data)
        blob = store_verified(store, data, sha256_hex(data), info)
        with engine.begin() as conn:
            upsert_object(conn, blob, info, store.provider, store=store)


def variants_done(engine) -> int:
    """Variant rows `ready` or `skipped`: what a run of the variants job left done."""
    import sqlalchemy as sa

    with engine.connect() as conn:
        return int(
            conn.execute(
                sa.text("SELECT count(*) FROM media_catalog.variants WHERE status IN ('ready', 'skipped')")
            ).scalar_one()
        )


def timed_run(execution: dict, partition: str, dagster_home: str) -> tuple[float, str, bool]:
    """One variants_job run in this (fresh) process: wall time from submission to the run's end."""
    from dagster import DagsterInstance, execute_job, reconstructable

    job = reconstructable(variants_job)
    job.get_definition()  # a run worker has loaded the code location before its run starts
    with DagsterInstance.from_config(dagster_home) as instance:
        started = time.perf_counter()
        result = execute_job(
            job,
            instance=instance,
            run_config={
                "execution": {"config": execution},
                "loggers": {"console": {"config": {"log_level": "WARNING"}}},
            },
            tags={"dagster/partition": partition},
        )
        return time.perf_counter() - started, result.run_id, result.success


def step_timeline(instance, run_id: str) -> str:
    """When each step started and how long it ran, from the run's event log: where the wall time went."""
    from dagster import DagsterEventType

    begun: dict[str, float] = {}
    spans: list[str] = []
    origin = None
    for record in instance.all_logs(run_id):
        event = record.dagster_event
        if event is None:
            continue
        if origin is None:
            origin = record.timestamp
        step = (event.step_key or "").replace("media__image_variants.", "")
        if event.event_type == DagsterEventType.STEP_START:
            begun[step] = record.timestamp
        elif event.event_type == DagsterEventType.STEP_SUCCESS and step in begun:
            spans.append(f"{step} @{begun[step] - origin:.1f}s for {record.timestamp - begun[step]:.1f}s")
    return "; ".join(spans)


def scaling(count: int, rounds: int = 1, skip_spawn: bool = False) -> None:
    import datetime as dt

    import sqlalchemy as sa
    from dagster import DagsterInstance

    from core.catalog.db import get_engine, upgrade_catalog
    from core.embedded_postgres import start_embedded_postgres
    from core.objectstore.local import LocalObjectStore
    from orchestration.instance import INSTANCE_DATABASE, prepare_embedded_instance
    from orchestration.variants import FORKSERVER_EXECUTION

    work = Path(tempfile.mkdtemp(prefix="bench-variants-"))
    os.environ["MEDIA_PLATFORM_DATA_DIR"] = str(work / "data")
    server = start_embedded_postgres(Path("/tmp") / f"bv-pg-{os.getpid()}", delete_on_exit=True)
    database_url = server.ensure_database("bench_variants")
    os.environ["DATABASE_URL"] = database_url
    # Runs, events and step hand-offs go through dagster-postgres, as in production (dagster.yaml), on
    # this benchmark's server and in its own home, never a DAGSTER_HOME the shell may have exported.
    server.ensure_database(INSTANCE_DATABASE)
    os.environ["DAGSTER_POSTGRES_URL"] = server.url(INSTANCE_DATABASE, driver="postgresql")
    os.environ.pop("DAGSTER_HOME", None)
    dagster_home = prepare_embedded_instance(work)
    upgrade_catalog(database_url)
    engine = get_engine(database_url)
    from resources.settings import object_store_resource

    store = object_store_resource().store()
    assert isinstance(store, LocalObjectStore)
    seed_originals(engine, store, corpus(count, seed=23))
    partition = dt.datetime.now(dt.UTC).date().isoformat()
    print(f"scaling: {count} originals (1-3 MP) through variants_job, partition {partition}")
    executors = {
        "in_process (1 process)": {"in_process": {}},
        "multiprocess, spawn": {"multiprocess": {"max_concurrent": 2}},
        "multiprocess, forkserver (the job's default)": {
            "multiprocess": {"max_concurrent": 2, **FORKSERVER_EXECUTION["multiprocess"]}
        },
    }
    if skip_spawn:
        del executors["multiprocess, spawn"]
    results: dict[str, list[float]] = {label: [] for label in executors}
    with DagsterInstance.from_config(str(dagster_home)) as instance:
        for round_ in range(1, rounds + 1):
            # Executors alternate within each round, so a neighbour's load burst on this shared machine
            # hits all of them alike; the ratios below compare runs of the same round.
            for label, execution in executors.items():
                with engine.begin() as conn:
                    conn.execute(sa.text("DELETE FROM media_catalog.variants"))
                # A fresh process per run, as a production run worker is: nothing (a forkserver, warm
                # imports) carries over from one run to the next.
                with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as worker:
                    elapsed, run_id, success = worker.submit(
                        timed_run, execution, partition, str(dagster_home)
                    ).result()
                assert success, label
                ready = variants_done(engine)
                results[label].append(elapsed)
                print(
                    f"  round {round_}: {label:<44} {elapsed:6.1f}s  {count / elapsed:5.2f} originals/s  "
                    f"({ready} variants, load {os.getloadavg()[0]:.1f})"
                )
                print(f"    {step_timeline(instance, run_id)}")
    baseline = results["in_process (1 process)"]
    for label, times in list(results.items())[1:]:
        ratios = [one / t for one, t in zip(baseline, times, strict=True)]
        print(
            f"  speed-up vs in_process, {label}: median {statistics.median(ratios):.2f}x "
            f"(rounds: {', '.join(f'{r:.2f}x' for r in ratios)}; cores: {os.cpu_count()})"
        )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--images", type=int, default=24)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--scaling", action="store_true", help="also measure the executor scaling")
    # 160: ~85 s of single-process work, where a run's fixed multiprocess cost (~5 s) stops dominating.
    parser.add_argument("--scaling-images", type=int, default=160)
    parser.add_argument("--scaling-rounds", type=int, default=1, help="runs per executor, alternating")
    parser.add_argument("--skip-spawn", action="store_true", help="leave out the spawn start method")
    parser.add_argument("--skip-rendering", action="store_true")
    args = parser.parse_args(argv)
    print(
        f"machine: {os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f} "
        "(shared with other developers)"
    )
    if not args.skip_rendering:
        rendering(args.images, args.rounds)
    if args.scaling:
        scaling(args.scaling_images, args.scaling_rounds, args.skip_spawn)
    return 0


if __name__ == "__main__":
    sys.exit(main())
