"""The migration engine on real Postgres and real object stores (local files and S3 over HTTP)."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
import sqlalchemy as sa

from core.catalog.db import get_engine, upgrade_catalog
from core.ingest import store_verified, upsert_object
from core.media_types import inspect_media
from core.migration.engine import MigrationSettings, migrate_source
from core.migration.scan import iter_batches
from core.objectstore.base import ObjectStore, TransientStorageError
from core.objectstore.local import LocalObjectStore
from core.objectstore.s3 import S3ObjectStore
from core.sources import SourceConfigError, parse_source
from tests.support.migration import (
    all_values,
    assert_fully_migrated,
    b64,
    create_legacy_tables,
    jpeg,
    reference_key,
    sources,
)
from tests.support.services import s3_client

DECLARED = (("files", "mime_type"),)
SMALL = MigrationSettings(batch_rows=2, batch_bytes=4096, workers=3, declared_type_columns=DECLARED)
#: Every row read in slices (core.migration.stream), as rows of tens of MB are in production.
STREAMED = MigrationSettings(
    batch_rows=2, batch_bytes=4096, workers=3, declared_type_columns=DECLARED, stream_above_bytes=0
)


def local_store(tmp_path: Path) -> LocalObjectStore:
    return LocalObjectStore(tmp_path / "objects", signing_secret="s")


def migrate_all(url: str, store: ObjectStore, settings: MigrationSettings = SMALL) -> dict[str, object]:
    return {s.name: migrate_source(get_engine(url), store, s, settings=settings) for s in sources()}


def test_every_format_migrates_verified_and_bad_input_is_quarantined(
    database_url: str, tmp_path: Path
) -> None:
    fixture = create_legacy_tables(database_url)
    store = local_store(tmp_path)
    stats = migrate_all(database_url, store)
    assert_fully_migrated(database_url, store, fixture)
    assert sum(s.blobs_moved for s in stats.values()) == len(fixture.good)
    assert sum(s.quarantined for s in stats.values()) == len(fixture.bad)
    assert stats["stories"].duplicates_stored_once >= 3  # the shared picture, stored once
    assert stats["files"].quarantine_reasons == {"executable": 1, "not_image": 1}
    # the rest of the JSON is kept, and jsonb stays jsonb
    with get_engine(database_url).connect() as conn:
        doc = json.loads(conn.execute(sa.text("SELECT data FROM stories WHERE id = 1")).scalar_one())
        job = conn.execute(sa.text("SELECT result FROM story_jobs WHERE id = 1")).scalar_one()
        mimes = dict(conn.execute(sa.text("SELECT kind, mime_type FROM media_catalog.stored_objects")).all())
    assert doc["title"] == "Story 1" and doc["images"][2]["caption"] == "page 2"
    assert job["status"] == "done" and job["score"] == 0.25 and job["pages"][1]["n"] == 1
    assert mimes["document"] == "application/pdf" and mimes["archive"] == "application/zip"


def test_a_rerun_moves_nothing_and_reuploads_nothing(database_url: str, tmp_path: Path) -> None:
    fixture = create_legacy_tables(database_url, stories=2)
    store = local_store(tmp_path)
    migrate_all(database_url, store)
    before = all_values(database_url)
    again = migrate_all(database_url, store)
    assert sum(s.blobs_moved for s in again.values()) == 0
    assert sum(s.objects_uploaded for s in again.values()) == 0
    assert sum(s.already_migrated for s in again.values()) == len(fixture.good)
    assert all_values(database_url) == before
    assert_fully_migrated(database_url, store, fixture)


def test_hybrid_mode_picks_up_base64_written_after_the_migration(database_url: str, tmp_path: Path) -> None:
    fixture = create_legacy_tables(database_url, stories=2)
    store = local_store(tmp_path)
    migrate_all(database_url, store)
    engine = get_engine(database_url)
    new_image = jpeg(4242)
    with engine.begin() as conn:  # the app, not yet switched, appends a base64 image to a migrated story
        doc = json.loads(conn.execute(sa.text("SELECT data FROM stories WHERE id = 1")).scalar_one())
        doc["images"].append({"data": b64(new_image), "caption": "new"})
        conn.execute(sa.text("UPDATE stories SET data = :d WHERE id = 1"), {"d": json.dumps(doc)})
        conn.execute(
            sa.text("INSERT INTO characters (id, user_id, name, photo) VALUES (99, 1, 'n', :p)"),
            {"p": "data:image/jpeg;base64," + b64(new_image)},
        )
    fixture.good[("stories", "1", "images[3].data")] = hashlib.sha256(new_image).hexdigest()
    fixture.good[("characters", "99", "")] = hashlib.sha256(new_image).hexdigest()
    again = migrate_all(database_url, store)
    assert again["stories"].blobs_moved == 1 and again["characters"].blobs_moved == 1
    assert again["stories"].objects_uploaded + again["characters"].objects_uploaded == 1
    assert_fully_migrated(database_url, store, fixture)


def test_a_row_the_app_changes_mid_migration_is_left_for_the_next_pass(
    database_url: str, tmp_path: Path
) -> None:
    create_legacy_tables(database_url, stories=1)
    store = local_store(tmp_path)
    engine = get_engine(database_url)
    source = next(s for s in sources() if s.name == "characters")
    app_photo = "data:image/jpeg;base64," + b64(jpeg(777))
    changed: list[bool] = []

    def app_writes(event: str) -> None:
        if event == "object_stored" and not changed:
            changed.append(True)
            with engine.begin() as conn:
                conn.execute(sa.text("UPDATE characters SET photo = :p WHERE id = 1"), {"p": app_photo})

    stats = migrate_source(
        engine, store, source, settings=MigrationSettings(batch_rows=1, workers=1), on_event=app_writes
    )
    assert stats.rows_changed_concurrently == 1
    with engine.connect() as conn:
        assert conn.execute(sa.text("SELECT photo FROM characters WHERE id = 1")).scalar_one() == app_photo
    migrate_source(engine, store, source)
    with engine.connect() as conn:
        key = reference_key(conn.execute(sa.text("SELECT photo FROM characters WHERE id = 1")).scalar_one())
    assert hashlib.sha256(store.get_bytes(key)).hexdigest() == hashlib.sha256(jpeg(777)).hexdigest()


class FlakyStore(LocalObjectStore):
    """A real local store whose every third call fails the way a throttled service does."""

    calls = 0

    def _flake(self) -> None:
        FlakyStore.calls += 1
        if FlakyStore.calls % 3 == 0:
            raise TransientStorageError("503 Slow Down")

    def head(self, key: str):  # type: ignore[no-untyped-def]
        self._flake()
        return super().head(key)

    def put_bytes(self, key: str, data: bytes, *, sha256: str, content_type: str):  # type: ignore[no-untyped-def]
        self._flake()
        return super().put_bytes(key, data, sha256=sha256, content_type=content_type)


def test_transient_storage_errors_are_retried(database_url: str, tmp_path: Path) -> None:
    fixture = create_legacy_tables(database_url, stories=2, images_per_story=2)
    store = FlakyStore(tmp_path / "objects", signing_secret="s")
    migrate_all(database_url, store, MigrationSettings(workers=1, declared_type_columns=DECLARED))
    assert FlakyStore.calls > 10
    assert_fully_migrated(database_url, local_store(tmp_path), fixture)


def test_a_dropped_database_connection_fails_the_run_and_a_rerun_completes(
    database_url: str, tmp_path: Path
) -> None:
    fixture = create_legacy_tables(database_url, stories=3)
    store = local_store(tmp_path)
    engine = get_engine(database_url)
    admin = sa.create_engine(engine.url, poolclass=sa.pool.NullPool)
    seen = {"n": 0}

    def drop_connections(event: str) -> None:
        if event == "row_updated":
            seen["n"] += 1
            if seen["n"] == 2:  # inside the second row's transaction, before its commit
                with admin.begin() as conn:
                    conn.execute(
                        sa.text(
                            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                            "WHERE datname = current_database() AND pid <> pg_backend_pid()"
                        )
                    )

    stories = next(s for s in sources() if s.name == "stories")
    with pytest.raises(sa.exc.DBAPIError):
        migrate_source(engine, store, stories, settings=SMALL, on_event=drop_connections)
    admin.dispose()
    migrate_all(database_url, store)
    assert_fully_migrated(database_url, store, fixture)


def test_migration_to_s3_is_verified_the_same_way(
    database_url: str, s3_endpoint: str, s3_bucket: str
) -> None:
    fixture = create_legacy_tables(database_url, stories=2)
    store = S3ObjectStore(s3_client(s3_endpoint), s3_bucket, prefix="media")
    migrate_all(database_url, store)
    assert_fully_migrated(database_url, store, fixture)
    with get_engine(database_url).connect() as conn:
        assert conn.execute(sa.text("SELECT DISTINCT provider FROM media_catalog.stored_objects")).all() == [
            ("s3",)
        ]


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"table": "no_such_table"}, "table public.no_such_table does not exist"),
        ({"column": "no_such_column"}, "column\\(s\\) public.stories.no_such_column do not exist"),
        ({"column": "user_id"}, "is bigint, but format 'json_text' needs"),
    ],
)
def test_a_source_the_database_does_not_match_is_refused_before_anything_runs(
    database_url: str, tmp_path: Path, change: dict[str, str], message: str
) -> None:
    create_legacy_tables(database_url, stories=1)
    raw = {
        "name": "stories",
        "table": "stories",
        "primary_key": "id",
        "owner_column": "user_id",
        "column": "data",
        "format": "json_text",
        "json_path": "images[*].data",
        **change,
    }
    before = all_values(database_url)
    with pytest.raises(SourceConfigError, match=message):
        migrate_source(get_engine(database_url), local_store(tmp_path), parse_source(raw))
    assert all_values(database_url) == before
    assert not (tmp_path / "objects").exists() or not list(local_store(tmp_path).list_objects())


def test_an_identifier_that_is_not_plain_is_refused() -> None:
    with pytest.raises(SourceConfigError, match="plain SQL identifier"):
        parse_source(
            {
                "name": "x",
                "table": 'stories"; DROP TABLE users; --',
                "owner_column": "u",
                "column": "c",
                "format": "base64",
            }
        )


def test_rows_read_in_slices_migrate_like_whole_rows_and_keep_the_rest_of_the_json_byte_for_byte(
    database_url: str, tmp_path: Path
) -> None:
    fixture = create_legacy_tables(database_url)
    with get_engine(database_url).connect() as conn:
        original = conn.execute(sa.text("SELECT data FROM stories WHERE id = 1")).scalar_one()
    store = local_store(tmp_path)
    stats = migrate_all(database_url, store, STREAMED)
    assert_fully_migrated(database_url, store, fixture)
    assert sum(s.blobs_moved for s in stats.values()) == len(fixture.good)
    assert sum(s.quarantined for s in stats.values()) == len(fixture.bad)
    assert stats["files"].quarantine_reasons == {"executable": 1, "not_image": 1}
    with get_engine(database_url).connect() as conn:
        spliced = conn.execute(sa.text("SELECT data FROM stories WHERE id = 1")).scalar_one()
    # Only the base64 strings were replaced: everything between them is the app's text, unchanged.
    doc = json.loads(spliced)
    expected = original
    for image in json.loads(original)["images"]:
        if isinstance(image.get("data"), str):
            expected = expected.replace(json.dumps(image["data"]), "\x00", 1)
    assert [piece for piece in expected.split("\x00")] == [piece for piece in _split_references(spliced, doc)]
    again = migrate_all(database_url, store, STREAMED)
    assert sum(s.blobs_moved for s in again.values()) == 0
    assert sum(s.objects_uploaded for s in again.values()) == 0
    assert sum(s.already_migrated for s in again.values()) == len(fixture.good)


def _split_references(text: str, doc: dict[str, object]) -> list[str]:
    images = doc["images"]
    assert isinstance(images, list)
    for image in images:
        if isinstance(image.get("data"), str):
            text = text.replace(json.dumps(image["data"]), "\x00", 1)
    return text.split("\x00")


def test_batches_follow_numeric_key_order_and_stay_within_the_byte_limit(database_url: str) -> None:
    """Keys 1..30 as numbers, not as text ('10' < '9'): each batch holds at most 2 rows of 1000 bytes."""
    engine = get_engine(database_url)
    with engine.begin() as conn:
        conn.execute(sa.text("CREATE TABLE blobs (id integer PRIMARY KEY, owner integer, b64 text)"))
        conn.execute(
            sa.text("INSERT INTO blobs SELECT g, 1, repeat('QUJD', 250) FROM generate_series(1, 30) g")
        )
    source = parse_source(
        {
            "name": "blobs",
            "table": "blobs",
            "primary_key": "id",
            "owner_column": "owner",
            "column": "b64",
            "format": "base64",
            "accept": "any",
            "reference": "key",
        }
    )
    batches = [[row.pk for row in batch] for batch in iter_batches(engine, source, "integer", max_bytes=2500)]
    assert [pk for batch in batches for pk in batch] == list(range(1, 31))
    assert all(len(batch) <= 2 for batch in batches)


@pytest.mark.parametrize("stream_above", [8 * 1024 * 1024, 0], ids=["row-whole", "row-in-slices"])
def test_an_object_retention_purges_between_verification_and_commit_is_uploaded_again(
    database_url: str, tmp_path: Path, stream_above: int
) -> None:
    """The content is already stored (an old upload nobody references). The migration finds it, and
    before the row commits, retention marks it deleted and purges its bytes. Reviving the catalog row
    then would point the rewritten row at nothing: the object must be uploaded again first."""
    upgrade_catalog(database_url)
    engine = get_engine(database_url)
    store = local_store(tmp_path)
    picture = jpeg(7)
    sha = hashlib.sha256(picture).hexdigest()
    info = inspect_media(picture)
    blob = store_verified(store, picture, sha, info)
    with engine.begin() as conn:
        upsert_object(conn, blob, info, store.provider, store=store)
        conn.execute(sa.text("CREATE TABLE photos (id integer PRIMARY KEY, owner integer, b64 text)"))
        conn.execute(sa.text("INSERT INTO photos VALUES (1, 1, :v)"), {"v": b64(picture)})
    source = parse_source(
        {
            "name": "photos",
            "table": "photos",
            "primary_key": "id",
            "owner_column": "owner",
            "column": "b64",
            "format": "base64",
            "accept": "images",
            "reference": "url",
        }
    )
    struck = []

    def retention_strikes(event: str) -> None:
        if event == "object_stored" and not struck:  # verified, not yet committed
            struck.append(event)
            # What a retention sweep and its purge leave behind for an unreferenced object.
            with engine.begin() as conn:
                conn.execute(
                    sa.text(
                        "UPDATE media_catalog.stored_objects SET status = 'deleted', deleted_at = now() "
                        "WHERE sha256 = :s"
                    ),
                    {"s": sha},
                )
            assert store.delete_keys([blob.key]) == []

    settings = MigrationSettings(workers=1, stream_above_bytes=stream_above)
    stats = migrate_source(engine, store, source, settings=settings, on_event=retention_strikes)

    with engine.connect() as conn:
        value = conn.execute(sa.text("SELECT b64 FROM photos WHERE id = 1")).scalar_one()
        status = conn.execute(
            sa.text("SELECT status FROM media_catalog.stored_objects WHERE sha256 = :s"), {"s": sha}
        ).scalar_one()
    assert status == "verified"
    assert store.exists(reference_key(value)), "the row points at an object retention purged"
    assert hashlib.sha256(store.get_bytes(reference_key(value))).hexdigest() == sha
    assert struck and stats.rows_retried == 1 and stats.blobs_moved == 1
