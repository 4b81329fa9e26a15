"""Each retention policy deletes what it should and keeps what it must (referenced, held, too young)."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from core.objectstore.local import LocalObjectStore
from core.retention.config import (
    ABANDONED_UPLOADS,
    EXPIRED_DOCUMENTS,
    INACTIVE_USERS,
    ORPHANED_OBJECTS,
    ORPHANED_VARIANTS,
    SOFT_DELETED_ROWS,
)
from tests.support.retention import (
    NOW,
    C,
    add_object,
    add_ref,
    audit,
    days_ago,
    execute,
    hold,
    only,
    rows,
    scalar,
    status,
    sweep,
)


def test_orphaned_objects_go_after_seven_days_and_referenced_held_or_young_ones_stay(
    engine: sa.Engine, store: LocalObjectStore
) -> None:
    orphan, orphan_key = add_object(engine, store, "orphan")
    add_ref(engine, orphan, "alice", "stories", 1, released=days_ago(10))
    never_referenced, _ = add_object(engine, store, "never referenced")
    referenced, referenced_key = add_object(engine, store, "referenced")
    add_ref(engine, referenced, "bob", "stories", 2)
    add_ref(engine, referenced, "alice", "stories", 3, released=days_ago(20))
    young, _ = add_object(engine, store, "young", created=days_ago(3))
    recently_released, _ = add_object(engine, store, "recently released")
    add_ref(engine, recently_released, "bob", "stories", 4, released=days_ago(2))
    flagged, flagged_key = add_object(engine, store, "flagged", legal_hold=True)
    object_hold, _ = add_object(engine, store, "object hold")
    hold(engine, object_id=object_hold)
    owner_hold, _ = add_object(engine, store, "owner hold")
    add_ref(engine, owner_hold, "carol", "stories", 5, released=days_ago(30))
    hold(engine, owner="carol")

    report = sweep(engine, store, cfg=only(ORPHANED_OBJECTS))

    result = report.policies[ORPHANED_OBJECTS]
    assert status(engine, orphan) == "deleted" and status(engine, never_referenced) == "deleted"
    assert not store.exists(orphan_key)
    for kept in (referenced, young, recently_released, flagged, object_hold, owner_hold):
        assert status(engine, kept) == "verified"
    assert store.exists(referenced_key) and store.exists(flagged_key)
    assert (result.candidates, result.deleted) == (5, 2)
    assert result.skipped == {"object legal hold": 3}
    assert result.bytes_reclaimed == len(b"orphan") + len(b"never referenced")
    entry = next(a for a in audit(engine) if a.target_id == str(orphan))
    assert (entry.policy, entry.action, entry.owner_id, entry.size_bytes, entry.run_id) == (
        ORPHANED_OBJECTS,
        "deleted",
        "alice",
        len(b"orphan"),
        "run-1",
    )
    assert entry.storage_key == orphan_key and entry.created_at == NOW and "no reference" in entry.reason


def test_a_reference_added_after_the_candidate_list_was_made_keeps_the_object(
    engine: sa.Engine, store: LocalObjectStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Check at delete time, not from a stale list: the re-check runs after the rows are locked."""
    from core.retention import actions
    from core.retention.context import PolicyResult, SweepContext

    object_id, key = add_object(engine, store, "about to be reused")
    original = actions.delete_candidates

    def reuse_then_delete(ctx: SweepContext, result: PolicyResult, reason: str) -> None:
        add_ref(engine, object_id, "dave", "stories", 9)  # another transaction, committed meanwhile
        original(ctx, result, reason)

    monkeypatch.setattr(actions, "delete_candidates", reuse_then_delete)
    report = sweep(engine, store, cfg=only(ORPHANED_OBJECTS))

    assert report.policies[ORPHANED_OBJECTS].candidates == 1
    assert report.policies[ORPHANED_OBJECTS].skipped == {"object still referenced": 1}
    assert status(engine, object_id) == "verified" and store.exists(key)


def test_soft_deleted_rows_are_recoverable_for_thirty_days_then_hard_deleted_with_their_objects(
    engine: sa.Engine, store: LocalObjectStore
) -> None:
    old_only, old_only_key = add_object(engine, store, "only in an old deleted story")
    shared, _ = add_object(engine, store, "also in a live story")
    recent, _ = add_object(engine, store, "in a recently deleted story")
    held_obj, _ = add_object(engine, store, "in a held owner's deleted file")
    execute(
        engine,
        "INSERT INTO stories (id, user_id, data, deleted_at) VALUES "
        "(1, 'alice', '{}', :old), (2, 'alice', '{}', NULL), (3, 'bob', '{}', :recent)",
        old=days_ago(40),
        recent=days_ago(10),
    )
    execute(
        engine,
        "INSERT INTO files (id, user_id, data, deleted_at) VALUES (7, 'carol', 'k', :old)",
        old=days_ago(45),
    )
    hold(engine, owner="carol")
    add_ref(engine, old_only, "alice", "stories", 1, json_path="images[0].data")
    add_ref(engine, shared, "alice", "stories", 1, json_path="images[1].data")
    add_ref(engine, shared, "alice", "stories", 2, json_path="images[0].data")
    add_ref(engine, recent, "bob", "stories", 3, json_path="images[0].data")
    add_ref(engine, held_obj, "carol", "files", 7)

    report = sweep(engine, store, cfg=only(SOFT_DELETED_ROWS))

    result = report.policies[SOFT_DELETED_ROWS]
    assert [r.id for r in rows(engine, "SELECT id FROM stories ORDER BY id")] == [2, 3]
    assert scalar(engine, "SELECT count(*) FROM files") == 1
    assert status(engine, old_only) == "deleted" and not store.exists(old_only_key)
    assert status(engine, shared) == "verified"
    assert status(engine, recent) == "verified" and status(engine, held_obj) == "verified"
    assert scalar(engine, f"SELECT count(*) FROM {C}.object_references WHERE released_at IS NOT NULL") == 2
    assert (result.candidates, result.counts["rows_deleted"], result.deleted) == (2, 1, 1)
    assert result.skipped["row of an owner under legal hold"] == 1
    assert result.skipped["object still referenced"] == 1
    row_audit = [a for a in audit(engine) if a.target_type == "row"]
    assert [(a.target_id, a.owner_id, a.action) for a in row_audit] == [("stories:1", "alice", "deleted")]


def test_inactive_users_are_warned_at_twelve_months_and_deleted_after_thirteen_once_warned(
    engine: sa.Engine, store: LocalObjectStore
) -> None:
    execute(
        engine,
        "INSERT INTO users (id, email, last_login_at) VALUES ('idle', 'i@x', :a), ('gone', 'g@x', :b), "
        "('active', 'a@x', :c), ('held', 'h@x', :b)",
        a=days_ago(375),
        b=days_ago(420),
        c=days_ago(5),
    )
    execute(engine, "INSERT INTO stories (id, user_id, data) VALUES (1, 'gone', '{}'), (2, 'active', '{}')")
    execute(engine, "INSERT INTO characters (id, user_id, photo) VALUES (3, 'gone', 'k')")
    own, own_key = add_object(engine, store, "only gone's photo")
    shared, _ = add_object(engine, store, "gone's and active's picture")
    add_ref(engine, own, "gone", "characters", 3)
    add_ref(engine, shared, "gone", "stories", 1, json_path="images[0].data")
    add_ref(engine, shared, "active", "stories", 2, json_path="images[0].data")
    hold(engine, owner="held")
    cfg = only(INACTIVE_USERS)

    first = sweep(engine, store, cfg=cfg, now=days_ago(40), run_id="warn-run")

    warned = first.policies[INACTIVE_USERS]
    assert sorted(warned.warned_owners) == ["gone"]  # 'idle' was not yet 12 months idle 40 days ago
    assert scalar(engine, "SELECT count(*) FROM users") == 4 and status(engine, own) == "verified"

    second = sweep(engine, store, cfg=cfg, run_id="delete-run")

    result = second.policies[INACTIVE_USERS]
    assert result.warned_owners == ["idle"]
    assert sorted(r.id for r in rows(engine, "SELECT id FROM users")) == ["active", "held", "idle"]
    assert scalar(engine, "SELECT count(*) FROM stories WHERE user_id = 'gone'") == 0
    assert scalar(engine, "SELECT count(*) FROM characters") == 0
    assert status(engine, own) == "deleted" and not store.exists(own_key)
    assert status(engine, shared) == "verified"
    assert scalar(engine, f"SELECT count(*) FROM {C}.object_references WHERE owner_id = 'gone'") == 0
    assert result.counts["owners_deleted"] == 1 and result.skipped["owner under legal hold"] == 1
    actions = {(a.action, a.target_type, a.owner_id) for a in audit(engine, "delete-run")}
    assert ("deleted", "owner", "gone") in actions and ("warned", "owner", "idle") in actions
    assert ("deleted", "object", "gone") in actions


def test_a_due_user_never_warned_is_warned_first_not_deleted(
    engine: sa.Engine, store: LocalObjectStore
) -> None:
    execute(engine, "INSERT INTO users (id, last_login_at) VALUES ('late', :t)", t=days_ago(500))
    report = sweep(engine, store, cfg=only(INACTIVE_USERS))
    assert report.policies[INACTIVE_USERS].warned_owners == ["late"]
    assert scalar(engine, "SELECT count(*) FROM users") == 1


def _upload(
    engine: sa.Engine, store: LocalObjectStore, upload_id: int, owner: str, status_: str, age_hours: float
) -> str:
    key = f"uploads/2026/11/20/{owner}/u{upload_id}-photo.png"
    data = f"staged {upload_id}".encode()
    import hashlib

    store.put_bytes(key, data, sha256=hashlib.sha256(data).hexdigest(), content_type="image/png")
    execute(
        engine,
        f"INSERT INTO {C}.uploads (upload_key, owner_id, size_bytes, upload_date, status, created_at) "
        "VALUES (:k, :o, :s, current_date, :st, :c)",
        k=key,
        o=owner,
        s=len(data),
        st=status_,
        c=days_ago(age_hours / 24),
    )
    return key


def test_abandoned_uploads_lose_their_staged_object_after_a_day(
    engine: sa.Engine, store: LocalObjectStore
) -> None:
    abandoned = _upload(engine, store, 1, "alice", "pending", 30)
    fresh = _upload(engine, store, 2, "alice", "pending", 2)
    confirmed = _upload(engine, store, 3, "alice", "confirmed", 50)
    held = _upload(engine, store, 4, "carol", "pending", 50)
    hold(engine, owner="carol")

    report = sweep(engine, store, cfg=only(ABANDONED_UPLOADS))

    result = report.policies[ABANDONED_UPLOADS]
    states = dict(rows(engine, f"SELECT upload_key, status FROM {C}.uploads"))
    assert states == {abandoned: "abandoned", fresh: "pending", confirmed: "confirmed", held: "pending"}
    assert not store.exists(abandoned)
    assert store.exists(fresh) and store.exists(confirmed) and store.exists(held)
    assert (result.candidates, result.deleted, result.skipped["owner under legal hold"]) == (2, 1, 1)


def test_expired_documents_are_released_and_deleted_unless_still_referenced(
    engine: sa.Engine, store: LocalObjectStore
) -> None:
    expired, expired_key = add_object(engine, store, "expired pdf")
    add_ref(engine, expired, "alice", "documents", 1, expires=days_ago(1), origin="document")
    valid, _ = add_object(engine, store, "valid pdf")
    add_ref(engine, valid, "alice", "documents", 2, expires=days_ago(-3), origin="document")
    shared, _ = add_object(engine, store, "expired copy, also attached to a story")
    add_ref(engine, shared, "alice", "documents", 3, expires=days_ago(1), origin="document")
    add_ref(engine, shared, "alice", "stories", 3)
    held, _ = add_object(engine, store, "expired but held")
    add_ref(engine, held, "alice", "documents", 4, expires=days_ago(1), origin="document")
    hold(engine, object_id=held)

    report = sweep(engine, store, cfg=only(EXPIRED_DOCUMENTS))

    result = report.policies[EXPIRED_DOCUMENTS]
    assert status(engine, expired) == "deleted" and not store.exists(expired_key)
    assert status(engine, valid) == "verified" and status(engine, shared) == "verified"
    assert status(engine, held) == "verified"
    assert (result.candidates, result.counts["references_released"], result.deleted) == (3, 2, 1)
    assert result.skipped == {"legal hold": 1, "object still referenced": 1}


def _variant(engine: sa.Engine, store: LocalObjectStore, parent: int, name: str) -> str:
    import hashlib

    key = f"variants/aa/bb/{parent:064d}/{name}.webp"
    data = f"variant {parent} {name}".encode()
    store.put_bytes(key, data, sha256=hashlib.sha256(data).hexdigest(), content_type="image/webp")
    execute(
        engine,
        f"INSERT INTO {C}.variants (parent_object_id, variant_name, spec_hash, status, "
        "storage_key, size_bytes) "
        "VALUES (:p, :n, 'h', 'ready', :k, :s)",
        p=parent,
        n=name,
        k=key,
        s=len(data),
    )
    return key


def test_variants_of_deleted_originals_go_and_others_stay(engine: sa.Engine, store: LocalObjectStore) -> None:
    orphan, _ = add_object(engine, store, "orphan with thumbnails")
    live, _ = add_object(engine, store, "live with thumbnails")
    add_ref(engine, live, "bob", "stories", 1)
    gone_thumb = _variant(engine, store, orphan, "thumb_150")
    live_thumb = _variant(engine, store, live, "thumb_150")

    report = sweep(engine, store, cfg=only(ORPHANED_OBJECTS, ORPHANED_VARIANTS))

    assert status(engine, orphan) == "deleted"
    assert not store.exists(gone_thumb) and store.exists(live_thumb)
    result = report.policies[ORPHANED_VARIANTS]
    assert (result.candidates, result.deleted) == (1, 1)
    assert scalar(engine, f"SELECT status FROM {C}.variants WHERE storage_key = :k", k=live_thumb) == "ready"


def test_a_variant_whose_deleted_original_is_now_held_is_kept(
    engine: sa.Engine, store: LocalObjectStore
) -> None:
    parent, _ = add_object(engine, store, "deleted earlier, then held")
    execute(engine, f"UPDATE {C}.stored_objects SET status = 'deleted' WHERE id = :i", i=parent)
    thumb = _variant(engine, store, parent, "thumb_300")
    hold(engine, object_id=parent)
    report = sweep(engine, store, cfg=only(ORPHANED_VARIANTS))
    assert store.exists(thumb)
    assert report.policies[ORPHANED_VARIANTS].skipped == {"variant of a held original": 1}


def test_keep_forever_preset_deletes_nothing(engine: sa.Engine, store: LocalObjectStore) -> None:
    orphan, key = add_object(engine, store, "would be an orphan")
    report = sweep(engine, store, cfg=only(ORPHANED_OBJECTS, preset="keep_forever"))
    assert status(engine, orphan) == "verified" and store.exists(key)
    assert all(not p.enabled and p.note == "preset keep_forever" for p in report.policies.values())
    assert audit(engine) == []
