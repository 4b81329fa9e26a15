"""Catalog and source rows for the usage tests, inserted directly (sizes are catalog numbers, so a
"90 MB" object costs nothing to create)."""

from __future__ import annotations

import datetime as dt
import hashlib
import itertools

import sqlalchemy as sa

from core.catalog.models import CATALOG_SCHEMA as C

_counter = itertools.count(1)


def create_source_tables(conn: sa.Connection, with_tier: bool = True) -> None:
    """Small versions of the legacy app tables the configured sources name (users, stories, files)."""
    tier = ", tier TEXT" if with_tier else ""
    conn.execute(
        sa.text(
            f"CREATE TABLE public.users (id BIGINT PRIMARY KEY, last_login_at TIMESTAMPTZ,"
            f" deleted_at TIMESTAMPTZ{tier})"
        )
    )
    conn.execute(
        sa.text(
            "CREATE TABLE public.stories (id BIGINT PRIMARY KEY, user_id BIGINT, data TEXT,"
            " deleted_at TIMESTAMPTZ)"
        )
    )
    conn.execute(
        sa.text(
            "CREATE TABLE public.files (id BIGINT PRIMARY KEY, user_id BIGINT, data TEXT,"
            " deleted_at TIMESTAMPTZ)"
        )
    )


def add_user(conn: sa.Connection, user_id: int, tier: str | None = None) -> None:
    if tier is None:
        conn.execute(sa.text("INSERT INTO public.users (id) VALUES (:id)"), {"id": user_id})
    else:
        conn.execute(
            sa.text("INSERT INTO public.users (id, tier) VALUES (:id, :t)"), {"id": user_id, "t": tier}
        )


def add_object(
    conn: sa.Connection,
    size: int,
    *,
    owners: list[str] | tuple[str, ...] = (),
    kind: str = "image",
    created_at: dt.datetime | None = None,
    deleted_at: dt.datetime | None = None,
    released: bool = False,
) -> tuple[int, str]:
    """A stored object with one live (or released) reference per owner; returns (id, sha256)."""
    n = next(_counter)
    sha = hashlib.sha256(f"object-{n}".encode()).hexdigest()
    created = created_at or dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    object_id = conn.execute(
        sa.text(f"""INSERT INTO {C}.stored_objects (sha256, size_bytes, mime_type, kind, storage_key,
                provider, status, created_at, deleted_at)
            VALUES (:sha, :size, 'image/jpeg', :kind, :key, 'local', :status, :created, :deleted)
            RETURNING id"""),
        {
            "sha": sha,
            "size": size,
            "kind": kind,
            "key": f"originals/{sha[:2]}/{sha}.jpg",
            "status": "deleted" if deleted_at else "verified",
            "created": created,
            "deleted": deleted_at,
        },
    ).scalar_one()
    for i, owner in enumerate(owners):
        conn.execute(
            sa.text(f"""INSERT INTO {C}.object_references (object_id, owner_id, origin, source_name,
                    source_table, source_pk, json_path, created_at, released_at)
                VALUES (:o, :owner, 'migration', 'files', 'files', :pk, :path, :created, :released)"""),
            {
                "o": object_id,
                "owner": owner,
                "pk": f"{n}",
                "path": f"$[{i}]",
                "created": created,
                "released": created + dt.timedelta(hours=1) if released else None,
            },
        )
    return object_id, sha


def add_variant(
    conn: sa.Connection, parent_id: int, name: str, size: int, created_at: dt.datetime | None = None
) -> None:
    conn.execute(
        sa.text(f"""INSERT INTO {C}.variants (parent_object_id, variant_name, spec_hash, status, storage_key,
                size_bytes, mime_type, created_at)
            VALUES (:p, :n, 'spec', 'ready', :key, :size, 'image/webp', :created)"""),
        {
            "p": parent_id,
            "n": name,
            "key": f"variants/{parent_id}/{name}.webp",
            "size": size,
            "created": created_at or dt.datetime(2026, 1, 1, tzinfo=dt.UTC),
        },
    )


def add_backup_copy(conn: sa.Connection, sha: str, size: int) -> None:
    conn.execute(
        sa.text(f"""INSERT INTO {C}.backup_object_copies (sha256, backup_key, size_bytes, copied_at)
            VALUES (:sha, :key, :size, :at)"""),
        {"sha": sha, "key": f"objects/{sha}", "size": size, "at": dt.datetime(2026, 1, 1, tzinfo=dt.UTC)},
    )
