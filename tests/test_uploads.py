"""Upload validation (OWASP file-upload checklist) and processing: each rule, quarantine, batch goes on."""

from __future__ import annotations

import dataclasses
import datetime as dt
import io
from pathlib import Path

import pytest
import sqlalchemy as sa
from dagster import materialize
from PIL import Image

from core.catalog.db import get_engine, upgrade_catalog
from core.catalog.models import ObjectReference, QuarantineRecord, StoredObject, Upload, Variant
from core.imaging import load_variant_plan
from core.objectstore.base import sha256_hex
from core.objectstore.local import LocalObjectStore
from core.uploads import confirm_upload, parse_upload_key, process_uploads, request_upload
from tests.support.clock import today
from tests.support.images import use_image_rules
from tests.support.variants import (
    GPS_IFD,
    bomb_png,
    corrupt_png,
    demo_phone_jpeg,
    jpeg_bytes,
    photo,
    png_bytes,
)

PLAN = load_variant_plan()


def encoded(fmt: str, size: tuple[int, int] = (200, 150)) -> bytes:
    buffer = io.BytesIO()
    image = photo(*size)
    (image.convert("P") if fmt == "GIF" else image).save(buffer, fmt)
    return buffer.getvalue()


HEIC = b"\x00\x00\x00\x18ftypheic\x00\x00\x00\x00mif1heic" + b"\x00" * 64
PDF = b"%PDF-1.4\n1 0 obj<<>>endobj\ntrailer<<>>\n%%EOF\n"


@pytest.fixture
def env(database_url: str, tmp_path: Path) -> tuple[sa.Engine, LocalObjectStore]:
    upgrade_catalog(database_url)
    return get_engine(database_url), LocalObjectStore(tmp_path / "objects", signing_secret="test-secret")


def upload(
    engine, store, data: bytes, filename: str, *, owner: str = "user-7", mime: str | None = None
) -> int:
    """The app's flow: request a server-built key, PUT the bytes, confirm."""
    with engine.begin() as conn:
        row_id, key = request_upload(conn, owner_id=owner, filename=filename, declared_mime=mime, day=today())
    store.put_bytes(key, data, sha256=sha256_hex(data), content_type=mime or "application/octet-stream")
    with engine.begin() as conn:
        assert confirm_upload(conn, key)
    return row_id


def rows(engine) -> dict[int, sa.Row]:
    with engine.connect() as conn:
        return {r.id: r for r in conn.execute(sa.select(Upload))}


def quarantine(engine) -> dict[str, str]:
    with engine.connect() as conn:
        return {r.source_pk: r.reason_code for r in conn.execute(sa.select(QuarantineRecord))}


def test_allowlisted_image_types_become_originals_with_variants(env) -> None:
    engine, store = env
    ids = {
        fmt: upload(engine, store, encoded(fmt), f"p.{fmt.lower()}")
        for fmt in ("JPEG", "PNG", "WEBP", "GIF", "AVIF")
    }
    stats = process_uploads(engine, store, PLAN, upload_ids=list(ids.values()))
    assert (stats.accepted, stats.rejected) == (5, 0)
    by_id = rows(engine)
    with engine.connect() as conn:
        objects = {o.id: o for o in conn.execute(sa.select(StoredObject))}
        variant_count = conn.execute(sa.select(sa.func.count()).select_from(Variant)).scalar_one()
        origins = set(conn.execute(sa.select(ObjectReference.origin)).scalars())
    mimes = {fmt: objects[by_id[i].object_id].mime_type for fmt, i in ids.items()}
    assert mimes == {
        "JPEG": "image/jpeg",
        "PNG": "image/png",
        "WEBP": "image/webp",
        "GIF": "image/gif",
        "AVIF": "image/avif",
    }
    assert all(by_id[i].status == "processed" for i in ids.values())
    assert variant_count == 25 and origins == {"upload"}


def test_an_upload_run_records_every_thumbnail_of_its_batch_before_any_full_size_variant(env) -> None:
    """Thumbnails first: the run records the three thumbnails of every upload in the batch (seconds after
    the upload), then renders the full-size WebP and AVIF (~95 % of the render cost) in the same run, so
    the full set never depends on another run being triggered."""
    from core.variants import ids_needing_variants

    engine, store = env
    ids = [upload(engine, store, jpeg_bytes(photo(640, 480, seed=s)), f"p{s}.jpg") for s in (3, 4)]
    stats = process_uploads(engine, store, PLAN, upload_ids=ids)
    assert stats.accepted == 2 and stats.variants.images == 2
    with engine.connect() as conn:
        recorded = conn.execute(sa.select(Variant.variant_name, Variant.status, Variant.created_at)).all()
    thumbnails = [r.created_at for r in recorded if r.variant_name.startswith("thumb_")]
    full_size = [r.created_at for r in recorded if not r.variant_name.startswith("thumb_")]
    assert len(thumbnails) == 6 and len(full_size) == 4
    assert max(thumbnails) <= min(full_size)
    assert {r.status for r in recorded} <= {"ready", "skipped"}
    assert list(ids_needing_variants(engine, PLAN)) == []


def test_type_comes_from_magic_bytes_not_the_name_or_declared_mime(env) -> None:
    engine, store = env
    png_named_jpg = upload(engine, store, png_bytes(photo(100, 80)), "holiday.jpg", mime="image/jpeg")
    script_named_jpg = upload(engine, store, b"<?php system($_GET['c']); ?>", "cat.jpg", mime="image/jpeg")
    exe = upload(engine, store, b"MZ\x90\x00" + b"\x00" * 100, "setup.png", mime="image/png")
    process_uploads(engine, store, PLAN, upload_ids=[png_named_jpg, script_named_jpg, exe])
    by_id = rows(engine)
    with engine.connect() as conn:
        stored = conn.execute(
            sa.select(StoredObject).where(StoredObject.id == by_id[png_named_jpg].object_id)
        ).one()
    assert stored.mime_type == "image/png" and stored.storage_key.endswith(".png")
    assert quarantine(engine) == {str(script_named_jpg): "not_allowed", str(exe): "executable"}


def test_heic_is_recorded_as_unsupported_and_pdf_is_a_document_not_an_image(env) -> None:
    engine, store = env
    heic = upload(engine, store, HEIC, "IMG_0001.HEIC")
    pdf = upload(engine, store, PDF, "plan.pdf")
    stats = process_uploads(engine, store, PLAN, upload_ids=[heic, pdf])
    assert quarantine(engine) == {str(heic): "unsupported_image"}
    assert stats.documents == 1
    with engine.connect() as conn:
        doc = conn.execute(
            sa.select(StoredObject).where(StoredObject.id == rows(engine)[pdf].object_id)
        ).one()
        assert conn.execute(sa.select(sa.func.count()).select_from(Variant)).scalar_one() == 0
    assert (doc.kind, doc.mime_type) == ("document", "application/pdf")


def test_byte_limit_and_pixel_limit_reject_with_bombs_as_errors(env, monkeypatch, tmp_path) -> None:
    engine, store = env
    use_image_rules(monkeypatch, tmp_path / "config", "max_pixels: 1000000\n")
    plan = dataclasses.replace(PLAN, uploads=PLAN.uploads.model_copy(update={"max_image_bytes": 20_000}))
    big = upload(engine, store, jpeg_bytes(photo(400, 300), quality=95), "big.jpg")
    wide = upload(engine, store, png_bytes(Image.new("RGB", (1200, 1000))), "wide.png")
    bomb = upload(engine, store, bomb_png(), "bomb.png")
    process_uploads(engine, store, plan, upload_ids=[big, wide, bomb])
    assert quarantine(engine) == {
        str(big): "too_large",
        str(wide): "decompression_bomb",
        str(bomb): "decompression_bomb",
    }
    with engine.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(StoredObject)).scalar_one() == 0


def test_undecodable_or_truncated_images_never_become_originals_and_the_batch_goes_on(env) -> None:
    engine, store = env
    good = upload(engine, store, jpeg_bytes(photo(300, 200)), "ok.jpg")
    broken = upload(engine, store, corrupt_png(), "broken.png")
    cut = upload(engine, store, jpeg_bytes(photo(300, 200))[:-200], "cut.jpg")
    empty = upload(engine, store, b"", "empty.jpg")
    stats = process_uploads(engine, store, PLAN, upload_ids=[broken, cut, empty, good])
    assert (stats.accepted, stats.rejected) == (1, 3)
    assert quarantine(engine) == {
        str(broken): "undecodable_image",
        str(cut): "truncated_image",
        str(empty): "empty",
    }
    by_id = rows(engine)
    assert by_id[good].status == "processed" and by_id[broken].status == "rejected"
    assert "undecodable_image" in by_id[broken].error
    with engine.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(StoredObject)).scalar_one() == 1


def test_keys_are_built_server_side_from_untrusted_names(env) -> None:
    engine, _store = env
    with engine.begin() as conn:
        _, key = request_upload(
            conn,
            owner_id="../admin",
            filename="../../etc/passwd\x00.jpg",
            declared_mime="image/jpeg",
            day=today(),
        )
    assert key.startswith(f"uploads/{today():%Y/%m/%d}/") and ".." not in key and "\x00" not in key
    parsed = parse_upload_key(key)
    assert parsed is not None and parsed.day == today()


def test_rotated_upload_gets_oriented_variants_without_gps(env) -> None:
    engine, store = env
    data = demo_phone_jpeg(6)
    assert Image.open(io.BytesIO(data)).getexif().get_ifd(GPS_IFD)  # the upload carries a GPS position
    row_id = upload(engine, store, data, "gps.jpg")
    process_uploads(engine, store, PLAN, upload_ids=[row_id])
    with engine.connect() as conn:
        variants = list(conn.execute(sa.select(Variant).where(Variant.status == "ready")))
    assert len(variants) >= 3
    for variant in variants:
        image = Image.open(io.BytesIO(store.get_bytes(variant.storage_key)))
        assert image.height > image.width and len(image.getexif()) == 0


def test_pending_uploads_are_not_processed_and_stay_pending(env) -> None:
    engine, store = env
    with engine.begin() as conn:
        pending_id, key = request_upload(
            conn, owner_id="u", filename="a.jpg", declared_mime=None, day=today()
        )
    data = jpeg_bytes(photo(100, 100))
    store.put_bytes(key, data, sha256=sha256_hex(data), content_type="image/jpeg")
    stats = process_uploads(engine, store, PLAN, day=today())
    assert stats.uploads == 0 and rows(engine)[pending_id].status == "pending"


def test_processed_uploads_asset_materializes_a_batch_from_run_config(env, database_url) -> None:
    from assets.uploads import pending_uploads_below_threshold, processed_uploads
    from orchestration.sensors import batch_run_config
    from resources.database import PostgresResource
    from resources.object_store import ObjectStoreResource

    engine, store = env
    ids = [upload(engine, store, jpeg_bytes(photo(200, 150, seed=i)), f"{i}.jpg") for i in range(3)]
    bad = upload(engine, store, b"not an image", "x.png")
    result = materialize(
        [processed_uploads, pending_uploads_below_threshold],
        partition_key=today().isoformat(),
        resources={
            "postgres": PostgresResource(database_url=database_url),
            "object_store": ObjectStoreResource(local_root=str(store.root), signing_secret="test-secret"),
        },
        run_config=batch_run_config([*ids, bad]),
    )
    assert result.success
    metadata = result.asset_materializations_for_node("media__processed_uploads")[0].metadata
    assert (metadata["accepted"].value, metadata["rejected"].value, metadata["variants"].value) == (3, 1, 15)
    assert [e.passed for e in result.get_asset_check_evaluations()] == [True]


def test_variants_runs_leave_a_fresh_upload_to_its_own_run_then_catch_up_on_it(env) -> None:
    """An upload run renders its uploads' full sets right after the batch's thumbnails; a variants run
    planned meanwhile must not render the same originals beside it. Past the window it takes them."""
    from core.variants import ids_needing_variants

    engine, store = env
    row_id = upload(engine, store, jpeg_bytes(photo(120, 90)), "fresh.jpg")
    process_uploads(engine, store, PLAN, upload_ids=[row_id])
    with engine.begin() as conn:  # as if its full set were still being rendered by its run
        object_id = conn.execute(sa.select(Upload.object_id).where(Upload.id == row_id)).scalar_one()
        conn.execute(
            sa.delete(Variant).where(Variant.parent_object_id == object_id, Variant.variant_name == "avif")
        )

    def planned(since: dt.datetime | None) -> list[int]:
        return [
            i for page in ids_needing_variants(engine, PLAN, uploads_processed_since=since) for i, _ in page
        ]

    now = dt.datetime.now(dt.UTC)
    assert planned(None) == [object_id]  # the asset check still sees the gap
    assert planned(now - dt.timedelta(minutes=30)) == []  # its run's to finish
    with engine.begin() as conn:
        conn.execute(sa.update(Upload).values(processed_at=now - dt.timedelta(hours=1)))
    assert planned(now - dt.timedelta(minutes=30)) == [object_id]  # the run did not: catch up
