"""Property: whatever the catalog looks like, a sweep never deletes an object that a live reference points
at or a legal hold covers, and deletes exactly the eligible orphans."""

from __future__ import annotations

import shutil
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from core.retention.sweep import referenced_but_deleted
from tests.support.retention import (
    C,
    add_object,
    add_ref,
    catalog,
    days_ago,
    execute,
    hold,
    local_store,
    rows,
    sweep,
)

OWNERS = ("ann", "ben", "cid")

reference = st.fixed_dictionaries(
    {
        "owner": st.sampled_from(OWNERS),
        # None: live; a number: released that many days ago
        "released_days": st.one_of(st.none(), st.integers(min_value=0, max_value=20)),
        # None: not a document; a number: expires in that many days (negative: expired)
        "expires_days": st.one_of(st.none(), st.integers(min_value=-5, max_value=5)),
    }
)
stored = st.fixed_dictionaries(
    {
        "age_days": st.integers(min_value=0, max_value=20),
        "flag_hold": st.booleans(),
        "object_hold": st.booleans(),
        "refs": st.lists(reference, max_size=3),
    }
)
catalogs = st.tuples(st.lists(stored, min_size=1, max_size=8), st.sets(st.sampled_from(OWNERS), max_size=2))


@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(world=catalogs)
def test_no_referenced_or_held_object_is_ever_deleted(database_url: str, tmp_path: Path, world) -> None:
    objects, held_owners = world
    engine = catalog(database_url, source_tables=False)
    execute(
        engine,
        f"TRUNCATE {C}.retention_audit, {C}.legal_holds, {C}.object_references, {C}.uploads, {C}.variants, "
        f"{C}.retention_pending_deletes, {C}.stored_objects",
    )
    shutil.rmtree(tmp_path / "objects", ignore_errors=True)
    store = local_store(tmp_path)

    created: list[tuple[int, str, dict]] = []
    pk = 0
    for i, spec in enumerate(objects):
        object_id, key = add_object(
            engine, store, f"object {i}", created=days_ago(spec["age_days"]), legal_hold=spec["flag_hold"]
        )
        if spec["object_hold"]:
            hold(engine, object_id=object_id)
        for ref in spec["refs"]:
            pk += 1
            add_ref(
                engine,
                object_id,
                ref["owner"],
                "documents" if ref["expires_days"] is not None else "stories",
                pk,
                released=None if ref["released_days"] is None else days_ago(ref["released_days"]),
                expires=None if ref["expires_days"] is None else days_ago(-ref["expires_days"]),
            )
        created.append((object_id, key, spec))
    for owner in held_owners:
        hold(engine, owner=owner)

    sweep(engine, store)

    state = dict(rows(engine, f"SELECT id, status FROM {C}.stored_objects"))
    with engine.connect() as conn:
        assert referenced_but_deleted(conn) == 0
    for object_id, key, spec in created:
        refs = spec["refs"]
        held = spec["flag_hold"] or spec["object_hold"] or any(r["owner"] in held_owners for r in refs)
        # A reference that stays live: not released, and not an expired document (unless held).
        stays_live = any(
            r["released_days"] is None and (r["expires_days"] is None or r["expires_days"] >= 0 or held)
            for r in refs
        )
        expired_now = any(
            r["released_days"] is None and r["expires_days"] is not None and r["expires_days"] < 0
            for r in refs
        )
        recently_released = any(r["released_days"] is not None and r["released_days"] <= 7 for r in refs)
        orphan_eligible = (
            spec["age_days"] > 7
            and not recently_released
            and not any(r["released_days"] is None for r in refs)
        )
        should_go = not held and not stays_live and (orphan_eligible or expired_now)
        if held or stays_live:
            assert state[object_id] == "verified", (spec, held_owners)
            assert store.exists(key)
        assert (state[object_id] == "deleted") == should_go, (spec, held_owners)
        assert store.exists(key) == (not should_go)


def test_the_invariant_check_detects_a_deleted_object_with_a_live_reference(
    database_url: str, tmp_path: Path
) -> None:
    engine = catalog(database_url, source_tables=False)
    object_id, _ = add_object(engine, local_store(tmp_path), "broken by hand")
    add_ref(engine, object_id, "ann", "stories", 1)
    execute(engine, f"UPDATE {C}.stored_objects SET status = 'deleted' WHERE id = :i", i=object_id)
    with engine.connect() as conn:
        assert referenced_but_deleted(conn) == 1
