"""Rejected upload bytes move to the private quarantine area (and retention removes them later); an upload
overwritten with refused content releases what its accepted version held."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
import sqlalchemy as sa

from core.catalog.db import get_engine, upgrade_catalog
from core.catalog.models import ObjectReference, QuarantineRecord, StoredObject, Upload, Variant
from core.imaging import load_variant_plan
from core.keys import PrivateKeyError, quarantine_key
from core.objectstore.base import sha256_hex
from core.objectstore.local import LocalObjectStore
from core.retention.policies import (
    ORPHANED_OBJECTS,
    ORPHANED_VARIANTS,
    QUARANTINED_UPLOADS,
    parse_retention_config,
)
from core.signing import SignatureInvalid, _signature, sign_url, verify_signed_url
from core.uploads import (
    REPLACED_POLICY,
    UploadCursor,
    confirm_upload,
    discover_uploads,
    process_uploads,
    request_upload,
)
from tests.support.clock import today
from tests.support.retention import audit, only, sweep
from tests.support.variants import bomb_png, jpeg_bytes, photo

PLAN = load_variant_plan()
NOW = dt.datetime.now(dt.UTC)
SECRET = "test-signing-secret"

SVG_WITH_SCRIPT = b'<svg xmlns="http://www.w3.org/2000/svg"><script>alert(document.cookie)</script></svg>'
PHP_AS_JPEG = b"<?php system($_GET['c']); ?>\n"


@pytest.fixture
def env(database_url: str, tmp_path: Path) -> tuple[sa.Engine, LocalObjectStore]:
    upgrade_catalog(database_url)
    return get_engine(database_url), LocalObjectStore(tmp_path / "objects", signing_secret=SECRET)


def upload(engine, store, data: bytes, filename: str, owner: str = "mia") -> tuple[int, str]:
    with engine.begin() as conn:
        row_id, key = request_upload(conn, owner_id=owner, filename=filename, declared_mime=None, day=today())
    store.put_bytes(key, data, sha256=sha256_hex(data), content_type="application/octet-stream")
    with engine.begin() as conn:
        assert confirm_upload(conn, key)
    return row_id, key


def quarantine_rows(engine) -> dict[str, sa.Row]:
    with engine.connect() as conn:
        return {r.source_pk: r for r in conn.execute(sa.select(QuarantineRecord))}


def test_rejected_bytes_move_to_the_quarantine_area_verified_and_recorded(env) -> None:
    engine, store = env
    uploads = {
        "svg": upload(engine, store, SVG_WITH_SCRIPT, "cat.svg"),
        "bomb": upload(engine, store, bomb_png(), "bomb.png"),
        "php": upload(engine, store, PHP_AS_JPEG, "photo.jpg"),
    }
    stats = process_uploads(engine, store, PLAN, upload_ids=[i for i, _ in uploads.values()], run_id="r1")
    assert stats.rejected == 3
    rows = quarantine_rows(engine)
    originals = {"svg": SVG_WITH_SCRIPT, "bomb": bomb_png(), "php": PHP_AS_JPEG}
    for name, (row_id, key) in uploads.items():
        record = rows[str(row_id)]
        assert record.storage_key == quarantine_key(key) == f"quarantine/{key}"
        assert record.quarantined_at is not None and record.purged_at is None
        assert store.get_bytes(record.storage_key) == originals[name]  # the exact bytes, kept privately
        assert record.sha256 == sha256_hex(originals[name])
        assert not store.exists(key), f"{name}: rejected bytes still at their upload key"
    assert [p.key for p in store.list_objects("uploads/")] == []


def test_no_url_can_grant_a_quarantined_key(env) -> None:
    engine, store = env
    row_id, _key = upload(engine, store, SVG_WITH_SCRIPT, "cat.svg")
    process_uploads(engine, store, PLAN, upload_ids=[row_id])
    kept = quarantine_rows(engine)[str(row_id)].storage_key
    with pytest.raises(PrivateKeyError):
        store.signed_url(kept)
    with pytest.raises(PrivateKeyError):
        sign_url("http://h/media", kept, SECRET, 60)
    # A link signed with the real secret (e.g. by an older version) is still refused.
    expires = int(NOW.timestamp()) + 60
    forged = f"http://h/media/{kept}?expires={expires}&signature={_signature(SECRET.encode(), kept, expires)}"
    with pytest.raises(SignatureInvalid, match="quarantine"):
        verify_signed_url(forged, SECRET)


def test_quarantined_uploads_policy_deletes_after_30_days_with_dry_run_and_audit(env) -> None:
    engine, store = env
    row_id, _key = upload(engine, store, SVG_WITH_SCRIPT, "cat.svg")
    process_uploads(engine, store, PLAN, upload_ids=[row_id])
    kept = quarantine_rows(engine)[str(row_id)].storage_key
    assert parse_retention_config({}).quarantine_keep == dt.timedelta(days=30)
    cfg = only(QUARANTINED_UPLOADS)

    early = sweep(engine, store, cfg=cfg, now=NOW + dt.timedelta(days=29), run_id="early")
    assert early.policies[QUARANTINED_UPLOADS].candidates == 0 and store.exists(kept)

    dry = sweep(engine, store, cfg=cfg, now=NOW + dt.timedelta(days=31), dry_run=True, run_id="dry")
    assert dry.policies[QUARANTINED_UPLOADS].deleted == 1 and store.exists(kept)
    assert [(a.action, a.target_type, a.storage_key, a.owner_id) for a in audit(engine, "dry")] == [
        ("would_delete", "quarantine", kept, "mia")
    ]
    assert quarantine_rows(engine)[str(row_id)].purged_at is None

    real = sweep(engine, store, cfg=cfg, now=NOW + dt.timedelta(days=31), run_id="real")
    result = real.policies[QUARANTINED_UPLOADS]
    assert (result.candidates, result.deleted, result.bytes_reclaimed) == (1, 1, len(SVG_WITH_SCRIPT))
    assert not store.exists(kept)
    record = quarantine_rows(engine)[str(row_id)]
    assert record.purged_at is not None and record.reason_code  # the record of why stays
    [row] = audit(engine, "real")
    assert (row.action, row.target_type, row.storage_key) == ("deleted", "quarantine", kept)
    assert row.reason.endswith(f"({record.reason_code})") and "30 days" in row.reason


def test_quarantined_uploads_policy_is_configurable_and_can_be_turned_off(env) -> None:
    cfg = parse_retention_config({"policies": {QUARANTINED_UPLOADS: {"after_days": 7}}})
    assert cfg.quarantine_keep == dt.timedelta(days=7) and cfg.is_enabled(QUARANTINED_UPLOADS)
    off = parse_retention_config({"policies": {QUARANTINED_UPLOADS: {"enabled": False}}})
    assert not off.is_enabled(QUARANTINED_UPLOADS)


def test_overwriting_a_processed_upload_with_refused_content_releases_its_original_and_variants(
    env,
) -> None:
    engine, store = env
    row_id, key = upload(engine, store, jpeg_bytes(photo(120, 90, seed=3)), "me.jpg")
    cursor = discover_uploads(engine, store, UploadCursor(), today(), PLAN.uploads).cursor
    process_uploads(engine, store, PLAN, upload_ids=[row_id])
    with engine.connect() as conn:
        object_id = conn.execute(sa.select(Upload.object_id).where(Upload.id == row_id)).scalar_one()
        variant_keys = list(
            conn.execute(
                sa.select(Variant.storage_key).where(Variant.parent_object_id == object_id)
            ).scalars()
        )
        original = conn.execute(
            sa.select(StoredObject.storage_key).where(StoredObject.id == object_id)
        ).scalar_one()
    assert len(variant_keys) == 5

    store.put_bytes(key, SVG_WITH_SCRIPT, sha256=sha256_hex(SVG_WITH_SCRIPT), content_type="image/svg+xml")
    assert discover_uploads(engine, store, cursor, today(), PLAN.uploads).changed == [key]
    process_uploads(engine, store, PLAN, upload_ids=[row_id], run_id="r2")

    with engine.connect() as conn:
        upload_row = conn.execute(sa.select(Upload).where(Upload.id == row_id)).one()
        ref = conn.execute(sa.select(ObjectReference).where(ObjectReference.source_pk == str(row_id))).one()
    assert upload_row.status == "rejected" and upload_row.object_id is None
    assert ref.released_at is not None  # the accepted version no longer holds its object
    record = quarantine_rows(engine)[str(row_id)]
    assert f"object {object_id}" in record.reason and "overwritten" in record.reason
    [released] = [a for a in audit(engine, "r2") if a.policy == REPLACED_POLICY]
    assert (released.action, released.target_type, released.owner_id) == ("released", "reference", "mia")
    assert store.get_bytes(record.storage_key) == SVG_WITH_SCRIPT

    # Retention then collects the old original and its five variants.
    cfg = only(ORPHANED_OBJECTS, ORPHANED_VARIANTS)
    report = sweep(engine, store, cfg=cfg, now=NOW + dt.timedelta(days=8), run_id="later")
    assert report.policies[ORPHANED_OBJECTS].deleted == 1
    assert report.policies[ORPHANED_VARIANTS].deleted == 5
    assert not store.exists(original) and not any(store.exists(k) for k in variant_keys)


def test_uploads_rejected_before_the_upgrade_are_validated_again_and_quarantined(
    database_url: str, tmp_path: Path
) -> None:
    """On a catalog made by the previous revision, rejected bytes still sit at their upload keys."""
    from alembic.script import ScriptDirectory

    from core.catalog.db import alembic_config, downgrade_catalog
    from core.keys import upload_key
    from core.uploads import queue_batches

    revision = ScriptDirectory.from_config(alembic_config(database_url)).get_revision(
        "0005_uploads_quarantine"
    )
    upgrade_catalog(database_url)
    downgrade_catalog(database_url, revision.down_revision)
    engine = get_engine(database_url)
    store = LocalObjectStore(tmp_path / "objects", signing_secret=SECRET)
    kept, gone = upload_key(today(), "old", "u1", "cat.svg"), upload_key(today(), "old", "u2", "lost.jpg")
    store.put_bytes(kept, SVG_WITH_SCRIPT, sha256=sha256_hex(SVG_WITH_SCRIPT), content_type="image/svg+xml")
    with engine.begin() as conn:
        ids = {}
        for key, code in ((kept, "svg_script"), (gone, "missing_object")):
            ids[code] = conn.execute(
                sa.text(
                    "INSERT INTO media_catalog.uploads (upload_key, owner_id, upload_date, status, error) "
                    "VALUES (:k, 'old', :d, 'rejected', :c) RETURNING id"
                ),
                {"k": key, "d": today(), "c": code},
            ).scalar_one()
            conn.execute(
                sa.text(
                    "INSERT INTO media_catalog.quarantine (source_name, source_table, source_pk, json_path, "
                    "reason_code, reason) VALUES ('uploads', 'uploads', :pk, :k, :c, 'before upgrade')"
                ),
                {"pk": str(ids[code]), "k": key, "c": code},
            )

    upgrade_catalog(database_url)
    for batch in queue_batches(engine, PLAN.uploads):
        process_uploads(engine, store, PLAN, upload_ids=batch.upload_ids)

    rows = quarantine_rows(engine)
    assert rows[str(ids["svg_script"])].storage_key == quarantine_key(kept)
    assert store.get_bytes(quarantine_key(kept)) == SVG_WITH_SCRIPT and not store.exists(kept)
    assert rows[str(ids["missing_object"])].storage_key is None
    with engine.connect() as conn:
        statuses = set(conn.execute(sa.select(Upload.status)).scalars())
    assert statuses == {"rejected"}


def test_quarantine_works_the_same_on_an_s3_compatible_store(
    database_url: str, s3_endpoint: str, s3_bucket: str
) -> None:
    """moto's S3 server over HTTP: verified copy, upload key deleted, no presigned URL for it."""
    from core.objectstore.s3 import S3ObjectStore
    from tests.support.services import s3_client

    upgrade_catalog(database_url)
    engine = get_engine(database_url)
    store = S3ObjectStore(s3_client(s3_endpoint), s3_bucket, prefix="media")
    row_id, key = upload(engine, store, PHP_AS_JPEG, "photo.jpg")
    process_uploads(engine, store, PLAN, upload_ids=[row_id])
    kept = quarantine_rows(engine)[str(row_id)].storage_key
    assert kept == quarantine_key(key) and store.get_bytes(kept) == PHP_AS_JPEG
    assert not store.exists(key)
    with pytest.raises(PrivateKeyError):
        store.signed_url(kept)


def test_quarantined_bytes_of_an_owner_under_legal_hold_are_kept(env) -> None:
    from tests.support.retention import hold

    engine, store = env
    row_id, _key = upload(engine, store, SVG_WITH_SCRIPT, "cat.svg", owner="held")
    process_uploads(engine, store, PLAN, upload_ids=[row_id])
    kept = quarantine_rows(engine)[str(row_id)].storage_key
    hold(engine, owner="held")
    report = sweep(engine, store, cfg=only(QUARANTINED_UPLOADS), now=NOW + dt.timedelta(days=60))
    result = report.policies[QUARANTINED_UPLOADS]
    assert (result.candidates, result.deleted) == (1, 0)
    assert result.skipped == {"owner under legal hold": 1}
    assert store.exists(kept) and quarantine_rows(engine)[str(row_id)].purged_at is None
