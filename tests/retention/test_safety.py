"""Dry runs change nothing but the audit log; the audit log matches what a real run then deletes; an
interrupted sweep's rerun finishes the job without errors; a revived object is never deleted."""

from __future__ import annotations

import hashlib
import threading
import time
from collections.abc import Iterable
from pathlib import Path

import pytest
import sqlalchemy as sa

from core.ingest import StoredBlob, upsert_object, upsert_reference
from core.objectstore.local import LocalObjectStore
from core.retention.config import ORPHANED_OBJECTS
from tests.support.retention import (
    PNG,
    C,
    add_object,
    add_ref,
    audit,
    days_ago,
    execute,
    only,
    rows,
    scalar,
    status,
    sweep,
)


def _world(engine: sa.Engine, store: LocalObjectStore) -> list[str]:
    """Something for every policy; returns every storage key created."""
    keys = []
    orphan, key = add_object(engine, store, "orphan")
    keys.append(key)
    add_ref(engine, orphan, "alice", "stories", 90, released=days_ago(9))
    story_obj, key = add_object(engine, store, "soft deleted story image")
    keys.append(key)
    execute(
        engine,
        "INSERT INTO stories (id, user_id, data, deleted_at) VALUES (1, 'alice', '{}', :d)",
        d=days_ago(31),
    )
    add_ref(engine, story_obj, "alice", "stories", 1, json_path="images[0].data")
    # A soft-deleted owner's image with a variant: deleting the owner cascades to the variant, and the
    # orphaned-variants policy would see it too; a dry run must list it once, as the real run deletes it once.
    execute(engine, "INSERT INTO users (id, deleted_at) VALUES ('carol', :d)", d=days_ago(31))
    carol_obj, key = add_object(engine, store, "soft deleted owner's image")
    keys.append(key)
    add_ref(engine, carol_obj, "carol", "characters", 7)
    carol_thumb = f"variants/cc/dd/{carol_obj:064d}/thumb_150.webp"
    store.put_bytes(carol_thumb, b"u", sha256=hashlib.sha256(b"u").hexdigest(), content_type="image/webp")
    keys.append(carol_thumb)
    execute(
        engine,
        f"INSERT INTO {C}.variants (parent_object_id, variant_name, spec_hash, status, "
        "storage_key, size_bytes) "
        "VALUES (:p, 'thumb_150', 'h', 'ready', :k, 1)",
        p=carol_obj,
        k=carol_thumb,
    )
    doc, key = add_object(engine, store, "expired document")
    keys.append(key)
    add_ref(engine, doc, "alice", "documents", 5, expires=days_ago(1), origin="document")
    thumb = f"variants/aa/bb/{doc:064d}/thumb_150.webp"
    store.put_bytes(thumb, b"t", sha256=hashlib.sha256(b"t").hexdigest(), content_type="image/webp")
    keys.append(thumb)
    execute(
        engine,
        f"INSERT INTO {C}.variants (parent_object_id, variant_name, spec_hash, status, "
        "storage_key, size_bytes) "
        "VALUES (:p, 'thumb_150', 'h', 'ready', :k, 1)",
        p=doc,
        k=thumb,
    )
    staged = "uploads/2026/11/19/alice/u1-a.png"
    store.put_bytes(staged, b"s", sha256=hashlib.sha256(b"s").hexdigest(), content_type="image/png")
    keys.append(staged)
    execute(
        engine,
        f"INSERT INTO {C}.uploads (upload_key, owner_id, size_bytes, upload_date, status, created_at) "
        "VALUES (:k, 'alice', 1, current_date, 'pending', :c)",
        k=staged,
        c=days_ago(2),
    )
    execute(engine, "INSERT INTO users (id, last_login_at) VALUES ('idle', :t)", t=days_ago(380))
    kept, key = add_object(engine, store, "kept")
    keys.append(key)
    add_ref(engine, kept, "bob", "stories", 2)
    return keys


def _snapshot(engine: sa.Engine) -> tuple[object, ...]:
    return (
        rows(engine, f"SELECT id, status, deleted_at FROM {C}.stored_objects ORDER BY id"),
        rows(engine, f"SELECT id, released_at FROM {C}.object_references ORDER BY id"),
        rows(engine, f"SELECT id, status FROM {C}.uploads ORDER BY id"),
        rows(engine, f"SELECT id, status FROM {C}.variants ORDER BY id"),
        rows(engine, "SELECT id, deleted_at FROM stories ORDER BY id"),
        rows(engine, "SELECT id FROM users ORDER BY id"),
        rows(engine, f"SELECT * FROM {C}.retention_pending_deletes"),
    )


def test_dry_run_changes_nothing_and_its_audit_matches_what_the_real_run_deletes(
    engine: sa.Engine, store: LocalObjectStore
) -> None:
    keys = _world(engine, store)
    before = _snapshot(engine)

    dry = sweep(engine, store, dry_run=True, run_id="dry")

    assert _snapshot(engine) == before
    assert all(store.exists(k) for k in keys)
    dry_audit = audit(engine, "dry")
    assert dry_audit and all(a.dry_run for a in dry_audit)
    assert {a.action for a in dry_audit} == {"would_delete", "would_release", "would_warn"}
    assert dry.deleted == 7  # orphan, story image, carol's image + thumbnail, document + thumbnail, upload
    listed = [(a.target_type, a.target_id) for a in dry_audit if a.action == "would_delete"]
    assert len(listed) == len(set(listed))  # nothing listed twice
    assert sorted(t for t, _ in listed).count("variant") == 2

    real = sweep(engine, store, run_id="real")

    real_audit = audit(engine, "real")
    assert not any(a.dry_run for a in real_audit)
    would = {
        (a.policy, a.target_type, a.target_id, a.storage_key) for a in dry_audit if a.action == "would_delete"
    }
    did = {(a.policy, a.target_type, a.target_id, a.storage_key) for a in real_audit if a.action == "deleted"}
    assert would == did
    assert real.deleted == dry.deleted and real.bytes_reclaimed == dry.bytes_reclaimed
    assert [k for k in keys if store.exists(k)] == [keys[-1]]
    assert {a.action for a in real_audit} == {"deleted", "released", "warned"}


class CrashingStore(LocalObjectStore):
    """A real local store whose process 'dies' on the first storage delete (after the catalog commit)."""

    def delete_keys(self, keys: Iterable[str]) -> list[tuple[str, str]]:
        raise KeyboardInterrupt("killed mid-sweep")


def test_an_interrupted_sweep_is_finished_by_the_rerun_without_errors(
    engine: sa.Engine, store: LocalObjectStore, tmp_path: Path
) -> None:
    objects = [add_object(engine, store, f"orphan {i}") for i in range(5)]
    crashing = CrashingStore(tmp_path / "objects", signing_secret="test-signing-secret")

    with pytest.raises(KeyboardInterrupt):
        sweep(engine, crashing, cfg=only(ORPHANED_OBJECTS), run_id="crashed")

    assert all(status(engine, oid) == "deleted" for oid, _ in objects)  # decided and committed
    assert all(store.exists(key) for _, key in objects)  # but the bytes are still there
    assert scalar(engine, f"SELECT count(*) FROM {C}.retention_pending_deletes") == 5
    assert len(audit(engine, "crashed")) == 5

    rerun = sweep(engine, store, cfg=only(ORPHANED_OBJECTS), run_id="rerun")

    assert not any(store.exists(key) for _, key in objects)
    assert scalar(engine, f"SELECT count(*) FROM {C}.retention_pending_deletes") == 0
    assert rerun.leftover_keys_purged == 5 and rerun.purge_failures == {}
    assert rerun.policies[ORPHANED_OBJECTS].candidates == 0
    assert audit(engine, "rerun") == []  # nothing decided twice


def test_a_queued_key_whose_object_was_reingested_meanwhile_is_not_deleted(
    engine: sa.Engine, store: LocalObjectStore, tmp_path: Path
) -> None:
    object_id, key = add_object(engine, store, "deleted, then uploaded again")
    crashing = CrashingStore(tmp_path / "objects", signing_secret="test-signing-secret")
    with pytest.raises(KeyboardInterrupt):
        sweep(engine, crashing, cfg=only(ORPHANED_OBJECTS), run_id="crashed")
    add_object(engine, store, "deleted, then uploaded again")  # upsert_object revives the row
    add_ref(engine, object_id, "erin", "stories", 1)

    rerun = sweep(engine, store, cfg=only(ORPHANED_OBJECTS), run_id="rerun")

    assert status(engine, object_id) == "verified" and store.exists(key)
    assert rerun.revived_keys == 1
    assert scalar(engine, f"SELECT count(*) FROM {C}.retention_pending_deletes") == 0


def test_storage_failures_stay_queued_and_are_reported(engine: sa.Engine, tmp_path: Path) -> None:
    class RefusingStore(LocalObjectStore):
        def delete_keys(self, keys: Iterable[str]) -> list[tuple[str, str]]:
            return [(k, "AccessDenied") for k in keys]

    store = RefusingStore(tmp_path / "objects", signing_secret="test-signing-secret")
    _, key = add_object(engine, store, "cannot delete me yet")
    report = sweep(engine, store, cfg=only(ORPHANED_OBJECTS))
    assert report.purge_failures == {key: "AccessDenied"}
    queued = rows(
        engine,
        f"SELECT attempts, last_error FROM {C}.retention_pending_deletes WHERE storage_key = :k",
        k=key,
    )
    assert len(queued) == 1 and queued[0].attempts >= 1 and queued[0].last_error == "AccessDenied"


def test_a_purge_waiting_on_an_object_being_revived_keeps_its_bytes(
    engine: sa.Engine, store: LocalObjectStore, tmp_path: Path
) -> None:
    """The migration (or an upload) revives a deleted object while a purge of its key is under way:
    the purge waits for the row lock, reads the status again, and leaves the bytes of the revived row."""
    object_id, key = add_object(engine, store, "purged while being migrated again")
    crashing = CrashingStore(tmp_path / "objects", signing_secret="test-signing-secret")
    with pytest.raises(KeyboardInterrupt):
        sweep(engine, crashing, cfg=only(ORPHANED_OBJECTS), run_id="crashed")  # deleted, key queued
    assert status(engine, object_id) == "deleted" and store.exists(key)

    data = b"purged while being migrated again"
    blob = StoredBlob(key, hashlib.sha256(data).hexdigest(), len(data), uploaded=False)
    with engine.connect() as reviver:
        transaction = reviver.begin()
        # Bytes still there: the row is revived under its lock (not yet committed) and gets a reference.
        assert upsert_object(reviver, blob, PNG, store.provider, store=store) == object_id
        upsert_reference(
            reviver,
            object_id=object_id,
            owner_id="erin",
            origin="migration",
            source_name="stories",
            source_table="stories",
            source_pk="1",
        )
        result: list[object] = []
        purger = threading.Thread(
            target=lambda: result.append(sweep(engine, store, cfg=only(ORPHANED_OBJECTS), run_id="rerun"))
        )
        purger.start()
        deadline = time.monotonic() + 30
        while not scalar(
            engine,
            "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
            "AND query LIKE '%stored_objects WHERE id = ANY%FOR UPDATE%'",
        ):
            assert time.monotonic() < deadline, "the purge never waited for the row lock"
            time.sleep(0.05)
        transaction.commit()
    purger.join(timeout=60)

    assert result, "the purge did not finish"
    assert status(engine, object_id) == "verified"
    assert store.exists(key), "the purge deleted the bytes of a row revived while it waited"
    assert scalar(engine, f"SELECT count(*) FROM {C}.retention_pending_deletes") == 0
