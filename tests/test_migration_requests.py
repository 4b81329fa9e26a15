"""Requests the migration makes per blob on an S3-compatible store (every request to a remote store
costs a round trip): one PUT per new blob, none for content the catalog knows, none on a second pass."""

from __future__ import annotations

import base64
import hashlib
import time
from pathlib import Path

import boto3
import sqlalchemy as sa

from core.catalog.db import get_engine, upgrade_catalog
from core.migration.engine import MigrationSettings, migrate_source
from core.objectstore.local import LocalObjectStore
from core.objectstore.s3 import S3ObjectStore, put_confirms
from core.sources import BlobSource
from tests.support.faults import fault_proxy
from tests.support.migration import png
from tests.support.services import S3_ACCESS_KEY, S3_REGION, S3_SECRET_KEY, s3_client

SOURCE = BlobSource.model_validate(
    {"name": "avatars", "table": "avatars", "owner_column": "user_id", "column": "photo", "format": "base64"}
)


def _avatars(url: str, contents: list[bytes]) -> None:
    with get_engine(url).begin() as conn:
        conn.execute(sa.text("CREATE TABLE avatars (id integer PRIMARY KEY, user_id integer, photo text)"))
        for i, data in enumerate(contents, start=1):
            conn.execute(
                sa.text("INSERT INTO avatars VALUES (:i, 1, :p)"),
                {"i": i, "p": base64.b64encode(data).decode()},
            )


def test_first_pass_is_one_put_per_new_blob_no_head_and_a_second_pass_sends_nothing(
    database_url: str, s3_endpoint: str, s3_bucket: str
) -> None:
    distinct = [png(i, size=20) for i in range(6)]
    # Rows 7 and 8 repeat rows 1 and 2 in a later batch: the catalog knows that content by then.
    _avatars(database_url, [*distinct, distinct[0], distinct[1]])
    upgrade_catalog(database_url)
    store = S3ObjectStore(s3_client(s3_endpoint), s3_bucket)
    settings = MigrationSettings(batch_rows=2, workers=2)

    stats = migrate_source(get_engine(database_url), store, SOURCE, settings=settings)

    assert stats.blobs_moved == 8 and stats.objects_uploaded == 6
    assert store.stats.by_action == {"put": 6}  # no HEAD before, no HEAD after: the PUT's ETag confirms
    for data in distinct:  # and what the PUTs stored is exactly the content
        sha256 = hashlib.sha256(data).hexdigest()
        assert store.verify(f"originals/{sha256[:2]}/{sha256[2:4]}/{sha256}.png", sha256)
    store.stats.by_action.clear()
    again = migrate_source(get_engine(database_url), store, SOURCE, settings=settings)
    assert again.blobs_moved == 0 and again.already_migrated == 8
    assert store.stats.by_action == {}


def test_a_put_response_proves_the_bytes_only_by_their_md5_etag_or_the_servers_sha256(
    s3_endpoint: str, s3_bucket: str
) -> None:
    data = png(3, size=20)
    digest = base64.b64encode(hashlib.sha256(data).digest()).decode()
    response = s3_client(s3_endpoint).put_object(Bucket=s3_bucket, Key="k.png", Body=data)
    assert put_confirms(response, data, digest)  # moto: ETag = MD5 of a single-part upload
    assert not put_confirms(response, data + b"x", digest)  # other bytes arrived
    kms_like = {**response, "ETag": '"0123456789abcdef0123456789abcdef"'}  # SSE-KMS: not the MD5
    assert not put_confirms(kms_like, data, digest)
    assert put_confirms({"ChecksumSHA256": digest, "ETag": '"opaque"'}, data, digest)
    assert not put_confirms({"ChecksumSHA256": "AAAA", "ETag": response["ETag"]}, data, digest)


def test_the_latency_proxy_holds_every_request_for_its_latency(s3_endpoint: str, s3_bucket: str) -> None:
    with fault_proxy(s3_endpoint, rate=0.0, latency=0.2) as proxy:
        client = boto3.client(
            "s3",
            endpoint_url=proxy.endpoint,
            region_name=S3_REGION,
            aws_access_key_id=S3_ACCESS_KEY,
            aws_secret_access_key=S3_SECRET_KEY,
        )
        started = time.perf_counter()
        for i in range(3):
            client.put_object(Bucket=s3_bucket, Key=f"slow/{i}", Body=b"x")
        assert time.perf_counter() - started >= 0.6
        assert proxy.counts["requests"] == 3 and proxy.injected == 0


def test_rows_committed_together_each_keep_their_own_row_version_guard(
    database_url: str, s3_endpoint: str, s3_bucket: str
) -> None:
    _avatars(database_url, [png(i, size=20) for i in range(6)])
    upgrade_catalog(database_url)
    engine = get_engine(database_url)
    store = S3ObjectStore(s3_client(s3_endpoint), s3_bucket)
    app_value = base64.b64encode(png(99, size=20)).decode()
    changed: list[bool] = []

    def app_writes(event: str) -> None:  # the app rewrites row 3 while its blob is being stored
        if event == "object_stored" and not changed:
            changed.append(True)
            with engine.begin() as conn:
                conn.execute(sa.text("UPDATE avatars SET photo = :p WHERE id = 3"), {"p": app_value})

    stats = migrate_source(
        engine, store, SOURCE, settings=MigrationSettings(batch_rows=8, workers=2), on_event=app_writes
    )
    assert stats.rows_changed_concurrently == 1 and stats.rows_rewritten == 5
    with engine.connect() as conn:
        photos = dict(conn.execute(sa.text("SELECT id, photo FROM avatars")).all())
        refs = conn.execute(
            sa.text("SELECT count(*) FROM media_catalog.object_references WHERE source_name = 'avatars'")
        ).scalar_one()
    assert photos[3] == app_value and refs == 5
    assert all(photos[i].startswith("originals/") for i in (1, 2, 4, 5, 6))
    again = migrate_source(engine, store, SOURCE)
    assert again.rows_rewritten == 1 and again.rows_changed_concurrently == 0


def test_rows_committed_while_the_next_batch_is_planned_leave_nothing_behind(
    database_url: str, tmp_path: Path
) -> None:
    """Batches overlap (one in flight while the next is planned); rows finishing meanwhile commit in
    groups. Every row of every batch is rewritten, and the pass's progress is cleared at the end."""
    contents = [png(i, size=12) for i in range(150)]
    _avatars(database_url, contents)
    upgrade_catalog(database_url)
    engine = get_engine(database_url)
    store = LocalObjectStore(tmp_path / "objects", signing_secret="s")
    stats = migrate_source(engine, store, SOURCE, settings=MigrationSettings(batch_rows=40, workers=4))
    assert stats.rows_rewritten == 150 and stats.rows_scanned == 150
    with engine.connect() as conn:
        left = conn.execute(sa.text("SELECT count(*) FROM avatars WHERE photo NOT LIKE 'originals/%'"))
        assert left.scalar_one() == 0
        progress = conn.execute(sa.text("SELECT count(*) FROM media_catalog.migration_progress"))
        assert progress.scalar_one() == 0
