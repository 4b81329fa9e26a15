"""Helpers for the backup tests: a small app table set, and catalog objects stored in a real store."""

from __future__ import annotations

import hashlib
import os
from datetime import datetime
from pathlib import Path

import sqlalchemy as sa

from core.catalog.db import get_engine, upgrade_catalog
from core.objectstore.base import ObjectStore
from core.objectstore.local import LocalObjectStore
from core.objectstore.s3 import S3ObjectStore
from tests.support.services import s3_client


def prepare_database(url: str, rows: int = 200) -> None:
    """Catalog schema plus two app tables: one with a key and a bulky text column, one without a key."""
    upgrade_catalog(url)
    with get_engine(url).begin() as conn:
        conn.execute(sa.text("CREATE TABLE public.notes (id bigint PRIMARY KEY, body text, at timestamptz)"))
        conn.execute(sa.text("CREATE TABLE public.tags (name text, weight double precision)"))
        conn.execute(
            sa.text(
                "INSERT INTO public.notes SELECT g, repeat(md5(g::text), 40), "
                "timestamptz '2026-11-01 10:00+00' + g * interval '1 minute' FROM generate_series(1, :n) g"
            ),
            {"n": rows},
        )
        conn.execute(sa.text("INSERT INTO public.tags VALUES ('a', 0.1), ('b', 1e-7), ('a', 0.1)"))


def local_store(root: Path) -> LocalObjectStore:
    return LocalObjectStore(root, signing_secret="test-secret")


def s3_store(endpoint: str, bucket: str, prefix: str) -> S3ObjectStore:
    return S3ObjectStore(s3_client(endpoint), bucket, prefix=prefix)


def add_object(
    url: str,
    store: ObjectStore,
    owner: str,
    data: bytes,
    created_at: datetime,
    *,
    source_pk: str | None = None,
) -> tuple[int, str, str]:
    """Store `data` content-addressed, catalog it with a reference from `owner`; return (id, sha, key)."""
    sha = hashlib.sha256(data).hexdigest()
    key = f"originals/{sha[:2]}/{sha[2:4]}/{sha}.bin"
    store.put_bytes(key, data, sha256=sha, content_type="application/octet-stream")
    with get_engine(url).begin() as conn:
        object_id = conn.execute(
            sa.text(
                "INSERT INTO media_catalog.stored_objects (sha256, size_bytes, mime_type, kind, storage_key, "
                "provider, created_at) VALUES (:sha, :size, 'application/octet-stream', 'other', :key, "
                ":provider, :at) RETURNING id"
            ),
            {"sha": sha, "size": len(data), "key": key, "provider": store.provider, "at": created_at},
        ).scalar_one()
        conn.execute(
            sa.text(
                "INSERT INTO media_catalog.object_references (object_id, owner_id, origin, source_name, "
                "source_schema, source_table, source_column, source_pk) "
                "VALUES (:oid, :owner, 'migration', 'files', 'public', 'files', 'data', :pk)"
            ),
            {"oid": object_id, "owner": owner, "pk": source_pk or str(object_id)},
        )
    return int(object_id), sha, key


def add_variant(url: str, store: ObjectStore, parent_id: int, data: bytes, created_at: datetime) -> str:
    sha = hashlib.sha256(data).hexdigest()
    key = f"variants/{sha[:2]}/{sha}/thumb_150.webp"
    store.put_bytes(key, data, sha256=sha, content_type="image/webp")
    with get_engine(url).begin() as conn:
        conn.execute(
            sa.text(
                "INSERT INTO media_catalog.variants (parent_object_id, variant_name, spec_hash, status, "
                "storage_key, sha256, mime_type, size_bytes, created_at) VALUES (:p, 'thumb_150', 'x', "
                "'ready', :key, :sha, 'image/webp', :size, :at)"
            ),
            {"p": parent_id, "key": key, "sha": sha, "size": len(data), "at": created_at},
        )
    return key


def random_bytes(size: int) -> bytes:
    return os.urandom(size)
