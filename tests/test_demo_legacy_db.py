"""The seeded legacy-database generator: reruns are byte-identical, and every planted payload really is
what the summary says, so migration tests can rely on it to prove each one is quarantined or decoded."""

from __future__ import annotations

import base64
import binascii
import hashlib
import io
import json
import re
import struct
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import pytest
import sqlalchemy as sa
from PIL import Image

from core.demo.images import encode_image, exif_rotated_jpeg, synthetic_photo
from core.demo.legacy_db import (
    BAD_KINDS,
    REFERENCE_TIME,
    TABLES,
    VARIANT_KINDS,
    LegacyDatabaseSummary,
    generate_legacy_database,
)
from tests.support.services import PostgresServer

SCALE = 0.2  # every planted payload exists at any scale; this one generates in a few seconds
PAYLOAD_COLUMN = {"stories": "data", "characters": "photo", "files": "data", "story_jobs": "result"}
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


@dataclass
class Generated:
    engine: sa.Engine
    summary: LegacyDatabaseSummary
    progress: list[tuple[str, int, int]]


@pytest.fixture(scope="module")
def legacy(postgres_server: PostgresServer) -> Iterator[Generated]:
    """One generated database shared by the read-only tests of this module."""
    url = postgres_server.create_database("legacy")
    calls: list[tuple[str, int, int]] = []
    summary = generate_legacy_database(url, scale=SCALE, progress=lambda *call: calls.append(call))
    engine = sa.create_engine(url)
    yield Generated(engine, summary, calls)
    engine.dispose()
    postgres_server.drop_database(url)


def table_digests(engine: sa.Engine, schema: str = "public") -> dict[str, str]:
    """A digest of every table's full contents in id order (row text, so every column counts)."""
    digests = {}
    with engine.connect() as conn:
        for table in TABLES:
            rows = conn.execute(
                sa.text(f'SELECT id, md5(t::text) FROM "{schema}".{table} t ORDER BY id')
            ).all()
            digests[table] = hashlib.sha256(repr(rows).encode()).hexdigest()
    return digests


def payload(engine: sa.Engine, table: str, pk: int, json_path: str) -> Any:
    """The value a (table, pk, json_path) reference points at."""
    with engine.connect() as conn:
        value = conn.execute(
            sa.text(f"SELECT {PAYLOAD_COLUMN[table]} FROM {table} WHERE id = :id"), {"id": pk}
        ).scalar_one()
    if not json_path:
        return value
    node = json.loads(value) if isinstance(value, str) else value  # JSONB arrives already parsed
    for key, index in re.findall(r"([A-Za-z_]\w*)|\[(\d+)\]", json_path):
        node = node[key] if key else node[int(index)]
    return node


def lenient_decode(text: str) -> bytes:
    """What a forgiving migration does: strip a data-URI header and whitespace, accept URL-safe, re-pad."""
    if text.startswith("data:"):
        header, _, text = text.partition(",")
        assert header.endswith(";base64"), header
    text = "".join(text.split()).replace("-", "+").replace("_", "/")
    return base64.b64decode(text + "=" * (-len(text) % 4), validate=True)


def test_same_seed_and_scale_rebuild_identical_tables(legacy: Generated, database_url: str) -> None:
    engine = sa.create_engine(database_url)
    try:
        first = generate_legacy_database(database_url, scale=SCALE, schema="legacy")
        assert table_digests(engine, "legacy") == table_digests(legacy.engine)
        # A rerun into the same schema drops and recreates: same contents, ids again from 1.
        again = generate_legacy_database(database_url, scale=SCALE, schema="legacy")
        assert table_digests(engine, "legacy") == table_digests(legacy.engine)
    finally:
        engine.dispose()
    for summary in (first, again):
        assert summary.bad_payloads == legacy.summary.bad_payloads
        assert summary.duplicates == legacy.summary.duplicates
        assert summary.variants == legacy.summary.variants
        assert {t: s.rows for t, s in summary.tables.items()} == {
            t: s.rows for t, s in legacy.summary.tables.items()
        }


def test_summary_matches_tables_and_progress(legacy: Generated) -> None:
    with legacy.engine.connect() as conn:
        for table, stats in legacy.summary.tables.items():
            assert conn.execute(sa.text(f"SELECT count(*) FROM {table}")).scalar_one() == stats.rows
            assert stats.bytes_in_table > 0
            assert (stats.blobs > 0) == (table != "users")
            assert (table, stats.rows, stats.rows) in legacy.progress
            done = [d for t, d, _ in legacy.progress if t == table]
            assert done == sorted(done)
    assert legacy.summary.total_bytes > 20_000_000  # even the small scale has big rows
    # Duplicates are planted, not a by-product: nearly every blob is distinct.
    assert legacy.summary.distinct_blobs >= legacy.summary.total_blobs - 3


def test_every_bad_payload_kind_is_planted_and_is_what_it_claims(legacy: Generated) -> None:
    bad = legacy.summary.bad_payloads
    assert {b.kind for b in bad} == BAD_KINDS
    for item in bad:
        text = payload(legacy.engine, item.table, item.pk, item.json_path)
        if item.kind == "empty":
            assert text == ""
            continue
        assert isinstance(text, str) and text
        if text.startswith("data:"):
            text = text.partition(",")[2]
        if item.kind == "corrupt_base64":
            with pytest.raises(binascii.Error):
                base64.b64decode(text, validate=True)
            continue
        raw = base64.b64decode(text, validate=True)
        if item.kind == "not_image_pdf":
            assert raw.startswith(b"%PDF-") and raw.rstrip().endswith(b"%%EOF")
        elif item.kind == "not_image_zip":
            with zipfile.ZipFile(io.BytesIO(raw)) as archive:
                assert archive.testzip() is None and archive.namelist()
        elif item.kind == "truncated_image":
            assert raw.startswith(b"\xff\xd8") and not raw.endswith(b"\xff\xd9")
            with Image.open(io.BytesIO(raw)) as img, pytest.raises(OSError):
                img.load()
        elif item.kind == "decompression_bomb":
            assert raw.startswith(PNG_SIGNATURE) and raw[12:16] == b"IHDR"
            width, height = struct.unpack(">II", raw[16:24])
            assert width * height > 100_000_000 and len(raw) < 1_000_000
            with pytest.raises(Image.DecompressionBombError):
                Image.open(io.BytesIO(raw))
        elif item.kind == "executable":
            assert raw[:2] == b"MZ"
            (pe_offset,) = struct.unpack_from("<I", raw, 0x3C)
            assert raw[pe_offset : pe_offset + 4] == b"PE\x00\x00"
        else:
            pytest.fail(f"unexpected kind {item.kind}")
    # Hostile files hide behind image MIME types.
    with legacy.engine.connect() as conn:
        declared = dict(conn.execute(sa.text("SELECT id, mime_type FROM files")).all())
    for item in bad:
        if item.table == "files" and item.kind in {"not_image_pdf", "not_image_zip", "executable"}:
            assert declared[item.pk].startswith("image/")


def test_encoding_variants_decode_to_real_images(legacy: Generated) -> None:
    variants = legacy.summary.variants
    assert {v.kind for v in variants} == VARIANT_KINDS
    for item in variants:
        text = payload(legacy.engine, item.table, item.pk, item.json_path)
        raw = lenient_decode(text)
        with Image.open(io.BytesIO(raw)) as img:
            img.load()
            exif = img.getexif()
        if item.kind == "mime_linebreaks":
            lines = text.splitlines()
            assert len(lines) > 1 and all(len(line) <= 76 for line in lines)
        elif item.kind == "urlsafe":
            assert ("-" in text or "_" in text) and "+" not in text and "/" not in text
        elif item.kind == "unpadded":
            assert len(text) % 4 and "=" not in text
        elif item.kind == "data_uri":
            assert text.startswith("data:image/")
        elif item.kind == "mime_mismatch":
            assert raw.startswith(PNG_SIGNATURE)
            with legacy.engine.connect() as conn:
                mime = conn.execute(sa.text("SELECT mime_type FROM files WHERE id = :id"), {"id": item.pk})
                assert mime.scalar_one() == "image/jpeg"
        elif item.kind == "exif_orientation":
            assert exif[0x0112] == 6 and exif.get_ifd(0x8825)  # Orientation, GPS IFD


def test_duplicates_across_and_within_users_are_byte_identical(legacy: Generated) -> None:
    duplicates = legacy.summary.duplicates
    assert any(d.cross_user for d in duplicates)
    assert any(not d.cross_user and len(d.refs) >= 2 for d in duplicates)
    for duplicate in duplicates:
        for ref in duplicate.refs:
            raw = lenient_decode(payload(legacy.engine, ref.table, ref.pk, ref.json_path))
            assert hashlib.sha256(raw).hexdigest() == duplicate.sha256
            with legacy.engine.connect() as conn:
                owner = conn.execute(
                    sa.text(f"SELECT user_id FROM {ref.table} WHERE id = :id"), {"id": ref.pk}
                )
                assert owner.scalar_one() == ref.user_id


def test_retention_populations_exist(legacy: Generated) -> None:
    populations = legacy.summary.user_populations
    ref = {"ref": REFERENCE_TIME}
    queries = {
        "inactive": "deleted_at IS NULL AND last_login_at < :ref - interval '13 months'",
        "warning": "deleted_at IS NULL AND last_login_at < :ref - interval '12 months' "
        "AND last_login_at >= :ref - interval '13 months'",
        "active": "deleted_at IS NULL AND last_login_at >= :ref - interval '12 months'",
        "deleted": "deleted_at IS NOT NULL AND deleted_at < :ref",
    }
    with legacy.engine.connect() as conn:
        for population, where in queries.items():
            ids = (
                conn.execute(sa.text(f"SELECT id FROM users WHERE {where} ORDER BY id"), ref).scalars().all()
            )
            assert ids and ids == sorted(populations[population]), population
        old, recent = conn.execute(
            sa.text(
                "SELECT count(*) FILTER (WHERE deleted_at < :ref - interval '30 days'), "
                "count(*) FILTER (WHERE deleted_at >= :ref - interval '30 days') FROM stories"
            ),
            ref,
        ).one()
        assert old >= 1 and recent >= 1
        assert conn.execute(sa.text("SELECT max(created_at) FROM stories")).scalar_one() < REFERENCE_TIME


def test_documents_have_the_legacy_app_shapes(legacy: Generated) -> None:
    bad_slots = {(b.table, b.pk, b.json_path) for b in legacy.summary.bad_payloads}
    with legacy.engine.connect() as conn:
        for (data,) in conn.execute(sa.text("SELECT data FROM stories ORDER BY id")):
            document = json.loads(data)
            assert {"title", "language", "settings", "images"} <= document.keys()
            assert len(document["images"]) >= 4
            assert all({"data", "caption"} <= image.keys() for image in document["images"])
        photos = conn.execute(sa.text("SELECT id, photo FROM characters ORDER BY id")).all()
        modes = set()
        for pk, photo in photos:
            if (("characters", pk, "") in bad_slots) or not photo:
                continue
            assert re.fullmatch(r"data:image/(jpeg|png);base64,[A-Za-z0-9+/]+=*", photo)
            with Image.open(io.BytesIO(lenient_decode(photo))) as img:
                modes.add(img.mode)
        assert "RGBA" in modes  # a cut-out avatar with a soft alpha mask
        jobs = conn.execute(
            sa.text(
                "SELECT count(*) FILTER (WHERE jsonb_path_exists(result, '$.pages[*].image.data')), "
                "count(*) FILTER (WHERE jsonb_typeof(result -> 'cover') = 'string'), "
                "count(*) FILTER (WHERE result IS NULL) FROM story_jobs"
            )
        ).one()
        assert jobs[0] >= 4 and jobs[1] >= 4 and jobs[2] >= 1
        for mime, data in conn.execute(
            sa.text(
                "SELECT mime_type, data FROM files WHERE mime_type IN ('application/pdf', 'application/zip')"
            )
        ):
            raw = base64.b64decode(data, validate=True)
            assert raw.startswith(b"%PDF-" if mime == "application/pdf" else b"PK\x03\x04")


def test_synthetic_images_are_photo_like_and_deterministic() -> None:
    first = synthetic_photo(np.random.default_rng(5), 640, 480)
    again = synthetic_photo(np.random.default_rng(5), 640, 480)
    assert first.size == (640, 480) and first.mode == "RGB" and first.tobytes() == again.tobytes()
    # Grain keeps JPEG honest: a photo-like 0.3 MP image neither vanishes nor stays raw.
    assert 20_000 < len(encode_image(first, "JPEG", 85)) < 400_000
    cutout = synthetic_photo(np.random.default_rng(6), 320, 240, alpha=True)
    alpha = np.asarray(cutout.getchannel("A"))
    assert cutout.mode == "RGBA" and alpha.min() == 0 and alpha.max() == 255 and len(np.unique(alpha)) > 50
    assert encode_image(cutout, "PNG").startswith(PNG_SIGNATURE)
    assert encode_image(first, "WEBP")[8:12] == b"WEBP"
    with Image.open(io.BytesIO(exif_rotated_jpeg(np.random.default_rng(7), 400, 300, 8))) as img:
        assert img.getexif()[0x0112] == 8 and img.size == (400, 300)
