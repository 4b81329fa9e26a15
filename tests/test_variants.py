"""Variant rendering and the variants asset: sizes, formats, EXIF handling, spec-change regeneration."""

from __future__ import annotations

import datetime as dt
import io
from pathlib import Path

import pytest
import sqlalchemy as sa
from dagster import materialize
from PIL import Image

from core.catalog.db import get_engine, upgrade_catalog
from core.catalog.models import Variant
from core.config import ConfigError, load_config
from core.imaging import (
    ImageDecodeError,
    VariantPlan,
    load_variant_plan,
    parse_variant_plan,
    render_variants,
)
from core.media_types import MediaInfo
from core.objectstore.local import LocalObjectStore
from core.variants import (
    RENDER_LOCK_NAMESPACE,
    load_originals,
    process_batch,
    process_original,
    process_original_alone,
    split_batches,
    variant_set_gaps,
)
from tests.support.variants import (
    GPS_IFD,
    corrupt_png,
    jpeg_bytes,
    photo,
    png_bytes,
    rotated_jpeg_with_gps,
    seed_original,
)

PLAN = load_variant_plan()


def small_plan(**changes: dict) -> VariantPlan:
    raw = load_config("variants")
    for name, settings in changes.items():
        raw["variants"][name] = {**raw["variants"][name], **settings}
    return parse_variant_plan(raw)


def test_renders_three_thumbnails_fitting_their_boxes_and_full_size_webp_and_avif() -> None:
    result = render_variants(jpeg_bytes(photo(800, 400)), PLAN.specs)
    got = {v.spec.name: (v.width, v.height, Image.open(io.BytesIO(v.data)).format) for v in result.variants}
    assert got == {
        "thumb_600": (600, 300, "WEBP"),
        "thumb_300": (300, 150, "WEBP"),
        "thumb_150": (150, 75, "WEBP"),
        "webp": (800, 400, "WEBP"),
        "avif": (800, 400, "AVIF"),
    }


def test_small_image_is_never_upscaled() -> None:
    result = render_variants(png_bytes(photo(120, 90)), [s for s in PLAN.specs if s.kind == "thumbnail"])
    assert {(v.width, v.height) for v in result.variants} == {(120, 90)}


def test_variants_apply_exif_orientation_and_carry_no_exif_or_gps() -> None:
    data = rotated_jpeg_with_gps(400, 200)
    assert Image.open(io.BytesIO(data)).getexif().get_ifd(GPS_IFD)  # the original does carry GPS
    result = render_variants(data, PLAN.specs)
    for variant in result.variants:
        image = Image.open(io.BytesIO(variant.data))
        assert image.height > image.width, variant.spec.name  # portrait once orientation 6 is applied
        exif = image.getexif()
        assert len(exif) == 0 and not exif.get_ifd(GPS_IFD), variant.spec.name
        assert "exif" not in image.info and "xmp" not in image.info, variant.spec.name
    assert (result.width, result.height) == (200, 400)


def test_jpeg_thumbnails_alone_use_reduced_decoding_and_match_full_decode() -> None:
    data = jpeg_bytes(photo(2400, 1600))
    thumbs = [s for s in PLAN.specs if s.kind == "thumbnail"]
    fast = render_variants(data, thumbs)
    slow = render_variants(data, PLAN.specs)
    fast_sizes = {v.spec.name: (v.width, v.height) for v in fast.variants}
    slow_sizes = {v.spec.name: (v.width, v.height) for v in slow.variants if v.spec.kind == "thumbnail"}
    assert (
        fast_sizes
        == slow_sizes
        == {"thumb_600": (600, 400), "thumb_300": (300, 200), "thumb_150": (150, 100)}
    )


def test_variant_larger_than_original_is_skipped_with_reason() -> None:
    tiny = png_bytes(Image.new("RGB", (64, 64), (200, 10, 10)))  # flat colour: PNG is tiny
    result = render_variants(tiny, PLAN.specs)
    skipped = {v.spec.name: v.reason for v in result.variants if v.status == "skipped"}
    assert "avif" in skipped and "not smaller than" in skipped["avif"]
    assert all(v.status == "ready" for v in result.variants if v.spec.kind == "thumbnail")


def test_transparency_is_kept_in_webp_thumbnails() -> None:
    image = Image.new("RGBA", (300, 300), (0, 0, 0, 0))
    image.paste((255, 0, 0, 255), (100, 100, 200, 200))
    result = render_variants(png_bytes(image), [PLAN.specs[0]])
    assert Image.open(io.BytesIO(result.variants[0].data)).mode == "RGBA"


def test_corrupt_pixels_raise_a_decode_error_with_a_code() -> None:
    with pytest.raises(ImageDecodeError) as raised:
        render_variants(corrupt_png(), PLAN.specs)
    assert raised.value.code == "undecodable_image"


def test_spec_hash_changes_only_for_the_edited_entry() -> None:
    edited = small_plan(thumb_300={"quality": 60})
    before = dict(PLAN.spec_pairs())
    after = dict(edited.spec_pairs())
    assert {name for name in before if before[name] != after[name]} == {"thumb_300"}


def test_invalid_spec_is_refused() -> None:
    raw = load_config("variants")
    raw["variants"]["thumb_150"]["format"] = "bmp"
    with pytest.raises(ConfigError, match="format"):
        parse_variant_plan(raw)


def test_batches_cover_every_id_once_in_a_multiple_of_the_cores() -> None:
    ids = list(range(1, 11))
    batches = split_batches(ids, batch_size=3, parallelism=2)
    assert len(batches) == 4 and sorted(i for b in batches for i in b) == ids
    assert len(split_batches([1, 2, 3], batch_size=200, parallelism=2)) == 2
    # 1,000 in batches of at most 200 on 2 cores: 6, not 5 (the fifth would run alone on one core)
    thousand = split_batches(list(range(1000)), batch_size=200, parallelism=2)
    assert [len(b) for b in thousand] == [167, 167, 167, 167, 166, 166]
    assert len(split_batches(list(range(7)), batch_size=3, parallelism=2)) == 4
    assert split_batches([], 10, 2) == []


def test_batches_by_size_hold_about_equal_bytes_and_respect_the_batch_size() -> None:
    ids = list(range(1, 9))
    sizes = [900, 100, 100, 100, 100, 100, 100, 500]  # interleaving would put 900+100+100+100 vs 400+500
    batches = split_batches(ids, batch_size=200, parallelism=2, sizes=sizes)
    by_id = dict(zip(ids, sizes, strict=True))
    loads = sorted(sum(by_id[i] for i in batch) for batch in batches)
    assert loads == [1000, 1000] and sorted(i for b in batches for i in b) == ids
    capped = split_batches(ids, batch_size=3, parallelism=2, sizes=sizes)
    assert len(capped) == 4 and all(len(b) <= 3 for b in capped)
    assert sorted(i for b in capped for i in b) == ids


@pytest.fixture
def catalog(database_url: str, tmp_path: Path) -> tuple[sa.Engine, LocalObjectStore]:
    upgrade_catalog(database_url)
    return get_engine(database_url), LocalObjectStore(tmp_path / "objects", signing_secret="test-secret")


def _variant_rows(engine: sa.Engine) -> dict[tuple[int, str], sa.Row]:
    with engine.connect() as conn:
        return {(r.parent_object_id, r.variant_name): r for r in conn.execute(sa.select(Variant))}


def test_spec_change_regenerates_only_the_changed_variant(catalog) -> None:
    engine, store = catalog
    ids = [
        seed_original(engine, store, jpeg_bytes(photo(500, 300, seed=i)), source_pk=str(i)) for i in range(2)
    ]
    first = process_batch(store, engine, ids, PLAN)
    assert first.variants_ready + first.variants_skipped == 10 and variant_set_gaps(engine, PLAN) == 0
    before = _variant_rows(engine)

    edited = small_plan(thumb_300={"quality": 50})
    assert variant_set_gaps(engine, edited) == 2
    second = process_batch(store, engine, ids, edited)
    assert second.variants_ready == 2  # one variant per original, the edited one
    after = _variant_rows(engine)
    for key, row in after.items():
        if key[1] == "thumb_300":
            assert row.spec_hash != before[key].spec_hash and row.sha256 != before[key].sha256
            assert store.head(row.storage_key).sha256 == row.sha256.strip()
        else:
            assert (row.spec_hash, row.sha256, row.created_at) == (
                before[key].spec_hash,
                before[key].sha256,
                before[key].created_at,
            )
    assert variant_set_gaps(engine, edited) == 0
    assert process_batch(store, engine, ids, edited).variants == 0  # nothing left to do


def test_undecodable_original_records_failed_variants_and_the_batch_goes_on(catalog) -> None:
    engine, store = catalog
    good = seed_original(engine, store, jpeg_bytes(photo(300, 200)), source_pk="good")
    legacy = MediaInfo("image/png", "png", "image", 300, 200)  # catalogued before full decoding
    bad = seed_original(engine, store, corrupt_png(), source_pk="bad", info=legacy)
    stats = process_batch(store, engine, [bad, good], PLAN)
    assert stats.images_failed == 1 and stats.variants_failed == 5
    rows = _variant_rows(engine)
    assert {rows[(bad, s.name)].status for s in PLAN.specs} == {"failed"}
    assert all(rows[(bad, s.name)].error for s in PLAN.specs)
    assert {rows[(good, s.name)].status for s in PLAN.specs} <= {"ready", "skipped"}


def test_an_originals_rows_are_committed_with_its_render_lock_and_not_before(catalog) -> None:
    """The lock holder's rows become visible as the lock is released, in one commit: another process that
    gets the lock next finds the set complete and renders nothing."""
    engine, store = catalog
    original_id = seed_original(engine, store, jpeg_bytes(photo(300, 200)), source_pk="locked")
    (original,) = load_originals(engine, [original_id])
    lock_key = (RENDER_LOCK_NAMESPACE, original_id)
    with engine.connect() as holder:
        with holder.begin():
            assert holder.scalar(sa.select(sa.func.pg_try_advisory_xact_lock(*lock_key)))
            stats = process_original(store, engine, original, PLAN, conn=holder)
            assert stats.variants_ready + stats.variants_skipped == 5
            assert _variant_rows(engine) == {}  # rendered and stored, not yet recorded
            busy = process_original_alone(store, engine, original, PLAN)
            assert busy.images_busy == 1 and busy.variants == 0
        assert {name for _, name in _variant_rows(engine)} == {spec.name for spec in PLAN.specs}
    assert process_original_alone(store, engine, original, PLAN).variants == 0


def test_variants_asset_materializes_todays_partition_for_migrated_originals(
    catalog, database_url, tmp_path
) -> None:
    from assets.variants import image_variants
    from resources.database import PostgresResource
    from resources.object_store import ObjectStoreResource

    engine, store = catalog
    for i in range(3):
        seed_original(engine, store, jpeg_bytes(photo(400, 300, seed=i)), source_pk=str(i))
    resources = {
        "postgres": PostgresResource(database_url=database_url),
        "object_store": ObjectStoreResource(local_root=str(store.root), signing_secret="test-secret"),
    }
    today = dt.datetime.now(dt.UTC).date().isoformat()
    result = materialize(
        [image_variants],
        partition_key=today,
        resources=resources,
    )
    assert result.success
    metadata = result.asset_materializations_for_node("media__image_variants")[0].metadata
    assert metadata["images"].value == 3 and metadata["variants"].value >= 12
    assert metadata["batches"].value == 2
    with engine.connect() as conn:
        originals = conn.execute(
            sa.text("SELECT sum(size_bytes) FROM media_catalog.stored_objects")
        ).scalar_one()
        webp = conn.execute(
            sa.select(sa.func.sum(Variant.size_bytes)).where(
                Variant.variant_name == "webp", Variant.status == "ready"
            )
        ).scalar_one()
    assert metadata["bytes_saved_by_webp"].value == originals - webp > 0
    checks = {e.check_name: e.passed for e in result.get_asset_check_evaluations()}
    assert checks == {
        "every_original_has_full_variant_set": True,
        "failed_variant_rate_below_5_percent": True,
    }
    assert variant_set_gaps(engine, PLAN) == 0


def _variants_job_from_definitions():
    """Reconstructable entry point: how a run worker loads the job (module scope, no arguments)."""
    from orchestration.definitions import build_definitions

    return build_definitions().resolve_job_def("variants_job")


def test_variants_job_runs_on_its_default_multiprocess_forkserver_executor(
    database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A partition's run config (the job's default) forks steps from a preloaded server; the run must
    succeed with one render step per core and leave every original with its full set."""
    from dagster import DagsterInstance, execute_job, reconstructable

    monkeypatch.setenv("DATABASE_URL", database_url)
    monkeypatch.setenv("MEDIA_PLATFORM_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("MEDIA_SIGNING_SECRET", "test-secret")
    upgrade_catalog(database_url)
    engine = get_engine(database_url)
    store = LocalObjectStore(tmp_path / "data" / "objects", signing_secret="test-secret")
    for i in range(4):
        seed_original(engine, store, jpeg_bytes(photo(320, 240, seed=i)), source_pk=str(i))
    today = dt.datetime.now(dt.UTC).date().isoformat()

    (tmp_path / "dagster").mkdir()
    # What every partition launch (UI, schedule, sensor request, backfill) runs with.
    run_config = _variants_job_from_definitions().get_run_config_for_partition_key(today)
    assert "forkserver" in run_config["execution"]["config"]["multiprocess"]["start_method"]
    with DagsterInstance.local_temp(str(tmp_path / "dagster")) as instance:
        result = execute_job(
            reconstructable(_variants_job_from_definitions),
            instance=instance,
            run_config=run_config,
            tags={"dagster/partition": today},
        )
        assert result.success
        steps = {e.step_key for e in result.all_events if e.event_type_value == "STEP_SUCCESS"}
        checks = {
            e.event_specific_data.check_name: e.step_key
            for e in result.all_events
            if e.event_type_value == "ASSET_CHECK_EVALUATION"
        }
    # One render step per core, and no process of their own for the checks: the summary evaluates them.
    assert steps == {
        "media__image_variants.plan_variant_batches",
        "media__image_variants.render_variant_batch[batch_0]",
        "media__image_variants.render_variant_batch[batch_1]",
        "media__image_variants.summarize_variants",
    }
    assert checks == {
        "every_original_has_full_variant_set": "media__image_variants.summarize_variants",
        "failed_variant_rate_below_5_percent": "media__image_variants.summarize_variants",
    }
    assert variant_set_gaps(engine, PLAN) == 0
