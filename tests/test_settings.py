"""Production is configuration only: environment variables switch Postgres and object storage."""

from __future__ import annotations

from pathlib import Path

import pytest
from dagster import EnvVar, build_resources

from core.objectstore.base import sha256_hex
from resources import settings
from tests.support.services import S3_ACCESS_KEY, S3_REGION, S3_SECRET_KEY


def test_database_url_comes_from_the_environment_as_a_hidden_secret(
    database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DATABASE_URL", database_url)
    resource = settings.postgres_resource()
    assert isinstance(resource._get_non_default_public_field_values()["database_url"], EnvVar)


def test_s3_compatible_store_is_selected_by_environment_only(
    s3_endpoint: str, s3_bucket: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MEDIA_PLATFORM_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("OBJECT_STORE_BACKEND", "s3")
    monkeypatch.setenv("S3_BUCKET", s3_bucket)
    monkeypatch.setenv("S3_PREFIX", "media")
    monkeypatch.setenv("S3_ENDPOINT_URL", s3_endpoint)
    monkeypatch.setenv("S3_REGION", S3_REGION)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", S3_ACCESS_KEY)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", S3_SECRET_KEY)

    resource = settings.object_store_resource()
    s3_fields = resource.s3._get_non_default_public_field_values()
    assert isinstance(s3_fields["aws_secret_access_key"], EnvVar)  # never a literal in config or the UI

    with build_resources({"object_store": resource}) as initialized:
        store = initialized.object_store.store()  # EnvVars resolved the way a run resolves them
        data = b"hello object storage"
        store.put_bytes("probe/hello.txt", data, sha256=sha256_hex(data), content_type="text/plain")
        assert store.provider == "s3"
        assert store.get_bytes("probe/hello.txt") == data


def test_backup_location_can_be_another_bucket_with_shared_credentials(
    s3_endpoint: str, s3_bucket: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MEDIA_PLATFORM_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("BACKUP_STORE_BACKEND", "s3")
    monkeypatch.setenv("BACKUP_S3_BUCKET", s3_bucket)
    monkeypatch.setenv("S3_ENDPOINT_URL", s3_endpoint)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", S3_ACCESS_KEY)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", S3_SECRET_KEY)
    resource = settings.backup_store_resource()
    assert resource.bucket == s3_bucket and resource.prefix == "backups"
    with build_resources({"backup_store": resource}) as initialized:
        store = initialized.backup_store.store()
        store.put_bytes("day/x.bin", b"x", sha256=sha256_hex(b"x"), content_type="application/octet-stream")
        assert store.head("day/x.bin") is not None
