"""Distinct owners never merge: ids are kept exactly (or refused), key folders are injective, and GDPR
erasure of `alice` never touches what `ålice`, `alice/` or `../alice` own."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
import sqlalchemy as sa

from core.catalog.db import get_engine, upgrade_catalog
from core.catalog.models import ObjectReference, StoredObject, Upload, Variant
from core.imaging import load_variant_plan
from core.keys import InvalidFileName, InvalidOwnerId, owner_segment, upload_key
from core.objectstore.base import sha256_hex
from core.objectstore.local import LocalObjectStore
from core.retention.gdpr import delete_owner_everywhere, export_owner
from core.retention.policies import parse_retention_config
from core.sources import load_sources_config
from core.uploads import (
    UploadCursor,
    confirm_upload,
    discover_uploads,
    process_uploads,
    queue_batches,
    request_upload,
)
from tests.support.clock import today
from tests.support.retention import SOURCE_TABLES_DDL
from tests.support.variants import jpeg_bytes, photo

PLAN = load_variant_plan()
NEIGHBOURS = ("ålice", "alice/", "../alice")


@pytest.fixture
def env(database_url: str, tmp_path: Path) -> tuple[sa.Engine, LocalObjectStore]:
    upgrade_catalog(database_url)
    return get_engine(database_url), LocalObjectStore(tmp_path / "objects", signing_secret="s")


def upload(engine: sa.Engine, store: LocalObjectStore, owner: object, seed: int) -> tuple[int, str]:
    with engine.begin() as conn:
        row_id, key = request_upload(
            conn, owner_id=owner, filename="me.jpg", declared_mime="image/jpeg", day=today()
        )
    data = jpeg_bytes(photo(64, 48, seed=seed))
    store.put_bytes(key, data, sha256=sha256_hex(data), content_type="image/jpeg")
    with engine.begin() as conn:
        assert confirm_upload(conn, key)
    return row_id, key


def owned(engine: sa.Engine, owner: str) -> dict[str, list]:
    """Everything the catalog holds for one owner: upload rows, references, their objects and variants."""
    with engine.connect() as conn:
        uploads = list(conn.execute(sa.select(Upload.upload_key).where(Upload.owner_id == owner)).scalars())
        refs = list(
            conn.execute(
                sa.select(ObjectReference.object_id).where(ObjectReference.owner_id == owner)
            ).scalars()
        )
        objects = list(
            conn.execute(
                sa.select(StoredObject.storage_key).where(
                    StoredObject.id.in_(refs), StoredObject.status == "verified"
                )
            ).scalars()
        )
        variants = list(
            conn.execute(
                sa.select(Variant.storage_key).where(
                    Variant.parent_object_id.in_(refs), Variant.status == "ready"
                )
            ).scalars()
        )
    return {"uploads": uploads, "refs": refs, "objects": objects, "variants": variants}


def test_request_upload_stores_the_owner_exactly_and_ints_as_their_str(env) -> None:
    engine, store = env
    owners = ("alice", *NEIGHBOURS, 42)
    ids = {owner: upload(engine, store, owner, seed)[0] for seed, owner in enumerate(owners)}
    with engine.connect() as conn:
        stored = {r.id: r.owner_id for r in conn.execute(sa.select(Upload.id, Upload.owner_id))}
    assert {owner: stored[i] for owner, i in ids.items()} == {
        "alice": "alice",
        "ålice": "ålice",
        "alice/": "alice/",
        "../alice": "../alice",
        42: "42",
    }
    folders = {key.split("/")[4] for owner in stored.values() for key in owned(engine, owner)["uploads"]}
    assert len(folders) == 5  # five owners, five key folders


@pytest.mark.parametrize(
    ("owner", "filename", "error"),
    [
        ("ali\x00ce", "a.jpg", InvalidOwnerId),  # used to be stored as "alice"
        ("a" * 256, "a.jpg", InvalidOwnerId),  # used to be cut to 255 characters
        ("", "a.jpg", InvalidOwnerId),
        (None, "a.jpg", InvalidOwnerId),
        ("alice", None, InvalidFileName),  # used to raise TypeError
        ("alice", 7, InvalidFileName),
    ],
)
def test_bad_owner_ids_and_file_names_are_validation_errors_and_write_no_row(
    env, owner: object, filename: object, error: type[Exception]
) -> None:
    engine, _store = env
    with pytest.raises(error), engine.begin() as conn:
        request_upload(conn, owner_id=owner, filename=filename, declared_mime=None, day=today())  # type: ignore[arg-type]
    assert issubclass(error, ValueError)
    with engine.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(Upload)).scalar_one() == 0


def test_gdpr_erasure_of_alice_never_touches_alice_lookalikes(env) -> None:
    engine, store = env
    with engine.begin() as conn:  # the app's own tables (config/sources.yaml), one row per owner
        for statement in SOURCE_TABLES_DDL.strip().split(";\n"):
            if statement.strip():
                conn.execute(sa.text(statement))
        for i, owner in enumerate(("alice", *NEIGHBOURS)):
            conn.execute(
                sa.text("INSERT INTO users (id, email, last_login_at) VALUES (:o, :e, now())"),
                {"o": owner, "e": f"{i}@x"},
            )
            conn.execute(
                sa.text("INSERT INTO stories (id, user_id, data) VALUES (:i, :o, '{}')"), {"i": i, "o": owner}
            )
    for seed, owner in enumerate(("alice", *NEIGHBOURS)):
        upload(engine, store, owner, seed)
    # Straight to storage under ålice's folder (no request): used to land in alice's folder and be hers.
    straight = upload_key(today(), "ålice", "direct1", "me.jpg")
    data = jpeg_bytes(photo(64, 48, seed=99))
    store.put_bytes(straight, data, sha256=sha256_hex(data), content_type="image/jpeg")
    discover_uploads(engine, store, UploadCursor(), today(), PLAN.uploads)
    for batch in queue_batches(engine, PLAN.uploads):
        process_uploads(engine, store, PLAN, upload_ids=batch.upload_ids)

    before = {owner: owned(engine, owner) for owner in NEIGHBOURS}
    assert all(len(b["objects"]) == 1 and len(b["variants"]) == 5 for b in before.values())
    assert owned(engine, "alice")["objects"]
    with engine.connect() as conn:
        straight_row = conn.execute(sa.select(Upload).where(Upload.upload_key == straight)).one()
    assert straight_row.owner_id == owner_segment("ålice") != "alice"
    assert straight_row.status == "rejected" and straight_row.error.startswith("unresolvable_owner")

    sources, config = load_sources_config(), parse_retention_config({})
    export = export_owner(
        engine, store, sources, config, owner_id="alice", run_id="export-1", now=dt.datetime.now(dt.UTC)
    )
    assert export.storage_key.startswith("exports/alice/") and export.objects == 1
    delete_owner_everywhere(
        engine, store, sources, config, owner_id="alice", run_id="gdpr-1", now=dt.datetime.now(dt.UTC)
    )

    gone = owned(engine, "alice")
    assert gone["uploads"] == [] and gone["objects"] == [] and gone["variants"] == []
    with engine.connect() as conn:
        users = set(conn.execute(sa.text("SELECT id FROM users")).scalars())
        story_owners = set(conn.execute(sa.text("SELECT user_id FROM stories")).scalars())
    assert users == story_owners == set(NEIGHBOURS)
    for owner in NEIGHBOURS:
        assert owned(engine, owner) == before[owner], owner
        for key in before[owner]["objects"] + before[owner]["variants"]:
            assert store.exists(key), key
    with engine.connect() as conn:
        status = conn.execute(sa.select(Upload.status).where(Upload.upload_key == straight)).scalar_one()
    assert status == "rejected"


def test_gdpr_erasure_refuses_an_owner_id_it_cannot_match_exactly(env) -> None:
    engine, store = env
    with pytest.raises(InvalidOwnerId):
        delete_owner_everywhere(
            engine,
            store,
            load_sources_config(),
            parse_retention_config({}),
            owner_id="ali\x00ce",
            run_id="gdpr-x",
            now=dt.datetime.now(dt.UTC),
        )
