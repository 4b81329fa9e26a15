"""The migration on the demo legacy database: every planted bad payload is quarantined with its reason,
every other blob is moved and verified, and a rerun moves nothing."""

from __future__ import annotations

import contextlib
import hashlib
from dataclasses import replace
from pathlib import Path

import pytest
import sqlalchemy as sa

from core.blobcodec import CorruptBase64, decode_blob_text
from core.catalog.db import get_engine, upgrade_catalog
from core.demo.legacy_db import generate_legacy_database
from core.migration.engine import migrate_source
from core.migration.settings import load_migration_config
from core.objectstore.local import LocalObjectStore
from tests.support.migration import all_values, reference_key, sources

#: The generator's kind -> the reason code the migration records.
EXPECTED_REASON = {
    "corrupt_base64": "corrupt_base64",
    "empty": "empty",
    "not_image_pdf": "not_image",
    "not_image_zip": "not_image",
    "truncated_image": "truncated_image",
    "decompression_bomb": "decompression_bomb",
    "executable": "executable",
}


@pytest.fixture
def demo(database_url: str) -> object:
    summary = generate_legacy_database(database_url, scale=0.05)
    upgrade_catalog(database_url)
    return summary


@pytest.mark.parametrize("stream_above", [None, 0], ids=["configured", "every-row-in-slices"])
def test_demo_database_migrates_and_every_bad_payload_is_quarantined(
    database_url: str, tmp_path: Path, demo, stream_above: int | None
) -> None:
    before = all_values(database_url)
    originals = {}
    for place, value in before.items():
        with contextlib.suppress(CorruptBase64):
            originals[place] = hashlib.sha256(decode_blob_text(str(value)).data).hexdigest()
    settings = load_migration_config().engine
    if stream_above is not None:
        settings = replace(settings, stream_above_bytes=stream_above)
    store = LocalObjectStore(tmp_path / "objects", signing_secret="s")
    engine = get_engine(database_url)
    stats = [migrate_source(engine, store, s, settings=settings) for s in sources()]

    with engine.connect() as conn:
        quarantine = {
            (t, pk, path): (code, reason)
            for t, pk, path, code, reason in conn.execute(
                sa.text(
                    "SELECT source_table, source_pk, json_path, reason_code, reason "
                    "FROM media_catalog.quarantine"
                )
            )
        }
    expected = {(b.table, str(b.pk), b.json_path): EXPECTED_REASON[b.kind] for b in demo.bad_payloads}
    assert {place: code for place, (code, _) in quarantine.items()} == expected
    assert all(reason for _, reason in quarantine.values())

    after = all_values(database_url)
    for place, value in before.items():
        if place in expected:
            assert after[place] == value  # left untouched
        else:
            key = reference_key(after[place])
            assert hashlib.sha256(store.get_bytes(key)).hexdigest() == originals[place], place
    assert sum(s.blobs_moved for s in stats) == demo.total_blobs  # the decodable, acceptable ones
    assert len(list(store.list_objects("originals/"))) == demo.distinct_blobs
    assert sum(s.duplicates_stored_once for s in stats) >= sum(len(d.refs) - 1 for d in demo.duplicates)

    again = [migrate_source(engine, store, s, settings=settings) for s in sources()]
    assert sum(s.blobs_moved for s in again) == 0
    assert sum(s.objects_uploaded for s in again) == 0
    assert all_values(database_url) == after
