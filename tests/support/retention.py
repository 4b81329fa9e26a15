"""Fixtures for retention tests: a real catalog, a local object store, small source tables, and objects
and references created through the platform's own ingest path (`core.ingest`)."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from core.catalog.db import get_engine, upgrade_catalog
from core.ingest import store_verified, upsert_object, upsert_reference
from core.media_types import MediaInfo
from core.objectstore.base import ObjectStore
from core.objectstore.local import LocalObjectStore
from core.retention.config import RetentionConfig, parse_retention_config
from core.retention.sweep import SweepReport, run_sweep
from core.sources import load_sources_config

C = "media_catalog"
NOW = datetime.now(UTC).replace(microsecond=0)
PNG = MediaInfo(mime_type="image/png", extension="png", kind="image", width=1, height=1)

SOURCE_TABLES_DDL = """
CREATE TABLE users (id text PRIMARY KEY, email text, last_login_at timestamptz, deleted_at timestamptz);
CREATE TABLE stories (id bigint PRIMARY KEY, user_id text, data text, deleted_at timestamptz);
CREATE TABLE characters (id bigint PRIMARY KEY, user_id text, photo text, deleted_at timestamptz);
CREATE TABLE files (id bigint PRIMARY KEY, user_id text, data text, filename text, deleted_at timestamptz);
CREATE TABLE story_jobs (id bigint PRIMARY KEY, user_id text, result jsonb);
"""


def days_ago(days: float) -> datetime:
    return NOW - timedelta(days=days)


def catalog(database_url: str, *, source_tables: bool = True) -> sa.Engine:
    upgrade_catalog(database_url)
    engine = get_engine(database_url)
    if source_tables:
        with engine.begin() as conn:
            for statement in SOURCE_TABLES_DDL.strip().split(";\n"):
                if statement.strip():
                    conn.execute(sa.text(statement))
    return engine


def local_store(tmp_path: Path) -> LocalObjectStore:
    return LocalObjectStore(tmp_path / "objects", signing_secret="test-signing-secret")


def add_object(
    engine: sa.Engine,
    store: ObjectStore,
    content: str,
    *,
    created: datetime | None = None,
    legal_hold: bool = False,
) -> tuple[int, str]:
    """Store `content` verified and catalogue it; returns (object id, storage key)."""
    data = content.encode()
    blob = store_verified(store, data, hashlib.sha256(data).hexdigest(), PNG)
    with engine.begin() as conn:
        object_id = upsert_object(conn, blob, PNG, store.provider, store=store)
        conn.execute(
            sa.text(f"UPDATE {C}.stored_objects SET created_at = :c, legal_hold = :h WHERE id = :id"),
            {"c": created or days_ago(60), "h": legal_hold, "id": object_id},
        )
    return object_id, blob.key


def add_ref(
    engine: sa.Engine,
    object_id: int,
    owner: str,
    source: str,
    pk: Any,
    *,
    json_path: str = "",
    released: datetime | None = None,
    expires: datetime | None = None,
    origin: str = "migration",
) -> int:
    configured = {s.name: s for s in load_sources_config().sources}
    # A configured source's references carry its whole identity, as the migration writes them.
    identity = (
        configured[source].identity
        if source in configured
        else {"source_name": source, "source_table": source}
    )
    with engine.begin() as conn:
        ref_id = upsert_reference(
            conn,
            object_id=object_id,
            owner_id=owner,
            origin=origin,
            **identity,
            source_pk=str(pk),
            json_path=json_path,
        )
        conn.execute(
            sa.text(
                f"UPDATE {C}.object_references SET released_at = :r, expires_at = :e, created_at = :c "
                "WHERE id = :id"
            ),
            {"r": released, "e": expires, "c": days_ago(90), "id": ref_id},
        )
    return ref_id


def execute(engine: sa.Engine, sql: str, **params: Any) -> None:
    with engine.begin() as conn:
        conn.execute(sa.text(sql), params)


def scalar(engine: sa.Engine, sql: str, **params: Any) -> Any:
    with engine.connect() as conn:
        return conn.execute(sa.text(sql), params).scalar()


def rows(engine: sa.Engine, sql: str, **params: Any) -> list[sa.Row]:
    with engine.connect() as conn:
        return list(conn.execute(sa.text(sql), params).all())


def status(engine: sa.Engine, object_id: int) -> str:
    return str(scalar(engine, f"SELECT status FROM {C}.stored_objects WHERE id = :id", id=object_id))


def hold(engine: sa.Engine, *, owner: str | None = None, object_id: int | None = None) -> None:
    execute(
        engine,
        f"INSERT INTO {C}.legal_holds (owner_id, object_id, reason) VALUES (:o, :i, 'litigation')",
        o=owner,
        i=object_id,
    )


def config(**raw: Any) -> RetentionConfig:
    """The configuration a retention.yaml holding `raw` gives."""
    return parse_retention_config(raw)


def only(*policies: str, **raw: Any) -> RetentionConfig:
    return config(**raw).only(*policies)


def sweep(
    engine: sa.Engine,
    store: ObjectStore,
    *,
    cfg: RetentionConfig | None = None,
    now: datetime = NOW,
    dry_run: bool = False,
    run_id: str = "run-1",
) -> SweepReport:
    return run_sweep(
        engine, store, load_sources_config(), cfg or config(), run_id=run_id, now=now, dry_run=dry_run
    )


def audit(engine: sa.Engine, run_id: str | None = None) -> list[sa.Row]:
    where = "WHERE run_id = :run" if run_id else ""
    return rows(
        engine,
        f"SELECT run_id, policy, action, target_type, target_id, storage_key, owner_id, size_bytes, reason, "
        f"dry_run, created_at FROM {C}.retention_audit {where} ORDER BY id",
        run=run_id,
    )
