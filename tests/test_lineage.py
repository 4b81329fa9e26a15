"""Per-object lineage: the runs that migrate, render, back up and delete an image are recorded on its
catalog rows, and `python -m orchestration.lineage` and the `object_lineage` view read them back by
storage key, SHA-256, source place and owner."""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from dagster import DagsterInstance, materialize

from core.catalog.db import PROJECT_ROOT, get_engine
from core.lineage import UnknownTarget, lineage_of, parse_target
from orchestration.lineage import main
from resources.database import PostgresResource
from resources.object_store import ObjectStoreResource
from tests.support.migration import create_legacy_tables

C = "media_catalog"
UI = "http://dagster.example:3000"
VARIANTS = {"thumb_150", "thumb_300", "thumb_600", "webp", "avif"}


@pytest.fixture(scope="module")
def migrated(postgres_server, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict]:
    """Two stories migrated, rendered and backed up through their Dagster assets; one image of story 2
    then loses its reference and is deleted by a retention sweep. Built once: the tests only read."""
    database_url = postgres_server.create_database()
    tmp_path = tmp_path_factory.mktemp("lineage")
    with pytest.MonkeyPatch.context() as monkeypatch:
        yield _build(database_url, tmp_path, monkeypatch)
    postgres_server.drop_database(database_url)


def _build(database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict:
    from assets.backups import object_backup
    from assets.migration import migrated_assets
    from assets.retention import retention_sweep
    from assets.variants import image_variants

    fixture = create_legacy_tables(database_url, stories=2, images_per_story=2)
    stories_migration = next(a for a in migrated_assets if a.key.path[-1] == "stories")
    media, backups = tmp_path / "objects", tmp_path / "backups"
    res = {
        "postgres": PostgresResource(database_url=database_url),
        "object_store": ObjectStoreResource(local_root=str(media), signing_secret="s"),
        "backup_store": ObjectStoreResource(local_root=str(backups), signing_secret="s"),
    }
    today = dt.datetime.now(dt.UTC).date().isoformat()
    runs = {}
    with DagsterInstance.ephemeral() as instance:
        for name, assets, partition in (
            ("migration", [stories_migration], None),
            ("variants", [image_variants], today),
            ("backup", [object_backup], today),
        ):
            result = materialize(assets, partition_key=partition, resources=res, instance=instance)
            assert result.success
            runs[name] = result.run_id
    engine = get_engine(database_url)
    sha_kept = fixture.good[("stories", "1", "images[1].data")]
    sha_gone = fixture.good[("stories", "2", "images[1].data")]
    with engine.begin() as conn:
        key_kept, key_gone = (
            conn.execute(
                sa.text(f"SELECT storage_key FROM {C}.stored_objects WHERE sha256 = :s"), {"s": s}
            ).scalar_one()
            for s in (sha_kept, sha_gone)
        )
        conn.execute(
            sa.text(
                f"UPDATE {C}.object_references SET released_at = now() - interval '30 days' "
                "WHERE source_table = 'stories' AND source_pk = '2' AND json_path = 'images[1].data'"
            )
        )
        conn.execute(
            sa.text(
                f"UPDATE {C}.stored_objects SET created_at = now() - interval '30 days' WHERE sha256 = :s"
            ),
            {"s": sha_gone},
        )
    with DagsterInstance.ephemeral() as instance:
        result = materialize(
            [retention_sweep],
            partition_key=today,
            resources=res,
            instance=instance,
            run_config={"ops": {"retention__sweep": {"config": {"dry_run": False}}}},
        )
        assert result.success
        runs["retention"] = result.run_id
    with engine.connect() as conn:
        status = conn.execute(
            sa.text(f"SELECT status FROM {C}.stored_objects WHERE sha256 = :s"), {"s": sha_gone}
        ).scalar_one()
    assert status == "deleted"
    monkeypatch.setenv("DATABASE_URL", database_url)
    monkeypatch.setenv("MEDIA_PLATFORM_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("DAGSTER_UI_URL", UI)
    return {
        "keys": {
            "migration": stories_migration.key.to_user_string(),
            "variants": image_variants.key.to_user_string(),
            "backup": object_backup.key.to_user_string(),
            "retention": retention_sweep.key.to_user_string(),
        },
        "url": database_url,
        "runs": runs,
        "today": today,
        "kept": (sha_kept, key_kept),
        "gone": (sha_gone, key_gone),
    }


def _run(argument: str, capsys: pytest.CaptureFixture[str], *extra: str) -> str:
    assert main([argument, *extra]) == 0
    return capsys.readouterr().out


def test_catalog_rows_record_the_run_asset_and_partition_that_wrote_them(migrated: dict) -> None:
    sha, _key = migrated["kept"]
    runs, today = migrated["runs"], migrated["today"]
    with get_engine(migrated["url"]).connect() as conn:
        stored = conn.execute(
            sa.text(f"SELECT run_id, asset_key, partition_key FROM {C}.stored_objects WHERE sha256 = :s"),
            {"s": sha},
        ).one()
        refs = conn.execute(
            sa.text(
                f"""SELECT DISTINCT r.run_id, r.asset_key, r.partition_key FROM {C}.object_references r
                    JOIN {C}.stored_objects o ON o.id = r.object_id WHERE o.sha256 = :s"""
            ),
            {"s": sha},
        ).all()
        variants = conn.execute(
            sa.text(
                f"""SELECT DISTINCT v.run_id, v.asset_key, v.partition_key FROM {C}.variants v
                    JOIN {C}.stored_objects o ON o.id = v.parent_object_id WHERE o.sha256 = :s"""
            ),
            {"s": sha},
        ).all()
        copy = conn.execute(
            sa.text(
                f"SELECT run_id, asset_key, partition_key FROM {C}.backup_object_copies WHERE sha256 = :s"
            ),
            {"s": sha},
        ).one()
        quarantined = conn.execute(
            sa.text(f"SELECT DISTINCT run_id, asset_key, partition_key FROM {C}.quarantine")
        ).all()
    keys = migrated["keys"]
    migration = (runs["migration"], keys["migration"], None)  # one asset per source, unpartitioned
    assert tuple(stored) == migration
    assert [tuple(r) for r in refs] == [migration]
    assert [tuple(v) for v in variants] == [(runs["variants"], keys["variants"], today)]
    assert tuple(copy) == (runs["backup"], keys["backup"], today)
    assert [tuple(q) for q in quarantined] == [migration]


@pytest.mark.parametrize("kind", ["storage_key", "sha256", "place", "owner"])
def test_lineage_of_a_migrated_image_by_each_kind_of_argument(
    migrated: dict, kind: str, capsys: pytest.CaptureFixture[str]
) -> None:
    sha, key = migrated["kept"]
    runs = migrated["runs"]
    argument = {
        "storage_key": key,
        "sha256": sha,
        "place": "stories:1:images[1].data",
        "owner": "owner:2",  # story 1 belongs to user 2
    }[kind]
    report = json.loads(_run(argument, capsys, "--json"))
    assert report["target"]["kind"] == kind
    obj = next(o for o in report["objects"] if o["sha256"] == sha)
    events = obj["events"]

    def of(event: str) -> list[dict]:
        return [e for e in events if e["event"] == event]

    (stored,) = of("stored")
    assert stored["run"]["run_id"] == runs["migration"]
    assert stored["run"]["url"] == f"{UI}/runs/{runs['migration']}"
    (ref,) = of("reference")
    assert (ref["place"], ref["state"], ref["owner_id"]) == ("stories:1:images[1].data", "live", "2")
    assert ref["run"]["asset_key"] == migrated["keys"]["migration"]
    assert ref["column"] == "public.stories.data"
    variants = of("variant")
    assert {v["detail"].split()[0] for v in variants} == VARIANTS
    assert {v["run"]["run_id"] for v in variants} == {runs["variants"]}
    (copy,) = of("backup_copy")
    assert copy["run"]["run_id"] == runs["backup"]
    assert copy["item_key"].startswith("objects/")
    manifests = of("backup_manifest")
    assert [m["run"]["run_id"] for m in manifests] == [runs["backup"]]
    assert manifests[0]["state"] == "verified"

    text = _run(argument, capsys)
    assert f"{UI}/runs/{runs['migration']}" in text
    assert f"{UI}/runs/{runs['variants']}" in text
    assert f"{UI}/runs/{runs['backup']}" in text
    assert "in backup [verified]" in text
    assert "reference [live] stories:1:images[1].data in public.stories.data owner 2" in text


@pytest.mark.parametrize("kind", ["storage_key", "sha256", "place", "owner"])
def test_lineage_of_a_deleted_image_shows_its_retention_audit_row(
    migrated: dict, kind: str, capsys: pytest.CaptureFixture[str]
) -> None:
    sha, key = migrated["gone"]
    argument = {
        "storage_key": key,
        "sha256": sha,
        "place": "stories:2:images[1].data",
        "owner": "owner:1",  # story 2 belongs to user 1
    }[kind]
    report = json.loads(_run(argument, capsys, "--json"))
    obj = next(o for o in report["objects"] if o["sha256"] == sha)
    assert obj["status"] == "deleted"
    (ref,) = [e for e in obj["events"] if e["event"] == "reference"]
    assert ref["state"] == "released"
    deleted = [e for e in obj["events"] if e["event"] == "retention" and e["state"] == "deleted"]
    assert any(e["detail"].startswith("orphaned_objects: object ") for e in deleted)
    assert {(e["run"]["run_id"], e["run"]["asset_key"], e["run"]["partition_key"]) for e in deleted} == {
        (migrated["runs"]["retention"], migrated["keys"]["retention"], migrated["today"])
    }
    assert "retention [deleted]" in _run(argument, capsys)


def test_the_view_answers_the_same_in_sql(migrated: dict) -> None:
    _sha, key = migrated["kept"]
    with get_engine(migrated["url"]).connect() as conn:
        rows = conn.execute(
            sa.text(
                f"SELECT event, state, run_id FROM {C}.object_lineage WHERE storage_key = :k ORDER BY at"
            ),
            {"k": key},
        ).all()
    events = [r.event for r in rows]
    assert events.count("stored") == 1 and events.count("reference") == 1
    assert events.count("variant") == 5 and "backup_copy" in events and "backup_manifest" in events
    assert {r.run_id for r in rows if r.event == "variant"} == {migrated["runs"]["variants"]}


def test_a_quarantined_value_is_found_by_its_place(
    migrated: dict, capsys: pytest.CaptureFixture[str]
) -> None:
    report = json.loads(_run("stories:3:images[0].data", capsys, "--json"))  # "this is not base64!!"
    assert report["objects"] == []
    (record,) = report["unattached"]
    assert (record["event"], record["state"]) == ("quarantine", "corrupt_base64")
    assert record["run"]["run_id"] == migrated["runs"]["migration"]


@pytest.mark.parametrize(
    "argument", ["originals/00/00/" + "0" * 64 + ".jpg", "f" * 64, "stories:999", "owner:nobody", "nonsense"]
)
def test_an_unknown_argument_is_a_clear_message_and_a_nonzero_exit(
    migrated: dict, argument: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main([argument]) == 2
    err = capsys.readouterr().err
    assert err.startswith("lineage: ") and ("nothing in the catalog" in err or "is not a storage key" in err)


def test_the_command_runs_as_a_module_and_exits_nonzero_for_nothing_found(database_url: str) -> None:
    create_legacy_tables(database_url, stories=1, images_per_story=1)
    env = {**os.environ, "DATABASE_URL": database_url}
    done = subprocess.run(
        [sys.executable, "-m", "orchestration.lineage", "owner:nobody"],
        cwd=PROJECT_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 2
    assert "nothing in the catalog for 'owner:nobody'" in done.stderr


def test_arguments_are_told_apart() -> None:
    assert parse_target("originals/ab/cd/" + "a" * 64 + ".png").kind == "storage_key"
    assert parse_target("media://variants/ab/x.webp").value == "variants/ab/x.webp"
    assert parse_target("A" * 64).kind == "sha256"
    place = parse_target("stories:12:images[0].data")
    assert (place.kind, place.value, place.pk, place.json_path) == (
        "place",
        "stories",
        "12",
        "images[0].data",
    )
    assert parse_target("stories:12").json_path is None
    assert parse_target("owner:42").value == "42"
    assert parse_target("catalog:7").kind == "object_id"
    for bad in ("", "nonsense", "stories:", ":12"):
        with pytest.raises(UnknownTarget):
            parse_target(bad)


def test_lineage_of_raises_for_nothing_found(database_url: str) -> None:
    create_legacy_tables(database_url, stories=1, images_per_story=1)
    with (
        get_engine(database_url).connect() as conn,
        pytest.raises(UnknownTarget, match="nothing in the catalog"),
    ):
        lineage_of(conn, "f" * 64, ui_base_url=None)


def test_rows_written_before_lineage_are_carried_over_as_not_recorded(database_url: str) -> None:
    """0008_lineage on a catalog built by the revision before it: every row stays, its lineage is NULL
    ("before lineage was recorded"), the run ids quarantine and audit rows had are kept, and the
    command reads them."""
    from alembic.script import ScriptDirectory

    from core.catalog.db import alembic_config, upgrade_catalog
    from core.lineage import render_text

    previous = ScriptDirectory.from_config(alembic_config(database_url)).get_revision("0008_lineage")
    upgrade_catalog(database_url, str(previous.down_revision))
    sha = "ab" * 32
    key = f"originals/ab/ab/{sha}.png"
    engine = get_engine(database_url)
    with engine.begin() as conn:
        object_id = conn.execute(
            sa.text(
                f"""INSERT INTO {C}.stored_objects
                        (sha256, size_bytes, mime_type, kind, storage_key, provider, status)
                    VALUES (:s, 10, 'image/png', 'image', :k, 'local', 'deleted') RETURNING id"""
            ),
            {"s": sha, "k": key},
        ).scalar_one()
        conn.execute(
            sa.text(
                f"""INSERT INTO {C}.object_references (object_id, owner_id, origin, source_name, source_table,
                        source_pk, json_path, released_at) VALUES (:o, '7', 'migration', 'stories', 'stories',
                        '5', 'images[0].data', now())"""
            ),
            {"o": object_id},
        )
        conn.execute(
            sa.text(
                f"""INSERT INTO {C}.variants (parent_object_id, variant_name, spec_hash, status, storage_key)
                    VALUES (:o, 'thumb_150', 'h', 'ready', 'variants/ab/ab/x/thumb_150.webp')"""
            ),
            {"o": object_id},
        )
        conn.execute(
            sa.text(
                f"INSERT INTO {C}.backup_object_copies (sha256, backup_key, size_bytes) "
                "VALUES (:s, 'objects/x', 10)"
            ),
            {"s": sha},
        )
        conn.execute(
            sa.text(
                f"""INSERT INTO {C}.retention_audit
                        (run_id, policy, action, target_type, target_id, storage_key, owner_id, dry_run)
                    VALUES ('old-sweep', 'orphaned_objects', 'deleted', 'object', :o, :k, '7', false)"""
            ),
            {"o": str(object_id), "k": key},
        )
        conn.execute(
            sa.text(
                f"""INSERT INTO {C}.quarantine (source_name, source_table, source_pk, json_path, reason_code,
                        reason, run_id) VALUES ('stories', 'stories', '5', 'images[1].data', 'corrupt_base64',
                        'not base64', 'old-migration')"""
            )
        )
    upgrade_catalog(database_url)
    with engine.connect() as conn:
        for table in ("stored_objects", "object_references", "variants", "backup_object_copies"):
            row = conn.execute(
                sa.text(f"SELECT count(*), count(run_id), count(asset_key) FROM {C}.{table}")
            ).one()
            assert tuple(row) == (1, 0, 0), table
        for table, run in (("retention_audit", "old-sweep"), ("quarantine", "old-migration")):
            row = conn.execute(sa.text(f"SELECT run_id, asset_key, partition_key FROM {C}.{table}")).one()
            assert tuple(row) == (run, None, None), table
        report = lineage_of(conn, key, ui_base_url=UI)
        place = lineage_of(conn, "stories:5", ui_base_url=UI)
    (obj,) = report.objects
    assert obj.stored is not None and obj.stored.run is None
    assert {e.event for e in obj.events} == {"stored", "reference", "variant", "backup_copy", "retention"}
    (deleted,) = obj.of("retention")
    assert deleted.run is not None and deleted.run.url == f"{UI}/runs/old-sweep"
    assert "run not recorded (before lineage was recorded)" in render_text(report)
    assert [e.event for e in place.unattached] == ["quarantine"]


def test_the_readme_walkthrough_query_runs(migrated: dict) -> None:
    readme = (PROJECT_ROOT / "README.md").read_text()
    section = readme[readme.index('## Lineage of one object: "a user says their image is missing"') :]
    query = section[section.index("```sql\n") + 7 : section.index("```", section.index("```sql\n") + 7)]
    with get_engine(migrated["url"]).connect() as conn:
        rows = conn.execute(sa.text(query.replace("'1017'", "'1'"))).all()
    assert {r.event for r in rows} >= {"stored", "reference", "variant", "backup_copy", "backup_manifest"}


def test_run_links_use_dagster_ui_url_and_default_to_localhost_only_in_the_quick_start(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from resources.settings import ui_base_url

    monkeypatch.delenv("DAGSTER_UI_URL", raising=False)
    monkeypatch.delenv("MEDIA_QUICKSTART", raising=False)
    monkeypatch.setenv("DATABASE_URL", "postgresql://app@db.internal/app")
    assert ui_base_url() is None  # production without the variable: no link to a wrong host
    monkeypatch.setenv("DAGSTER_UI_URL", UI)
    assert ui_base_url() == UI
    monkeypatch.delenv("DAGSTER_UI_URL")
    monkeypatch.setenv("MEDIA_QUICKSTART", "1")  # its entry points export the embedded DATABASE_URL
    assert ui_base_url() == "http://localhost:3000"
